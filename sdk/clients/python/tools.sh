#!/usr/bin/env bash
# Prints the bin directory of a venv holding the pinned tools of
# requirements-dev.txt (mypy, datamodel-code-generator, typing_extensions),
# made the first time: $HERALD_CACHE/sdk-python/venv-<hash of the pins and the
# Python version> (HERALD_CACHE defaults to ~/.cache/herald), so changed pins
# get a new venv. Uses $PYTHON (default python3), which must be >= 3.10.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || { echo "sdk/clients/python: $python is older than 3.10" >&2; exit 1; }
hash=$({ cat "$here/requirements-dev.txt"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-16)
venv=${HERALD_CACHE:-$HOME/.cache/herald}/sdk-python/venv-$hash
if [ ! -e "$venv/.complete" ]; then
  echo "sdk/clients/python: installing the tools into $venv" >&2
  rm -rf "$venv"
  if ! "$python" -m venv "$venv" >&2; then
    # Debian's Python has venv's ensurepip in a package of its own.
    command -v apt-get >/dev/null && apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2
  fi
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install --quiet --require-virtualenv -r "$here/requirements-dev.txt" >&2
  touch "$venv/.complete"
fi
echo "$venv/bin"
