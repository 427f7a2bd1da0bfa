#!/usr/bin/env bash
# Measure the project's bot and the lean reference bot in one run, at the same offered rates, against
# the same fake Graph API, and print one table. Bounded: every process it starts is stopped by PID.
#
#   bench/compare.sh [RATES...]          default rates: 250 500 1000 1500   (or: make bench RATES="...")
#
# Run it from the project's checkout with its virtualenv active (or PYTHON=path/to/python). The project's
# bot is started as `python -m bot serve --host 127.0.0.1 --port P` with WHATSAPP_* variables pointing at
# the fake Graph API and DATABASE_URL at a fresh SQLite file (set BENCH_DATABASE_URL for another one).
# SECONDS_PER_RATE (default 10) sets each step's length; BOT_WORKERS=N runs `bot serve --workers N`;
# BOT_ARGS adds other arguments to `bot serve`. A PostgreSQL BENCH_DATABASE_URL's database is emptied
# first (dropped and created again): point it at a database kept for benchmarks. BENCH_BSUID=1 makes
# every customer one without a phone number (load.py --bsuid: business-scoped user IDs only), for both
# bots. BENCH_CUSTOMERS=N spreads the load over N customers (default 1,000, each writing rate/1,000 times
# a second): over a long step at a high rate each customer outruns Meta's pair limit (a burst of 20, then
# one message per 6 s, as `whatsapp.pair_*` keeps it), and the project's bot holds their replies.
#
# Beside the latency columns, the project's rows say how much memory the bot held (rss_mb: the largest
# resident set of one bot process during the step; with workers, rss_all_mb adds them up, counting the
# pages the forked processes share once per process, and pss_all_mb adds their proportional set sizes,
# counting each shared page once: what they hold together) and how long
# after the load stopped its inbox and outbox were empty (drain_s; "-" with what was left if they were
# not within 10 s of the generator's end), sampled by bench/watch.py from the database every 0.25 s,
# and the CPU time all its processes used per acknowledged message, from the step's start until its
# queues were empty (cpu_ms: steadier than latency on a machine others share). The last three columns
# say what the harness cost beside it, on the same cores: the mark-reads the fake Graph API received
# (reads), and per acknowledged message the CPU time of the fake Graph API during the step (graph_ms)
# and of the generator from its start, its signing of every request included (load_ms).
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

database=${BENCH_DATABASE_URL:-sqlite://$work/bench.db}
case "$database" in
  postgres://*|postgresql://*) "$py" "$here/watch.py" recreate --database "$database" || exit 1 ;;
esac
bot_args=(${BOT_ARGS:-})
[ -n "${BOT_WORKERS:-}" ] && bot_args+=(--workers "$BOT_WORKERS")

gport=$(port); "$py" "$here/fake_graph.py" --port "$gport" --token bench-token & graph=$!; pids+=($graph)
wait_port "$gport" || { echo "fake Graph API did not start"; exit 1; }

rport=$(port); "$py" "$here/baseline_echo.py" --port "$rport" --graph "http://127.0.0.1:$gport/v21.0" & pids+=($!)
wait_port "$rport" || { echo "reference bot did not start"; exit 1; }

bport=$(port)
WHATSAPP_API_BASE_URL="http://127.0.0.1:$gport/v21.0" WHATSAPP_ACCESS_TOKEN=bench-token \
WHATSAPP_APP_SECRET=bench-secret WHATSAPP_WEBHOOK_VERIFY_TOKEN=bench-verify \
WHATSAPP_PHONE_NUMBER_ID=100000000000001 WHATSAPP_BUSINESS_ACCOUNT_ID=200000000000001 \
DATABASE_URL="$database" BOT_ADMIN_TOKEN=bench-admin \
BOT_ENCRYPTION_KEYS="${BOT_ENCRYPTION_KEYS:-YmVuY2gtZW5jcnlwdGlvbi1rZXktMzItYnl0ZXMtISE=}" \
  "$py" -m bot serve --migrate --host 127.0.0.1 --port "$bport" "${bot_args[@]}" >"$work/bot.log" 2>&1 & bot=$!
pids+=($bot)
wait_port "$bport" || { echo "the project's bot did not start; its log:"; tail -20 "$work/bot.log"; exit 1; }
sleep 1
"$py" "$here/watch.py" sample --pid "$bot" --database "$database" --out "$work/watch.jsonl" & pids+=($!)

ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
printf '%-10s %6s %8s %8s %8s %9s %9s %6s %5s %6s %10s %10s %7s %6s %6s %8s %7s\n' \
  bot rate acked ack_p50 ack_p99 e2e_p50 e2e_p99 lost dup rss_mb rss_all_mb pss_all_mb drain_s cpu_ms \
  reads graph_ms load_ms
for rate in "${rates[@]}"; do
  for who in reference project; do
    if [ "$who" = reference ]; then url="http://127.0.0.1:$rport/webhook"; else url="http://127.0.0.1:$bport/webhook"; fi
    graph_before=$(ticks "$graph")
    line=$("$py" "$here/load.py" --url "$url" --graph "http://127.0.0.1:$gport" --rate "$rate" \
           --seconds "$secs" --drain 20 ${BENCH_BSUID:+--bsuid} ${BENCH_CUSTOMERS:+--customers "$BENCH_CUSTOMERS"} \
           | tail -n 1)
    held='{}'
    if [ "$who" = project ]; then
      read -r start end < <("$py" -c 'import json,sys; r=json.loads(sys.argv[1]); print(r["load_start"], r["load_end"])' "$line")
      for _ in $(seq 1 40); do
        sleep 0.25
        held=$("$py" "$here/watch.py" report --samples "$work/watch.jsonl" --start "$start" --end "$end")
        case "$held" in *'"drain_s": null'*) ;; *) break ;; esac
      done
    fi
    graph_ticks=$(( $(ticks "$graph") - graph_before ))
    "$py" - "$who" "$line" "$held" "$graph_ticks" <<'PY'
import json, os, sys
who, r, held = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
graph_s = int(sys.argv[4]) / os.sysconf("SC_CLK_TCK")
per = (lambda seconds: f"{1000 * seconds / r['acked']:.2f}") if r["acked"] else (lambda seconds: "-")
drain = held.get("drain_s")
drain = "-" if not held else (f"{drain:.2f}" if drain is not None else f"-({held['left']})")
cpu = f"{1000 * held['cpu_s'] / r['acked']:.2f}" if held.get("cpu_s") and r["acked"] else "-"
print(f"{who:<10} {r['offered_rate']:>6.0f} {r['acked']:>8} {r['ack_p50_ms']:>8} {r['ack_p99_ms']:>8} "
      f"{r['e2e_p50_ms']:>9} {r['e2e_p99_ms']:>9} {r['lost']:>6} {r['duplicated']:>5} "
      f"{held.get('rss_mb', '-'):>6} {held.get('rss_total_mb', '-'):>10} {held.get('pss_total_mb', '-'):>10} "
      f"{drain:>7} {cpu:>6} {r['graph']['mark_read']:>6} {per(graph_s):>8} {per(r['cpu_s']):>7}")
PY
  done
done
