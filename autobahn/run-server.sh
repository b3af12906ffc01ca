#!/usr/bin/env bash
# Runs the official Autobahn|Testsuite (fuzzingclient mode) against `shardws serve --deflate`
# serving the demo's /echo, then summarizes the report. Needs Docker; Linux (host networking).
set -euo pipefail
cd "$(dirname "$0")/.."

NODE=./node_modules/.bin/node   # the repository's Node 26, not the system one
PORT=9001
IMAGE=${AUTOBAHN_IMAGE:-crossbario/autobahn-testsuite}

rm -rf autobahn/reports/servers
mkdir -p autobahn/reports

"$NODE" src/cli.ts serve --port "$PORT" --workers 2 --deflate --log-level warn &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true' EXIT

"$NODE" autobahn/wait-for-port.ts 127.0.0.1 "$PORT" 10000

docker run --rm --network host \
  -v "$PWD/autobahn:/config" \
  -v "$PWD/autobahn/reports:/reports" \
  "$IMAGE" \
  wstest -m fuzzingclient -s /config/fuzzingclient.json

"$NODE" autobahn/summarize.ts autobahn/reports/servers
