#!/usr/bin/env bash
# Build the MCP test servers the tests and benches use, without any registry (no `docker pull`):
#   mcp-portal-test/mcp-stdio:1       stdio-server.ts      MCP over stdin/stdout
#   mcp-portal-test/mcp-http:1        http-server.ts       streamable HTTP on 8080, /mcp
#   mcp-portal-test/mcp-stdio-eras:1  era-stdio-server.ts  legacy (SDK v1) over stdio, tools incl. ask and grow
#   mcp-portal-test/mcp-http-eras:1   era-http-server.ts   legacy (SDK v1) streamable HTTP on 8080, /mcp
#   mcp-portal-test/mcp-modern:1      modern-server.ts     SDK v2 (MCP 2026-07-28, stateless) on 8080, /mcp
# (entries under test/fixtures/mcp-servers/). Usage: build-mcp-test-images.sh [common|eras|all] (default all; the
# gateway tests need `common`, the protocol-era tests `eras`).
# Each is one esbuild bundle on top of mcp-portal-test/node:24 (scripts/build-test-images.sh builds that), run as
# the image's user node (1000). Idempotent: an image whose content label matches the hash of its inputs (the
# bundle, its Dockerfile, the build flags, the base image id) is kept as it is; adding an image to the list
# rebuilds no other.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

BASE_IMAGE="${TEST_NODE_IMAGE:-mcp-portal-test/node:24}"
STDIO_IMAGE="${TEST_MCP_STDIO_IMAGE:-mcp-portal-test/mcp-stdio:1}"
HTTP_IMAGE="${TEST_MCP_HTTP_IMAGE:-mcp-portal-test/mcp-http:1}"
CONTENT_LABEL="mcp-portal-test.content-sha256"
WHICH="${1:-all}"
case "$WHICH" in common | eras | all) ;; *)
  printf 'usage: %s [common|eras|all]\n' "$0" >&2
  exit 2
  ;;
esac

log() { printf 'build-mcp-test-images: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

command -v docker >/dev/null 2>&1 || die "docker CLI not found (run scripts/ensure-docker.sh)"
[ -x node_modules/.bin/esbuild ] || die "node_modules/.bin/esbuild not found (run npm ci)"
base_id="$(docker image inspect --format '{{.Id}}' "$BASE_IMAGE" 2>/dev/null)" ||
  die "$BASE_IMAGE not found (run scripts/build-test-images.sh)"

exec 9>/tmp/mcp-portal-build-mcp-test-images.lock
flock -w 300 9 || die "timed out waiting for another build-mcp-test-images run"

WORK="$(mktemp -d /tmp/mcp-portal-mcp-images.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# The SDK's CommonJS dependencies call require(); an ESM bundle needs one.
BANNER="import { createRequire as __mcpPortalCreateRequire } from 'node:module'; const require = __mcpPortalCreateRequire(import.meta.url);"

ESBUILD_FLAGS=(--bundle --platform=node --format=esm --target=node20 --minify --legal-comments=none --log-level=warning)

build() { # NAME ENTRY EXPOSE
  local name="$1" entry="$2" expose="$3" dir hash have
  dir="$WORK/$(basename "$entry" .ts)"
  mkdir -p "$dir"
  node_modules/.bin/esbuild "$entry" "${ESBUILD_FLAGS[@]}" --banner:js="$BANNER" --outfile="$dir/server.mjs"
  cat >"$dir/Dockerfile" <<DOCKERFILE
FROM $BASE_IMAGE
COPY server.mjs /app/server.mjs
USER 1000:1000
WORKDIR /app
${expose:+EXPOSE $expose}
CMD ["node", "/app/server.mjs"]
DOCKERFILE
  hash="$({
    sha256sum "$dir/server.mjs" "$dir/Dockerfile" | cut -d' ' -f1
    printf '%s\n' "${ESBUILD_FLAGS[*]}" "$BANNER" "$base_id"
  } | sha256sum | cut -d' ' -f1)"
  have="$(docker image inspect --format "{{ index .Config.Labels \"$CONTENT_LABEL\" }}" "$name" 2>/dev/null || true)"
  if [ "$have" = "$hash" ]; then
    log "$name is current"
    return 0
  fi
  log "building $name"
  printf 'LABEL %s=%s\n' "$CONTENT_LABEL" "$hash" >>"$dir/Dockerfile"
  local out
  # The legacy builder (no buildx here) prints a deprecation notice on every build: show output only on failure.
  if ! out="$(docker build --network none --quiet --tag "$name" "$dir" 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "docker build of $name failed"
  fi
}

if [ "$WHICH" != eras ]; then
  build "$STDIO_IMAGE" test/fixtures/mcp-servers/stdio-server.ts ""
  build "$HTTP_IMAGE" test/fixtures/mcp-servers/http-server.ts 8080
fi
if [ "$WHICH" != common ]; then
  build mcp-portal-test/mcp-stdio-eras:1 test/fixtures/mcp-servers/era-stdio-server.ts ""
  build mcp-portal-test/mcp-http-eras:1 test/fixtures/mcp-servers/era-http-server.ts 8080
  build mcp-portal-test/mcp-modern:1 test/fixtures/mcp-servers/modern-server.ts 8080
fi
