# shellcheck shell=bash
# Shared helpers for deploy/services/{kafka,cassandra}.sh. Sourced, not executed.

HERALD_SERVICES_CACHE="${HERALD_SERVICES_CACHE:-$HOME/.cache/herald/services}"
HERALD_SERVICES_RUN="${HERALD_SERVICES_RUN:-$HOME/.cache/herald/run}"
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
  local pidfile="$1" match="$2" pid
  [[ -f "$pidfile" ]] || return 1
  pid=$(<"$pidfile")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$match"
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
