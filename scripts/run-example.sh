#!/usr/bin/env bash
# The one run command (README): prepare the host, install, build, then run the controller on the example
# GitOps tree in manifests/example until Ctrl-C. Works on a fresh Debian machine as root.
# Extra arguments go to `mcp-portal run` (e.g. --log-level debug); environment variables are honoured too.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

step() { printf '\n==> %s\n' "$*" >&2; }
log() { printf 'run-example: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
# shellcheck source=lib/node.sh
source scripts/lib/node.sh

step "host: Docker Engine"
bash scripts/ensure-docker.sh
step "Node.js $NODE_LTS_MAJOR LTS"
use_node_lts
step "npm ci"
npm_ci_checked >&2
step "demo images (no registry needed)"
bash scripts/build-demo-images.sh
step "build"
npm run build
step "validate the example tree"
MCP_PORTAL_OVERLAYS="${MCP_PORTAL_OVERLAYS-production}" node dist/cli.js validate --data-dir manifests/example
step "run (Ctrl-C stops the controller; the containers keep running)"
export MCP_PORTAL_OVERLAYS="${MCP_PORTAL_OVERLAYS-production}"
export MCP_PORTAL_STATE_DIR="${MCP_PORTAL_STATE_DIR:-$PWD/.mcp-portal-state}"
export LOG_PRETTY="${LOG_PRETTY:-1}"
exec node dist/cli.js run --data-dir manifests/example "$@"
