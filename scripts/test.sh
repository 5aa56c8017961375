#!/usr/bin/env bash
# `npm test`: the whole suite. Lints first (fast failures), then the Rust
# unit, property and cross-component tests (the cross-component ones on
# SQLite, then again on PostgreSQL), the real binaries, the extension
# build and lint, and the extension in headless Chromium and Firefox ESR.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "cargo fmt"
cargo fmt --all -- --check
step "cargo clippy (native)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
step "cargo clippy (wasm32: protocol and browser core, release and dev)"
cargo clippy -p spareband-protocol -p spareband-wasm --target wasm32-unknown-unknown --quiet -- -D warnings
cargo clippy -p spareband-wasm --features dev --target wasm32-unknown-unknown --quiet -- -D warnings
step "no import circles between the files of a crate"
node scripts/check-imports.mjs
step "cargo test"
cargo test --workspace --quiet
step "cargo test: the end-to-end tests again, with the ledger on PostgreSQL"
# Same tests, each relay on a fresh database of a private server the test
# binary starts (tests/postgres); about 40 s on the 2-core machine.
SPAREBAND_TEST_DB=postgres cargo test -p spareband-tests --test e2e --quiet
step "extension: release build, packages, web-ext lint"
node scripts/build-extension.mjs --package
npx web-ext lint --source-dir dist/firefox --self-hosted --warnings-as-errors
step "binaries and browsers end to end"
# The binary tests give the node local targets: a development build.
cargo build --quiet -p spareband-relay -p spareband-node -p spareband-tests --bins --features spareband-node/dev
# Chromium and Firefox run side by side: each has its own relay and build.
node --test --test-concurrency=3 tests/*.test.mjs tests/browser/*.test.mjs
