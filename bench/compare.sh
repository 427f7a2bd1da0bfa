#!/usr/bin/env bash
# Measure the project's bot and the lean reference bot in one run, at the same offered rates, against
# the same fake Graph API, and print one table. Bounded: every process it starts is stopped by PID.
#
#   bench/compare.sh [RATES...]          default rates: 250 500 1000 1500   (or: make bench RATES="...")
#
# Run it from the project's checkout with its virtualenv active (or PYTHON=path/to/python). The project's
# bot is started as `python -m bot serve --host 127.0.0.1 --port P` with WHATSAPP_* variables pointing at
# the fake Graph API and DATABASE_URL at a fresh SQLite file (set BENCH_DATABASE_URL for another one).
# SECONDS_PER_RATE (default 10) sets each step's length; BOT_ARGS adds arguments to `bot serve` (e.g.
# BOT_ARGS="--workers 4" with BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench).
set -u
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python}
rates=("$@"); [ ${#rates[@]} -gt 0 ] || rates=(250 500 1000 1500)
secs=${SECONDS_PER_RATE:-10}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.3; done; return 1; }

gport=$(port); "$py" "$here/fake_graph.py" --port "$gport" --token bench-token & pids+=($!)
wait_port "$gport" || { echo "fake Graph API did not start"; exit 1; }

rport=$(port); "$py" "$here/baseline_echo.py" --port "$rport" --graph "http://127.0.0.1:$gport/v21.0" & pids+=($!)
wait_port "$rport" || { echo "reference bot did not start"; exit 1; }

bport=$(port)
WHATSAPP_API_BASE_URL="http://127.0.0.1:$gport/v21.0" WHATSAPP_ACCESS_TOKEN=bench-token \
WHATSAPP_APP_SECRET=bench-secret WHATSAPP_WEBHOOK_VERIFY_TOKEN=bench-verify \
WHATSAPP_PHONE_NUMBER_ID=100000000000001 WHATSAPP_BUSINESS_ACCOUNT_ID=200000000000001 \
DATABASE_URL="${BENCH_DATABASE_URL:-sqlite://$work/bench.db}" BOT_ADMIN_TOKEN=bench-admin \
BOT_ENCRYPTION_KEYS="${BOT_ENCRYPTION_KEYS:-YmVuY2gtZW5jcnlwdGlvbi1rZXktMzItYnl0ZXMtISE=}" \
  "$py" -m bot serve --migrate --host 127.0.0.1 --port "$bport" ${BOT_ARGS:-} >"$work/bot.log" 2>&1 & pids+=($!)
wait_port "$bport" || { echo "the project's bot did not start; its log:"; tail -20 "$work/bot.log"; exit 1; }
sleep 1

printf '%-10s %6s %8s %8s %8s %9s %9s %6s\n' bot rate acked ack_p50 ack_p99 e2e_p50 e2e_p99 lost
for rate in "${rates[@]}"; do
  for who in reference project; do
    if [ "$who" = reference ]; then url="http://127.0.0.1:$rport/webhook"; else url="http://127.0.0.1:$bport/webhook"; fi
    line=$("$py" "$here/load.py" --url "$url" --graph "http://127.0.0.1:$gport" --rate "$rate" \
           --seconds "$secs" --drain 20 | tail -n 1)
    "$py" - "$who" "$line" <<'PY'
import json, sys
who, r = sys.argv[1], json.loads(sys.argv[2])
print(f"{who:<10} {r['offered_rate']:>6.0f} {r['acked']:>8} {r['ack_p50_ms']:>8} {r['ack_p99_ms']:>8} "
      f"{r['e2e_p50_ms']:>9} {r['e2e_p99_ms']:>9} {r['lost']:>6}")
PY
  done
done
