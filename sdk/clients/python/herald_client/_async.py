"""The asyncio client: the same calls as `Herald`, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from typing_extensions import Unpack

from ._core import HeraldError, Recipient, SendOptions, TriggerOptions, _Base, _Request
from .models import AckResult, IncidentView, Ledger, MessageStatus, PluginList, SendAccepted, TriggerAccepted, TriggerLevel


class AsyncHerald(_Base):
    """`Herald` for asyncio: each HTTP exchange runs in the default executor
    (standard library HTTP, no extra dependency) and retry waits are
    `asyncio.sleep`, so the event loop is never blocked. Cancelling a call
    abandons its exchange; the request may still reach the gateway (repeat it
    with the same idempotency key). Arguments, answers and errors are those of
    `Herald`.
    """

    async def send_message(self, channel: str, recipients: Sequence[Recipient], **options: Unpack[SendOptions]) -> SendAccepted:
        """POST /v1/messages (see `Herald.send_message`)."""
        return cast(SendAccepted, await self._run(self._send_message(channel, recipients, options)))

    async def get_message(self, message_id: str) -> MessageStatus:
        """GET /v1/messages/{id} (see `Herald.get_message`)."""
        return cast(MessageStatus, await self._run(self._get_message(message_id)))

    async def trigger_action(self, action_id: str, level: TriggerLevel, **options: Unpack[TriggerOptions]) -> TriggerAccepted:
        """POST /v1/actions/{id}/trigger (see `Herald.trigger_action`)."""
        return cast(TriggerAccepted, await self._run(self._trigger_action(action_id, level, options)))

    async def get_incident(self, incident_id: str) -> IncidentView:
        """GET /v1/incidents/{id} (see `Herald.get_incident`)."""
        return cast(IncidentView, await self._run(self._get_incident(incident_id)))

    async def ack_incident(self, incident_id: str, recipient: str | None = None) -> AckResult:
        """POST /v1/incidents/{id}/ack (see `Herald.ack_incident`)."""
        return cast(AckResult, await self._run(self._ack_incident(incident_id, recipient)))

    async def get_ledger(self, limit: int | None = None) -> Ledger:
        """GET /v1/ledger (see `Herald.get_ledger`)."""
        return cast(Ledger, await self._run(self._get_ledger(limit)))

    async def list_plugins(self) -> PluginList:
        """GET /v1/plugins (see `Herald.list_plugins`)."""
        return cast(PluginList, await self._run(_Request("GET", "/v1/plugins")))

    async def _run(self, request: _Request) -> Any:
        attempt = 0
        while True:
            try:
                return await asyncio.to_thread(self._once, request)
            except HeraldError as e:
                wait = self._retry_wait(request, e, attempt)
                if wait is None:
                    raise
            attempt += 1
            await asyncio.sleep(wait)
