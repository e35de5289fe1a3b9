#!/usr/bin/env bash
# Make sure the host has what the tests need, and that a Docker Engine answers:
#   - docker.io (engine + CLI), busybox-static (test images), prometheus (for `promtool`), docker-compose
#     (Debian's Compose 1.29, which runs docker-compose.yml in the tests), chromium (the console's browser tests
#     drive Debian's build through playwright-core; nothing is downloaded by the tests themselves);
#   - dockerd running; started here in the background when nothing answers.
# Idempotent: on a prepared host it only checks (well under a second).
#
# Env: DOCKER_WAIT_SECONDS (default 60), DOCKERD_LOG (default /tmp/mcp-portal-dockerd.log),
#      DOCKERD_ARGS (extra dockerd flags, word-split; for a second engine, e.g. -H unix:///tmp/x.sock --data-root ...).
set -euo pipefail

WAIT_SECONDS="${DOCKER_WAIT_SECONDS:-60}"
DOCKERD_LOG="${DOCKERD_LOG:-/tmp/mcp-portal-dockerd.log}"

log() { printf 'ensure-docker: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

static_busybox() {
  [ -x /bin/busybox ] || return 1
  # A dynamic busybox (Debian's "busybox" package) cannot run inside a scratch image.
  local out
  out="$(ldd /bin/busybox 2>&1 || true)"
  [[ "$out" == *"not a dynamic executable"* || "$out" == *"statically linked"* ]]
}

missing_packages() {
  local pkgs=()
  if ! command -v docker >/dev/null 2>&1 || { ! command -v dockerd >/dev/null 2>&1 && ! engine_answers; }; then
    pkgs+=(docker.io)
  fi
  static_busybox || pkgs+=(busybox-static)
  command -v promtool >/dev/null 2>&1 || pkgs+=(prometheus)
  command -v docker-compose >/dev/null 2>&1 || pkgs+=(docker-compose)
  [ -x /usr/bin/chromium ] || pkgs+=(chromium)
  # The egress test: network namespaces and veth pairs (iproute2), a TLS test host's certificate (openssl).
  command -v ip >/dev/null 2>&1 || pkgs+=(iproute2)
  command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
  echo "${pkgs[*]}"
}

install_packages() {
  local pkgs=("$@")
  if [ "$(id -u)" != 0 ]; then
    die "missing packages: ${pkgs[*]}. As root run: apt-get update && apt-get install -y ${pkgs[*]}"
  fi
  log "installing ${pkgs[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  # Keep maintainer scripts from starting services (prometheus, docker): we start dockerd ourselves.
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  # docker.io with its recommends (the combination known to run here); the others without (prometheus would
  # otherwise pull node-exporter, ipmitool and friends that we never use).
  local with_recommends=() minimal=() p
  for p in "${pkgs[@]}"; do
    if [ "$p" = docker.io ]; then with_recommends+=("$p"); else minimal+=("$p"); fi
  done
  local apt=(apt-get -o DPkg::Lock::Timeout=120 -y -qq)
  local rc=0
  {
    "${apt[@]}" update &&
      { ((${#with_recommends[@]} == 0)) || "${apt[@]}" install "${with_recommends[@]}"; } &&
      { ((${#minimal[@]} == 0)) || "${apt[@]}" install --no-install-recommends "${minimal[@]}"; }
  } || rc=$?
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  [ "$rc" = 0 ] || die "apt-get install ${pkgs[*]} failed (exit $rc)"
}

start_dockerd() {
  if pgrep -x dockerd >/dev/null 2>&1 && [ -z "${DOCKERD_ARGS:-}" ]; then
    log "dockerd is running but not answering yet; waiting for it"
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "the Docker Engine does not answer and only root can start dockerd here (sudo dockerd &)"
  command -v dockerd >/dev/null 2>&1 || die "dockerd not found (install docker.io)"
  log "starting dockerd in the background (log: $DOCKERD_LOG)"
  # setsid + nohup: the daemon outlives this script; no inherited stdio keeps a caller's pipe open.
  # shellcheck disable=SC2086
  nohup setsid dockerd ${DOCKERD_ARGS:-} >>"$DOCKERD_LOG" 2>&1 </dev/null &
  DOCKERD_PID=$!
}

wait_for_engine() {
  local deadline=$((SECONDS + WAIT_SECONDS))
  until engine_answers; do
    if [ -n "${DOCKERD_PID:-}" ] && ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      die "dockerd exited during start-up (log above, full log: $DOCKERD_LOG)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      die "the Docker Engine did not answer within ${WAIT_SECONDS}s (log: $DOCKERD_LOG)"
    fi
    sleep 1
  done
}

read -r -a missing <<<"$(missing_packages)"
if ((${#missing[@]} > 0)); then
  install_packages "${missing[@]}"
fi

if engine_answers; then
  log "Docker Engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
  exit 0
fi

start_dockerd
wait_for_engine
log "Docker Engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
