#!/usr/bin/env bash
# Runs the official Autobahn|Testsuite (fuzzingserver mode) and drives it with the shardws
# client (autobahn/client-runner.ts), then summarizes the report. Needs Docker; Linux (host networking).
set -euo pipefail
cd "$(dirname "$0")/.."

NODE=./node_modules/.bin/node   # the repository's Node 26, not the system one
PORT=9001
IMAGE=${AUTOBAHN_IMAGE:-crossbario/autobahn-testsuite}
CONTAINER=shardws-fuzzingserver-$$

rm -rf autobahn/reports/clients
mkdir -p autobahn/reports

docker run -d --rm --name "$CONTAINER" --network host \
  -v "$PWD/autobahn:/config" \
  -v "$PWD/autobahn/reports:/reports" \
  "$IMAGE" \
  wstest -m fuzzingserver -s /config/fuzzingserver.json >/dev/null
trap 'docker stop "$CONTAINER" >/dev/null 2>&1 || true' EXIT

"$NODE" autobahn/wait-for-port.ts 127.0.0.1 "$PORT" 30000
"$NODE" autobahn/client-runner.ts "ws://127.0.0.1:$PORT" shardws

"$NODE" autobahn/summarize.ts autobahn/reports/clients
