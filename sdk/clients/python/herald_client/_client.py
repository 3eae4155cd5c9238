"""The blocking client."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, cast

from typing_extensions import Unpack

from ._core import HeraldError, Recipient, SendOptions, TriggerOptions, _Base, _Request
from .models import AckResult, IncidentView, Ledger, MessageStatus, PluginList, SendAccepted, TriggerAccepted, TriggerLevel


class Herald(_Base):
    """A client for one gateway and one tenant's API key; each call blocks.

    `timeout` (seconds) bounds each HTTP exchange. `retries` (default 0) is how
    many times a 429 or 503 answer is retried, waiting Retry-After (at most
    MAX_RETRY_WAIT seconds), for GETs and for POSTs that carry an idempotency
    key; other calls are never repeated by the client.
    """

    def send_message(self, channel: str, recipients: Sequence[Recipient], **options: Unpack[SendOptions]) -> SendAccepted:
        """POST /v1/messages → `{"id", "status": "accepted", "recipients", "send_at"?}`.

        `recipients`: addresses (`"ann@example.com"`) or `{"to", "variables"}`
        objects. `send_at`: a timezone-aware datetime, Unix milliseconds or an
        RFC 3339 string. With `idempotency_key`, a repeat returns the first
        answer and sends nothing twice.
        """
        return cast(SendAccepted, self._run(self._send_message(channel, recipients, options)))

    def get_message(self, message_id: str) -> MessageStatus:
        """GET /v1/messages/{id}: the message, each delivery's status, a summary by status, the cost."""
        return cast(MessageStatus, self._run(self._get_message(message_id)))

    def trigger_action(self, action_id: str, level: TriggerLevel, **options: Unpack[TriggerOptions]) -> TriggerAccepted:
        """POST /v1/actions/{id}/trigger → `{"id": <incident>, "deduplicated"}`.

        `level`: "urgent", "normal" or "info". `recipients` (optional, added to
        the action's own): `{"users": [...], "units": [...], "list": [{"to", "channel"?, ...}]}`.
        """
        return cast(TriggerAccepted, self._run(self._trigger_action(action_id, level, options)))

    def get_incident(self, incident_id: str) -> IncidentView:
        """GET /v1/incidents/{id}: state, acknowledgements, fired steps, timeline."""
        return cast(IncidentView, self._run(self._get_incident(incident_id)))

    def ack_incident(self, incident_id: str, recipient: str | None = None) -> AckResult:
        """POST /v1/incidents/{id}/ack → `{"id", "state", "acknowledged_by"}`; the
        whole incident, or one recipient (directory user id or address)."""
        return cast(AckResult, self._run(self._ack_incident(incident_id, recipient)))

    def get_ledger(self, limit: int | None = None) -> Ledger:
        """GET /v1/ledger: balance and latest entries (integer minor units)."""
        return cast(Ledger, self._run(self._get_ledger(limit)))

    def list_plugins(self) -> PluginList:
        """GET /v1/plugins → `{"plugins": [...]}`: the loaded channel plugins."""
        return cast(PluginList, self._run(_Request("GET", "/v1/plugins")))

    def _run(self, request: _Request) -> Any:
        attempt = 0
        while True:
            try:
                return self._once(request)
            except HeraldError as e:
                wait = self._retry_wait(request, e, attempt)
                if wait is None:
                    raise
            attempt += 1
            time.sleep(wait)
