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

start_image_build build-demo-images

build_stdio_echo() {
  local hash root="$WORK/stdio-echo"
  hash="$(hash_files "$SCRIPT_PATH" "$LIB" "$BUSYBOX_BIN")"
  image_needs_build "$STDIO_IMAGE" "$hash" || return 0
  log "building $STDIO_IMAGE"
  busybox_rootfs "$root" mcp
  import_rootfs "$root" "$STDIO_IMAGE" "$hash" \
    '["sh","-c","while read -r line; do echo \"$line\"; done"]' "USER 1000:1000" "WORKDIR /home/mcp"
}

build_http_echo() {
  local hash root="$WORK/http-echo"
  hash="$(hash_files "$SCRIPT_PATH" "$LIB" "$BUSYBOX_BIN")"
  image_needs_build "$HTTP_IMAGE" "$hash" || return 0
  log "building $HTTP_IMAGE"
  busybox_rootfs "$root" mcp
  mkdir -p "$root/www"
  printf '<!doctype html><title>mcp-portal demo</title><p>mcp-portal-demo/http-echo is running.</p>\n' >"$root/www/index.html"
  printf '{"name":"mcp-portal-demo/http-echo","transport":"streamable-http","note":"demo endpoint, not a real MCP server"}\n' >"$root/www/mcp"
  chmod -R a+rX "$root/www"
  import_rootfs "$root" "$HTTP_IMAGE" "$hash" '["httpd","-f","-v","-p","8080","-h","/www"]' \
    "USER 1000:1000" "EXPOSE 8080/tcp"
}

build_stdio_echo
build_http_echo
