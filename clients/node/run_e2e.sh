#!/bin/sh
# End to end: a fresh data folder, two funded-capable accounts, `tonne serve` on loopback,
# the Node client over TCP (and WebSocket), then SIGINT to the server.
# Usage: clients/node/run_e2e.sh [TCP_PORT] [WS_PORT]   (from anywhere; default 0 0: the
# server picks free ports and the script reads them from its ready line)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TONNE=${TONNE:-$REPO/.venv/bin/tonne}
NODE=${NODE:-node}
TCP_PORT=${1:-0}
WS_PORT=${2:-0}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/tonne-node-e2e.XXXXXX")
DATA=$DIR/data

# keys provisioned before the server starts (it would also see them within --keys-check-s)
"$TONNE" accounts add --data "$DATA" --permissions trade,fund --json  > "$DIR/keys.jsonl" || exit 2
"$TONNE" accounts add --data "$DATA" --permissions trade,fund --json >> "$DIR/keys.jsonl" || exit 2

"$TONNE" serve --data "$DATA" --tcp-port "$TCP_PORT" --ws-port "$WS_PORT" > "$DIR/serve.out" 2> "$DIR/serve.err" &
SERVER=$!
stop_server() {
  if kill -0 "$SERVER" 2>/dev/null; then
    kill -INT "$SERVER"
    i=0; while kill -0 "$SERVER" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
    kill -0 "$SERVER" 2>/dev/null && { echo "server did not stop on SIGINT; SIGKILL"; kill -KILL "$SERVER"; }
  fi
  wait "$SERVER" 2>/dev/null
  echo "server exit status: $?"
}
trap stop_server EXIT INT TERM

# wait for the one JSON "ready" line
i=0; while [ ! -s "$DIR/serve.out" ] && [ $i -lt 100 ]; do
  kill -0 "$SERVER" 2>/dev/null || { echo "server exited:"; cat "$DIR/serve.err"; exit 2; }
  sleep 0.1; i=$((i+1)); done
echo "server ready: $(head -1 "$DIR/serve.out")"
READY=$(head -1 "$DIR/serve.out")
TCP_PORT=$(printf '%s' "$READY" | sed -n 's/.*"tcp_port": *\([0-9]*\).*/\1/p')
WS_PORT=$(printf '%s' "$READY" | sed -n 's/.*"ws_port": *\([0-9]*\).*/\1/p')

WSFLAG=
if ! "$NODE" -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null; then
  "$NODE" --experimental-websocket -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null && WSFLAG=--experimental-websocket
fi
# the first endpoint refuses (nothing listens on loopback port 1), as a standby does
"$NODE" $WSFLAG --no-warnings "$HERE/tonne_client.js" --tcp "127.0.0.1:1,127.0.0.1:$TCP_PORT" --ws "127.0.0.1:$WS_PORT" --keys "$DIR/keys.jsonl"
RC=$?
stop_server
trap - EXIT INT TERM
echo "data folder kept in $DIR; client exit status $RC"
exit $RC
