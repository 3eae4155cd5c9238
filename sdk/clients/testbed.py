"""The test bed of the client SDK tests: the real herald-gateway and herald-admin.

Starts, on a temp data dir and free 127.0.0.1 ports:
- herald-gateway with the demo tenant (its webhook account posts to the
  gateway's own /demo/inbox, template "welcome"), only the webhook plugin, a
  64 KiB body limit (so a 413 is cheap to provoke) and an operator token
  (`gateway_operator_token`, for /admin/*);
- herald-admin on the same data dir (`console_url`, operator token
  `console_operator_token`), used once to make a second tenant with a
  tiered-push action (webhook to the same demo inbox) and its API key; that
  tenant's admin logs in as `console_login` / `console_password`;
- three local endpoints for what the gateway cannot be made to do: a port that
  refuses connections, one that accepts but never answers, and a stub that
  answers 503/429 a given number of times before succeeding.

Python tests import it (`Testbed().start()`); the TypeScript tests run
`python3 testbed.py`, which prints the facts as one JSON line and stops
everything when its stdin closes.

Binaries: $HERALD_GATEWAY_BIN / $HERALD_ADMIN_BIN, else
$CARGO_TARGET_DIR/release/ (default ~/.cache/herald/target); plugins:
$HERALD_TEST_PLUGIN_DIR, else $CARGO_TARGET_DIR/herald-plugins.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

START_TIMEOUT = 90  # seconds; the machine may be busy compiling


def _target() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache/herald/target")


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise RuntimeError(f"{what} {path} is missing: build it first (make test, or make plugins)")
    return path


class Testbed:
    def __init__(self):
        target = _target()
        self.gateway_bin = _need(Path(os.environ.get("HERALD_GATEWAY_BIN") or target / "release/herald-gateway"), "gateway binary")
        self.admin_bin = _need(Path(os.environ.get("HERALD_ADMIN_BIN") or target / "release/herald-admin"), "admin binary")
        plugins = Path(os.environ.get("HERALD_TEST_PLUGIN_DIR") or target / "herald-plugins")
        self.webhook_wasm = _need(plugins / "webhook.wasm", "plugin")
        self.dir = Path(tempfile.mkdtemp(prefix="herald-sdk-"))
        self._procs = []
        self._sockets = []
        self._stub = None

    def start(self) -> "Testbed":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        data, plugins = self.dir / "data", self.dir / "plugins"
        data.mkdir()
        plugins.mkdir()
        shutil.copy(self.webhook_wasm, plugins)
        config = self.dir / "gateway.toml"
        self.gateway_operator_token = "sdk-test-gateway-operator-" + os.urandom(8).hex()
        config.write_text(
            'listen = "127.0.0.1:0"\n'
            f"admin_token = {json.dumps(self.gateway_operator_token)}\n"
            f"data_dir = {json.dumps(str(data))}\n"
            "demo = true\n"
            f"plugins.dir = {json.dumps(str(plugins))}\n"
            # The test bed's receivers listen on loopback.
            'transport.allow_private = ["127.0.0.0/8"]\n'
            "[limits]\nmax_body_bytes = 65536\n"
        )
        self.url = self._spawn([str(self.gateway_bin), "--config", str(config)], {"HERALD_LOG": "info"}, "gateway", "herald-gateway listening on ")
        self.key = (data / "demo-api-key").read_text().strip()
        self.console_operator_token = "sdk-test-operator-" + os.urandom(8).hex()
        admin_env = {
            "HERALD_ADMIN_LISTEN": "127.0.0.1:0",
            "HERALD_ADMIN_DATA_DIR": str(data),
            "HERALD_ADMIN_PLUGINS_DIR": str(plugins),
            "HERALD_ADMIN_OPERATOR_TOKEN": self.console_operator_token,
            "HERALD_ADMIN_LOG": "info",
            "HERALD_ADMIN_ALLOW_PRIVATE": '["127.0.0.0/8"]',
        }
        self.console_url = self._spawn([str(self.admin_bin)], admin_env, "admin", "herald-admin listening on ")
        self.tiered_key, self.action = self._tiered_action(self.console_url + "/api/v1")

        closed = socket.socket()  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        silent = socket.socket()  # listening, never accepting: requests get no answer
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        self._sockets += [closed, silent]
        self.closed_url = "http://127.0.0.1:%d" % closed.getsockname()[1]
        self.silent_url = "http://127.0.0.1:%d" % silent.getsockname()[1]
        self._stub = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
        self._stub.counts = {}
        threading.Thread(target=self._stub.serve_forever, daemon=True).start()
        self.stub_url = "http://127.0.0.1:%d" % self._stub.server_address[1]

    def _spawn(self, argv, env, name, prefix) -> str:
        """Start a process, logging to <dir>/<name>.log; return the URL it prints after `prefix`."""
        out, log = self.dir / f"{name}.out", self.dir / f"{name}.log"
        with open(out, "w") as o, open(log, "w") as e:
            proc = subprocess.Popen(argv, env={**_inherited_env(), **env}, stdin=subprocess.DEVNULL, stdout=o, stderr=e)
        self._procs.append(proc)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for line in out.read_text().splitlines():
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"{name} did not start (exit {proc.poll()}); last log lines:\n{tail}")

    def _tiered_action(self, admin: str):
        """Register a tenant in the admin, give it a webhook account to the demo
        inbox and an action (urgent: one rule, that webhook, recipient "oncall");
        return (its API key, the action id)."""
        self.console_login, self.console_password = "sdk-boss", "correct horse battery"
        login = {"login": self.console_login, "password": self.console_password}
        _post(admin + "/register", {"enterprise_name": "SDK tests", "admin_login": login["login"], "admin_password": login["password"], "admin_name": "Boss"})
        token = _post(admin + "/login", login)["token"]
        _post(admin + "/accounts", {"name": "hook", "channel": "webhook", "config": {"url": self.url + "/demo/inbox"}}, token)
        template = _post(admin + "/tiered/templates", {"title": "Disk", "editor": "text", "body": "Disk {{ host }} is full"}, token)["id"]
        rule = {"level": "urgent", "channels": [{"channel": "webhook", "account": "hook"}], "recipients": {"list": [{"to": "oncall"}]}}
        action = _post(admin + "/tiered/actions", {"title": "Disk full", "templates": [template], "rules": [rule]}, token)["id"]
        key = _post(admin + "/api-keys", None, token)["api_key"]
        return key, action

    def inbox(self) -> list:
        """What the demo inbox received: the webhook bodies, oldest first."""
        with urllib.request.urlopen(self.url + "/demo/inbox", timeout=10) as r:
            return [item["body"] for item in json.load(r)["received"]]

    def facts(self) -> dict:
        # No fact may be named admin_*: with_testbed exports HERALD_<FACT>, and
        # herald-admin refuses unknown HERALD_ADMIN_* variables.
        keys = ("url", "key", "tiered_key", "action", "closed_url", "silent_url", "stub_url", "gateway_operator_token")
        return {k: getattr(self, k) for k in keys + ("console_url", "console_operator_token", "console_login", "console_password")}

    def stop(self):
        for p in self._procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self._procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self._procs = []
        for s in self._sockets:
            s.close()
        self._sockets = []
        if self._stub is not None:
            self._stub.shutdown()
            self._stub.server_close()
            self._stub = None
        shutil.rmtree(self.dir, ignore_errors=True)


def _inherited_env() -> dict:
    # herald-admin refuses unknown HERALD_ADMIN_* variables: HERALD_ADMIN_BIN
    # would read as its config key "bin". The paths are ours, not theirs.
    return {k: v for k, v in os.environ.items() if k not in ("HERALD_GATEWAY_BIN", "HERALD_ADMIN_BIN")}


def _post(url, body, token=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers, method="POST"), timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"admin setup: POST {url}: {e.code} {e.read().decode(errors='replace')}") from None


class _Stub(BaseHTTPRequestHandler):
    """Paths start with a scenario `<status>x<n>[r<seconds>]-<tag>`: the first n
    requests of that scenario answer <status> (with `Retry-After: <seconds>`
    when given) and the error body `{"error": {"code": "stub", "message":
    "attempt <k>"}}`; later ones answer 200 `{"attempts": k, "idempotency_key":
    …}`. Use a fresh tag per test. `/echo-auth/…` answers 502 in plain text,
    quoting the Authorization header (as a careless proxy might); `/redirect/…`
    redirects to a scenario that succeeds."""

    SCENARIO = re.compile(r"/(\d{3})x(\d+)(?:r(\d+))?-[\w-]+")
    lock = threading.Lock()

    def _answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/redirect/"):
            return self._reply(302, "text/plain", b"moved", {"Location": "/200x0-redirected" + self.path[len("/redirect"):]})
        if self.path.startswith("/echo-auth/"):
            return self._reply(502, "text/plain", f"bad gateway; you sent Authorization: {self.headers.get('Authorization')}".encode())
        m = self.SCENARIO.match(self.path)
        if not m:
            return self._json(404, {"error": {"code": "not_found", "message": "no such scenario"}})
        with self.lock:
            k = self.server.counts[m.group(0)] = self.server.counts.get(m.group(0), 0) + 1
        if k <= int(m.group(2)):
            extra = {"Retry-After": m.group(3)} if m.group(3) is not None else {}
            return self._json(int(m.group(1)), {"error": {"code": "stub", "message": f"attempt {k}"}}, extra)
        self._json(200, {"attempts": k, "idempotency_key": self.headers.get("Idempotency-Key")})

    do_GET = do_POST = _answer

    def _json(self, status, body, headers=None):
        self._reply(status, "application/json", json.dumps(body).encode(), headers)

    def _reply(self, status, content_type, raw, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


def main():
    bed = Testbed().start()
    try:
        print(json.dumps(bed.facts()), flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        sys.stdin.read()  # until the test runner closes our stdin
    finally:
        bed.stop()


if __name__ == "__main__":
    main()
