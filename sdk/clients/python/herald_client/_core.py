"""What the sync and async clients share: argument checks, the requests, one
HTTP exchange (standard library), errors and the retry rule."""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from typing import Any

from typing_extensions import TypedDict

from .models import Content, RecipientSpec, Targets, TriggerLevel

# A Retry-After longer than this is not slept through: the error goes to the
# caller, who can schedule the retry (see README, "Retries").
MAX_RETRY_WAIT = 30.0
# The wait before a retry when a 429/503 has no Retry-After (e.g. from a proxy).
DEFAULT_RETRY_WAIT = 1.0

# As the gateway checks it (README: 1-255 visible ASCII characters); checked
# here too because a header cannot carry anything else.
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_API_KEY = re.compile(r"[\x21-\x7e]+")

Recipient = str | RecipientSpec
"""An address (`"ann@example.com"`) or a `{"to", "variables"?}` object."""


class SendOptions(TypedDict, total=False):
    """The optional arguments of `send_message` (see the gateway's `SendRequest`)."""

    account: str | None
    template: str | None
    content: Content | None
    variables: Mapping[str, Any] | None
    send_at: datetime | int | str | None
    """A timezone-aware datetime, integer Unix milliseconds, or an RFC 3339 string."""
    metadata: Mapping[str, str] | None
    idempotency_key: str | None


class TriggerOptions(TypedDict, total=False):
    """The optional arguments of `trigger_action` (see the gateway's `TriggerRequest`)."""

    recipients: Targets | None
    variables: Mapping[str, Any] | None
    dedup_key: str | None
    idempotency_key: str | None


class HeraldError(Exception):
    """The gateway answered with an error status.

    `status` is the HTTP status; `code`, `message` and `field` come from the
    error body `{"error": {"code", "message", "field"}}` (`code` and `field`
    are None when the answer had none, e.g. an error page of a proxy).
    `retry_after` is the Retry-After header in seconds, when there was one.
    """

    def __init__(self, status: int, code: str | None, message: str, field: str | None = None, retry_after: float | None = None):
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
        return (
            f"HeraldError(status={self.status!r}, code={self.code!r}, message={self.message!r}, "
            f"field={self.field!r}, retry_after={self.retry_after!r})"
        )


class HeraldNetworkError(Exception):
    """The gateway could not be reached or did not answer in time. Whether a
    POST took effect is unknown: repeat it with the same idempotency key."""


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    body: Any = None
    idempotency_key: str | None = None

    @property
    def may_repeat(self) -> bool:
        """GETs, and POSTs with an idempotency key: repeating them does nothing twice."""
        return self.method == "GET" or self.idempotency_key is not None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as an error: following it would carry the API key along."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_open = urllib.request.build_opener(_NoRedirects).open


class _Base:
    """Configuration, the requests of each call, and one HTTP exchange."""

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
        return f"{type(self).__name__}(base_url={self.base_url!r}, timeout={self.timeout!r}, retries={self.retries!r})"

    # --- the requests -------------------------------------------------------

    @staticmethod
    def _send_message(channel: str, recipients: Sequence[Recipient], options: SendOptions) -> _Request:
        if isinstance(recipients, (str, bytes, Mapping)) or not isinstance(recipients, Sequence):
            raise TypeError("recipients must be a list of addresses or {'to': ..., 'variables': ...} objects")
        unknown = set(options) - set(SendOptions.__annotations__)
        if unknown:
            raise TypeError(f"send_message() got unexpected arguments: {', '.join(sorted(unknown))}")
        body: dict[str, Any] = {"channel": channel, "recipients": [_recipient(r) for r in recipients]}
        for name in ("account", "template", "content", "variables", "metadata"):
            value = options.get(name)
            if value is not None:
                body[name] = value
        send_at = options.get("send_at")
        if send_at is not None:
            body["send_at"] = _timestamp(send_at)
        return _Request("POST", "/v1/messages", body, _idempotency_key(options.get("idempotency_key")))

    @staticmethod
    def _get_message(message_id: str) -> _Request:
        return _Request("GET", "/v1/messages/" + _segment(message_id, "message_id"))

    @staticmethod
    def _trigger_action(action_id: str, level: TriggerLevel, options: TriggerOptions) -> _Request:
        unknown = set(options) - set(TriggerOptions.__annotations__)
        if unknown:
            raise TypeError(f"trigger_action() got unexpected arguments: {', '.join(sorted(unknown))}")
        body: dict[str, Any] = {"level": level}
        for name in ("recipients", "variables", "dedup_key"):
            value = options.get(name)
            if value is not None:
                body[name] = value
        path = "/v1/actions/" + _segment(action_id, "action_id") + "/trigger"
        return _Request("POST", path, body, _idempotency_key(options.get("idempotency_key")))

    @staticmethod
    def _get_incident(incident_id: str) -> _Request:
        return _Request("GET", "/v1/incidents/" + _segment(incident_id, "incident_id"))

    @staticmethod
    def _ack_incident(incident_id: str, recipient: str | None) -> _Request:
        body = None if recipient is None else {"recipient": recipient}
        return _Request("POST", "/v1/incidents/" + _segment(incident_id, "incident_id") + "/ack", body)

    @staticmethod
    def _get_ledger(limit: int | None) -> _Request:
        query = "" if limit is None else "?" + urllib.parse.urlencode({"limit": limit})
        return _Request("GET", "/v1/ledger" + query)

    # --- HTTP -----------------------------------------------------------------

    def _retry_wait(self, request: _Request, error: HeraldError, attempt: int) -> float | None:
        """Seconds to wait before repeating `request` after `error` on its
        `attempt`-th repeat (0 = first try); None: do not repeat."""
        if not request.may_repeat or attempt >= self.retries or error.status not in (429, 503):
            return None
        wait = DEFAULT_RETRY_WAIT if error.retry_after is None else error.retry_after
        return wait if wait <= MAX_RETRY_WAIT else None

    def _once(self, request: _Request) -> Any:
        """One HTTP exchange (blocking): the decoded JSON answer, or an error."""
        headers = {"Authorization": "Bearer " + self._api_key, "Accept": "application/json"}
        data = None
        if request.body is not None:
            data = json.dumps(request.body).encode()
            headers["Content-Type"] = "application/json"
        if request.idempotency_key is not None:
            headers["Idempotency-Key"] = request.idempotency_key
        what = f"{request.method} {request.path}"
        http_request = urllib.request.Request(self.base_url + request.path, data=data, headers=headers, method=request.method)
        try:
            try:
                response = _open(http_request, timeout=self.timeout)
            except urllib.error.HTTPError as e:
                response = e  # an error status is a response too
            with response:
                status, answer_headers, raw = response.code, response.headers, response.read()
        except (OSError, http.client.HTTPException) as e:  # URLError and timeouts are OSErrors
            reason = getattr(e, "reason", None) or e
            raise HeraldNetworkError(f"{what}: no answer from {self.base_url}: {reason}") from e
        if not 200 <= status < 300:  # a redirect too: it is not followed
            raise self._error(status, answer_headers, raw)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise HeraldError(status, None, "the gateway's answer is not JSON") from None

    def _error(self, status: int, headers: Message, raw: bytes) -> HeraldError:
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


def _timestamp(t: datetime | int | str) -> int | str:
    """`send_at` as the gateway takes it: integer Unix milliseconds, or an RFC 3339 string as given."""
    if isinstance(t, datetime):
        if t.utcoffset() is None:
            raise ValueError("send_at must be timezone-aware, e.g. datetime.now(timezone.utc) + timedelta(hours=1)")
        return int(t.timestamp() * 1000)
    if isinstance(t, (int, str)) and not isinstance(t, bool):
        return t
    raise TypeError("send_at must be a datetime, integer Unix milliseconds or an RFC 3339 string")


def _idempotency_key(key: str | None) -> str | None:
    if key is not None and (not isinstance(key, str) or not _IDEMPOTENCY_KEY.fullmatch(key)):
        raise ValueError("idempotency_key must be 1-255 visible ASCII characters (no spaces)")
    return key


def _segment(value: str, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return urllib.parse.quote(value, safe="")


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds; None when absent or not a number of seconds."""
    value = (value or "").strip()
    return float(value) if value.isascii() and value.isdigit() else None
