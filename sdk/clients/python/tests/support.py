"""What the suites share: one test bed (../../testbed.py) for the whole run, and waits."""

import atexit
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1])]  # herald_client, testbed

from testbed import Testbed  # noqa: E402

_bed = None


def bed() -> Testbed:
    """The test bed, started on first use, stopped when the run ends."""
    global _bed
    if _bed is None:
        _bed = Testbed().start()
        atexit.register(_bed.stop)
    return _bed


def wait_for(what, check, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def delivered(view) -> bool:
    """Whether every delivery of a message view is sent; fails on a failed one."""
    statuses = {d["status"] for d in view["deliveries"]}
    if statuses & {"failed", "dead"}:
        raise AssertionError(f"a delivery failed: {view}")
    return statuses <= {"sent", "delivered", "read"}


def inbox(message_id):
    """The webhook bodies the demo inbox received for this message."""
    return [b for b in bed().inbox() if b["id"].startswith(message_id + ".")]
