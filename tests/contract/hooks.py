"""schemathesis hooks of the API contract check (tests/contract.sh).

One check beyond schemathesis' own: both APIs promise that bad input is answered
with a 400 whose error body names the request part at fault
(`{"error": {"code", "message", "field"}}`: a body field path, `body`, a query
parameter or a header), so a client can point at it.
"""

import json

import schemathesis


@schemathesis.check
def bad_input_names_the_field(ctx, response, case):
    """A 400 answer's error body carries a non-empty `field`."""
    if response.status_code != 400:
        return None
    try:
        error = json.loads(response.content).get("error")
    except (ValueError, AttributeError):
        raise AssertionError("a 400 answer without the JSON error body") from None
    if not isinstance(error, dict) or not error.get("field"):
        code = error.get("code") if isinstance(error, dict) else None
        raise AssertionError(f"a 400 answer ({code}) that names no field")
    return None
