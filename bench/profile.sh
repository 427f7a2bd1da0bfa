#!/usr/bin/env bash
# Profile the project's bot under load with py-spy: the fake Graph API, `bot serve` under
# `py-spy record`, and load.py at one rate. Writes a flame graph (SVG) and py-spy's raw samples.
#
#   bench/profile.sh RATE [OUT_DIR]        e.g. bench/profile.sh 500 /tmp/profile
#
# py-spy is not a dependency: `.venv/bin/pip install py-spy` first. SECONDS_PER_RATE (default 10) sets
# the load's length; BENCH_DATABASE_URL and BOT_ARGS as in compare.sh. Every process it starts is
# stopped by PID.
set -u
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python}
spy=${PY_SPY:-$(dirname "$py")/py-spy}
rate=${1:?usage: bench/profile.sh RATE [OUT_DIR]}
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
DATABASE_URL="${BENCH_DATABASE_URL:-sqlite://$work/bench.db}" BOT_ADMIN_TOKEN=bench-admin \
  "$py" -m bot serve --migrate --host 127.0.0.1 --port "$bport" ${BOT_ARGS:-} >"$work/bot.log" 2>&1 & bot=$!
pids+=($bot)
wait_port "$bport" || { echo "the project's bot did not start; its log:"; tail -20 "$work/bot.log"; exit 1; }
sleep 1
"$spy" record --pid "$bot" --subprocesses --rate 100 --nonblocking ${SPY_ARGS:-} --duration $((${secs%.*} + 2)) \
  --output "$out/flame.svg" >"$out/py-spy.log" 2>&1 & spypid=$!
"$spy" record --pid "$bot" --subprocesses --rate 100 --nonblocking ${SPY_ARGS:-} --duration $((${secs%.*} + 2)) \
  --format raw --output "$out/samples.txt" >>"$out/py-spy.log" 2>&1 & rawpid=$!
"$py" "$here/load.py" --url "http://127.0.0.1:$bport/webhook" --graph "http://127.0.0.1:$gport" \
  --rate "$rate" --seconds "$secs" --drain 20 | tail -n 1 >"$out/load.json"
wait "$spypid" "$rawpid"
"$py" "$here/top_frames.py" "$out/samples.txt" 40
echo "flame graph: $out/flame.svg; load: $(cat "$out/load.json")"
