#!/usr/bin/env bash
# Build the local images the tests use, without any registry (no `docker pull`):
#   mcp-portal-test/busybox:1  static busybox + applet links, users root and mcp (1000:1000), CMD ["/bin/sh"]
#   mcp-portal-test/node:20    the host's node (+ npm), its shared libraries and loader, busybox, user node (1000)
# Idempotent: each image carries a label with the hash of its inputs; a matching image is kept as it is.
set -euo pipefail

BUSYBOX_IMAGE="${TEST_BUSYBOX_IMAGE:-mcp-portal-test/busybox:1}"
NODE_IMAGE="${TEST_NODE_IMAGE:-mcp-portal-test/node:20}"
BUSYBOX_BIN="${BUSYBOX_BIN:-/bin/busybox}"
CONTENT_LABEL="mcp-portal-test.content-sha256"
SCRIPT_PATH="$(readlink -f "${BASH_SOURCE[0]}")"
PATH_ENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

log() { printf 'build-test-images: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

command -v docker >/dev/null 2>&1 || die "docker CLI not found (run scripts/ensure-docker.sh)"
[ -x "$BUSYBOX_BIN" ] || die "$BUSYBOX_BIN not found (apt-get install busybox-static)"
bb_ldd="$(ldd "$BUSYBOX_BIN" 2>&1 || true)"
[[ "$bb_ldd" == *"not a dynamic executable"* || "$bb_ldd" == *"statically linked"* ]] ||
  die "$BUSYBOX_BIN is not statically linked (apt-get install busybox-static)"

# Two test runs on one host must not import the same image at once.
exec 9>/tmp/mcp-portal-build-test-images.lock
flock -w 300 9 || die "timed out waiting for another build-test-images run"

WORK="$(mktemp -d /tmp/mcp-portal-images.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# hash_inputs FILE...: one hash over this script and the named files' contents and paths.
hash_inputs() {
  { sha256sum "$SCRIPT_PATH" | cut -d' ' -f1; sha256sum "$@"; } | sha256sum | cut -d' ' -f1
}

image_is_current() { # NAME HASH
  local have
  have="$(docker image inspect --format "{{ index .Config.Labels \"$CONTENT_LABEL\" }}" "$1" 2>/dev/null || true)"
  [ "$have" = "$2" ]
}

# add_busybox ROOT: /bin/busybox plus a symlink for every applet not already present.
add_busybox() {
  local root="$1" applet
  mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin"
  cp "$BUSYBOX_BIN" "$root/bin/busybox"
  while IFS= read -r applet; do
    [ -n "$applet" ] && [ ! -e "$root/$applet" ] && [ ! -L "$root/$applet" ] || continue
    mkdir -p "$root/$(dirname "$applet")"
    ln -s /bin/busybox "$root/$applet"
  done < <("$BUSYBOX_BIN" --list-full)
}

# add_base ROOT USER: /etc/passwd and /etc/group with root and USER (1000:1000), /tmp, home directories.
add_base() {
  local root="$1" user="$2"
  mkdir -p "$root/etc" "$root/root" "$root/home/$user" "$root/tmp" "$root/proc" "$root/sys" "$root/dev"
  chmod 1777 "$root/tmp"
  chmod 700 "$root/root"
  printf 'root:x:0:0:root:/root:/bin/sh\n%s:x:1000:1000:%s:/home/%s:/bin/sh\n' "$user" "$user" "$user" >"$root/etc/passwd"
  printf 'root:x:0:\n%s:x:1000:\n' "$user" >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  chown 1000:1000 "$root/home/$user"
}

import_rootfs() { # ROOT NAME HASH CMD_JSON
  local root="$1" name="$2" hash="$3" cmd="$4"
  tar -C "$root" --numeric-owner -c . |
    docker import \
      -c "CMD $cmd" \
      -c "ENV $PATH_ENV" \
      -c "LABEL $CONTENT_LABEL=$hash" \
      - "$name" >/dev/null
}

build_busybox() {
  local hash root="$WORK/busybox"
  hash="$(hash_inputs "$BUSYBOX_BIN")"
  if image_is_current "$BUSYBOX_IMAGE" "$hash"; then
    log "$BUSYBOX_IMAGE is current"
    return 0
  fi
  log "building $BUSYBOX_IMAGE"
  add_busybox "$root"
  add_base "$root" mcp
  import_rootfs "$root" "$BUSYBOX_IMAGE" "$hash" '["/bin/sh"]'
}

# node_files: the node binary, npm (when installed beside node), the libraries and loader node links against.
NODE_BIN="$(readlink -f "$(command -v node)")"
NODE_PREFIX="$(dirname "$(dirname "$NODE_BIN")")"
NPM_DIR="$NODE_PREFIX/lib/node_modules/npm"
node_libs() {
  # "libx.so => /lib/.../libx.so (0x..)" and "/lib64/ld-linux-x86-64.so.2 (0x..)"; skip the vdso.
  ldd "$NODE_BIN" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u
}

build_node() {
  local hash root="$WORK/node" lib libs
  mapfile -t libs < <(node_libs)
  ((${#libs[@]} > 0)) || die "ldd found no libraries for $NODE_BIN"
  local inputs=("$NODE_BIN" "$BUSYBOX_BIN" "${libs[@]}")
  [ -f "$NPM_DIR/package.json" ] && inputs+=("$NPM_DIR/package.json")
  hash="$(hash_inputs "${inputs[@]}")"
  if image_is_current "$NODE_IMAGE" "$hash"; then
    log "$NODE_IMAGE is current"
    return 0
  fi
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
  if [ -d "$NPM_DIR" ]; then
    cp -a "$NPM_DIR" "$root/usr/local/lib/npm"
    ln -s ../lib/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
    ln -s ../lib/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  fi
  add_busybox "$root"
  add_base "$root" node
  import_rootfs "$root" "$NODE_IMAGE" "$hash" '["node"]'
  local version
  version="$(docker run --rm "$NODE_IMAGE" node -e 'console.log(process.version)')" ||
    die "$NODE_IMAGE does not run node"
  [ "$version" = "$(node --version)" ] || die "$NODE_IMAGE runs node $version, host has $(node --version)"
  log "$NODE_IMAGE runs node $version"
}

build_busybox
build_node
