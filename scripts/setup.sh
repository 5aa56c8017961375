#!/usr/bin/env bash
# Installs what the project needs and is not there yet. Safe to run again:
# every step checks first and skips what is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

command -v cargo >/dev/null || { say "cargo is missing: install Rust from https://rustup.rs first"; exit 1; }
command -v node >/dev/null || { say "node is missing: install Node.js 20 or newer first"; exit 1; }

# The protocol crate is also checked for the browser target.
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown Rust target"
  rustup target add wasm32-unknown-unknown
fi

# npm packages, only when package.json lists any and they are not installed.
if grep -q '"devDependencies"\|"dependencies"' package.json; then
  if [ ! -d node_modules ] || [ package.json -nt node_modules/.package-lock.json ] || { [ -f package-lock.json ] && [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
    say "installing npm packages"
    if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
  fi
fi
say "ready"
