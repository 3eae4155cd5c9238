"""The blocking client against the real herald-gateway (see ../../testbed.py).

From sdk/clients/python: python3 -m unittest discover -s tests -v
"""

import time
import unittest
from datetime import datetime, timedelta, timezone

import support
from support import delivered, inbox, wait_for

from herald_client import Herald, HeraldError, HeraldNetworkError

bed = None


def setUpModule():
    global bed
    bed = support.bed()


def wait_sent(herald, message_id):
    def sent():
        view = herald.get_message(message_id)
        return view if delivered(view) else None

    return wait_for(f"message {message_id} to be sent", sent)


class Messages(unittest.TestCase):
    def setUp(self):
        self.herald = Herald(bed.url, bed.key)

    def test_a_template_is_rendered_per_recipient_and_sent(self):
        answer = self.herald.send_message(
            "webhook",
            [{"to": "ann", "variables": {"name": "Ann"}}, {"to": "bob", "variables": {"name": "Bob"}}],
            template="welcome",
            metadata={"order": "A-1"},
        )
        self.assertEqual((answer["status"], answer["recipients"]), ("accepted", 2))
        view = wait_sent(self.herald, answer["id"])
        self.assertEqual((view["id"], view["template"], view["summary"]), (answer["id"], "welcome", {"sent": 2}))
        bodies = {b["recipient"]: b for b in inbox(answer["id"])}
        self.assertEqual({to: b["text"] for to, b in bodies.items()}, {"ann": "Hello Ann, welcome to Herald.", "bob": "Hello Bob, welcome to Herald."})
        self.assertEqual(bodies["bob"]["subject"], "Welcome, Bob")
        self.assertEqual(bodies["ann"]["metadata"]["order"], "A-1")

    def test_inline_content_with_shared_variables_and_plain_addresses(self):
        answer = self.herald.send_message(
            "webhook", ["carl"], account="demo-webhook", content={"text": "{{ greeting }}, {{ recipient }}"}, variables={"greeting": "Hi"}
        )
        wait_sent(self.herald, answer["id"])
        self.assertEqual([b["text"] for b in inbox(answer["id"])], ["Hi, carl"])

    def test_send_at_is_an_aware_datetime_milliseconds_or_a_string(self):
        at = datetime.now(timezone.utc) + timedelta(seconds=2)
        answer = self.herald.send_message("webhook", ["dora"], template="welcome", send_at=at)
        self.assertEqual(answer["send_at"], int(at.timestamp() * 1000), "Unix milliseconds")
        view = self.herald.get_message(answer["id"])
        self.assertEqual(view["send_at"], answer["send_at"])
        self.assertEqual(view["deliveries"][0]["status"], "queued", "held until send_at")
        wait_sent(self.herald, answer["id"])

        in_ms = int(time.time() * 1000) + 60_000
        self.assertEqual(self.herald.send_message("webhook", ["dora"], template="welcome", send_at=in_ms)["send_at"], in_ms)

        past = self.herald.send_message("webhook", ["emil"], template="welcome", send_at="2000-01-01T00:00:00Z")
        self.assertNotIn("send_at", past, "a past send_at means now")
        wait_sent(self.herald, past["id"])

        offline = Herald(bed.closed_url, bed.key)  # the check is made before anything is sent
        with self.assertRaisesRegex(ValueError, "timezone-aware"):
            offline.send_message("webhook", ["x"], template="welcome", send_at=datetime(2030, 1, 1))

    def test_an_idempotency_key_returns_the_first_answer_and_sends_once(self):
        send = lambda **kw: self.herald.send_message("webhook", [{"to": "fay", "variables": {"name": "Fay"}}], template="welcome", **kw)
        first = send(idempotency_key="order-42")
        self.assertEqual(send(idempotency_key="order-42"), first)
        view = wait_sent(self.herald, first["id"])
        self.assertEqual([d["attempts"] for d in view["deliveries"]], [1])
        time.sleep(0.5)
        self.assertEqual(len(inbox(first["id"])), 1, "sent once")

        with self.assertRaises(HeraldError) as reused:
            send(idempotency_key="order-42", metadata={"changed": "yes"})
        e = reused.exception
        self.assertEqual((e.status, e.code, e.field), (409, "idempotency_key_reused", "Idempotency-Key"))
        with self.assertRaisesRegex(ValueError, "idempotency_key"):
            send(idempotency_key="has a space")

    def test_bad_requests_carry_the_servers_code_and_field(self):
        cases = [
            (dict(channel="carrier-pigeon", recipients=["ann"], template="welcome"), 422, "unknown_channel", "channel"),
            (dict(channel="webhook", recipients=[], template="welcome"), 400, "invalid_field", "recipients"),
            (dict(channel="webhook", recipients=["x" * 513], template="welcome"), 400, "limit_exceeded", "recipients[0].to"),
            (dict(channel="webhook", recipients=["ann"], template="welcome", content={"text": "hi"}), 400, "invalid_field", "content"),
            (dict(channel="webhook", recipients=["ann"], template="nope"), 422, "unknown_template", "template"),
            (dict(channel="webhook", recipients=["ann"], content={"text": "{{ oops"}), 400, "invalid_template", "content.text"),
            (dict(channel="webhook", recipients=["ann"], account="nope", template="welcome"), 422, "unknown_account", "account"),
        ]
        for kwargs, status, code, field in cases:
            with self.subTest(code=code, field=field), self.assertRaises(HeraldError) as cm:
                self.herald.send_message(**kwargs)
            e = cm.exception
            self.assertEqual((e.status, e.code, e.field), (status, code, field), e)
            self.assertTrue(e.message)
            self.assertIn(code, str(e))

        with self.assertRaises(HeraldError) as cm:
            self.herald.get_message("a/b")  # encoded as one path segment: the message is missing, not the route
        self.assertEqual((cm.exception.status, cm.exception.code, cm.exception.field), (404, "not_found", "id"))

        with self.assertRaises(HeraldError) as cm:  # the body limit (64 KiB in the test bed), answered before any handler
            self.herald.send_message("webhook", ["ann"], content={"text": "x" * 70_000})
        self.assertEqual((cm.exception.status, cm.exception.code, cm.exception.field), (413, "too_large", None))
        self.assertIn("limit", cm.exception.message)

        with self.assertRaisesRegex(TypeError, "list of addresses"):
            self.herald.send_message("webhook", "ann", template="welcome")


class Tiered(unittest.TestCase):
    def setUp(self):
        self.herald = Herald(bed.url, bed.tiered_key)

    def test_trigger_read_the_incident_and_acknowledge(self):
        trigger = lambda: self.herald.trigger_action(
            bed.action, "urgent", variables={"host": "db1"}, dedup_key="disk-db1", idempotency_key="alert-1"
        )
        first = trigger()
        self.assertFalse(first["deduplicated"])
        self.assertEqual(trigger()["id"], first["id"])
        incident_id = first["id"]

        def fired():
            incident = self.herald.get_incident(incident_id)
            return incident if any(e["kind"] == "fired" for e in incident["timeline"]) else None

        incident = wait_for("the first step", fired)
        self.assertEqual((incident["action"], incident["level"], incident["state"]), (bed.action, "urgent", "open"))
        texts = wait_for("the webhook", lambda: [b["text"] for b in bed.inbox() if b["metadata"].get("incident") == incident_id])
        self.assertEqual(len(texts), 1)
        self.assertTrue(texts[0].startswith("Disk db1 is full\nAck: ") and "/v1/ack/" in texts[0], texts)

        self.assertEqual(self.herald.ack_incident(incident_id, recipient="oncall")["acknowledged_by"], ["oncall"])
        acked = self.herald.ack_incident(incident_id)
        self.assertEqual((acked["id"], acked["state"]), (incident_id, "acknowledged"))
        self.assertEqual(self.herald.get_incident(incident_id)["state"], "acknowledged")

        with self.assertRaises(HeraldError) as cm:  # another tenant's incident does not exist for this key
            Herald(bed.url, bed.key).get_incident(incident_id)
        self.assertEqual(cm.exception.status, 404)

    def test_errors(self):
        cases = [
            (lambda: self.herald.trigger_action("no-such-action", "urgent"), 404, "not_found", "id"),
            (lambda: self.herald.trigger_action(bed.action, "critical"), 400, "invalid_field", "level"),
            (lambda: self.herald.get_incident("no-such-incident"), 404, "not_found", "id"),
            (lambda: self.herald.ack_incident("no-such-incident"), 404, "not_found", "id"),
        ]
        for call, status, code, field in cases:
            with self.subTest(code=code, field=field), self.assertRaises(HeraldError) as cm:
                call()
            self.assertEqual((cm.exception.status, cm.exception.code, cm.exception.field), (status, code, field))


class Account(unittest.TestCase):
    def test_ledger_and_plugins(self):
        herald = Herald(bed.url, bed.key)
        ledger = herald.get_ledger(limit=5)
        self.assertEqual((ledger["tenant"], ledger["currency"]), ("demo", "CNY"))
        self.assertIsInstance(ledger["balance_minor"], int)
        self.assertIsInstance(ledger["entries"], list)
        with self.assertRaises(HeraldError) as cm:
            herald.get_ledger(limit=0)
        self.assertEqual((cm.exception.status, cm.exception.field), (400, "limit"))
        self.assertEqual([p["name"] for p in herald.list_plugins()["plugins"]], ["webhook"])


class KeysAndNetwork(unittest.TestCase):
    SECRET = "hk_wrong_s3cr3t_s3cr3t_s3cr3t"

    def assertNoSecret(self, *texts):
        for text in texts:
            self.assertNotIn(self.SECRET, text)

    def test_a_wrong_key_is_a_401_that_does_not_show_the_key(self):
        herald = Herald(bed.url, self.SECRET)
        for call in (lambda: herald.get_message("x"), lambda: herald.send_message("webhook", ["ann"], template="welcome")):
            with self.assertRaises(HeraldError) as cm:
                call()
            e = cm.exception
            self.assertEqual((e.status, e.code), (401, "unauthenticated"))
            self.assertNoSecret(str(e), repr(e), e.message, repr(e.args), repr(herald))

    def test_an_error_page_quoting_the_key_is_redacted(self):
        with self.assertRaises(HeraldError) as cm:
            Herald(bed.stub_url + "/echo-auth", self.SECRET).get_message("x")
        e = cm.exception
        self.assertEqual((e.status, e.code, e.field), (502, None, None))
        self.assertIn("Authorization: Bearer [api key]", e.message)
        self.assertNoSecret(str(e), repr(e), e.message)

    def test_redirects_are_not_followed(self):
        with self.assertRaises(HeraldError) as cm:
            Herald(bed.stub_url + "/redirect", bed.key).get_message("x")
        self.assertEqual((cm.exception.status, cm.exception.code), (302, None))

    def test_a_malformed_key_is_refused_without_showing_it(self):
        with self.assertRaises(ValueError) as cm:
            Herald(bed.url, self.SECRET + "\n")
        self.assertNoSecret(str(cm.exception))
        with self.assertRaisesRegex(ValueError, "base_url"):
            Herald("127.0.0.1:8080", bed.key)

    def test_a_gateway_that_is_not_listening_is_a_network_error(self):
        herald = Herald(bed.closed_url, self.SECRET, retries=3)
        with self.assertRaises(HeraldNetworkError) as cm:
            herald.get_message("x")
        self.assertNotIsInstance(cm.exception, HeraldError)
        self.assertIn("refused", str(cm.exception))
        self.assertNoSecret(str(cm.exception), repr(cm.exception))

    def test_no_answer_in_time_is_a_network_error(self):
        started = time.monotonic()
        with self.assertRaisesRegex(HeraldNetworkError, "timed out"):
            Herald(bed.silent_url, bed.key, timeout=0.5).send_message("webhook", ["ann"], template="welcome")
        self.assertLess(time.monotonic() - started, 5)


class Retries(unittest.TestCase):
    """Against the test bed's stub: the first n answers of a scenario are errors (see testbed.py)."""

    def herald(self, scenario, **kw):
        return Herald(f"{bed.stub_url}/{scenario}", bed.key, **kw)

    def error(self, call):
        with self.assertRaises(HeraldError) as cm:
            call()
        return cm.exception

    def test_an_idempotent_post_is_retried_with_the_same_key(self):
        answer = self.herald("503x2r0-send", retries=2).send_message("webhook", ["ann"], template="welcome", idempotency_key="k-1")
        self.assertEqual(answer, {"attempts": 3, "idempotency_key": "k-1"})
        answer = self.herald("429x1r0-trigger", retries=1).trigger_action("a", "urgent", idempotency_key="k-2")
        self.assertEqual(answer["attempts"], 2)

    def test_posts_without_a_key_and_acks_are_not_retried(self):
        e = self.error(lambda: self.herald("503x1r0-nokey", retries=3).send_message("webhook", ["ann"], template="welcome"))
        self.assertEqual((e.status, e.code, e.message, e.retry_after), (503, "stub", "attempt 1", 0))
        e = self.error(lambda: self.herald("503x1r0-ack", retries=3).ack_incident("i"))
        self.assertEqual(e.message, "attempt 1")

    def test_retries_are_off_by_default_and_bounded(self):
        self.assertEqual(self.error(lambda: self.herald("503x1r0-default").get_message("m")).message, "attempt 1")
        e = self.error(lambda: self.herald("429x9r0-bounded", retries=2).get_message("m"))
        self.assertEqual((e.status, e.message), (429, "attempt 3"))
        self.assertEqual(self.error(lambda: self.herald("500x1r0-other", retries=2).get_message("m")).message, "attempt 1")

    def test_a_long_retry_after_goes_to_the_caller(self):
        started = time.monotonic()
        e = self.error(lambda: self.herald("503x1r120-long", retries=3).get_message("m"))
        self.assertEqual((e.message, e.retry_after), ("attempt 1", 120))
        self.assertLess(time.monotonic() - started, 5)

    def test_without_retry_after_the_wait_is_one_second(self):
        started = time.monotonic()
        self.assertEqual(self.herald("503x1-plain", retries=1).get_message("m")["attempts"], 2)
        self.assertGreaterEqual(time.monotonic() - started, 1.0)


if __name__ == "__main__":
    unittest.main()
