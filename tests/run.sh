#!/usr/bin/env bash
# The whole test suite against real parts: starts Kafka (KRaft) and Cassandra
# from Maven Central jars (deploy/services/), an SMTP server per test
# (aiosmtpd), builds everything, runs every test, stops the services.
# Called by `make test`; set HERALD_TEST_SERVICES=0 to skip Kafka/Cassandra
# (their tests then print "skipping").
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CARGO_TARGET_DIR:?run through make test}"

services="${HERALD_TEST_SERVICES:-1}"
stop_services() {
  if [ "$services" = 1 ]; then
    deploy/services/kafka.sh stop >/dev/null 2>&1 || true
    deploy/services/cassandra.sh stop >/dev/null 2>&1 || true
  fi
}
trap stop_services EXIT

if [ "$services" = 1 ]; then
  # Start the JVMs first, so they boot while cargo builds.
  deploy/services/kafka.sh stop >/dev/null 2>&1 || true
  deploy/services/cassandra.sh stop >/dev/null 2>&1 || true
  deploy/services/kafka.sh fetch
  deploy/services/cassandra.sh fetch
  deploy/services/kafka.sh start
  deploy/services/cassandra.sh start
fi

host=(--workspace $(for p in $(ls plugins) hostile legacy; do printf -- '--exclude herald-plugin-%s ' "$p"; done) --exclude herald-plugin-sdk)
make --no-print-directory plugins
# One build of every host binary and test, with one feature set (see HOST in the Makefile).
cargo build --release "${host[@]}" --bins --tests

if [ "$services" = 1 ]; then
  deploy/services/kafka.sh wait
  deploy/services/cassandra.sh wait
  export HERALD_TEST_KAFKA=127.0.0.1:9092 HERALD_TEST_CQL=127.0.0.1:9042
fi
export HERALD_TEST_PLUGIN_DIR="$CARGO_TARGET_DIR/herald-plugins"

cargo test --release "${host[@]}"
tests/console/run.sh
sdk/clients/test.sh
cargo test --release -p herald-plugin-sdk $(for p in $(ls plugins) hostile; do printf -- '-p herald-plugin-%s ' "$p"; done)
make --no-print-directory TESTS=1 conformance template-check

# Alert rules: promtool unit tests (Debian's prometheus package brings promtool).
command -v promtool >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
promtool check config deploy/prometheus/prometheus.yml
promtool test rules deploy/prometheus/alerts.test.yml
