#!/usr/bin/env bash
# Install and start the real components mlci's tests use:
#   Docker engine, a local image registry, a Prometheus Pushgateway, promtool, Groovy 2.4 on JDK 17,
#   a Python base image (mlci-base:bookworm) made with debootstrap, and an MLflow tracking server
#   (PyPI mlflow in its own virtualenv; SQLite backend store, artifacts served from a local directory).
#
# Idempotent: anything already installed or answering is left alone, so a second run takes seconds.
# Logs go to stderr (one line per step); the environment for the tests goes to stdout:
#
#   eval "$(scripts/setup-services.sh --env)"
#
# Usage: scripts/setup-services.sh [--env] [--stop] [--help]
#   (no flag)  set everything up, then print the export lines and a usage hint
#   --env      set everything up, then print only the export lines (for eval)
#   --stop     stop the daemons a previous run started (by their recorded pids), then exit
#
# Knobs (environment):
#   MLCI_CACHE_DIR                 cache root (default /var/cache/mlci): docker data, registry storage,
#                                  the debootstrap tarball, logs and pid files
#   MLCI_SETUP_DOCKER_SOCK         unix socket for dockerd (default /var/run/docker.sock)
#   MLCI_SETUP_REGISTRY_ADDR       registry listen address (default 127.0.0.1:5000)
#   MLCI_SETUP_PUSHGATEWAY_ADDR    pushgateway listen address (default 127.0.0.1:9091)
#   MLCI_SETUP_MLFLOW_ADDR         MLflow tracking server listen address (default 127.0.0.1:5001)
#   MLCI_SETUP_MLFLOW_SPEC         pip requirement for the MLflow server (default mlflow==3.*)
#   MLCI_SETUP_BASE_IMAGE          tag of the Python base image (default mlci-base:bookworm)
#   MLCI_SETUP_DEBIAN_MIRROR       Debian mirror for debootstrap (default: read from apt's sources)
#   MLCI_SETUP_TIMEOUT             seconds to wait for each daemon (default 60)
set -euo pipefail

PROG=setup-services
MODE=full
case "${1:-}" in
  "") ;;
  --env) MODE=env ;;
  --stop) MODE=stop ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "$PROG: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$PROG" "$*" >&2; exit 1; }

CACHE_DIR=${MLCI_CACHE_DIR:-/var/cache/mlci}
RUN_DIR=$CACHE_DIR/run
DOCKER_SOCK=${MLCI_SETUP_DOCKER_SOCK:-/var/run/docker.sock}
REGISTRY_ADDR=${MLCI_SETUP_REGISTRY_ADDR:-127.0.0.1:5000}
PUSHGATEWAY_ADDR=${MLCI_SETUP_PUSHGATEWAY_ADDR:-127.0.0.1:9091}
MLFLOW_ADDR=${MLCI_SETUP_MLFLOW_ADDR:-127.0.0.1:5001}
MLFLOW_SPEC=${MLCI_SETUP_MLFLOW_SPEC:-mlflow==3.*}
MLFLOW_VENV=$CACHE_DIR/mlflow-venv
MLFLOW_DATA=$CACHE_DIR/mlflow
BASE_IMAGE=${MLCI_SETUP_BASE_IMAGE:-mlci-base:bookworm}
TIMEOUT=${MLCI_SETUP_TIMEOUT:-60}
SUITE=bookworm
# python-is-python3 gives the image a `python` command, like the python:*-slim images.
BASE_INCLUDE=python3,python3-venv,python3-pip,python-is-python3,ca-certificates,passwd
APT_PACKAGES=(docker.io docker-registry prometheus-pushgateway prometheus groovy openjdk-17-jre-headless debootstrap chromium)
NEEDED_BINARIES=(dockerd docker docker-registry prometheus-pushgateway promtool groovy debootstrap chromium)

# ---------------------------------------------------------------------------------------------
# helpers

# http_ok URL: true when URL answers 2xx within 2 seconds.
http_ok() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
  else
    python3 - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()
PY
  fi
}

# pid_alive PIDFILE NAME: true when the recorded pid runs a process whose command line mentions NAME.
pid_alive() {
  local pidfile=$1 name=$2 pid
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$name"
}

# launch NAME LOGFILE CMD...: start a daemon detached from this shell; record its pid.
# fd 9 (the setup lock) and stdout are not inherited, so `$(setup-services.sh --env)` returns.
launch() {
  local name=$1 logfile=$2
  shift 2
  : >>"$logfile"
  printf '\n==== %s start %s\n' "$name" "$(date -u +%FT%TZ)" >>"$logfile"
  setsid nohup "$@" </dev/null >>"$logfile" 2>&1 9>&- &
  echo $! >"$RUN_DIR/$name.pid"
}

# pid_running PIDFILE: true while the recorded pid is a live (not zombie) process. Used right after
# launch, where the child may not have exec'd yet and still shows this script's command line.
pid_running() {
  local pid state
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# wait_for NAME PIDFILE LOGFILE CHECK...: wait until CHECK succeeds; fail early if the daemon died.
wait_for() {
  local name=$1 pidfile=$2 logfile=$3 deadline
  shift 3
  deadline=$((SECONDS + TIMEOUT))
  until "$@"; do
    if ! pid_running "$pidfile"; then
      tail -n 20 "$logfile" >&2 || true
      die "$name exited during start-up (log: $logfile)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$logfile" >&2 || true
      die "$name did not become ready within ${TIMEOUT}s (log: $logfile)"
    fi
    sleep 0.5
  done
}

find_java_home() {
  local arch d cands=()
  arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
  [ -n "${JAVA_HOME:-}" ] && cands+=("$JAVA_HOME")
  cands+=("/usr/lib/jvm/java-17-openjdk-$arch" /usr/lib/jvm/java-17-openjdk-* /usr/lib/jvm/*-17-* /usr/lib/jvm/*17*)
  for d in "${cands[@]}"; do
    [ -x "$d/bin/java" ] || continue
    if "$d/bin/java" -version 2>&1 | grep -q 'version "17'; then
      readlink -f "$d"
      return 0
    fi
  done
  return 1
}

# The Debian mirror apt uses for $SUITE, read from deb822 *.sources and one-line *.list files.
debian_mirror() {
  local f files=()
  [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  [ ${#files[@]} -gt 0 ] || return 1
  awk -v suite="$SUITE" '
    function flush() {
      if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && enabled != "no" && uris != "" && found == "") {
        split(uris, u, " "); found = u[1]
      }
      types = ""; suites = ""; uris = ""; enabled = ""
    }
    FNR == 1 { flush(); deb822 = (FILENAME ~ /\.sources$/) }
    /^[ \t]*#/ { next }
    deb822 {
      if ($0 ~ /^[ \t]*$/) { flush(); next }
      key = tolower($1); sub(/:$/, "", key)
      val = $0; sub(/^[^:]*:[ \t]*/, "", val)
      if (key == "types") types = val
      else if (key == "suites") suites = val
      else if (key == "uris") uris = val
      else if (key == "enabled") enabled = tolower(val)
      next
    }
    $1 == "deb" {
      line = $0; sub(/^deb[ \t]+/, "", line)
      if (line ~ /^\[/) sub(/^\[[^]]*\][ \t]*/, "", line)
      n = split(line, w, /[ \t]+/)
      if (n >= 2 && w[2] == suite && found == "") found = w[1]
    }
    END { flush(); if (found == "") exit 1; print found }
  ' "${files[@]}"
}

# remove_tree DIR: unmount anything debootstrap left mounted below DIR, then delete DIR.
remove_tree() {
  local dir=$1
  awk -v r="$dir/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l || true
  rm -rf --one-file-system "$dir"
}

stop_one() {
  local name=$1 pidfile=$RUN_DIR/$1.pid pid i
  if pid_alive "$pidfile" "$name"; then
    pid=$(cat "$pidfile")
    log "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 40); do
      [ -d "/proc/$pid" ] || break
      sleep 0.25
    done
    [ -d "/proc/$pid" ] && log "$name (pid $pid) is still running"
  else
    log "$name: not started by this script (or already stopped)"
  fi
  rm -f "$pidfile"
}

# ---------------------------------------------------------------------------------------------

mkdir -p "$RUN_DIR" || die "cannot create $RUN_DIR (set MLCI_CACHE_DIR to a writable directory)"

if [ "$MODE" = stop ]; then
  # The MLflow server runs its web workers as children in its own session: stop the whole group.
  if pid_alive "$RUN_DIR/mlflow.pid" mlflow; then
    log "stopping mlflow (process group $(cat "$RUN_DIR/mlflow.pid"))"
    kill -- "-$(cat "$RUN_DIR/mlflow.pid")" 2>/dev/null || true
  fi
  rm -f "$RUN_DIR/mlflow.pid"
  stop_one prometheus-pushgateway
  stop_one docker-registry
  stop_one dockerd
  exit 0
fi

# One setup at a time (CI jobs and developers may run it concurrently on one machine).
exec 9>"$CACHE_DIR/setup.lock"
flock -w 1800 9 || die "another setup-services run holds $CACHE_DIR/setup.lock"

# --- 1. packages ------------------------------------------------------------------------------
missing=()
for b in "${NEEDED_BINARIES[@]}"; do
  command -v "$b" >/dev/null 2>&1 || missing+=("$b")
done
JAVA17=$(find_java_home || true)
[ -n "$JAVA17" ] || missing+=("java 17")

if [ ${#missing[@]} -eq 0 ]; then
  log "packages: all present"
else
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]}; installing needs root (apt-get)"
  log "packages: missing ${missing[*]}; installing ${APT_PACKAGES[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600)
  need_update=0
  for p in "${APT_PACKAGES[@]}"; do
    apt-cache show "$p" >/dev/null 2>&1 || { need_update=1; break; }
  done
  if [ $need_update = 1 ]; then
    log "apt-get update (package lists lack some of the packages)"
    apt-get update -q >&2 || die "apt-get update failed"
  fi
  # No init system here: keep the packages' maintainer scripts from starting services.
  policy_rc=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e $policy_rc ]; then
    trap 'rm -f "$policy_rc"' EXIT
    printf '#!/bin/sh\nexit 101\n' >$policy_rc && chmod 755 $policy_rc && own_policy=1
  fi
  install_ok=1
  apt-get install "${apt_opts[@]}" "${APT_PACKAGES[@]}" >&2 || install_ok=0
  if [ $install_ok = 0 ] && [ $need_update = 0 ]; then
    log "apt-get install failed; retrying after apt-get update"
    install_ok=1
    { apt-get update -q >&2 && apt-get install "${apt_opts[@]}" "${APT_PACKAGES[@]}" >&2; } || install_ok=0
  fi
  if [ $own_policy = 1 ]; then
    rm -f $policy_rc
    trap - EXIT
  fi
  [ $install_ok = 1 ] || die "apt-get install ${APT_PACKAGES[*]} failed"
  for b in "${NEEDED_BINARIES[@]}"; do
    command -v "$b" >/dev/null 2>&1 || die "$b still missing after apt-get install"
  done
  JAVA17=$(find_java_home) || die "no Java 17 under /usr/lib/jvm after installing openjdk-17-jre-headless"
fi
log "java: JAVA_HOME=$JAVA17"

# --- 2. Docker engine -------------------------------------------------------------------------
docker_ok() { docker info >/dev/null 2>&1; }
if [ -n "${DOCKER_HOST:-}" ] && docker_ok; then
  log "docker: daemon at DOCKER_HOST=$DOCKER_HOST answers"
else
  export DOCKER_HOST=unix://$DOCKER_SOCK
  if docker_ok; then
    log "docker: daemon at $DOCKER_HOST answers"
  else
    if pid_alive "$RUN_DIR/dockerd.pid" dockerd; then
      log "docker: dockerd (pid $(cat "$RUN_DIR/dockerd.pid")) is running; waiting for it to answer"
    else
      [ "$(id -u)" = 0 ] || die "no Docker daemon answers at $DOCKER_HOST and starting one needs root"
      mkdir -p "$CACHE_DIR/docker" "$(dirname "$DOCKER_SOCK")"
      log "docker: starting dockerd on $DOCKER_HOST (data root $CACHE_DIR/docker, log $RUN_DIR/dockerd.log)"
      launch dockerd "$RUN_DIR/dockerd.log" dockerd \
        --host="unix://$DOCKER_SOCK" \
        --iptables=false --ip-masq=false --bridge=none \
        --data-root="$CACHE_DIR/docker" \
        --pidfile="$RUN_DIR/dockerd.daemon.pid"
    fi
    wait_for dockerd "$RUN_DIR/dockerd.pid" "$RUN_DIR/dockerd.log" docker_ok
    log "docker: dockerd ready ($(docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?'))"
  fi
fi

# --- 3. image registry ------------------------------------------------------------------------
if http_ok "http://$REGISTRY_ADDR/v2/"; then
  log "registry: answering on $REGISTRY_ADDR"
else
  if pid_alive "$RUN_DIR/docker-registry.pid" docker-registry; then
    log "registry: docker-registry is running; waiting for it to answer"
  else
    mkdir -p "$CACHE_DIR/registry"
    cat >"$RUN_DIR/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $CACHE_DIR/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
    log "registry: starting docker-registry on $REGISTRY_ADDR (storage $CACHE_DIR/registry)"
    launch docker-registry "$RUN_DIR/docker-registry.log" docker-registry serve "$RUN_DIR/registry.yml"
  fi
  wait_for docker-registry "$RUN_DIR/docker-registry.pid" "$RUN_DIR/docker-registry.log" \
    http_ok "http://$REGISTRY_ADDR/v2/"
  log "registry: ready on $REGISTRY_ADDR"
fi

# --- 4. Pushgateway ---------------------------------------------------------------------------
if http_ok "http://$PUSHGATEWAY_ADDR/-/ready"; then
  log "pushgateway: ready on $PUSHGATEWAY_ADDR"
else
  if pid_alive "$RUN_DIR/prometheus-pushgateway.pid" prometheus-pushgateway; then
    log "pushgateway: running; waiting for it to answer"
  else
    log "pushgateway: starting prometheus-pushgateway on $PUSHGATEWAY_ADDR"
    launch prometheus-pushgateway "$RUN_DIR/prometheus-pushgateway.log" \
      prometheus-pushgateway --web.listen-address="$PUSHGATEWAY_ADDR" --log.level=warn --persistence.file=""
  fi
  wait_for prometheus-pushgateway "$RUN_DIR/prometheus-pushgateway.pid" \
    "$RUN_DIR/prometheus-pushgateway.log" http_ok "http://$PUSHGATEWAY_ADDR/-/ready"
  log "pushgateway: ready on $PUSHGATEWAY_ADDR"
fi

# --- 5. Python base image ---------------------------------------------------------------------
base_key=$(printf '%s|minbase|%s|v1' "$SUITE" "$BASE_INCLUDE" | sha256sum | cut -c1-12)
have_key=$(docker image inspect -f '{{index .Config.Labels "org.mlci.base-key"}}' "$BASE_IMAGE" 2>/dev/null || true)
if [ "$have_key" = "$base_key" ]; then
  log "base image: $BASE_IMAGE present"
else
  base_dir=$CACHE_DIR/base
  tarball=$base_dir/$SUITE-minbase-$base_key.tar
  mkdir -p "$base_dir"
  if [ -s "$tarball" ]; then
    log "base image: reusing cached root filesystem $tarball"
  else
    [ "$(id -u)" = 0 ] || die "building the base image with debootstrap needs root"
    mirror=${MLCI_SETUP_DEBIAN_MIRROR:-$(debian_mirror || true)}
    if [ -z "$mirror" ]; then
      mirror=http://deb.debian.org/debian
      log "base image: no '$SUITE' entry in apt's sources; using $mirror"
    fi
    for stale in "$base_dir"/rootfs.*; do  # left by an interrupted run (we hold the lock)
      if [ -d "$stale" ]; then remove_tree "$stale"; fi
    done
    rm -f "$base_dir"/*.tar.tmp
    rootfs=$(mktemp -d "$base_dir/rootfs.XXXXXX")
    log "base image: debootstrap $SUITE from $mirror (about a minute; log $RUN_DIR/debootstrap.log)"
    if ! debootstrap --variant=minbase --include="$BASE_INCLUDE" "$SUITE" "$rootfs" "$mirror" \
      >"$RUN_DIR/debootstrap.log" 2>&1; then
      tail -n 20 "$RUN_DIR/debootstrap.log" >&2 || true
      remove_tree "$rootfs"
      die "debootstrap failed (log: $RUN_DIR/debootstrap.log)"
    fi
    # Shrink the image: package caches and lists are not needed at run time.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
    tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" . || die "could not pack $rootfs"
    mv "$tarball.tmp" "$tarball"
    remove_tree "$rootfs"
    log "base image: cached root filesystem at $tarball"
  fi
  log "base image: docker import as $BASE_IMAGE"
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
    --change 'ENV PIP_DISABLE_PIP_VERSION_CHECK=1' \
    --change "LABEL org.mlci.base-key=$base_key" \
    --change 'CMD ["python3"]' \
    "$tarball" "$BASE_IMAGE" >/dev/null || die "docker import of $tarball failed"
  pyver=$(docker run --rm --network none "$BASE_IMAGE" python3 --version 2>&1) ||
    die "$BASE_IMAGE does not run python3: $pyver"
  log "base image: $BASE_IMAGE runs $pyver"
fi

# --- 6. MLflow tracking server ------------------------------------------------------------------
if http_ok "http://$MLFLOW_ADDR/health"; then
  log "mlflow: ready on $MLFLOW_ADDR"
else
  if [ ! -x "$MLFLOW_VENV/bin/python" ]; then
    # Install into a temporary venv and rename it when complete: an interrupted install is never used.
    # Started through `python -m`, the venv works from its final path (pyvenv.cfg sits beside bin/).
    rm -rf "$MLFLOW_VENV.tmp"
    log "mlflow: pip install '$MLFLOW_SPEC' into $MLFLOW_VENV (a few minutes, once; log $RUN_DIR/mlflow-pip.log)"
    { python3 -m venv "$MLFLOW_VENV.tmp" &&
      "$MLFLOW_VENV.tmp/bin/python" -m pip install -q "$MLFLOW_SPEC"; } >"$RUN_DIR/mlflow-pip.log" 2>&1 || {
      tail -n 20 "$RUN_DIR/mlflow-pip.log" >&2 || true
      die "installing $MLFLOW_SPEC failed (log: $RUN_DIR/mlflow-pip.log)"
    }
    mv "$MLFLOW_VENV.tmp" "$MLFLOW_VENV"
  fi
  if pid_alive "$RUN_DIR/mlflow.pid" mlflow; then
    log "mlflow: running; waiting for it to answer"
  else
    mkdir -p "$MLFLOW_DATA/artifacts"
    log "mlflow: starting the tracking server on $MLFLOW_ADDR (store $MLFLOW_DATA)"
    launch mlflow "$RUN_DIR/mlflow.log" env PATH="$MLFLOW_VENV/bin:$PATH" \
      "$MLFLOW_VENV/bin/python" -m mlflow server \
      --backend-store-uri "sqlite:///$MLFLOW_DATA/mlflow.db" \
      --serve-artifacts --artifacts-destination "$MLFLOW_DATA/artifacts" \
      --host "${MLFLOW_ADDR%:*}" --port "${MLFLOW_ADDR##*:}" --workers 2
  fi
  wait_for mlflow "$RUN_DIR/mlflow.pid" "$RUN_DIR/mlflow.log" http_ok "http://$MLFLOW_ADDR/health"
  log "mlflow: ready on $MLFLOW_ADDR"
fi

# --- 7. the environment for the tests -------------------------------------------------------
emit() { printf 'export %s=%q\n' "$1" "$2"; }
emit DOCKER_HOST "$DOCKER_HOST"
emit MLCI_TEST_REGISTRY "$REGISTRY_ADDR"
emit MLCI_TEST_PUSHGATEWAY "http://$PUSHGATEWAY_ADDR"
emit MLCI_TEST_BASE_IMAGE "$BASE_IMAGE"
emit JAVA_HOME "$JAVA17"
emit MLCI_TEST_GROOVY "$(command -v groovy)"
emit MLCI_TEST_PROMTOOL "$(command -v promtool)"
emit MLCI_TEST_MLFLOW "http://$MLFLOW_ADDR"
emit MLCI_TEST_CHROMIUM "$(command -v chromium)"
if [ "$MODE" = full ]; then
  echo "# all services ready; load this environment with: eval \"\$(scripts/setup-services.sh --env)\""
fi
log "done"
