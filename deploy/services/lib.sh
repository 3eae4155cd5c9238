# shellcheck shell=bash
# Shared helpers for deploy/services/{kafka,cassandra}.sh. Sourced, not executed.

HERALD_SERVICES_CACHE="${HERALD_SERVICES_CACHE:-$HOME/.cache/herald/services}"
HERALD_SERVICES_RUN="${HERALD_SERVICES_RUN:-$HOME/.cache/herald/run}"
# Test CA and certificates shared by both services (made once by ensure_tls, kept across starts).
HERALD_SERVICES_TLS="${HERALD_SERVICES_TLS:-$HERALD_SERVICES_RUN/tls}"
# Password of the PKCS12 keystore the JVMs read (test material, not a secret).
HERALD_TLS_STORE_PASSWORD="${HERALD_TLS_STORE_PASSWORD:-herald-store}"
# Pinned maven-dependency-plugin (full coordinates: no plugin-prefix lookups).
HERALD_MVN_DEP_PLUGIN="${HERALD_MVN_DEP_PLUGIN:-org.apache.maven.plugins:maven-dependency-plugin:3.8.1}"

log() { printf '[%s] %s\n' "${SVC:-services}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

now_ms() { date +%s%3N; }
elapsed_s() { # elapsed_s START_MS -> "12.3"
  local d=$(( $(now_ms) - $1 ))
  printf '%d.%d' $(( d / 1000 )) $(( (d % 1000) / 100 ))
}

# java_bin PREFERRED_JAVA_HOME -> path of a java executable
java_bin() {
  if [[ -n "${1:-}" && -x "$1/bin/java" ]]; then
    printf '%s\n' "$1/bin/java"
  elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    printf '%s\n' "$JAVA_HOME/bin/java"
  else
    command -v java || die "no java found"
  fi
}

# mvn_fetch NAME POM_BODY_DEPENDENCIES DEST_DIR
# Resolves the given <dependency> elements (runtime scope, transitive) into DEST_DIR/lib.
# Skips when DEST_DIR/.complete exists. Atomic: resolves into lib.tmp, then renames.
mvn_fetch() {
  local name="$1" deps="$2" dest="$3"
  if [[ -f "$dest/.complete" && -d "$dest/lib" ]]; then
    log "fetch: $dest/lib already complete ($(find "$dest/lib" -name '*.jar' | wc -l) jars), skipping"
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  mkdir -p "$dest"
  rm -rf "${dest:?}/lib.tmp" "${dest:?}/lib"
  cat > "$dest/pom.xml" <<POM
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>herald.services</groupId>
  <artifactId>${name}-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
${deps}
  </dependencies>
</project>
POM
  local t0 mvn_args=(-B -q -f "$dest/pom.xml")
  [[ -n "${HERALD_MAVEN_REPO:-}" ]] && mvn_args+=("-Dmaven.repo.local=$HERALD_MAVEN_REPO")
  t0=$(now_ms)
  log "fetch: resolving $name with maven into $dest/lib"
  if ! mvn "${mvn_args[@]}" "$HERALD_MVN_DEP_PLUGIN:copy-dependencies" \
        -DincludeScope=runtime -DoutputDirectory="$dest/lib.tmp" >"$dest/mvn.log" 2>&1; then
    tail -n 40 "$dest/mvn.log" >&2
    die "fetch: maven failed (full log: $dest/mvn.log)"
  fi
  mv "$dest/lib.tmp" "$dest/lib"
  date -u +%FT%TZ > "$dest/.complete"
  log "fetch: done in $(elapsed_s "$t0")s: $(find "$dest/lib" -name '*.jar' | wc -l) jars, $(du -sh "$dest/lib" | cut -f1)"
}

# require_fetched DEST_DIR
require_fetched() {
  [[ -f "$1/.complete" ]] || die "jars not fetched ($1/.complete missing): run '$0 fetch' first"
}

# pid_alive PIDFILE MATCH -> 0 when the pidfile's process is running and its cmdline contains MATCH
pid_alive() {
  pid_exists "$1" || return 1
  local pid
  pid=$(<"$1")
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$2"
}

# pid_exists PIDFILE -> 0 when the pidfile's process exists, whatever it runs yet (a process
# spawned a moment ago may still be the forked shell, before its exec).
pid_exists() {
  local pid
  [[ -f "$1" ]] || return 1
  pid=$(<"$1")
  [[ "$pid" =~ ^[0-9]+$ && -d "/proc/$pid" ]]
}

# spawn PIDFILE LOGFILE CMD... : start CMD detached (own session), stdin from /dev/null,
# stdout+stderr to LOGFILE (previous log kept as LOGFILE.prev), PID into PIDFILE.
spawn() {
  local pidfile="$1" logfile="$2"; shift 2
  [[ -f "$logfile" ]] && mv -f "$logfile" "$logfile.prev"
  if command -v setsid >/dev/null; then
    setsid "$@" </dev/null >"$logfile" 2>&1 &
  else
    nohup "$@" </dev/null >"$logfile" 2>&1 &
  fi
  echo $! > "$pidfile"
}

# stop_pid PIDFILE MATCH [GRACE_SECONDS]
stop_pid() {
  local pidfile="$1" match="$2" grace="${3:-30}" pid t0 i
  if ! pid_alive "$pidfile" "$match"; then
    log "stop: not running"
    rm -f "$pidfile"
    return 0
  fi
  pid=$(<"$pidfile")
  t0=$(now_ms)
  log "stop: SIGTERM to $pid"
  kill -TERM "$pid" 2>/dev/null || true
  for (( i = 0; i < grace * 10; i++ )); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "stop: still alive after ${grace}s, SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for (( i = 0; i < 50; i++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
  log "stop: stopped in $(elapsed_s "$t0")s"
}

# status_pid PIDFILE MATCH
status_pid() {
  local pid rss
  if pid_alive "$1" "$2"; then
    pid=$(<"$1")
    rss=$(awk '/^VmRSS/ {print $2 " " $3}' "/proc/$pid/status" 2>/dev/null || true)
    echo "${SVC}: running (pid $pid, RSS ${rss:-?})"
    return 0
  fi
  echo "${SVC}: not running"
  return 3
}

# tcp_open HOST PORT -> 0 if a TCP connection succeeds within 1 s
tcp_open() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 1 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# ensure_ports_free HOST PORT... : die if something already listens (e.g. a leftover server)
ensure_ports_free() {
  local host="$1" p; shift
  for p in "$@"; do
    if tcp_open "$host" "$p"; then
      die "port $host:$p is already in use (another server still running?)"
    fi
  done
}

# tail_log LOGFILE
tail_log() {
  log "---- last 60 lines of $1 ----"
  tail -n 60 "$1" >&2 2>/dev/null || true
  log "---- end of log ----"
}

# ensure_tls: make the test PKI once, in $HERALD_SERVICES_TLS (kept across starts, so a
# restarted server keeps the certificate its clients trust):
#   ca.pem, ca.key          the test CA
#   server.pem, server.key  the servers' certificate, SAN IP:127.0.0.1 + DNS:localhost, signed by the CA
#   server.p12              the same + the CA chain, PKCS12, password $HERALD_TLS_STORE_PASSWORD
#   client.pem, client.key  a client certificate signed by the CA (mutual TLS)
#   other-ca.pem            a CA that signed nothing here (tests of an untrusted certificate)
# Built in a temporary directory and renamed into place, so concurrent starts are safe.
ensure_tls() {
  local dir="$HERALD_SERVICES_TLS" tmp
  [[ -f "$dir/.complete" ]] && return 0
  command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
  mkdir -p "$(dirname "$dir")"
  tmp=$(mktemp -d "$dir.tmp.XXXXXX")
  # shellcheck disable=SC2016 # expanded by the inner bash
  if ! (cd "$tmp" && PW="$HERALD_TLS_STORE_PASSWORD" bash -euo pipefail -c '
      openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 -subj "/CN=Herald test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
      issue() { # issue NAME CN EXTENSIONS
        openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2"
        printf "%s\n" "$3" > "$1.ext"
        openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" -days 825 -extfile "$1.ext"
        rm -f "$1.csr" "$1.ext"
      }
      issue server 127.0.0.1 "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth
basicConstraints=CA:FALSE"
      issue client herald-client "extendedKeyUsage=clientAuth
basicConstraints=CA:FALSE"
      openssl pkcs12 -export -in server.pem -inkey server.key -certfile ca.pem -name server -out server.p12 -passout "pass:$PW"
      openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 3650 -subj "/CN=Not the Herald test CA" \
        -addext "basicConstraints=critical,CA:TRUE"
      rm -f other-ca.key ca.srl
      chmod 600 ./*.key server.p12
      date -u +%FT%TZ > .complete
    ' >"$tmp/openssl.log" 2>&1); then
    cat "$tmp/openssl.log" >&2
    rm -rf "$tmp"
    die "tls: making the test certificates failed"
  fi
  rm -f "$tmp/openssl.log"
  # Another start may have made it meanwhile: keep the first.
  if mv -T "$tmp" "$dir" 2>/dev/null; then
    log "tls: test CA and certificates made in $dir"
  else
    rm -rf "$tmp"
  fi
}
