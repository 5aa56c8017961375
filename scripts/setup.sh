#!/usr/bin/env bash
# Installs what the project needs and is not there yet. Safe to run again:
# every step checks first and skips what is already in place.
#   scripts/setup.sh            everything (build tools, npm packages, browsers, PostgreSQL)
#   scripts/setup.sh --no-browsers   skip what only the tests need: Chromium,
#                                    Firefox ESR, PostgreSQL… (npm start)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
want_browsers=1
[ "${1:-}" = "--no-browsers" ] && want_browsers=0

command -v cargo >/dev/null || { say "cargo is missing: install Rust from https://rustup.rs first"; exit 1; }
command -v node >/dev/null || { say "node is missing: install Node.js 20 or newer first"; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# The browser node's core compiles to wasm32.
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown Rust target"
  rustup target add wasm32-unknown-unknown
fi

# wasm-bindgen-cli must be exactly the version the workspace pins.
wbg_version=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' Cargo.toml)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wbg_version" ]; then
  say "installing wasm-bindgen-cli $wbg_version (a few minutes, once)"
  cargo install wasm-bindgen-cli --version "$wbg_version" --locked \
    || cargo install wasm-bindgen-cli --version "$wbg_version"
fi

# npm packages (puppeteer-core, web-ext, binaryen's wasm-opt), when missing
# or older than the lock file. No package downloads a browser of its own.
export PUPPETEER_SKIP_DOWNLOAD=1
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm ci --no-audit --no-fund
fi

# The cluster tests start a private NATS server (issue 14).
if ! command -v nats-server >/dev/null; then
  say "installing nats-server from Debian"
  apt_install nats-server
fi

if [ "$want_browsers" -eq 1 ]; then
  missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v firefox-esr >/dev/null || missing+=(firefox-esr)
  # The browser tests make a certificate for a stand-in home device.
  command -v openssl >/dev/null || missing+=(openssl)
  # ... and put a test CA in Firefox's certificate store (certutil).
  command -v certutil >/dev/null || missing+=(libnss3-tools)
  # tests/node-safety.test.mjs puts a node in a network namespace.
  command -v ip >/dev/null || missing+=(iproute2)
  # tests/e2e/proxy.rs drives the proxy port with curl and Python requests.
  command -v curl >/dev/null || missing+=(curl)
  python3 -c 'import requests' 2>/dev/null || missing+=(python3-requests)
  # tests/openapi-fuzz.test.mjs runs Schemathesis from a virtual environment.
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  # The ledger's tests and the e2e tests' second pass start private
  # PostgreSQL servers (tests/postgres): initdb and postgres from Debian's
  # package, in /usr/lib/postgresql/<version>/bin.
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} from Debian"
    apt_install "${missing[@]}"
  fi
  # Schemathesis, the property-based tester of the OpenAPI document, pinned,
  # in its own virtual environment under target/ (not in the repository).
  schemathesis_version=4.32.5
  if [ "$(target/schemathesis/bin/st --version 2>/dev/null | awk '{print $3}')" != "$schemathesis_version" ]; then
    say "installing Schemathesis $schemathesis_version in target/schemathesis"
    rm -rf target/schemathesis
    mkdir -p target
    python3 -m venv target/schemathesis
    target/schemathesis/bin/pip install --quiet "schemathesis==$schemathesis_version"
  fi
fi
say "ready"
