#!/usr/bin/env bash
# Build the local images the tests use, without any registry (no `docker pull`):
#   mcp-portal-test/busybox:1  static busybox + applet links, users root and mcp (1000:1000), CMD ["/bin/sh"]
#   mcp-portal-test/node:24    Node.js 24 (+ npm), its shared libraries and loader, busybox, user node (1000); the
#                              node binary is the one scripts/lib/node.sh puts on PATH (the machine's when >= 24)
# Idempotent: each image carries a label with the hash of its inputs; a matching image is kept as it is.
set -euo pipefail

BUSYBOX_IMAGE="${TEST_BUSYBOX_IMAGE:-mcp-portal-test/busybox:1}"
NODE_IMAGE="${TEST_NODE_IMAGE:-mcp-portal-test/node:24}"
SCRIPT_PATH="$(readlink -f "${BASH_SOURCE[0]}")"
LIB="$(dirname "$SCRIPT_PATH")/lib/busybox-rootfs.sh"
CONTENT_LABEL="mcp-portal-test.content-sha256"

log() { printf 'build-test-images: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# shellcheck source=lib/busybox-rootfs.sh
source "$LIB"
# shellcheck source=lib/node.sh
source "$(dirname "$SCRIPT_PATH")/lib/node.sh"
use_node_lts

start_image_build build-test-images

build_busybox() {
  local hash root="$WORK/busybox"
  hash="$(hash_files "$SCRIPT_PATH" "$LIB" "$BUSYBOX_BIN")"
  image_needs_build "$BUSYBOX_IMAGE" "$hash" || return 0
  log "building $BUSYBOX_IMAGE"
  busybox_rootfs "$root" mcp
  import_rootfs "$root" "$BUSYBOX_IMAGE" "$hash" '["/bin/sh"]'
}

# node_files: the node binary, npm (the one on PATH, when there is one), the libraries and loader node links against.
NODE_BIN="$(readlink -f "$(command -v node)")"
NPM_DIR=""
if command -v npm >/dev/null 2>&1; then
  # npm's bin is a link to <npm package>/bin/npm-cli.js.
  NPM_DIR="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
fi
node_libs() {
  # "libx.so => /lib/.../libx.so (0x..)" and "/lib64/ld-linux-x86-64.so.2 (0x..)"; skip the vdso.
  ldd "$NODE_BIN" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u
}

build_node() {
  local hash root="$WORK/node" lib libs
  mapfile -t libs < <(node_libs)
  ((${#libs[@]} > 0)) || die "ldd found no libraries for $NODE_BIN"
  local inputs=("$NODE_BIN" "$BUSYBOX_BIN" "${libs[@]}")
  [ -n "$NPM_DIR" ] && [ -f "$NPM_DIR/package.json" ] && inputs+=("$NPM_DIR/package.json")
  hash="$(hash_files "$SCRIPT_PATH" "$LIB" "${inputs[@]}")"
  image_needs_build "$NODE_IMAGE" "$hash" || return 0
  log "building $NODE_IMAGE from $NODE_BIN ($(node --version))"
  mkdir -p "$root/usr/local/bin" "$root/usr/local/lib"
  cp "$NODE_BIN" "$root/usr/local/bin/node"
  for lib in "${libs[@]}"; do
    # Keep the path ldd resolved (the loader's path is baked into the binary); -L copies the file a link names.
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  # Debian keeps the loader in /lib/x86_64-linux-gnu and /lib64 is a link; both paths must resolve.
  if [ -L /lib64 ] && [ ! -e "$root/lib64" ]; then ln -s "$(readlink /lib64)" "$root/lib64"; fi
  if [ -n "$NPM_DIR" ] && [ -f "$NPM_DIR/bin/npm-cli.js" ]; then
    cp -a "$NPM_DIR" "$root/usr/local/lib/npm"
    ln -s ../lib/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
    ln -s ../lib/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  fi
  busybox_rootfs "$root" node
  import_rootfs "$root" "$NODE_IMAGE" "$hash" '["node"]'
  local version
  version="$(docker run --rm --network none "$NODE_IMAGE" node -e 'console.log(process.version)')" ||
    die "$NODE_IMAGE does not run node"
  [ "$version" = "$(node --version)" ] || die "$NODE_IMAGE runs node $version, host has $(node --version)"
  log "$NODE_IMAGE runs node $version"
}

build_busybox
build_node
