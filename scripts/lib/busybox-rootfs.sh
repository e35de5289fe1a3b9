# shellcheck shell=bash
# Shared helpers for building small images without a registry: a rootfs folder with static busybox,
# imported with `docker import`. Source this file after defining log and die; it defines functions only.
#   BUSYBOX_BIN    static busybox to copy (default /bin/busybox)
#   CONTENT_LABEL  label that records the hash of an image's inputs (default mcp-portal.content-sha256)

BUSYBOX_BIN="${BUSYBOX_BIN:-/bin/busybox}"
CONTENT_LABEL="${CONTENT_LABEL:-mcp-portal.content-sha256}"
ROOTFS_PATH_ENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# require_static_busybox: dies unless $BUSYBOX_BIN exists and is statically linked.
require_static_busybox() {
  [ -x "$BUSYBOX_BIN" ] || die "$BUSYBOX_BIN not found (apt-get install busybox-static)"
  local out
  out="$(ldd "$BUSYBOX_BIN" 2>&1 || true)"
  [[ "$out" == *"not a dynamic executable"* || "$out" == *"statically linked"* ]] ||
    die "$BUSYBOX_BIN is not statically linked (apt-get install busybox-static)"
}

# start_image_build NAME: for the build script NAME, checks the docker CLI and $BUSYBOX_BIN, waits for any other
# run of NAME (two runs must not import the same image at once) and sets WORK to a temp dir removed on exit.
start_image_build() {
  local name="$1"
  command -v docker >/dev/null 2>&1 || die "docker CLI not found (run scripts/ensure-docker.sh)"
  require_static_busybox
  exec 9>"/tmp/mcp-portal-$name.lock"
  flock -w 300 9 || die "timed out waiting for another $name run"
  WORK="$(mktemp -d "/tmp/mcp-portal-$name.XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
}

# hash_files FILE...: one hash over the named files' contents and paths.
hash_files() {
  sha256sum "$@" | sha256sum | cut -d' ' -f1
}

# image_is_current NAME HASH: true when NAME exists and carries HASH in $CONTENT_LABEL.
image_is_current() {
  local have
  have="$(docker image inspect --format "{{ index .Config.Labels \"$CONTENT_LABEL\" }}" "$1" 2>/dev/null || true)"
  [ "$have" = "$2" ]
}

# image_needs_build NAME HASH: false (saying so) when NAME is current, true when it has to be built.
image_needs_build() {
  if image_is_current "$1" "$2"; then
    log "$1 is current"
    return 1
  fi
  return 0
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

# busybox_rootfs ROOT USER: add_busybox and add_base.
busybox_rootfs() {
  add_busybox "$1"
  add_base "$1" "$2"
}

# import_rootfs ROOT NAME HASH CMD_JSON [EXTRA_CHANGE...]: imports ROOT as image NAME with CMD, PATH and the hash label.
import_rootfs() {
  local root="$1" name="$2" hash="$3" cmd="$4"
  shift 4
  local changes=(-c "CMD $cmd" -c "ENV $ROOTFS_PATH_ENV" -c "LABEL $CONTENT_LABEL=$hash")
  local change
  for change in "$@"; do changes+=(-c "$change"); done
  tar -C "$root" --numeric-owner -c . | docker import "${changes[@]}" - "$name" >/dev/null
}
