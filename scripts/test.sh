#!/usr/bin/env bash
# `npm test`: the whole suite. Lints first (fast failures), then the Rust
# unit, property and cross-component tests, then the tests that drive the
# real binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "cargo fmt"
cargo fmt --all -- --check
step "cargo clippy (native)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
step "cargo clippy (protocol for wasm32)"
cargo clippy -p spareband-protocol --target wasm32-unknown-unknown --quiet -- -D warnings
step "cargo test"
cargo test --workspace --quiet
step "binaries end to end"
cargo build --quiet -p spareband-relay -p spareband-node
node --test tests/*.test.mjs
