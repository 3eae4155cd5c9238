#!/usr/bin/env bash
# Apache Kafka 4.1 (KRaft, one combined broker+controller) from Maven Central jars, no tarball.
# Usage: deploy/services/kafka.sh {fetch|start [--keep-data]|restart|wait|stop|status}
# See deploy/services/README.md.
set -euo pipefail

export SVC=kafka
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.2}"
# slf4j 1.x -> log4j2 binding; not in kafka_2.13's POM (releaseOnly in Kafka's build). Keep it at
# the log4j-core version of the Kafka tree.
KAFKA_LOG4J_VERSION="${KAFKA_LOG4J_VERSION:-2.24.3}"
KAFKA_HOST=127.0.0.1
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
# Second client listener: SASL_SSL with SCRAM-SHA-512 (certificate from ensure_tls in lib.sh;
# the SCRAM user is made when the storage is formatted).
KAFKA_SASL_SSL_PORT="${KAFKA_SASL_SSL_PORT:-9094}"
KAFKA_SASL_USER="${KAFKA_SASL_USER:-herald}"
KAFKA_SASL_PASSWORD="${KAFKA_SASL_PASSWORD:-herald-scram-secret}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms512m -Xmx1g}"
KAFKA_WAIT_TIMEOUT="${KAFKA_WAIT_TIMEOUT:-90}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

HOME_DIR="$HERALD_SERVICES_CACHE/kafka-$KAFKA_VERSION"
LIB="$HOME_DIR/lib"
RUN="$HERALD_SERVICES_RUN/kafka"
CONF="$RUN/conf"
DATA="$RUN/data"
LOGS="$RUN/logs"
LOGFILE="$LOGS/kafka.out"
PIDFILE="$RUN/kafka.pid"
MAIN=kafka.Kafka
JAVA="$(java_bin "${KAFKA_JAVA_HOME:-}")"

cmd_fetch() {
  mvn_fetch kafka "
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$KAFKA_LOG4J_VERSION</version></dependency>" \
    "$HOME_DIR"
}

write_config() {
  mkdir -p "$CONF" "$DATA" "$LOGS"
  cat > "$CONF/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT,SASL_SSL://$KAFKA_HOST:$KAFKA_SASL_SSL_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT,SASL_SSL://$KAFKA_HOST:$KAFKA_SASL_SSL_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$HERALD_SERVICES_TLS/server.p12
listener.name.sasl_ssl.ssl.keystore.password=$HERALD_TLS_STORE_PASSWORD
listener.name.sasl_ssl.ssl.key.password=$HERALD_TLS_STORE_PASSWORD
listener.name.sasl_ssl.ssl.truststore.type=PEM
listener.name.sasl_ssl.ssl.truststore.location=$HERALD_SERVICES_TLS/ca.pem
listener.name.sasl_ssl.ssl.client.auth=requested
log.dirs=$DATA
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
PROPS
  cat > "$CONF/log4j2.properties" <<PROPS
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
PROPS
}

jvm_common() {
  printf '%s\n' -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$CONF/log4j2.properties" "-Dkafka.logs.dir=$LOGS" \
    -cp "$LIB/*"
}

new_cluster_id() {
  if command -v python3 >/dev/null; then
    python3 -c 'import base64,uuid;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode())'
  else
    "$JAVA" -Xmx256m -cp "$LIB/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1
  fi
}

cmd_start() {
  local keep=0
  [[ "${1:-}" == "--keep-data" ]] && keep=1
  require_fetched "$HOME_DIR"
  pid_alive "$PIDFILE" "$MAIN" && die "already running (pid $(<"$PIDFILE")); use stop or restart"
  ensure_ports_free "$KAFKA_HOST" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$KAFKA_SASL_SSL_PORT"
  ensure_tls
  if (( keep )) && [[ -f "$DATA/meta.properties" ]]; then
    log "start: keeping data in $DATA"
    write_config
  else
    (( keep )) && log "start: --keep-data but no formatted data dir, starting fresh"
    rm -rf "${RUN:?}"
    write_config
    local cid jvm=()
    cid=$(new_cluster_id)
    mapfile -t jvm < <(jvm_common)
    log "start: formatting $DATA (cluster id $cid, --standalone, SCRAM-SHA-512 user $KAFKA_SASL_USER)"
    # `--cluster-id=<id>`, not `-t <id>`: a base64url id may start with "-",
    # which the tool's argument parser would take for an option.
    if ! "$JAVA" -Xmx512m "${jvm[@]}" kafka.tools.StorageTool format --cluster-id="$cid" \
          -c "$CONF/server.properties" --standalone \
          --add-scram "SCRAM-SHA-512=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]" >"$LOGS/format.out" 2>&1; then
      cat "$LOGS/format.out" >&2
      die "start: storage format failed"
    fi
  fi
  local jvm=() heap=()
  mapfile -t jvm < <(jvm_common)
  read -r -a heap <<<"$KAFKA_HEAP_OPTS"
  spawn "$PIDFILE" "$LOGFILE" "$JAVA" "${heap[@]}" "${jvm[@]}" "$MAIN" "$CONF/server.properties"
  log "start: pid $(<"$PIDFILE"), log $LOGFILE, broker $KAFKA_HOST:$KAFKA_PORT (SASL_SSL :$KAFKA_SASL_SSL_PORT)"
}

# ApiVersions v0 request (correlation id 1, null client id); ready when the reply carries
# correlation id 1 and error_code 0.
api_versions_ok() {
  local reply
  # shellcheck disable=SC2016 # expanded by the inner bash
  reply=$(timeout 3 bash -c '
      exec 3<>"/dev/tcp/$1/$2" || exit 1
      printf "\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x01\xff\xff" >&3
      head -c 10 <&3 | od -An -tx1 | tr -d " \n"' _ "$KAFKA_HOST" "$KAFKA_PORT" 2>/dev/null) || return 1
  [[ "${reply:8:12}" == "000000010000" ]]
}

cmd_wait() {
  local t0 deadline
  t0=$(now_ms)
  deadline=$(( t0 + KAFKA_WAIT_TIMEOUT * 1000 ))
  while :; do
    if ! pid_exists "$PIDFILE"; then
      tail_log "$LOGFILE"
      die "wait: the broker process is not running"
    fi
    if tcp_open "$KAFKA_HOST" "$KAFKA_PORT" && tcp_open "$KAFKA_HOST" "$KAFKA_SASL_SSL_PORT" \
        && grep -q 'Kafka Server started' "$LOGFILE" 2>/dev/null \
        && api_versions_ok; then
      if ! command -v kcat >/dev/null \
          || kcat -b "$KAFKA_HOST:$KAFKA_PORT" -L -m 3 2>/dev/null | grep -q '1 brokers:'; then
        break
      fi
    fi
    if (( $(now_ms) > deadline )); then
      tail_log "$LOGFILE"
      die "wait: not ready after ${KAFKA_WAIT_TIMEOUT}s"
    fi
    sleep 0.25
  done
  log "wait: ready on $KAFKA_HOST:$KAFKA_PORT and SASL_SSL :$KAFKA_SASL_SSL_PORT after $(elapsed_s "$t0")s"
}

cmd_stop() { stop_pid "$PIDFILE" "$MAIN" "$KAFKA_STOP_TIMEOUT"; }

case "${1:-}" in
  fetch) cmd_fetch ;;
  start) shift; cmd_start "$@" ;;
  restart) cmd_stop; cmd_start --keep-data ;;
  wait) cmd_wait ;;
  stop) cmd_stop ;;
  status) status_pid "$PIDFILE" "$MAIN" ;;
  *) echo "usage: $0 {fetch|start [--keep-data]|restart|wait|stop|status}" >&2; exit 2 ;;
esac
