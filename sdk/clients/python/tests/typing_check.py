"""Static tests of the client's types: checked by mypy --strict (test.sh), never run.

What the types must accept, and (with `# type: ignore[code]`, which --strict
reports when it is not needed) what they must refuse. A change of the
gateway's OpenAPI document that breaks a call fails here.
"""

from datetime import datetime, timezone

from typing_extensions import assert_type

from herald_client import AsyncHerald, Herald, HeraldError
from herald_client.models import (
    AckResult,
    DeliveryStatus,
    IncidentState,
    IncidentView,
    MessageStatus,
    SendAccepted,
    TriggerAccepted,
    TriggerLevel,
)


def messages(herald: Herald) -> None:
    answer = herald.send_message(
        "webhook",
        ["ann", {"to": "bob", "variables": {"name": "Bob", "vip": True}}],
        template="welcome",
        metadata={"order": "A-1"},
        send_at=datetime.now(timezone.utc),
        idempotency_key="order-42",
    )
    assert_type(answer, SendAccepted)
    assert_type(answer["id"], str)
    assert_type(answer["recipients"], int)
    assert_type(answer.get("send_at"), int | None)  # Unix milliseconds, when held until later
    herald.send_message("webhook", ["carl"], content={"text": "Hi {{ recipient }}"}, send_at=1_796_115_600_000)
    herald.send_message("webhook", ["dora"], template="welcome", send_at="2026-12-01T09:00:00Z")

    herald.send_message("webhook", ["ann"], send_after=1)  # type: ignore[call-arg]
    herald.send_message("webhook", ["ann"], metadata={"n": 1})  # type: ignore[dict-item]
    herald.send_message("webhook", [{"variables": {}}])  # type: ignore[list-item]
    herald.send_message("webhook", ["ann"], content={"body": "hi"})  # type: ignore[arg-type]

    view = herald.get_message(answer["id"])
    assert_type(view, MessageStatus)
    for delivery in view["deliveries"]:
        assert_type(delivery["status"], DeliveryStatus)
        assert_type(delivery["attempts"], int)
        lost: DeliveryStatus = "lost"  # type: ignore[assignment]
    assert_type(view["accepted_at"], int)


def tiered(herald: Herald) -> None:
    trigger = herald.trigger_action("disk-full", "urgent", variables={"host": "db1"}, recipients={"list": [{"to": "oncall"}]},
                                    dedup_key="disk-db1", idempotency_key="alert-1")
    assert_type(trigger, TriggerAccepted)
    assert_type(trigger["deduplicated"], bool)
    herald.trigger_action("disk-full", "urgent", recipients={"lists": []})  # type: ignore[arg-type]
    herald.trigger_action("disk-full", "critical")  # type: ignore[arg-type]

    incident = herald.get_incident(trigger["id"])
    assert_type(incident, IncidentView)
    assert_type(incident["acknowledged_by"], list[str])
    assert_type(incident["created_at"], int)
    assert_type(incident["level"], TriggerLevel)
    assert_type(incident["state"], IncidentState)
    assert_type(herald.ack_incident(incident["id"], recipient="oncall"), AckResult)


async def asynchronous(herald: AsyncHerald) -> None:
    answer = await herald.send_message("webhook", ["ann"], template="welcome", idempotency_key="k")
    assert_type(answer, SendAccepted)
    assert_type(await herald.get_message(answer["id"]), MessageStatus)
    assert_type(await herald.trigger_action("disk-full", "urgent"), TriggerAccepted)
    assert_type(await herald.get_incident("i"), IncidentView)
    assert_type(await herald.ack_incident("i"), AckResult)
    herald.get_message(answer["id"])["id"]  # type: ignore[index]


def errors(e: HeraldError) -> None:
    assert_type(e.status, int)
    assert_type(e.code, str | None)
    assert_type(e.field, str | None)
    assert_type(e.retry_after, float | None)
