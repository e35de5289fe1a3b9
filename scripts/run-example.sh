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
bash scripts/build-egress-proxy-image.sh >/dev/null
step "build"
npm run build
step "validate the example tree"
MCP_PORTAL_OVERLAYS="${MCP_PORTAL_OVERLAYS-production}" node dist/cli.js validate --data-dir manifests/example
export MCP_PORTAL_OVERLAYS="${MCP_PORTAL_OVERLAYS-production}"
export MCP_PORTAL_STATE_DIR="${MCP_PORTAL_STATE_DIR:-$PWD/.mcp-portal-state}"
export LOG_PRETTY="${LOG_PRETTY:-1}"

step "tokens for the web console (made once, kept in the state dir)"
EXAMPLE_USER=alice
mkdir -p "$MCP_PORTAL_STATE_DIR"
chmod 700 "$MCP_PORTAL_STATE_DIR"
admin_file="$MCP_PORTAL_STATE_DIR/example-admin-token"
admin_token=""
if [ -z "${MCP_PORTAL_ADMIN_TOKEN:-}${MCP_PORTAL_ADMIN_TOKEN_FILE:-}" ]; then
  if [ ! -s "$admin_file" ]; then
    admin_token="$(node -e 'process.stdout.write("admin_" + require("node:crypto").randomBytes(24).toString("base64url"))')"
    (umask 077 && printf '%s\n' "$admin_token" >"$admin_file")
  fi
  export MCP_PORTAL_ADMIN_TOKEN_FILE="$admin_file"
fi
# Secrets set in the console need a key ring; the example gets its own, next to the state.
keys_file="$MCP_PORTAL_STATE_DIR/example-secret-keys"
if [ -z "${MCP_PORTAL_SECRET_KEYS:-}${MCP_PORTAL_SECRET_KEYS_FILE:-}" ]; then
  [ -s "$keys_file" ] || (umask 077 && node dist/cli.js secrets gen-key example >"$keys_file")
  export MCP_PORTAL_SECRET_KEYS_FILE="$keys_file"
fi
user_marker="$MCP_PORTAL_STATE_DIR/example-user-token-created"
user_token=""
if [ ! -e "$user_marker" ]; then
  user_token="$(node dist/cli.js tokens create "$EXAMPLE_USER" 2>/dev/null)" || die "tokens create $EXAMPLE_USER failed"
  : >"$user_marker"
fi

# Where the console is: the listener of --listen or MCP_PORTAL_LISTEN; a wildcard host is reached on loopback.
listen="${MCP_PORTAL_LISTEN:-127.0.0.1:8080}"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
  --listen) listen="${args[$((i + 1))]:-$listen}" ;;
  --listen=*) listen="${args[$i]#--listen=}" ;;
  esac
done
host="${listen%:*}"
case "$host" in 0.0.0.0 | "[::]") host=127.0.0.1 ;; esac
{
  printf '\n  Web console: http://%s:%s/\n' "$host" "${listen##*:}"
  if [ -n "$admin_token" ]; then
    printf '  Admin token (shown once; kept in %s):\n    %s\n' "$admin_file" "$admin_token"
  elif [ "${MCP_PORTAL_ADMIN_TOKEN_FILE:-}" = "$admin_file" ]; then
    printf '  Admin token: in %s\n' "$admin_file"
  fi
  if [ -n "$user_token" ]; then
    printf '  Token of the example user %s (shown once; only its hash is kept, in tokens.json):\n    %s\n' \
      "$EXAMPLE_USER" "$user_token"
  else
    printf '  %s'"'"'s token was shown on the first run; a new one: node dist/cli.js tokens create %s\n' \
      "$EXAMPLE_USER" "$EXAMPLE_USER"
  fi
  printf '\n'
} >&2

step "run (Ctrl-C stops the controller; the containers keep running)"
exec node dist/cli.js run --data-dir manifests/example "$@"
