"""A small client for the Herald gateway's `/v1` API, standard library only.

    from herald_client import Herald, HeraldError, HeraldNetworkError

    herald = Herald("http://127.0.0.1:8080", api_key)
    answer = herald.send_message("webhook", [{"to": "ann", "variables": {"name": "Ann"}}], template="welcome")
    herald.get_message(answer["id"])

Every method returns the gateway's JSON answer as it is (dicts and lists).
"""

from ._client import Herald, HeraldError, HeraldNetworkError

__all__ = ["Herald", "HeraldError", "HeraldNetworkError"]
__version__ = "0.1.0"
