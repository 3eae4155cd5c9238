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
# Each stage prints how long it took (CI must fit a cold run in 60 minutes).
started=$SECONDS
stage() {
  local name=$1; shift
  local t0=$SECONDS
  echo "=== stage: $name"
  "$@"
  echo "=== stage: $name took $((SECONDS - t0)) s (total $((SECONDS - started)) s)"
}
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
  stage "fetch Kafka and Cassandra" bash -c 'deploy/services/kafka.sh fetch && deploy/services/cassandra.sh fetch'
  stage "start Kafka and Cassandra" bash -c 'deploy/services/kafka.sh start && deploy/services/cassandra.sh start'
fi

stage "cargo fmt --check" cargo fmt --all --check

host=(--workspace $(for p in $(ls plugins) hostile legacy; do printf -- '--exclude herald-plugin-%s ' "$p"; done) --exclude herald-plugin-sdk)
stage "build plugins" make --no-print-directory plugins
# One build of every host binary and test, with one feature set (see HOST in the Makefile).
stage "build host binaries and tests" cargo build --release "${host[@]}" --bins --tests
stage "cargo clippy -D warnings" cargo clippy --release "${host[@]}" --all-targets -- -D warnings

if [ "$services" = 1 ]; then
  stage "wait for Kafka and Cassandra" bash -c 'deploy/services/kafka.sh wait && deploy/services/cassandra.sh wait'
  export HERALD_TEST_KAFKA=127.0.0.1:9092 HERALD_TEST_CQL=127.0.0.1:9042
  # The same servers' secured side (deploy/services/README.md): Kafka's SASL_SSL listener
  # (SCRAM-SHA-512), Cassandra's login (PasswordAuthenticator) and client TLS, and the test CA.
  export HERALD_TEST_KAFKA_SASL=127.0.0.1:9094 HERALD_TEST_TLS_DIR="${HERALD_SERVICES_RUN:-$HOME/.cache/herald/run}/tls"
  export HERALD_TEST_KAFKA_SASL_USERNAME=herald HERALD_TEST_KAFKA_SASL_PASSWORD=herald-scram-secret
  export HERALD_TEST_CQL_USERNAME=cassandra HERALD_TEST_CQL_PASSWORD=cassandra
fi
export HERALD_TEST_PLUGIN_DIR="$CARGO_TARGET_DIR/herald-plugins"

stage "Rust tests (unit, conformance, e2e, fuzz)" cargo test --release "${host[@]}"
stage "console in Chromium" tests/console/run.sh
stage "client SDKs" sdk/clients/test.sh
stage "API contract (OpenAPI validator, schemathesis)" tests/contract.sh
stage "plugin unit tests" cargo test --release -p herald-plugin-sdk $(for p in $(ls plugins) hostile; do printf -- '-p herald-plugin-%s ' "$p"; done)
stage "plugin conformance kit and template" make --no-print-directory TESTS=1 conformance template-check

# Alert rules: promtool unit tests (Debian's prometheus package brings promtool).
command -v promtool >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
stage "alert rules" bash -c 'promtool check config deploy/prometheus/prometheus.yml && promtool test rules deploy/prometheus/alerts.test.yml'
# Helm chart and deploy files without a cluster (deploy/helm/check.py): the alerts copy, runbook_url
# anchors, values keys; with helm-python-sdk and kubernetes-validate (pip) also lint, render, schema checks.
python3 -c 'import yaml, helm_python, kubernetes_validate' 2>/dev/null || python3 -m pip install -q pyyaml helm-python-sdk kubernetes-validate >/dev/null || true
stage "helm chart (check.py)" python3 deploy/helm/check.py
echo "=== all stages passed in $((SECONDS - started)) s"
