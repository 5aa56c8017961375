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
cargo build --release --quiet -p spareband-relay -p spareband-node -p spareband-bench
node scripts/build-extension.mjs --only chrome >/dev/null
exec target/release/spareband-bench "${args[@]}" "${rest[@]}"
