"""Demo webhook receiver for deploy/compose: answers 200 to every POST and
prints the request (signature headers and JSON body) to stdout.

Not a Herald component; it stands in for a tenant's HTTP endpoint.
"""
import http.server
import json
import sys


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            shown = json.dumps(json.loads(body), ensure_ascii=False)
        except ValueError:
            shown = body[:2000].decode("utf-8", "replace")
        print(self.path, "ts=" + str(self.headers.get("X-Herald-Timestamp")),
              "sig=" + str(self.headers.get("X-Herald-Signature")), shown, flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):  # healthcheck
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    http.server.ThreadingHTTPServer(("0.0.0.0", port), Sink).serve_forever()
