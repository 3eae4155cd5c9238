#!/usr/bin/env bash
# Apache Cassandra 5.0 (single node, the CQL stand-in for ScyllaDB) from Maven Central jars, no tarball.
# Usage: deploy/services/cassandra.sh {fetch|start [--keep-data]|restart|wait|stop|status}
# See deploy/services/README.md.
set -euo pipefail

export SVC=cassandra
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

CASSANDRA_VERSION="${CASSANDRA_VERSION:-5.0.9}"
CQL_HOST=127.0.0.1
CQL_PORT="${CQL_PORT:-9042}"
CASSANDRA_STORAGE_PORT="${CASSANDRA_STORAGE_PORT:-7000}"
# PasswordAuthenticator: every client logs in; the default superuser is made at first start.
CASSANDRA_USER="${CASSANDRA_USER:-cassandra}"
CASSANDRA_PASSWORD="${CASSANDRA_PASSWORD:-cassandra}"
CASSANDRA_HEAP_OPTS="${CASSANDRA_HEAP_OPTS:--Xms1g -Xmx2g}"
CASSANDRA_WAIT_TIMEOUT="${CASSANDRA_WAIT_TIMEOUT:-180}"
CASSANDRA_STOP_TIMEOUT="${CASSANDRA_STOP_TIMEOUT:-30}"

HOME_DIR="$HERALD_SERVICES_CACHE/cassandra-$CASSANDRA_VERSION"
LIB="$HOME_DIR/lib"
RUN="$HERALD_SERVICES_RUN/cassandra"
CONF="$RUN/conf"
DATA="$RUN/data"
LOGS="$RUN/logs"
LOGFILE="$LOGS/cassandra.out"
PIDFILE="$RUN/cassandra.pid"
MAIN=org.apache.cassandra.service.CassandraDaemon
# Cassandra 5.0 supports JDK 11 and 17 only (not 21+, and 24+ has no SecurityManager at all).
JAVA="$(java_bin "${CASSANDRA_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}")"

cmd_fetch() {
  mvn_fetch cassandra "
    <dependency><groupId>org.apache.cassandra</groupId><artifactId>cassandra-all</artifactId><version>$CASSANDRA_VERSION</version></dependency>" \
    "$HOME_DIR"
}

write_config() {
  mkdir -p "$CONF" "$DATA"/{data,commitlog,hints,saved_caches,cdc_raw} "$LOGS" "$RUN/tmp" "$RUN/triggers"
  cat > "$CONF/cassandra.yaml" <<YAML
cluster_name: herald
num_tokens: 1
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
commitlog_sync: periodic
commitlog_sync_period: 10000ms
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$CQL_HOST:$CASSANDRA_STORAGE_PORT"
listen_address: $CQL_HOST
rpc_address: $CQL_HOST
storage_port: $CASSANDRA_STORAGE_PORT
native_transport_port: $CQL_PORT
start_native_transport: true
authenticator: PasswordAuthenticator
authorizer: AllowAllAuthorizer
# Client TLS on the same port; optional, so plaintext clients keep working. The certificate
# is the test CA's (ensure_tls in lib.sh).
client_encryption_options:
  enabled: true
  optional: true
  keystore: $HERALD_SERVICES_TLS/server.p12
  keystore_password: $HERALD_TLS_STORE_PASSWORD
  store_type: PKCS12
  require_client_auth: false
auto_snapshot: false
data_file_directories:
  - $DATA/data
commitlog_directory: $DATA/commitlog
hints_directory: $DATA/hints
saved_caches_directory: $DATA/saved_caches
cdc_raw_directory: $DATA/cdc_raw
YAML
  cat > "$CONF/logback.xml" <<XML
<configuration scan="false">
  <appender name="OUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="OUT"/></root>
  <logger name="org.apache.cassandra" level="INFO"/>
  <logger name="com.thinkaurelius.thrift" level="ERROR"/>
</configuration>
XML
  # java @argfile: the flags of Cassandra 5.0's conf/jvm-server.options + conf/jvm17-server.options
  # (no -XX:+AlwaysPreTouch, no -Xmn), plus our paths.
  local jamm
  jamm=$(find "$LIB" -maxdepth 1 -name 'jamm-*.jar' | head -n 1)
  {
    printf '%s\n' \
      -ea "-da:net.openhft..." -Xss256k -Djava.net.preferIPv4Stack=true \
      -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:G1HeapRegionSize=16m \
      -XX:G1RSetUpdatingPauseTimePercent=5 -XX:MaxGCPauseMillis=300 -XX:InitiatingHeapOccupancyPercent=70 \
      -XX:+HeapDumpOnOutOfMemoryError "-XX:HeapDumpPath=$LOGS" -XX:+ExitOnOutOfMemoryError \
      -XX:+UseThreadPriorities -XX:+PerfDisableSharedMem \
      -Djdk.attach.allowAttachSelf=true -Dio.netty.tryReflectionSetAccessible=true \
      -Dio.netty.allocator.useCacheForAllThreads=true -Dio.netty.allocator.maxOrder=11
    local m
    for m in java.base/jdk.internal.misc java.base/jdk.internal.ref java.base/sun.nio.ch \
             java.base/java.lang.ref java.management.rmi/com.sun.jmx.remote.internal.rmi \
             java.management/com.sun.jmx.remote.security \
             java.rmi/sun.rmi.registry java.rmi/sun.rmi.server java.rmi/sun.rmi.transport.tcp \
             java.sql/java.sql jdk.unsupported/sun.misc jdk.compiler/com.sun.tools.javac.file \
             jdk.attach/sun.tools.attach; do
      printf -- '--add-exports\n%s=ALL-UNNAMED\n' "$m"
    done
    for m in java.base/java.lang.module java.base/jdk.internal.loader java.base/jdk.internal.ref \
             java.base/jdk.internal.reflect java.base/jdk.internal.math java.base/jdk.internal.module \
             java.base/jdk.internal.util.jar jdk.management/com.sun.management.internal \
             java.base/sun.nio.ch java.base/java.io java.base/java.nio java.base/java.lang.reflect \
             jdk.compiler/com.sun.tools.javac java.base/java.lang java.base/java.util; do
      printf -- '--add-opens\n%s=ALL-UNNAMED\n' "$m"
    done
    [[ -n "$jamm" ]] && printf '%s\n' "-javaagent:$jamm"
    printf '%s\n' \
      "-Dcassandra.config=file://$CONF/cassandra.yaml" \
      "-Dcassandra.storagedir=$DATA" \
      "-Dcassandra.logdir=$LOGS" \
      "-Dcassandra.triggers_dir=$RUN/triggers" \
      "-Dlogback.configurationFile=$CONF/logback.xml" \
      -Dcassandra-foreground=yes \
      -Dcassandra.skip_wait_for_gossip_to_settle=0 \
      -Dcassandra.superuser_setup_delay_ms=0 \
      -Dcassandra.shutdown_announce_in_ms=0 \
      -Dcassandra.test.messagingService.nonGracefulShutdown=true \
      -Dchronicle.announcer.disable=true \
      "-Djna.tmpdir=$RUN/tmp" \
      "-Djava.io.tmpdir=$RUN/tmp" \
      -cp "$LIB/*"
  } > "$CONF/jvm.options"
}

cmd_start() {
  local keep=0
  [[ "${1:-}" == "--keep-data" ]] && keep=1
  require_fetched "$HOME_DIR"
  pid_alive "$PIDFILE" "$MAIN" && die "already running (pid $(<"$PIDFILE")); use stop or restart"
  ensure_ports_free "$CQL_HOST" "$CQL_PORT" "$CASSANDRA_STORAGE_PORT"
  ensure_tls
  if (( keep )) && [[ -d "$DATA/data/system" ]]; then
    log "start: keeping data in $DATA"
  else
    (( keep )) && log "start: --keep-data but no data dir yet, starting fresh"
    rm -rf "${RUN:?}"
  fi
  write_config
  local heap=()
  read -r -a heap <<<"$CASSANDRA_HEAP_OPTS"
  spawn "$PIDFILE" "$LOGFILE" "$JAVA" "${heap[@]}" "@$CONF/jvm.options" "$MAIN"
  log "start: pid $(<"$PIDFILE") ($JAVA), log $LOGFILE, CQL $CQL_HOST:$CQL_PORT"
}

# CQL v4 OPTIONS frame; a ready server answers SUPPORTED (version byte 0x84, opcode 0x06).
cql_options_ok() {
  local reply
  # shellcheck disable=SC2016 # expanded by the inner bash
  reply=$(timeout 3 bash -c '
      exec 3<>"/dev/tcp/$1/$2" || exit 1
      printf "\x04\x00\x00\x01\x05\x00\x00\x00\x00" >&3
      head -c 9 <&3 | od -An -tx1 | tr -d " \n"' _ "$CQL_HOST" "$CQL_PORT" 2>/dev/null) || return 1
  [[ "${reply:0:2}" == "84" && "${reply:8:2}" == "06" ]]
}

# CQL v4 STARTUP then AUTH_RESPONSE (SASL PLAIN, $CASSANDRA_USER / $CASSANDRA_PASSWORD), sent
# together; ready when the second reply is AUTH_SUCCESS (opcode 0x10): the login works (the
# default superuser is made shortly after the port opens).
cql_login_ok() {
  local reply len
  # shellcheck disable=SC2016 # expanded by the inner bash
  reply=$(timeout 3 bash -c '
      exec 3<>"/dev/tcp/$1/$2" || exit 1
      be32() { printf "\\x%02x\\x%02x\\x%02x\\x%02x" $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)); }
      tlen=$(( 2 + ${#3} + ${#4} ))
      {
        printf "\x04\x00\x00\x01\x01\x00\x00\x00\x16\x00\x01\x00\x0bCQL_VERSION\x00\x053.0.0"
        printf "\x04\x00\x00\x02\x0f$(be32 $((tlen + 4)))$(be32 "$tlen")"
        printf "\x00%s\x00%s" "$3" "$4"
      } >&3
      timeout 1 cat <&3 | od -An -tx1 | tr -d " \n"' _ "$CQL_HOST" "$CQL_PORT" "$CASSANDRA_USER" "$CASSANDRA_PASSWORD" 2>/dev/null) || true
  # First frame: AUTHENTICATE (0x03); skip its body, the next header's opcode must be 0x10.
  [[ "${reply:8:2}" == "03" ]] || return 1
  len=$(( 16#${reply:10:8} ))
  [[ "${reply:$(( 18 + len * 2 + 8 )):2}" == "10" ]]
}

cmd_wait() {
  local t0 deadline
  t0=$(now_ms)
  deadline=$(( t0 + CASSANDRA_WAIT_TIMEOUT * 1000 ))
  while :; do
    if ! pid_exists "$PIDFILE"; then
      tail_log "$LOGFILE"
      die "wait: the Cassandra process is not running"
    fi
    if tcp_open "$CQL_HOST" "$CQL_PORT" && cql_options_ok && cql_login_ok; then
      break
    fi
    if (( $(now_ms) > deadline )); then
      tail_log "$LOGFILE"
      die "wait: not ready after ${CASSANDRA_WAIT_TIMEOUT}s"
    fi
    sleep 0.5
  done
  log "wait: CQL ready on $CQL_HOST:$CQL_PORT (login $CASSANDRA_USER, TLS optional) after $(elapsed_s "$t0")s"
}

cmd_stop() { stop_pid "$PIDFILE" "$MAIN" "$CASSANDRA_STOP_TIMEOUT"; }

case "${1:-}" in
  fetch) cmd_fetch ;;
  start) shift; cmd_start "$@" ;;
  restart) cmd_stop; cmd_start --keep-data ;;
  wait) cmd_wait ;;
  stop) cmd_stop ;;
  status) status_pid "$PIDFILE" "$MAIN" ;;
  *) echo "usage: $0 {fetch|start [--keep-data]|restart|wait|stop|status}" >&2; exit 2 ;;
esac
