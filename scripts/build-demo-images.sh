#!/usr/bin/env bash
# Build the images the servers of manifests/example run, without any registry (no `docker pull`):
#   mcp-portal-demo/stdio-echo:1  busybox; answers every stdin line with the same line (a stand-in stdio server)
#   mcp-portal-demo/http-echo:1   busybox httpd on port 8080 serving a small page at / and /mcp
# Idempotent: each image carries a label with the hash of its inputs; a matching image is kept as it is.
set -euo pipefail

STDIO_IMAGE="${DEMO_STDIO_IMAGE:-mcp-portal-demo/stdio-echo:1}"
HTTP_IMAGE="${DEMO_HTTP_IMAGE:-mcp-portal-demo/http-echo:1}"
SCRIPT_PATH="$(readlink -f "${BASH_SOURCE[0]}")"
LIB="$(dirname "$SCRIPT_PATH")/lib/busybox-rootfs.sh"
CONTENT_LABEL="mcp-portal-demo.content-sha256"

log() { printf 'build-demo-images: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# shellcheck source=lib/busybox-rootfs.sh
source "$LIB"

command -v docker >/dev/null 2>&1 || die "docker CLI not found (run scripts/ensure-docker.sh)"
require_static_busybox

exec 9>/tmp/mcp-portal-build-demo-images.lock
flock -w 300 9 || die "timed out waiting for another build-demo-images run"

WORK="$(mktemp -d /tmp/mcp-portal-demo-images.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

build_stdio_echo() {
  local hash root="$WORK/stdio-echo"
  hash="$(hash_files "$SCRIPT_PATH" "$LIB" "$BUSYBOX_BIN")"
  if image_is_current "$STDIO_IMAGE" "$hash"; then
    log "$STDIO_IMAGE is current"
    return 0
  fi
  log "building $STDIO_IMAGE"
  add_busybox "$root"
  add_base "$root" mcp
  import_rootfs "$root" "$STDIO_IMAGE" "$hash" \
    '["sh","-c","while read -r line; do echo \"$line\"; done"]' "USER 1000:1000" "WORKDIR /home/mcp"
}

build_http_echo() {
  local hash root="$WORK/http-echo"
  hash="$(hash_files "$SCRIPT_PATH" "$LIB" "$BUSYBOX_BIN")"
  if image_is_current "$HTTP_IMAGE" "$hash"; then
    log "$HTTP_IMAGE is current"
    return 0
  fi
  log "building $HTTP_IMAGE"
  add_busybox "$root"
  add_base "$root" mcp
  mkdir -p "$root/www"
  printf '<!doctype html><title>mcp-portal demo</title><p>mcp-portal-demo/http-echo is running.</p>\n' >"$root/www/index.html"
  printf '{"name":"mcp-portal-demo/http-echo","transport":"streamable-http","note":"demo endpoint, not a real MCP server"}\n' >"$root/www/mcp"
  chmod -R a+rX "$root/www"
  import_rootfs "$root" "$HTTP_IMAGE" "$hash" '["httpd","-f","-v","-p","8080","-h","/www"]' \
    "USER 1000:1000" "EXPOSE 8080/tcp"
}

build_stdio_echo
build_http_echo
