#!/usr/bin/env bash
# Flame graph of the gateway during one herald-bench shape.
#
# usage: bench/scripts/flamegraph.sh NAME [herald-bench options...]
#   e.g. bench/scripts/flamegraph.sh batched -n 200000 --skip-raw
#        bench/scripts/flamegraph.sh unbatched --batch false -n 50000 --skip-raw
#
# Runs herald-bench (--gateway and --plugins default to $CARGO_TARGET_DIR, as
# `make bench` does); as soon as the bench has started the gateway, `perf record`
# attaches to it (the first herald-gateway child of the bench) from the bench's
# first request (not the plugins' compilation at start) until it exits.
# The samples are folded with inferno-collapse-perf and drawn with
# inferno-flamegraph into bench/results/flame-NAME-<UTC time>.svg; the bench's
# own report goes next to it (.txt and .json). Needs perf (perf_event_paranoid
# <= 2 is enough for a process of the same user) and inferno
# (`cargo install inferno`).
#
# PERF_FREQ (default 499 Hz) and PERF_CALLGRAPH (default dwarf,16384; "fp" for
# frame pointers, which a release build without them makes shallow) tune perf.
set -euo pipefail

name=${1:?usage: flamegraph.sh NAME [herald-bench options...]}
shift
here=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$HOME/.cache/herald/target}
bench=$target/release/herald-bench
out=$here/results
mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
base=$out/flame-$name-$stamp
work=$(mktemp -d /tmp/herald-flame.XXXXXX)
trap 'rm -rf "$work"' EXIT

for tool in perf inferno-collapse-perf inferno-flamegraph; do
  command -v "$tool" >/dev/null || { echo "flamegraph.sh: $tool not found (perf: /usr/bin/perf; inferno: cargo install inferno)" >&2; exit 2; }
done
[ -x "$bench" ] || { echo "flamegraph.sh: $bench not built (cargo build --release -p herald-bench)" >&2; exit 2; }

args=("$@")
case " ${args[*]:-} " in *" --gateway "*) ;; *) args+=(--gateway "$target/release/herald-gateway");; esac
case " ${args[*]:-} " in *" --plugins "*) ;; *) args+=(--plugins "$target/herald-plugins");; esac

"$bench" "${args[@]}" --out "$base.json" > "$base.txt" 2> "$work/bench.stderr" &
bench_pid=$!

# Wait (at most 10 min) for the bench's gateway child.
gw=""
for _ in $(seq 1 6000); do
  gw=$(pgrep -P "$bench_pid" -x herald-gateway | head -1 || true)
  [ -n "$gw" ] && break
  kill -0 "$bench_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$gw" ]; then
  wait "$bench_pid" || true
  cat "$work/bench.stderr" >&2
  echo "flamegraph.sh: the bench never started a gateway" >&2
  exit 1
fi

# The gateway compiles its plugins at start: sample from the first request on
# (the bench says "sending" on stderr), or after a minute whatever it says.
for _ in $(seq 1 600); do
  grep -q "sending" "$work/bench.stderr" 2>/dev/null && break
  kill -0 "$gw" 2>/dev/null || break
  sleep 0.1
done

cg=${PERF_CALLGRAPH:-dwarf,16384}
perf record -F "${PERF_FREQ:-499}" --call-graph "$cg" -p "$gw" -o "$work/perf.data" 2> "$work/perf.stderr" &
perf_pid=$!
bench_rc=0
wait "$bench_pid" || bench_rc=$?
# perf ends with its target; if it is still there, stop it (SIGINT writes the file).
if kill -0 "$perf_pid" 2>/dev/null; then kill -INT "$perf_pid" 2>/dev/null || true; fi
wait "$perf_pid" || true
cat "$work/bench.stderr" >&2
[ -s "$work/perf.data" ] || { cat "$work/perf.stderr" >&2; echo "flamegraph.sh: perf wrote no data" >&2; exit 1; }

perf script -i "$work/perf.data" 2> /dev/null | inferno-collapse-perf > "$work/folded"
inferno-flamegraph --title "herald-gateway: $name ($stamp)" --subtitle "herald-bench ${*:-(defaults)}" \
  < "$work/folded" > "$base.svg"
echo "flame graph: $base.svg (bench report: $base.txt, $base.json; bench exit $bench_rc)"
