#!/usr/bin/env bash
# The one test command (README, CI): prepare the host, install, build, lint, test.
# Works on a fresh Debian machine as root: installs docker.io, busybox-static and prometheus, starts dockerd.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

step() { printf '\n==> %s\n' "$*"; }
log() { printf 'test: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
# shellcheck source=lib/node.sh
source scripts/lib/node.sh

step "host: Docker Engine, busybox-static, promtool"
bash scripts/ensure-docker.sh
step "swarm lab tools (iproute2, iptables, nsenter: test/integration/swarm.test.ts)"
bash scripts/swarm-lab.sh tools
step "Node.js $NODE_LTS_MAJOR LTS"
use_node_lts
step "npm ci"
npm_ci_checked
step "test images"
bash scripts/build-test-images.sh
step "MCP test images (the gateway's test servers)"
bash scripts/build-mcp-test-images.sh all
step "demo images (the example tree's servers)"
bash scripts/build-demo-images.sh
step "egress proxy image (offline, on the local Node base)"
bash scripts/build-egress-proxy-image.sh >/dev/null
step "build"
npm run build
step "controller image (local base when no registry answers)"
bash scripts/build-image.sh >/dev/null
step "lint"
npm run lint
step "test"
npm test
