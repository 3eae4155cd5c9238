#!/usr/bin/env bash
# Browser tests of the web console (admin/console) in Debian's Chromium, through
# playwright-core, against the real services: herald-admin, herald-gateway on
# the same data dir, and the SMTP sink (tests/fixtures/smtp_sink.py).
# Called by tests/run.sh after the cargo tests; on its own:
#   CARGO_TARGET_DIR=~/.cache/herald/target tests/console/run.sh [spec files…]
# Screenshots of failures, and the full-page screenshots of the layout checks
# (specs/08, in layout/), go to a temp dir whose path is printed.
set -euo pipefail
cd "$(dirname "$0")"
here=$PWD
repo=$(cd ../.. && pwd)
target=${CARGO_TARGET_DIR:-$HOME/.cache/herald/target}
admin_bin=${HERALD_ADMIN_BIN:-$target/release/herald-admin}
gateway_bin=${HERALD_GATEWAY_BIN:-$target/release/herald-gateway}
# The admin reads every HERALD_ADMIN_* variable as its configuration.
unset HERALD_ADMIN_BIN
plugin_dir=${HERALD_TEST_PLUGIN_DIR:-$target/herald-plugins}

for f in "$admin_bin" "$gateway_bin" "$plugin_dir/email.wasm"; do
  [ -e "$f" ] || { echo "console tests: $f is missing (build with make test / make plugins)" >&2; exit 1; }
done

# Debian's Chromium (never a downloaded browser), the xls/xlsx writers, the SMTP server.
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
python3 -c 'import openpyxl, xlwt' 2>/dev/null || python3 -m pip install --user --quiet openpyxl xlwt
python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install --quiet 'aiosmtpd==1.4.6'
npm ci --no-audit --no-fund --loglevel=error >/dev/null

work=$(mktemp -d /tmp/herald-console.XXXXXX)
shots=$(mktemp -d /tmp/herald-console-shots.XXXXXX)
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$rc" != 0 ]; then
    echo "console tests: logs in $work (admin.log, gateway.log, smtp.log)" >&2
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT INT TERM

# wait_for FILE REGEX PID: print the first match of REGEX in FILE (60 s at most).
wait_for() {
  local file=$1 re=$2 pid=$3 i m
  for i in $(seq 600); do
    m=$(grep -oE "$re" "$file" 2>/dev/null | head -n1 || true)
    if [ -n "$m" ]; then echo "$m"; return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "process $pid exited; log $file:" >&2; tail -n 40 "$file" >&2; return 1; }
    sleep 0.1
  done
  echo "timed out waiting for /$re/ in $file" >&2
  tail -n 40 "$file" >&2
  return 1
}

mkdir -p "$work/data" "$work/fixtures"
python3 make_fixtures.py "$work/fixtures" >/dev/null

smtp_user=sender@example.test
smtp_password=sink-secret-$RANDOM$RANDOM
python3 -u "$repo/tests/fixtures/smtp_sink.py" "$work/smtp.jsonl" "$smtp_user" "$smtp_password" >"$work/smtp.log" 2>&1 &
pids+=($!)
smtp_port=$(wait_for "$work/smtp.log" 'PORT [0-9]+' "${pids[-1]}" | cut -d' ' -f2)

cat >"$work/gateway.toml" <<EOF
listen = "127.0.0.1:0"
data_dir = "$work/data"
demo = false
plugins.dir = "$plugin_dir"
# The SMTP sink listens on loopback: allow it (tenant destinations are
# otherwise refused when they are private addresses).
transport.allow_private = ["127.0.0.0/8"]

# A price for e-mail, so that sends are billed: ledger, bills and reports have lines.
[[prices]]
channel = "email"
unit_minor = 3
currency = "CNY"
EOF
HERALD_LOG=${HERALD_LOG:-info} "$gateway_bin" --config "$work/gateway.toml" >"$work/gateway.out" 2>"$work/gateway.log" &
pids+=($!)
gateway_url=$(wait_for "$work/gateway.out" 'https?://127\.0\.0\.1:[0-9]+' "${pids[-1]}")

operator_token=operator-token-$(date +%s%N)
HERALD_ADMIN_LISTEN=127.0.0.1:0 \
HERALD_ADMIN_DATA_DIR="$work/data" \
HERALD_ADMIN_OPERATOR_TOKEN="$operator_token" \
HERALD_ADMIN_PLUGINS_DIR="$plugin_dir" \
HERALD_ADMIN_ALLOW_PRIVATE='["127.0.0.0/8"]' \
HERALD_LOG=${HERALD_LOG:-info} \
  "$admin_bin" >"$work/admin.out" 2>"$work/admin.log" &
pids+=($!)
admin_url=$(wait_for "$work/admin.out" 'https?://127\.0\.0\.1:[0-9]+' "${pids[-1]}")

echo "console tests: admin $admin_url, gateway $gateway_url, smtp 127.0.0.1:$smtp_port, screenshots (failures, layout checks) in $shots"
export HERALD_ADMIN_URL=$admin_url HERALD_GATEWAY_URL=$gateway_url \
  SMTP_PORT=$smtp_port SMTP_USER=$smtp_user SMTP_PASSWORD=$smtp_password SMTP_OUT=$work/smtp.jsonl \
  FIXTURES=$work/fixtures SHOT_DIR=$shots OPERATOR_TOKEN=$operator_token

if [ $# -gt 0 ]; then specs=("$@"); else specs=(specs/*.test.mjs); fi
set +e
nice -n 5 node --test --test-concurrency=1 --test-reporter=spec "${specs[@]}"
rc=$?
set -e
if [ "$rc" != 0 ]; then
  echo "console tests FAILED (exit $rc); screenshots in $shots" >&2
else
  rmdir "$shots" 2>/dev/null || echo "console tests: screenshots (layout checks) in $shots"
fi
exit "$rc"
