#!/usr/bin/env bash
# API contract (issue 15): both services' OpenAPI documents as served by the real
# binaries are valid (openapi-spec-validator), equal the committed
# sdk/openapi/{gateway,admin}.json, and hold against schemathesis' generated
# requests (every default check; tests/contract/*.toml say what is left out and why).
#
#   tests/contract.sh                           # binaries from $CARGO_TARGET_DIR/release
#   HERALD_CONTRACT_SEED=random tests/contract.sh   # explore beyond the fixed seed
#
# The tools are pinned in tests/contract/requirements.txt and installed once into
# $HERALD_CONTRACT_VENV (default ~/.cache/herald/venv-contract). The services run on
# the client test bed (sdk/clients/testbed.py): temp data dir, free ports, the demo
# tenant's webhook account posting to the gateway's /demo/inbox, an admin tenant
# with a tiered action, operator tokens for both. Exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${HERALD_CONTRACT_VENV:-$HOME/.cache/herald/venv-contract}

if [ "${1:-}" != --inner ]; then
  reqs=tests/contract/requirements.txt
  if ! cmp -s "$reqs" "$venv/requirements.txt"; then
    echo "contract: installing the pinned tools into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$reqs"
    cp "$reqs" "$venv/requirements.txt"
  fi
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/herald/target}
  # The gateway's test clock (POST /admin/clock) is on, so that operation is
  # checked too rather than answering 404 (herald-admin ignores this variable).
  export HERALD_TESTING_CLOCK=true
  work=$(mktemp -d -t herald-contract.XXXXXX)
  # The whole check is bounded; `timeout` signals the test bed and everything it
  # started (with_testbed.py stops the binaries on SIGTERM, as it does on exit).
  timeout -k 15 "${HERALD_CONTRACT_TIMEOUT:-190}" "$venv/bin/python" sdk/clients/with_testbed.py -- bash "$0" --inner "$work" &
  bed=$!
  trap 'kill -TERM $bed 2>/dev/null || true' INT TERM
  rc=0
  wait $bed || rc=$?
  # After a signal, wait returned early: wait for the bed to stop.
  while kill -0 $bed 2>/dev/null; do wait $bed || rc=$?; done
  [ $rc = 124 ] && echo "contract: timed out after ${HERALD_CONTRACT_TIMEOUT:-190} s" >&2
  cat "$work/summary" 2>/dev/null || true
  echo "contract: reports in $work"
  [ $rc = 0 ] && rm -rf "$work"
  exit $rc
fi

# Inside the test bed: HERALD_* facts in the environment (sdk/clients/with_testbed.py).
work=$2
export PATH="$venv/bin:$PATH"
# Our own check (a 400 names the field), beside schemathesis' defaults.
export SCHEMATHESIS_HOOKS=$PWD/tests/contract/hooks.py
seed=${HERALD_CONTRACT_SEED:-20261207}
[ "$seed" = random ] && seed=$RANDOM$RANDOM
failed=0
note() { echo "$*" >>"$work/summary"; }
: >"$work/summary"

# The served document: valid, and the committed copy (spec drift).
check_document() {
  local name=$1 url=$2 committed=$3 doc=$work/$1.json ok=1
  if ! curl -fsS --max-time 10 -o "$doc" "$url"; then
    note "$name: GET $url failed"
    return 1
  fi
  if ! openapi-spec-validator "$doc" >"$work/$name.validator.txt" 2>&1; then
    cat "$work/$name.validator.txt"
    note "$name: openapi-spec-validator rejects $url (above)"
    ok=0
  fi
  if [ ! -f "$committed" ]; then
    note "$name: $committed is missing (commit the served document)"
    ok=0
  elif ! python3 - "$committed" "$doc" <<'EOF'; then
import difflib, json, sys
a, b = (json.dumps(json.load(open(p)), indent=1, sort_keys=True).splitlines() for p in sys.argv[1:])
sys.stdout.writelines(line + "\n" for line in list(difflib.unified_diff(a, b, sys.argv[1], "served", lineterm="", n=2))[:80])
sys.exit(a != b)
EOF
    note "$name: the served document differs from $committed (diff above)"
    ok=0
  fi
  [ $ok = 1 ] && note "$name: document valid and equal to $committed"
  [ $ok = 1 ]
}

# schemathesis against a running service; the operations' settings and auth are in
# tests/contract/<name>.toml (tokens from the environment).
fuzz() {
  local name=$1 base=$2 t0=$SECONDS rc=0
  echo "--- schemathesis: $name (seed $seed)"
  (cd "$work" && timeout -k 5 "$3" schemathesis --config-file "$OLDPWD/tests/contract/$name.toml" run "$name.json" \
    --url "$base" --seed "$seed" --generation-database none --no-color \
    --report junit,ndjson --report-dir "$work/$name-report") || rc=$?
  if [ $rc = 0 ]; then
    note "$name: schemathesis clean ($((SECONDS - t0)) s, seed $seed)"
  else
    [ $rc = 124 ] && echo "$name: schemathesis timed out after $3 s" >&2
    note "$name: schemathesis FAILED (exit $rc, $((SECONDS - t0)) s, seed $seed): replay with HERALD_CONTRACT_SEED=$seed tests/contract.sh"
  fi
  return $rc
}

check_document gateway "$HERALD_URL/v1/openapi.json" sdk/openapi/gateway.json || failed=1
check_document admin "$HERALD_CONSOLE_URL/api/v1/openapi.json" sdk/openapi/admin.json || failed=1
export HERALD_CONTRACT_ACTION=$HERALD_ACTION
[ -f "$work/gateway.json" ] && { fuzz gateway "$HERALD_URL" 60 || failed=1; }
[ -f "$work/admin.json" ] && { fuzz admin "$HERALD_CONSOLE_URL" 100 || failed=1; }
exit $failed
