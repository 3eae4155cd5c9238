from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from typing import Any, Mapping, Optional, Sequence, Union

# A Retry-After longer than this is not slept through: the error goes to the
# caller, who can schedule the retry (see README, "Retries").
MAX_RETRY_WAIT = 30.0
# The wait before a retry when a 429/503 has no Retry-After (e.g. from a proxy).
DEFAULT_RETRY_WAIT = 1.0

# As the gateway checks it (README: 1-255 visible ASCII characters); checked
# here too because a header cannot carry anything else.
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_API_KEY = re.compile(r"[\x21-\x7e]+")

Recipient = Union[str, Mapping[str, Any]]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as an error: following it would carry the API key along."""

    def redirect_request(self, *args, **kwargs):
        return None


_open = urllib.request.build_opener(_NoRedirects).open


class HeraldError(Exception):
    """The gateway answered with an error status.

    `status` is the HTTP status; `code`, `message` and `field` come from the
    error body `{"error": {"code", "message", "field"}}` (`code` and `field`
    are None when the answer had none, e.g. an
    error page of a proxy). `retry_after` is the Retry-After header in
    seconds, when there was one (503, 429).
    """

    def __init__(self, status: int, code: Optional[str], message: str, field: Optional[str] = None, retry_after: Optional[float] = None):
        super().__init__(status, code, message, field, retry_after)  # all of them, so that it pickles
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after

    def __str__(self) -> str:
        field = f" (field {self.field})" if self.field else ""
        return f"HTTP {self.status} {self.code or 'error'}: {self.message}{field}"

    def __repr__(self) -> str:
        return f"HeraldError(status={self.status!r}, code={self.code!r}, message={self.message!r}, field={self.field!r}, retry_after={self.retry_after!r})"


class HeraldNetworkError(Exception):
    """The gateway could not be reached or did not answer in time. Whether a
    POST took effect is unknown: repeat it with the same idempotency key."""


class Herald:
    """A client for one gateway and one tenant's API key.

    `timeout` (seconds) bounds each HTTP exchange. `retries` (default 0) is how
    many times a 429 or 503 answer is retried, waiting Retry-After (at most
    MAX_RETRY_WAIT seconds), for GETs and for POSTs that carry an idempotency
    key; other calls are never repeated by the client.
    """

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 10.0, retries: int = 0):
        if not isinstance(base_url, str) or not re.match(r"https?://[^/]", base_url):
            raise ValueError("base_url must be an http:// or https:// URL, e.g. http://127.0.0.1:8080")
        if not isinstance(api_key, str) or not _API_KEY.fullmatch(api_key):
            # Never echo the key, not even a bad one.
            raise ValueError("api_key must be a non-empty string of visible ASCII characters")
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self._api_key = api_key

    def __repr__(self) -> str:
        return f"Herald(base_url={self.base_url!r}, timeout={self.timeout!r}, retries={self.retries!r})"

    # --- messages ---------------------------------------------------------

    def send_message(
        self,
        channel: str,
        recipients: Sequence[Recipient],
        *,
        account: Optional[str] = None,
        template: Optional[str] = None,
        content: Optional[Mapping[str, str]] = None,
        variables: Optional[Mapping[str, Any]] = None,
        send_at: Union[datetime, str, None] = None,
        metadata: Optional[Mapping[str, str]] = None,
        idempotency_key: Optional[str] = None,
    ) -> dict:
        """POST /v1/messages → `{"id", "status": "accepted", "recipients", "send_at"?}`.

        `recipients`: addresses (`"ann@example.com"`) or `{"to", "variables"}`
        objects. `send_at`: a timezone-aware datetime or an RFC 3339 string.
        With `idempotency_key`, a repeat returns the first answer and sends nothing twice.
        """
        if isinstance(recipients, (str, bytes, Mapping)) or not isinstance(recipients, Sequence):
            raise TypeError("recipients must be a list of addresses or {'to': ..., 'variables': ...} objects")
        body: dict = {"channel": channel, "recipients": [_recipient(r) for r in recipients]}
        optional = {"account": account, "template": template, "content": content, "variables": variables, "metadata": metadata}
        body.update({k: v for k, v in optional.items() if v is not None})
        if send_at is not None:
            body["send_at"] = _timestamp(send_at)
        return self._call("POST", "/v1/messages", body=body, idempotency_key=idempotency_key)

    def get_message(self, message_id: str) -> dict:
        """GET /v1/messages/{id}: the message, each delivery's status, a summary by status, the cost."""
        return self._call("GET", "/v1/messages/" + _segment(message_id, "message_id"))

    # --- tiered push --------------------------------------------------------

    def trigger_action(
        self,
        action_id: str,
        level: str,
        *,
        recipients: Optional[Mapping[str, Any]] = None,
        variables: Optional[Mapping[str, Any]] = None,
        dedup_key: Optional[str] = None,
        idempotency_key: Optional[str] = None,
    ) -> dict:
        """POST /v1/actions/{id}/trigger → `{"id": <incident>, "deduplicated"}`.

        `level`: "urgent", "normal" or "info". `recipients` (optional, added to
        the action's own): `{"users": [...], "units": [...], "list": [{"to", "channel"?, ...}]}`.
        """
        body: dict = {"level": level}
        optional = {"recipients": recipients, "variables": variables, "dedup_key": dedup_key}
        body.update({k: v for k, v in optional.items() if v is not None})
        path = "/v1/actions/" + _segment(action_id, "action_id") + "/trigger"
        return self._call("POST", path, body=body, idempotency_key=idempotency_key)

    def get_incident(self, incident_id: str) -> dict:
        """GET /v1/incidents/{id}: state, acknowledgements, fired steps, timeline."""
        return self._call("GET", "/v1/incidents/" + _segment(incident_id, "incident_id"))

    def ack_incident(self, incident_id: str, recipient: Optional[str] = None) -> dict:
        """POST /v1/incidents/{id}/ack → `{"id", "state", "acknowledged_by"}`; the
        whole incident, or one recipient (directory user id or address)."""
        body = None if recipient is None else {"recipient": recipient}
        return self._call("POST", "/v1/incidents/" + _segment(incident_id, "incident_id") + "/ack", body=body)

    # --- account ------------------------------------------------------------

    def get_ledger(self, limit: Optional[int] = None) -> dict:
        """GET /v1/ledger: balance and latest entries (integer minor units)."""
        query = "" if limit is None else "?" + urllib.parse.urlencode({"limit": limit})
        return self._call("GET", "/v1/ledger" + query)

    def list_plugins(self) -> dict:
        """GET /v1/plugins → `{"plugins": [...]}`: the loaded channel plugins."""
        return self._call("GET", "/v1/plugins")

    # --- HTTP -----------------------------------------------------------------

    def _call(self, method: str, path: str, *, body: Any = None, idempotency_key: Optional[str] = None) -> Any:
        headers = {"Authorization": "Bearer " + self._api_key, "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            if not isinstance(idempotency_key, str) or not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
                raise ValueError("idempotency_key must be 1-255 visible ASCII characters (no spaces)")
            headers["Idempotency-Key"] = idempotency_key
        may_repeat = method == "GET" or idempotency_key is not None
        attempt = 0
        while True:
            try:
                return self._once(method, path, data, headers)
            except HeraldError as e:
                wait = _retry_wait(e)
                if not may_repeat or attempt >= self.retries or wait is None:
                    raise
            attempt += 1
            time.sleep(wait)

    def _once(self, method: str, path: str, data: Optional[bytes], headers: dict) -> Any:
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            try:
                response = _open(request, timeout=self.timeout)
            except urllib.error.HTTPError as e:
                response = e  # an error status is a response too
            with response:
                status, raw = response.code, response.read()
        except (OSError, http.client.HTTPException) as e:  # URLError and timeouts are OSErrors
            reason = getattr(e, "reason", None) or e
            raise HeraldNetworkError(f"{method} {path}: no answer from {self.base_url}: {reason}") from e
        if status >= 400:
            raise self._error(status, response.headers, raw)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise HeraldError(status, None, "the gateway's answer is not JSON") from None

    def _error(self, status: int, headers: Any, raw: bytes) -> HeraldError:
        code = field = None
        message = raw.decode("utf-8", "replace").strip()[:500]
        try:
            error = json.loads(raw)["error"]
            code, message, field = error.get("code"), str(error.get("message") or ""), error.get("field")
        except (ValueError, TypeError, KeyError, AttributeError):
            pass  # not the gateway's error body: keep the text
        message = (message or http.client.responses.get(status, "error")).replace(self._api_key, "[api key]")
        return HeraldError(status, code, message, field, _retry_after(headers.get("Retry-After")))


def _recipient(r: Recipient) -> Mapping[str, Any]:
    if isinstance(r, str):
        return {"to": r}
    if isinstance(r, Mapping):
        return dict(r)
    raise TypeError(f"a recipient must be an address or a {{'to': ...}} object, not {type(r).__name__}")


def _timestamp(t: Union[datetime, str]) -> str:
    if isinstance(t, str):
        return t
    if isinstance(t, datetime):
        if t.utcoffset() is None:
            raise ValueError("send_at must be timezone-aware, e.g. datetime.now(timezone.utc) + timedelta(hours=1)")
        return t.isoformat()
    raise TypeError("send_at must be a datetime or an RFC 3339 string")


def _segment(value: str, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return urllib.parse.quote(value, safe="")


def _retry_after(value: Optional[str]) -> Optional[float]:
    """Retry-After in seconds; None when absent or not a number of seconds."""
    value = (value or "").strip()
    return float(value) if value.isascii() and value.isdigit() else None


def _retry_wait(e: HeraldError) -> Optional[float]:
    """How long to wait before repeating after `e`; None: do not repeat."""
    if e.status not in (429, 503):
        return None
    wait = DEFAULT_RETRY_WAIT if e.retry_after is None else e.retry_after
    return wait if wait <= MAX_RETRY_WAIT else None
