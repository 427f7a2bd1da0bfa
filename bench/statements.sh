#!/usr/bin/env bash
# Count the project's bot's round trips to SQLite, by statement, under load: the fake Graph API,
# `bot serve` under bench/statements.py, load.py at one rate, then the report per message.
#
#   bench/statements.sh RATE [OUT_DIR]        e.g. bench/statements.sh 250 /tmp/statements
#
# With PYTHON=.venv/bin/python BOT_SETTINGS=tests/bench-settings.yaml, as profile.sh. SECONDS_PER_RATE
# (default 10) sets the load's length. SQLite only (the counter wraps aiosqlite). Every process it
# starts is stopped by PID.
set -u
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python}
rate=${1:?usage: bench/statements.sh RATE [OUT_DIR]}
out=${2:-$(mktemp -d)}
secs=${SECONDS_PER_RATE:-10}
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.3; done; return 1; }

gport=$(port); "$py" "$here/fake_graph.py" --port "$gport" --token bench-token & pids+=($!)
wait_port "$gport" || { echo "fake Graph API did not start"; exit 1; }

bport=$(port)
WHATSAPP_API_BASE_URL="http://127.0.0.1:$gport/v21.0" WHATSAPP_ACCESS_TOKEN=bench-token \
WHATSAPP_APP_SECRET=bench-secret WHATSAPP_WEBHOOK_VERIFY_TOKEN=bench-verify \
WHATSAPP_PHONE_NUMBER_ID=100000000000001 WHATSAPP_BUSINESS_ACCOUNT_ID=200000000000001 \
BOT_ENCRYPTION_KEYS="${BOT_ENCRYPTION_KEYS:-YmVuY2gtZW5jcnlwdGlvbi1rZXktMzItYnl0ZXMtISE=}" \
DATABASE_URL="sqlite://$work/bench.db" BOT_ADMIN_TOKEN=bench-admin \
  "$py" "$here/statements.py" run "$out/statements.json" -- serve --migrate --host 127.0.0.1 --port "$bport" \
  >"$work/bot.log" 2>&1 & bot=$!
pids+=($bot)
wait_port "$bport" || { echo "the project's bot did not start; its log:"; tail -20 "$work/bot.log"; exit 1; }
sleep 1
"$py" "$here/load.py" --url "http://127.0.0.1:$bport/webhook" --graph "http://127.0.0.1:$gport" \
  --rate "$rate" --seconds "$secs" --drain 20 | tail -n 1 >"$out/load.json"
kill -INT "$bot"; wait "$bot"
messages=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["acked"])' "$out/load.json")
"$py" "$here/statements.py" report "$out/statements.json" "$messages" 30
echo "load: $(cat "$out/load.json")"
