#!/usr/bin/env bash
# A real three-node Docker Swarm on this one machine, for the swarm tests and bench:swarm: one dockerd per network
# namespace, joined over a bridge (README, "Several hosts"). As root.
#
#   scripts/swarm-lab.sh up      start the nodes, form the swarm, load the test images onto every node; prints
#                                the lab's facts as KEY=VALUE lines (also written to $LAB_DIR/env)
#   scripts/swarm-lab.sh down    tear everything down (idempotent; also what `up` runs when it fails)
#   scripts/swarm-lab.sh kill-node N    kill -9 node N's dockerd, its containerd and shims (a node failure)
#   scripts/swarm-lab.sh start-node N   start node N's dockerd again (it rejoins the swarm by itself)
#   scripts/swarm-lab.sh exec N CMD...  run CMD in node N's network namespace (only that one: the host's files)
#   scripts/swarm-lab.sh tools   install what the lab needs (iproute2, iptables, util-linux, docker.io) if missing
#
# Leaves nothing behind after `down`: dockerds, containerds and shims (by pid, under each node's exec-root),
# mounts under the nodes' roots, network namespaces, the bridge and veths, the iptables rule, the data dirs.
#
# Env: LAB_ID (default mcplab: names of everything; two labs on one machine need two ids and two LAB_NETs),
#      LAB_NET (first three octets of the lab's /24, default 10.250.0), LAB_NODES (default 3),
#      LAB_IMAGES (space-separated images to load onto every node; default the test images),
#      LAB_WAIT_SECONDS (default 60).
set -euo pipefail

LAB_ID="${LAB_ID:-mcplab}"
LAB_NET="${LAB_NET:-10.250.0}"
LAB_NODES="${LAB_NODES:-3}"
LAB_WAIT_SECONDS="${LAB_WAIT_SECONDS:-60}"
LAB_IMAGES="${LAB_IMAGES:-mcp-portal-test/busybox:1 mcp-portal-test/mcp-stdio:1 mcp-portal-test/mcp-http:1 mcp-portal-test/node:24}"
LAB_DIR="/run/$LAB_ID"
BRIDGE="br-$LAB_ID"

log() { printf 'swarm-lab: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

node_name() { echo "$LAB_ID-node$1"; }
node_ns() { echo "$LAB_ID-n$1"; }
node_addr() { echo "$LAB_NET.1$1"; }
node_root() { echo "/var/lib/$LAB_ID/node$1"; }
node_exec() { echo "$LAB_DIR/node$1/exec"; }
node_sock() { echo "$LAB_DIR/node$1.sock"; }
node_pidfile() { echo "$LAB_DIR/node$1/dockerd.pid"; }
veth() { echo "v$LAB_ID$1" | cut -c1-15; }
node_docker() {
  local i="$1"
  shift
  docker -H "unix://$(node_sock "$i")" "$@"
}

need_tools() {
  local missing=()
  command -v ip >/dev/null || missing+=(iproute2)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v nsenter >/dev/null || missing+=(util-linux)
  command -v dockerd >/dev/null || missing+=(docker.io)
  if ((${#missing[@]} > 0)); then
    [ "$(id -u)" = 0 ] || die "missing: ${missing[*]} (apt-get install -y ${missing[*]})"
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 -y -qq update
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 -y -qq install --no-install-recommends "${missing[@]}"
  fi
}

# Pids of every process whose executable runs with this node's roots (dockerd, its containerd, the shims).
node_pids() {
  local i="$1" exec root pid
  exec="$(node_exec "$i")"
  root="$(node_root "$i")"
  for pid in $(pgrep -f -- "$exec|$root|$(node_sock "$i")" || true); do
    [ "$pid" = "$$" ] && continue
    echo "$pid"
  done
  # The containers' own processes (a shim killed with -9 leaves them running): everything in the node's cgroups.
  cat /sys/fs/cgroup/pids/"$LAB_ID-node$i"/*/cgroup.procs /sys/fs/cgroup/"$LAB_ID-node$i"/*/cgroup.procs 2>/dev/null || true
}

kill_node_processes() {
  local i="$1" signal="$2" pids
  pids="$(node_pids "$i" | tr '\n' ' ')"
  [ -n "${pids// /}" ] || return 0
  # shellcheck disable=SC2086
  kill "-$signal" $pids 2>/dev/null || true
}

wait_node_gone() {
  local i="$1" deadline=$((SECONDS + 20))
  while [ -n "$(node_pids "$i")" ] && ((SECONDS < deadline)); do sleep 0.2; done
  if [ -n "$(node_pids "$i")" ]; then
    kill_node_processes "$i" KILL
    sleep 0.5
  fi
}

unmount_under() {
  local dir="$1" m
  # Deepest first, so nested mounts go before their parents.
  for m in $(awk -v d="$dir" '$2 ~ "^"d {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
}

start_dockerd() {
  local i="$1"
  mkdir -p "$(node_root "$i")" "$(node_exec "$i")"
  # nsenter --net only (ip netns exec remounts /sys and dockerd fails on cgroups); unshare --uts for the hostname.
  nsenter --net="/var/run/netns/$(node_ns "$i")" unshare --uts sh -c "hostname $(node_name "$i") && exec setsid dockerd \
      --data-root $(node_root "$i") --exec-root $(node_exec "$i") --pidfile $(node_pidfile "$i") \
      -H unix://$(node_sock "$i") --userland-proxy=false --cgroup-parent=/$LAB_ID-node$i \
      " \
    >>"$LAB_DIR/node$i/dockerd.log" 2>&1 </dev/null &
}

wait_dockerd() {
  local i="$1" deadline=$((SECONDS + LAB_WAIT_SECONDS))
  until node_docker "$i" info >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "node$i's dockerd did not answer within ${LAB_WAIT_SECONDS}s (log: $LAB_DIR/node$i/dockerd.log)"
    sleep 0.3
  done
}

down() {
  local i
  for i in $(seq 1 "$LAB_NODES"); do
    if [ -S "$(node_sock "$i")" ]; then timeout 20 docker -H "unix://$(node_sock "$i")" swarm leave --force >/dev/null 2>&1 || true; fi
  done
  for i in $(seq 1 "$LAB_NODES"); do kill_node_processes "$i" TERM; done
  for i in $(seq 1 "$LAB_NODES"); do wait_node_gone "$i"; done
  for i in $(seq 1 "$LAB_NODES"); do
    unmount_under "$(node_exec "$i")"
    unmount_under "$(node_root "$i")"
    if ip netns list 2>/dev/null | grep -qw "$(node_ns "$i")"; then ip netns del "$(node_ns "$i")" 2>/dev/null || true; fi
    ip link del "$(veth "$i")" 2>/dev/null || true
    rm -rf "$(node_root "$i")"
    # cgroups dockerd made for its containers (cgroup v1: one per controller; v2: one directory)
    local cg
    for cg in $(find /sys/fs/cgroup -maxdepth 2 -type d -name "$LAB_ID-node$i" 2>/dev/null); do
      find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
  done
  unmount_under "$LAB_DIR"
  rm -rf "$LAB_DIR" "/var/lib/$LAB_ID"
  ip link del "$BRIDGE" 2>/dev/null || true
  while iptables -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; do :; done
  log "down"
}

up() {
  need_tools
  [ "$(id -u)" = 0 ] || die "the lab needs root (network namespaces, dockerd)"
  # A leftover of an earlier run that died before its teardown.
  down >/dev/null 2>&1 || true
  trap 'log "start failed: tearing down"; down' ERR
  mkdir -p "$LAB_DIR"
  ip link add "$BRIDGE" type bridge
  ip addr add "$LAB_NET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # The host's FORWARD policy is DROP once its own dockerd runs: let the nodes talk to each other.
  iptables -I FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
  local i
  for i in $(seq 1 "$LAB_NODES"); do
    ip netns add "$(node_ns "$i")"
    ip link add "$(veth "$i")" type veth peer name eth0 netns "$(node_ns "$i")"
    ip link set "$(veth "$i")" master "$BRIDGE" up
    ip netns exec "$(node_ns "$i")" sh -c "ip addr add $(node_addr "$i")/24 dev eth0 && ip link set eth0 up && ip link set lo up && ip route add default via $LAB_NET.1"
    mkdir -p "$LAB_DIR/node$i"
    start_dockerd "$i"
  done
  for i in $(seq 1 "$LAB_NODES"); do wait_dockerd "$i"; done
  node_docker 1 swarm init --advertise-addr "$(node_addr 1)" >/dev/null
  local token
  token="$(node_docker 1 swarm join-token -q worker)"
  for i in $(seq 2 "$LAB_NODES"); do
    node_docker "$i" swarm join --advertise-addr "$(node_addr "$i")" --token "$token" "$(node_addr 1):2377" >/dev/null
  done
  local deadline=$((SECONDS + LAB_WAIT_SECONDS))
  until [ "$(node_docker 1 node ls --format '{{.Status}}' | grep -c Ready)" = "$LAB_NODES" ]; do
    ((SECONDS < deadline)) || die "not every node is Ready"
    sleep 0.5
  done
  # No registry: every node gets the images from the host's engine.
  local image tar="$LAB_DIR/images.tar"
  # shellcheck disable=SC2086
  docker save -o "$tar" $LAB_IMAGES
  local loads=()
  for i in $(seq 1 "$LAB_NODES"); do
    node_docker "$i" load -q -i "$tar" >/dev/null &
    loads+=($!)
  done
  for i in "${loads[@]}"; do wait "$i"; done
  rm -f "$tar"
  trap - ERR
  {
    echo "LAB_ID=$LAB_ID"
    echo "LAB_NODES=$LAB_NODES"
    echo "LAB_MANAGER=unix://$(node_sock 1)"
    for i in $(seq 1 "$LAB_NODES"); do
      echo "LAB_NODE${i}_NAME=$(node_name "$i")"
      echo "LAB_NODE${i}_ADDR=$(node_addr "$i")"
      echo "LAB_NODE${i}_SOCK=$(node_sock "$i")"
      echo "LAB_NODE${i}_NETNS=/var/run/netns/$(node_ns "$i")"
    done
  } | tee "$LAB_DIR/env"
  log "up: $LAB_NODES nodes ready"
}

kill_node() {
  local i="$1"
  kill_node_processes "$i" KILL
  wait_node_gone "$i"
  unmount_under "$(node_exec "$i")"
  log "node$i killed"
}

start_node() {
  local i="$1"
  start_dockerd "$i"
  wait_dockerd "$i"
  log "node$i started"
}

case "${1:-}" in
up) up ;;
down) down ;;
tools) need_tools ;;
kill-node) kill_node "${2:?node number}" ;;
start-node) start_node "${2:?node number}" ;;
exec)
  n="${2:?node number}"
  shift 2
  exec nsenter --net="/var/run/netns/$(node_ns "$n")" "$@"
  ;;
*) die "usage: $0 up|down|tools|kill-node N|start-node N|exec N CMD..." ;;
esac
