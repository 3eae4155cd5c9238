"""The asyncio client against the real herald-gateway (see ../../testbed.py).

From sdk/clients/python: python3 -m unittest discover -s tests -v
"""

import asyncio
import time
import unittest

import support
from support import delivered, inbox

from herald_client import AsyncHerald, HeraldError, HeraldNetworkError

bed = None


def setUpModule():
    global bed
    bed = support.bed()


async def wait_for(what, check, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


class Messages(unittest.IsolatedAsyncioTestCase):
    async def test_send_read_the_status_and_an_idempotent_repeat(self):
        herald = AsyncHerald(bed.url, bed.key)
        send = lambda **kw: herald.send_message("webhook", [{"to": "gus", "variables": {"name": "Gus"}}], template="welcome", **kw)
        first = await send(idempotency_key="async-order-1")
        self.assertEqual((first["status"], first["recipients"]), ("accepted", 1))
        self.assertEqual(await send(idempotency_key="async-order-1"), first)

        async def sent():
            view = await herald.get_message(first["id"])
            return view if delivered(view) else None

        view = await wait_for("the message to be sent", sent)
        self.assertEqual((view["id"], view["summary"]), (first["id"], {"sent": 1}))
        self.assertEqual([b["text"] for b in inbox(first["id"])], ["Hello Gus, welcome to Herald."])

    async def test_calls_run_concurrently(self):
        herald = AsyncHerald(bed.url, bed.key)
        answers = await asyncio.gather(*(herald.send_message("webhook", [f"hal{i}"], template="welcome") for i in range(5)))
        self.assertEqual(len({a["id"] for a in answers}), 5)
        views = await asyncio.gather(*(herald.get_message(a["id"]) for a in answers))
        self.assertEqual([v["id"] for v in views], [a["id"] for a in answers])

    async def test_a_bad_request_is_a_typed_error_with_the_field(self):
        herald = AsyncHerald(bed.url, bed.key)
        with self.assertRaises(HeraldError) as cm:
            await herald.send_message("webhook", ["x" * 513], template="welcome")
        e = cm.exception
        self.assertEqual((e.status, e.code, e.field), (400, "limit_exceeded", "recipients[0].to"))
        with self.assertRaises(HeraldError) as cm:
            await herald.send_message("webhook", ["ann"], template="welcome", idempotency_key="async-reused")
            await herald.send_message("webhook", ["bob"], template="welcome", idempotency_key="async-reused")
        self.assertEqual((cm.exception.status, cm.exception.code, cm.exception.field), (409, "idempotency_key_reused", "Idempotency-Key"))
        with self.assertRaisesRegex(ValueError, "idempotency_key"):
            await herald.send_message("webhook", ["ann"], template="welcome", idempotency_key="")


class Tiered(unittest.IsolatedAsyncioTestCase):
    async def test_trigger_read_the_incident_and_acknowledge(self):
        herald = AsyncHerald(bed.url, bed.tiered_key)
        first = await herald.trigger_action(bed.action, "urgent", variables={"host": "db2"}, dedup_key="async-db2", idempotency_key="async-alert")
        self.assertFalse(first["deduplicated"])
        repeat = await herald.trigger_action(bed.action, "urgent", variables={"host": "db2"}, dedup_key="async-db2", idempotency_key="async-alert")
        self.assertEqual(repeat, first)

        async def fired():
            incident = await herald.get_incident(first["id"])
            return incident if any(e["kind"] == "fired" for e in incident["timeline"]) else None

        incident = await wait_for("the first step", fired)
        self.assertEqual((incident["id"], incident["state"]), (first["id"], "open"))
        acked = await herald.ack_incident(first["id"])
        self.assertEqual((acked["id"], acked["state"]), (first["id"], "acknowledged"))
        self.assertEqual((await herald.get_incident(first["id"]))["state"], "acknowledged")
        with self.assertRaises(HeraldError) as cm:
            await herald.ack_incident("no-such-incident")
        self.assertEqual((cm.exception.status, cm.exception.code, cm.exception.field), (404, "not_found", "id"))


class Retries(unittest.IsolatedAsyncioTestCase):
    """Against the test bed's stub (503/429 n times, then 200; see testbed.py)."""

    def herald(self, scenario, **kw):
        return AsyncHerald(f"{bed.stub_url}/{scenario}", bed.key, **kw)

    async def test_an_idempotent_post_is_retried_and_the_loop_runs_meanwhile(self):
        ticks = 0

        async def tick():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        ticker = asyncio.create_task(tick())
        try:
            answer = await self.herald("503x1r1-async-send", retries=1).send_message("webhook", ["ann"], template="welcome", idempotency_key="ak-1")
        finally:
            ticker.cancel()
        self.assertEqual(answer, {"attempts": 2, "idempotency_key": "ak-1"})
        self.assertGreaterEqual(ticks, 10, "the Retry-After wait (1 s) did not block the event loop")

    async def test_a_post_without_a_key_is_not_retried(self):
        with self.assertRaises(HeraldError) as cm:
            await self.herald("503x1r0-async-nokey", retries=3).send_message("webhook", ["ann"], template="welcome")
        self.assertEqual((cm.exception.status, cm.exception.message, cm.exception.retry_after), (503, "attempt 1", 0))
        with self.assertRaises(HeraldError) as cm:
            await self.herald("429x1r0-async-ack", retries=3).ack_incident("i")
        self.assertEqual((cm.exception.status, cm.exception.message), (429, "attempt 1"))

    async def test_gets_are_retried_within_the_bound(self):
        self.assertEqual((await self.herald("429x2r0-async-get", retries=2).get_message("m"))["attempts"], 3)
        with self.assertRaises(HeraldError) as cm:
            await self.herald("503x9r0-async-bounded", retries=1).get_incident("i")
        self.assertEqual(cm.exception.message, "attempt 2")

    async def test_network_errors(self):
        with self.assertRaisesRegex(HeraldNetworkError, "refused"):
            await AsyncHerald(bed.closed_url, bed.key, retries=2).get_message("x")
        with self.assertRaisesRegex(HeraldNetworkError, "timed out"):
            await AsyncHerald(bed.silent_url, bed.key, timeout=0.5).get_message("x")


if __name__ == "__main__":
    unittest.main()
