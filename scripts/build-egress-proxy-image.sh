#!/usr/bin/env bash
# Build the egress proxy image offline: scripts/build-egress-proxy-image.sh [IMAGE]  (default mcp-portal-egress-proxy:1)
# Prints the image reference on stdout when done; progress goes to stderr.
#
# The image is a Node base plus one file: src/egress-proxy/main.ts bundled by esbuild with its two libraries
# (proxy-chain, dns-packet), names kept (proxy-chain tells its errors apart by class name). Base: $BASE_IMAGE, else node:24-alpine when present, else the local
# mcp-portal-test/node:24 (built first by scripts/build-test-images.sh when missing). No registry is needed.
# Idempotent: the image carries a label with the hash of its inputs; a matching image is kept as it is.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

IMAGE="${1:-${MCP_PORTAL_EGRESS_PROXY_IMAGE:-mcp-portal-egress-proxy:1}}"
CONTENT_LABEL="mcp-portal.build-inputs-sha256"
SCRIPT_PATH="$(readlink -f "${BASH_SOURCE[0]}")"

log() { printf 'build-egress-proxy-image: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

command -v docker >/dev/null 2>&1 || die "docker CLI not found (run scripts/ensure-docker.sh)"
# shellcheck source=lib/node.sh
source scripts/lib/node.sh
use_node_lts
[ -x node_modules/.bin/esbuild ] || die "needs the repo's dependencies installed (npm ci)"

exec 9>/tmp/mcp-portal-build-egress-proxy.lock
flock -w 600 9 || die "timed out waiting for another build of the egress proxy image"

if [ -z "${BASE_IMAGE:-}" ]; then
  if have_image node:24-alpine; then
    BASE_IMAGE=node:24-alpine
  else
    BASE_IMAGE="${TEST_NODE_IMAGE:-mcp-portal-test/node:24}"
    have_image "$BASE_IMAGE" || bash scripts/build-test-images.sh >&2
  fi
fi
have_image "$BASE_IMAGE" || die "base image $BASE_IMAGE not available"
BASE_ID="$(docker image inspect --format '{{.Id}}' "$BASE_IMAGE")"

CTX="$(mktemp -d /tmp/mcp-portal-egress-proxy.XXXXXX)"
trap 'rm -rf "$CTX"' EXIT
node_modules/.bin/esbuild src/egress-proxy/main.ts --bundle --platform=node --format=cjs --target=node22 --keep-names \
  --log-level=warning --outfile="$CTX/egress-proxy.cjs" >&2 || die "esbuild failed (output above)"
cat >"$CTX/Dockerfile" <<DOCKERFILE
FROM $BASE_ID
COPY egress-proxy.cjs /app/egress-proxy.cjs
USER 1000:1000
ENTRYPOINT ["node", "/app/egress-proxy.cjs"]
DOCKERFILE
HASH="$({
  printf '%s\n' "$BASE_ID"
  sha256sum "$CTX/egress-proxy.cjs" "$CTX/Dockerfile" "$SCRIPT_PATH" | cut -d' ' -f1
} | sha256sum | cut -d' ' -f1)"
have="$(docker image inspect --format "{{ index .Config.Labels \"$CONTENT_LABEL\" }}" "$IMAGE" 2>/dev/null || true)"
if [ "$have" = "$HASH" ] && [ "${FORCE:-0}" != 1 ]; then
  log "$IMAGE is current (base $BASE_IMAGE)"
  printf '%s\n' "$IMAGE"
  exit 0
fi
OLD_ID="$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
if ! docker buildx version >/dev/null 2>&1; then export DOCKER_BUILDKIT=0; fi
docker build --force-rm --network none --label "$CONTENT_LABEL=$HASH" -t "$IMAGE" "$CTX" >&2
NEW_ID="$(docker image inspect --format '{{.Id}}' "$IMAGE")"
if [ -n "$OLD_ID" ] && [ "$OLD_ID" != "$NEW_ID" ]; then docker image rm "$OLD_ID" >/dev/null 2>&1 || true; fi
log "built $IMAGE (base $BASE_IMAGE)"
printf '%s\n' "$IMAGE"
