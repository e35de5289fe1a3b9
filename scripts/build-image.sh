#!/usr/bin/env bash
# Build the controller image for this machine: scripts/build-image.sh [IMAGE]   (default mcp-portal:dev)
# Prints the image reference on stdout when done; progress goes to stderr.
#
# Base image: $BASE_IMAGE when set; otherwise node:24-alpine when it is present or can be pulled; otherwise (no
# registry) the local mcp-portal-test/node:24, built first by scripts/build-test-images.sh when missing.
#
# Two ways to fill the image (build arg NPM_CI of the Dockerfile):
#   NPM_CI=1  `docker build .` on the repo: npm ci, tsc and npm prune run inside the build. Needs the npm registry
#             from the build's containers (BUILD_NETWORK picks their network; default: the engine's default).
#   NPM_CI=0  offline: tsc runs here, the host's node_modules is copied and pruned to production dependencies
#             (`npm prune --omit=dev --offline`), and the build gets that temporary context with --network none.
#             Needs `npm ci` to have run in the repo, and a base of the host's platform (libc) when the tree holds
#             native addons (only optional ones today).
# Default: NPM_CI=0 with the local test base (a machine without registries), NPM_CI=1 otherwise.
#
# Env: BASE_IMAGE, NPM_CI, BUILD_NETWORK, PULL_BASE (0: never try `docker pull`), PULL_TIMEOUT (seconds, 120),
#      FORCE (1: rebuild even when the image already has these inputs).
# Idempotent: the image carries a label with the hash of its inputs; a matching image is kept as it is.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

IMAGE="${1:-${MCP_PORTAL_IMAGE:-mcp-portal:dev}}"
DEFAULT_BASE="node:24-alpine"
TEST_BASE="${TEST_NODE_IMAGE:-mcp-portal-test/node:24}"
CONTENT_LABEL="mcp-portal.build-inputs-sha256"
SCRIPT_PATH="$(readlink -f "${BASH_SOURCE[0]}")"

log() { printf 'build-image: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

command -v docker >/dev/null 2>&1 || die "docker CLI not found (run scripts/ensure-docker.sh)"
# shellcheck source=lib/node.sh
source scripts/lib/node.sh
use_node_lts

# Two builds of the same tag on one host would race on the tag and on the superseded image.
exec 9>/tmp/mcp-portal-build-image.lock
flock -w 600 9 || die "timed out waiting for another build-image run"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

if [ -z "${BASE_IMAGE:-}" ]; then
  if have_image "$DEFAULT_BASE"; then
    BASE_IMAGE="$DEFAULT_BASE"
  elif [ "${PULL_BASE:-1}" = 1 ] && timeout "${PULL_TIMEOUT:-120}" docker pull -q "$DEFAULT_BASE" >/dev/null 2>&1; then
    BASE_IMAGE="$DEFAULT_BASE"
  else
    log "$DEFAULT_BASE is not available here (no registry?): using the local $TEST_BASE"
    if ! have_image "$TEST_BASE"; then bash scripts/build-test-images.sh; fi
    BASE_IMAGE="$TEST_BASE"
  fi
fi
if [ "$BASE_IMAGE" = "$TEST_BASE" ] && ! have_image "$TEST_BASE"; then bash scripts/build-test-images.sh; fi
have_image "$BASE_IMAGE" || docker pull -q "$BASE_IMAGE" >/dev/null || die "base image $BASE_IMAGE not available"

if [ -z "${NPM_CI:-}" ]; then
  if [ "$BASE_IMAGE" = "$TEST_BASE" ]; then NPM_CI=0; else NPM_CI=1; fi
fi
[ "$NPM_CI" = 0 ] || [ "$NPM_CI" = 1 ] || die "NPM_CI must be 0 or 1, got \"$NPM_CI\""

VERSION="$(node -p 'require("./package.json").version')"
BASE_ID="$(docker image inspect --format '{{.Id}}' "$BASE_IMAGE")"

# One hash over everything that goes into the image: sources, lock file, Dockerfile, this script, base, mode.
inputs_hash() {
  {
    printf '%s\n' "$BASE_ID" "NPM_CI=$NPM_CI"
    find src web manifests/schemas -type f -print0 | LC_ALL=C sort -z |
      xargs -0 sha256sum
    sha256sum "$SCRIPT_PATH" Dockerfile .dockerignore package.json package-lock.json tsconfig.json tsconfig.build.json \
      scripts/build-console.ts
  } | sha256sum | cut -d' ' -f1
}
HASH="$(inputs_hash)"
OLD_ID="$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
if [ -n "$OLD_ID" ] && [ "${FORCE:-0}" != 1 ]; then
  have="$(docker image inspect --format "{{ index .Config.Labels \"$CONTENT_LABEL\" }}" "$IMAGE" 2>/dev/null || true)"
  if [ "$have" = "$HASH" ]; then
    log "$IMAGE is current (base $BASE_IMAGE, NPM_CI=$NPM_CI)"
    printf '%s\n' "$IMAGE"
    exit 0
  fi
fi

build_args=(
  --force-rm
  --build-arg "BASE_IMAGE=$BASE_IMAGE"
  --build-arg "NPM_CI=$NPM_CI"
  --label "$CONTENT_LABEL=$HASH"
  --label "org.opencontainers.image.version=$VERSION"
  -t "$IMAGE"
)
# Without buildx the CLI falls back to the classic builder with a warning; ask for it explicitly then.
if ! docker buildx version >/dev/null 2>&1; then export DOCKER_BUILDKIT=0; fi

started=$SECONDS
build_started_at="$(date +%s)"
if [ "$NPM_CI" = 1 ]; then
  log "building $IMAGE from the repo (base $BASE_IMAGE, npm ci inside the build)"
  docker build "${build_args[@]}" ${BUILD_NETWORK:+--network "$BUILD_NETWORK"} . >&2
else
  [ -x node_modules/.bin/tsc ] || die "NPM_CI=0 needs the repo's dependencies installed (npm ci)"
  CTX="$(mktemp -d /tmp/mcp-portal-image-context.XXXXXX)"
  trap 'rm -rf "$CTX"' EXIT
  log "preparing an offline build context in $CTX"
  cp package.json package-lock.json Dockerfile "$CTX/"
  mkdir -p "$CTX/manifests"
  cp -R manifests/schemas "$CTX/manifests/schemas"
  node_modules/.bin/tsc -p tsconfig.build.json --outDir "$CTX/dist" >&2 || die "tsc failed (output above)"
  node_modules/.bin/tsx scripts/build-console.ts "$CTX/dist/console-ui" >&2 || die "the console bundle failed (output above)"
  cp -a node_modules "$CTX/node_modules"
  (cd "$CTX" && npm prune --omit=dev --offline --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  # A node_modules behind package.json (someone added a dependency and did not reinstall) must not ship.
  (cd "$CTX" && npm ls --omit=dev --all --offline >/dev/null 2>&1) ||
    die "node_modules does not match package.json and package-lock.json: run npm ci (npm ls --omit=dev)"
  log "building $IMAGE (base $BASE_IMAGE, offline: prebuilt dist and production node_modules)"
  docker build "${build_args[@]}" --network none "$CTX" >&2
fi

NEW_ID="$(docker image inspect --format '{{.Id}}' "$IMAGE")"
if [ -n "$OLD_ID" ] && [ "$OLD_ID" != "$NEW_ID" ]; then
  # The superseded build, unless something still uses it (a container, another tag).
  docker image rm "$OLD_ID" >/dev/null 2>&1 || true
fi
# The classic builder keeps each build's final build-stage image (dangling); drop those of earlier builds.
docker image prune --force --filter "label=mcp-portal.stage=build" --filter "until=$build_started_at" >/dev/null 2>&1 || true
log "built $IMAGE in $((SECONDS - started))s"
printf '%s\n' "$IMAGE"
