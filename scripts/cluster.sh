#!/usr/bin/env bash
# `npm run cluster`: a demonstration cluster on this machine. A private
# PostgreSQL and NATS server in a temp dir, three relays sharing them
# (plain HTTP on loopback, so the relays' job hop needs no certificate), a
# local demo site and three native nodes, one per relay, each told all three
# relays so it moves when its relay goes. Prints how to call each relay;
# Ctrl-C stops everything and removes the temp dir.
#
# CARGO_TARGET_DIR is honoured; SPAREBAND_NO_BUILD=1 skips the build and uses
# the binaries already in the target dir.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-browsers

say() { printf '\033[1m[cluster]\033[0m %s\n' "$*" >&2; }
TARGET=${CARGO_TARGET_DIR:-target}
if [ "${SPAREBAND_NO_BUILD:-0}" != 1 ]; then
  say "building the relay (release) and a development node (it may fetch the local demo site)"
  cargo build --release --quiet -p spareband-relay
  cargo build --quiet -p spareband-node --features dev
fi
RELAY_BIN=$TARGET/release/spareband-relay
NODE_BIN=$TARGET/debug/spareband-node
for b in "$RELAY_BIN" "$NODE_BIN"; do
  [ -x "$b" ] || { say "$b is missing: run without SPAREBAND_NO_BUILD"; exit 1; }
done

PG_BIN=$(dirname "$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -1)")
DIR=$(mktemp -d /tmp/spareband-cluster.XXXXXX)
chmod 755 "$DIR"   # the postgres user must reach its folder inside
PIDS=()
cleanup() {
  say "stopping"
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  # runuser does not pass the signal on: stop PostgreSQL by its own pid.
  local pg="$DIR/pg/data/postmaster.pid"
  if [ -f "$pg" ]; then
    kill -INT "$(head -1 "$pg")" 2>/dev/null || true
    for _ in $(seq 100); do [ -f "$pg" ] || break; sleep 0.1; done
  fi
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

say "PostgreSQL in $DIR/pg"
mkdir -p "$DIR/pg"
[ "$(id -u)" = 0 ] && chown postgres: "$DIR/pg"
as_pg "$PG_BIN/initdb" -D "$DIR/pg/data" --auth=trust --username spareband --no-locale >/dev/null
PG_PORT=$(free_port)
as_pg "$PG_BIN/postgres" -D "$DIR/pg/data" -h 127.0.0.1 -p "$PG_PORT" -k "$DIR/pg" >"$DIR/pg.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
  sleep 0.1
done
DATABASE_URL="postgres://spareband@127.0.0.1:$PG_PORT/postgres"

say "NATS with JetStream"
NATS_PORT=$(free_port)
nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$DIR/nats" >"$DIR/nats.log" 2>&1 &
PIDS+=($!)

# The demo site the nodes fetch (a relay and its nodes may reach it only
# because it is named with --allow-target).
SITE_PORT=$(free_port)
mkdir -p "$DIR/site"
echo "hello from the demo site" >"$DIR/site/index.html"
python3 -m http.server "$SITE_PORT" --bind 127.0.0.1 --directory "$DIR/site" >/dev/null 2>&1 &
PIDS+=($!)
SITE="127.0.0.1:$SITE_PORT"

# One secret for every relay of the cluster; it authenticates the job hop.
SPAREBAND_CLUSTER_SECRET=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
SPAREBAND_ADMIN_TOKEN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
export SPAREBAND_CLUSTER_SECRET SPAREBAND_ADMIN_TOKEN

RELAYS=()
for i in 1 2 3; do
  port=$(free_port)
  RELAYS+=("http://127.0.0.1:$port")
  "$RELAY_BIN" serve --data-dir "$DIR/relay$i" --listen "127.0.0.1:$port" \
    --insecure-http --database-url "$DATABASE_URL" --cluster-url "nats://127.0.0.1:$NATS_PORT" \
    --allow-target "$SITE" >"$DIR/relay$i.log" 2>&1 &
  PIDS+=($!)
done
for r in "${RELAYS[@]}"; do
  for _ in $(seq 150); do curl -sf "$r/healthz" >/dev/null && break; sleep 0.2; done
  curl -sf "$r/healthz" >/dev/null || { say "relay $r did not start; its log:"; cat "$DIR"/relay*.log >&2; exit 1; }
done
KEY=$("$RELAY_BIN" keys create --name "cluster demo" --database-url "$DATABASE_URL" 2>/dev/null)

# A node given several relays starts at the one its id picks (the id's
# first byte modulo their number) and moves to another at random. So that
# node i starts on relay i, each node is first run once against a closed
# port to make its key and learn its id, then given the three relays in the
# order that puts relay i at the place its id picks.
node_id() {
  local key=$1 log=$2 pid id=""
  "$NODE_BIN" --relay http://127.0.0.1:9 --key-file "$key" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    id=$(sed -n 's/.*node ready node=\([0-9a-f]*\).*/\1/p' "$log" | head -1)
    [ -n "$id" ] && break
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "$id"
}
for i in 0 1 2; do
  id=$(node_id "$DIR/node$i.key" "$DIR/node$i.first.log")
  pick=0
  [ -n "$id" ] && pick=$(( 16#${id:0:2} % 3 ))
  args=()
  for k in 0 1 2; do args+=(--relay "${RELAYS[$(( (i + k - pick + 3) % 3 ))]}"); done
  "$NODE_BIN" "${args[@]}" --key-file "$DIR/node$i.key" --allow-target "$SITE" \
    >"$DIR/node$i.log" 2>&1 &
  PIDS+=($!)
done

say "waiting for the three relays to see each other"
for _ in $(seq 100); do
  n=0
  for r in "${RELAYS[@]}"; do
    curl -sf "$r/healthz" | grep -q '"relays":3' && n=$((n + 1))
  done
  [ "$n" = 3 ] && break
  sleep 0.2
done
for r in "${RELAYS[@]}"; do
  curl -sf "$r/healthz" | grep -q '"relays":3' || say "$r does not count three relays yet: $(curl -sf "$r/healthz")"
done

cat >&2 <<MSG

  A Spareband cluster: three relays on one PostgreSQL and one NATS server,
  three native nodes (each given all three relays), logs in $DIR.

  API key for every relay (they share the database): $KEY

MSG
for i in 0 1 2; do
  cat >&2 <<MSG
  Relay $((i + 1)): ${RELAYS[$i]}   (dashboard ${RELAYS[$i]}/admin)
    curl -s ${RELAYS[$i]}/v1/fetch -H "Authorization: Bearer $KEY" -d '{"url": "http://$SITE/"}'
    curl -s "${RELAYS[$i]}/v1/raw?url=http%3A%2F%2F$SITE%2F&session=demo" -H "Authorization: Bearer $KEY" -i
MSG
done
cat >&2 <<MSG

  The same session on any relay lands on the same node (x-spareband-node).
  Admin token for the dashboards: $SPAREBAND_ADMIN_TOKEN
  Stop with Ctrl-C.

MSG
wait
