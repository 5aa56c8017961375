#!/usr/bin/env bash
# `npm start`: install what is missing, build, and run a relay on this machine
# (https://127.0.0.1:8443, embedded SQLite in ./data). On the first run it
# creates a customer API key and prints it once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-browsers

say() { printf '\033[1m[start]\033[0m %s\n' "$*" >&2; }
say "building the relay and the native node (release)"
cargo build --release --quiet -p spareband-relay -p spareband-node
# The demo node below must reach the local demo site, which only a
# development build may (`--allow-target`); the release node refuses it.
say "building a development node for the demo (target/debug)"
cargo build --quiet -p spareband-node --features dev
say "building the extension (dist/chrome, dist/firefox)"
node scripts/build-extension.mjs

DATA_DIR="${SPAREBAND_DATA_DIR:-./data}"
LISTEN="${SPAREBAND_LISTEN:-127.0.0.1:8443}"
# The HTTP proxy port (plain HTTP, so on loopback).
export SPAREBAND_PROXY_LISTEN="${SPAREBAND_PROXY_LISTEN:-127.0.0.1:8080}"
export SPAREBAND_SOCKS_LISTEN="${SPAREBAND_SOCKS_LISTEN:-127.0.0.1:1080}"
# The local demo site from the README; node owners are protected by their
# node's own policy whatever the relay allows.
export SPAREBAND_ALLOW_TARGETS="${SPAREBAND_ALLOW_TARGETS-127.0.0.1:8000}"
mkdir -p "$DATA_DIR"

# The dashboard's admin token: made once, kept readable only by this user.
# The relay itself holds only its hash.
if [ -z "${SPAREBAND_ADMIN_TOKEN:-}" ]; then
  if [ ! -s "$DATA_DIR/admin-token" ]; then
    (umask 077; od -An -N24 -tx1 /dev/urandom | tr -d ' \n' > "$DATA_DIR/admin-token")
  fi
  SPAREBAND_ADMIN_TOKEN=$(cat "$DATA_DIR/admin-token")
  export SPAREBAND_ADMIN_TOKEN
fi

KEY=""
if [ ! -f "$DATA_DIR/spareband.db" ]; then
  KEY=$(./target/release/spareband-relay keys create --name "first customer" --data-dir "$DATA_DIR" 2>/dev/null)
fi

cat >&2 <<MSG

  Spareband relay on https://$LISTEN (self-signed certificate in $DATA_DIR)
MSG
if [ -n "$KEY" ]; then
  cat >&2 <<MSG
  Your API key (shown only this once, store it now):

    $KEY

MSG
else
  cat >&2 <<MSG
  API keys were created on the first run. Make another with:
    ./target/release/spareband-relay keys create --name me --data-dir $DATA_DIR

MSG
fi
cat >&2 <<MSG
  Next, in a second terminal, a demo site and a node that may fetch it:
    python3 -m http.server 8000 --bind 127.0.0.1 &
    ./target/debug/spareband-node --relay https://$LISTEN --insecure-tls --allow-target 127.0.0.1:8000

  Then a customer request:
    curl -sk https://$LISTEN/v1/fetch -H "Authorization: Bearer ${KEY:-YOUR_KEY}" -d '{"url": "http://127.0.0.1:8000/"}'

  Or through the proxy port (the password is the key, the username the
  targeting, e.g. user-country-us-session-s1):
    curl -x http://user:${KEY:-YOUR_KEY}@$SPAREBAND_PROXY_LISTEN http://127.0.0.1:8000/
  or SOCKS5:
    curl -x socks5h://user:${KEY:-YOUR_KEY}@$SPAREBAND_SOCKS_LISTEN http://127.0.0.1:8000/

  The admin dashboard: https://$LISTEN/admin
  (sign in with the token in $DATA_DIR/admin-token)

  The browser node: load dist/chrome (chrome://extensions, Developer mode,
  Load unpacked) or dist/firefox (about:debugging, Load Temporary Add-on,
  pick dist/firefox/manifest.json). It connects to the relay in its options.

  Stop with Ctrl-C.

MSG
exec ./target/release/spareband-relay serve --data-dir "$DATA_DIR" --listen "$LISTEN"
