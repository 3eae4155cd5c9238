"""Run a command with the test bed (testbed.py) up, its facts in the environment.

    python3 with_testbed.py -- go test ./...
    python3 with_testbed.py -- mvn -q test

The command gets HERALD_URL (the gateway; its demo inbox is HERALD_URL/demo/inbox),
HERALD_KEY (the demo tenant's API key; its webhook account posts to that inbox,
template "welcome"), HERALD_TIERED_KEY and HERALD_ACTION (a tenant made through
the admin API and its tiered action: level "urgent", recipient "oncall", a webhook
to the same inbox), HERALD_CLOSED_URL (refuses connections), HERALD_SILENT_URL
(never answers), HERALD_STUB_URL (see testbed._Stub), HERALD_GATEWAY_OPERATOR_TOKEN
(the gateway's /admin/* token), HERALD_CONSOLE_URL (herald-admin; its API under
/api/v1), HERALD_CONSOLE_OPERATOR_TOKEN and HERALD_CONSOLE_LOGIN /
HERALD_CONSOLE_PASSWORD (the second tenant's admin). Everything stops when the
command ends or we get SIGTERM; its exit status is ours.
"""

import os
import signal
import subprocess
import sys

from testbed import Testbed


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below
    bed = Testbed().start()
    try:
        env = {**os.environ, **{"HERALD_" + k.upper(): str(v) for k, v in bed.facts().items()}}
        return subprocess.run(argv, env=env).returncode
    finally:
        bed.stop()


if __name__ == "__main__":
    sys.exit(main())
