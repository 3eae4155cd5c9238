"""A typed client for the Herald gateway's `/v1` API, sync (`Herald`) and
asyncio (`AsyncHerald`); standard library HTTP.

    from herald_client import Herald, HeraldError, HeraldNetworkError

    herald = Herald("http://127.0.0.1:8080", api_key)
    answer = herald.send_message("webhook", [{"to": "ann", "variables": {"name": "Ann"}}], template="welcome")
    herald.get_message(answer["id"])

Answers are the gateway's JSON (dicts and lists), typed by the TypedDicts of
`herald_client.models`, generated from the gateway's OpenAPI document.
"""

from ._async import AsyncHerald
from ._client import Herald
from ._core import DEFAULT_RETRY_WAIT, MAX_RETRY_WAIT, HeraldError, HeraldNetworkError, Recipient, SendOptions, TriggerOptions

__all__ = [
    "DEFAULT_RETRY_WAIT",
    "MAX_RETRY_WAIT",
    "AsyncHerald",
    "Herald",
    "HeraldError",
    "HeraldNetworkError",
    "Recipient",
    "SendOptions",
    "TriggerOptions",
]
__version__ = "0.2.0"
