#!/usr/bin/env bash
# Tests of the client SDKs (python/, typescript/) against the real
# herald-gateway and herald-admin binaries (see testbed.py). Runs both suites,
# fails if either fails. Called by tests/run.sh; on its own:
#   CARGO_TARGET_DIR=~/.cache/herald/target sdk/clients/test.sh
set -euo pipefail
cd "$(dirname "$0")"
target=${CARGO_TARGET_DIR:-$HOME/.cache/herald/target}
export HERALD_GATEWAY_BIN=${HERALD_GATEWAY_BIN:-$target/release/herald-gateway}
export HERALD_ADMIN_BIN=${HERALD_ADMIN_BIN:-$target/release/herald-admin}
export HERALD_TEST_PLUGIN_DIR=${HERALD_TEST_PLUGIN_DIR:-$target/herald-plugins}
cache=${HERALD_CACHE:-$HOME/.cache/herald}  # Go modules, Maven repository

for f in "$HERALD_GATEWAY_BIN" "$HERALD_ADMIN_BIN" "$HERALD_TEST_PLUGIN_DIR/webhook.wasm"; do
  [ -e "$f" ] || { echo "client SDK tests: $f is missing (build with make test / make plugins)" >&2; exit 1; }
done
command -v python3 >/dev/null || { echo "client SDK tests: python3 is missing" >&2; exit 1; }
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null \
  || { echo "client SDK tests: Node.js >= 20 is missing" >&2; exit 1; }

failed=()
echo "== client SDKs: generated code matches sdk/openapi/ (generate.sh --check)"
./generate.sh --check || failed+=(generate)

# Python: mypy --strict on the package and on tests/typing_check.py (what the
# types must accept and refuse), then the suites (sync and asyncio) with the
# venv's Python (the package needs typing_extensions).
echo "== client SDKs: Python (mypy --strict, unittest)"
# (&& chains: `set -e` does not apply left of `||`.)
py=$(python/tools.sh) \
  && (cd python && "$py/mypy" --strict --python-version 3.10 herald_client tests/typing_check.py) \
  && (cd python && "$py/python" -m unittest discover -s tests -v) \
  || failed+=(python)
# TypeScript: tsc --noEmit (strict) on the client and test/types.ts, the
# build (dist/), then the suite against dist/.
echo "== client SDKs: TypeScript (tsc --noEmit, node --test)"
ts=$(typescript/tools.sh) \
  && (cd typescript && "$ts/tsc" --noEmit -p tsconfig.json && "$ts/tsc" -p tsconfig.build.json) \
  && (cd typescript && node --test --test-reporter=spec test/client.test.mjs) \
  || failed+=(typescript)

# Go: gofmt, go vet, then go test: the client's rules against a local stub, and the
# gateway suite against the test bed (with_testbed.py exports HERALD_URL etc.).
# Modules are cached in ~/.cache/herald/go.
need() { command -v "$1" >/dev/null || { echo "client SDK tests: $1 is missing" >&2; return 1; }; }
echo "== client SDKs: Go (gofmt, go vet, go test)"
(cd go && need go && export GOPATH=${GOPATH:-$cache/go} GOMODCACHE=${GOMODCACHE:-$cache/go/pkg/mod} GOFLAGS=-modcacherw \
  && { [ -z "$(gofmt -l .)" ] || { echo "gofmt -l: $(gofmt -l .)" >&2; false; }; } \
  && go vet ./... && python3 ../with_testbed.py -- go test -count=1 -v ./...) \
  || failed+=(go)
# Java: mvn package (compiles the generated models and the client, runs the
# JUnit suites, the gateway one against the test bed). Maven's repository is
# ~/.cache/herald/m2.
echo "== client SDKs: Java (mvn package, JUnit)"
(cd java && need mvn && python3 ../with_testbed.py -- mvn -B -q -Dstyle.color=never -Dmaven.repo.local="$cache/m2" package) \
  || failed+=(java)

if [ ${#failed[@]} -gt 0 ]; then
  echo "client SDK tests FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "client SDK tests passed (python, typescript, go, java)"
