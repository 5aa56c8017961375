#!/usr/bin/env bash
# `npm run bench`: the benchmark suite (quick mode), one table at the end.
#   npm run bench                 quick: a few minutes
#   npm run bench -- --full       the longer run behind docs/BENCHMARKS.md
#   npm run bench -- --only small,ledger   some scenarios
# Builds release binaries and the release extension first; everything runs
# on loopback. Timing lives here and in bench/, never in the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
args=(--quick)
for a in "$@"; do
  if [ "$a" = "--full" ]; then args=(); fi
done
rest=()
for a in "$@"; do [ "$a" = "--full" ] || rest+=("$a"); done
# 10,000 node connections need that many descriptors in the relay and in the
# benchmark (which holds the nodes' side): raise the limit where allowed.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# The benchmark's nodes fetch its loopback target: a development build of the
# node (`--allow-target`), with release optimisations.
cargo build --release --quiet -p spareband-relay -p spareband-node -p spareband-bench --features spareband-node/dev
node scripts/build-extension.mjs --only chrome >/dev/null
exec target/release/spareband-bench "${args[@]}" "${rest[@]}"
