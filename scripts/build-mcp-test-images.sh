#!/usr/bin/env bash
# Build the MCP test servers the gateway tests and bench use, without any registry (no `docker pull`):
#   mcp-portal-test/mcp-stdio:1  test/fixtures/mcp-servers/stdio-server.ts (MCP over stdin/stdout)
#   mcp-portal-test/mcp-http:1   test/fixtures/mcp-servers/http-server.ts  (streamable HTTP on 8080, /mcp)
# Each is one esbuild bundle on top of mcp-portal-test/node:24 (scripts/build-test-images.sh builds that), run as
# the image's user node (1000). Idempotent: an image whose content label matches the hash of its inputs (this
# script, the bundle, the base image id) is kept as it is.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

BASE_IMAGE="${TEST_NODE_IMAGE:-mcp-portal-test/node:24}"
STDIO_IMAGE="${TEST_MCP_STDIO_IMAGE:-mcp-portal-test/mcp-stdio:1}"
HTTP_IMAGE="${TEST_MCP_HTTP_IMAGE:-mcp-portal-test/mcp-http:1}"
CONTENT_LABEL="mcp-portal-test.content-sha256"
SCRIPT_PATH="$(readlink -f "${BASH_SOURCE[0]}")"

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

build() { # NAME ENTRY EXPOSE
  local name="$1" entry="$2" expose="$3" dir hash have
  dir="$WORK/$(basename "$entry" .ts)"
  mkdir -p "$dir"
  node_modules/.bin/esbuild "$entry" --bundle --platform=node --format=esm --target=node20 --minify \
    --legal-comments=none --log-level=warning --banner:js="$BANNER" --outfile="$dir/server.mjs"
  cat >"$dir/Dockerfile" <<DOCKERFILE
FROM $BASE_IMAGE
COPY server.mjs /app/server.mjs
USER 1000:1000
WORKDIR /app
${expose:+EXPOSE $expose}
CMD ["node", "/app/server.mjs"]
DOCKERFILE
  hash="$({ sha256sum "$SCRIPT_PATH" "$dir/server.mjs" "$dir/Dockerfile" | cut -d' ' -f1; echo "$base_id"; } | sha256sum | cut -d' ' -f1)"
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

build "$STDIO_IMAGE" test/fixtures/mcp-servers/stdio-server.ts ""
build "$HTTP_IMAGE" test/fixtures/mcp-servers/http-server.ts 8080
