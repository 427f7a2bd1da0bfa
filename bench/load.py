"""Signed WhatsApp webhook load against a bot, measured end to end through fake_graph.py.

Every inbound is a realistic Cloud API notification (object whatsapp_business_account, entry/changes/value
with metadata, contacts and one text message with a unique wamid), signed with X-Hub-Signature-256. The
text carries a '#<seq>' token (seq counts from a random base, so runs do not mix). Message seq goes
to customer base_phone + seq % customers, so each customer writes at rate/customers per second. With
--bsuid the customers have no phone number: each writes as the business-scoped user ID US.<number>0000000
alone (no `from`, no `wa_id`: `from_user_id` and `contacts[].user_id`), and replies go to it as
`recipient`; --with-bsuid puts that id beside the phone instead.

Modes:  --rate R          open loop: message i is due at i/R s, whether or not earlier ones were answered;
                          latency counts from the due time: a slow bot shows as latency, not a lower rate
        --concurrency C   closed loop: C deliveries in flight, the next one leaves when one is answered
All bodies, signatures and HTTP requests are built before the timed loop, and the timed loop writes the
prepared bytes over persistent keep-alive connections (a minimal HTTP/1.1 client on asyncio), so the
generator costs little CPU next to the bot it measures.

Figures (also the keys of the JSON line printed last):
  offered_rate     inbound messages (first deliveries) per second actually put on the wire
  send_lag_*_ms    how late the generator wrote a request after its due time (large: the generator, or the
                   connection cap, could not keep up, and the offered rate is below what was asked)
  ack_*_ms         webhook answer latency from the due time (p50/p90/p99/max); non_200 counts the others
  e2e_*_ms         from the due time of an inbound's first delivery to the first reply for it arriving at
                   the fake Graph API (p50/p90/p99/max)
  lost             acknowledged inbound messages with no reply within --timeout seconds
  duplicated       inbound messages that got more than one reply (exact, by '#<seq>' or quoted wamid),
                   plus replies matched by "to" that no inbound was left to explain
  unmatched_sends  successful sends the fake API recorded that match no inbound of this run
  stale_sends      sends that arrived before this run began, or that name an inbound of another run
                   (a bot still answering an earlier run)
Replies are matched to inbounds by the '#<seq>' token or the quoted wamid (context.message_id) when the
bot echoes or quotes; otherwise by "to": per customer, in order, the first unclaimed send after each
inbound was due. That fallback assumes one reply per inbound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import random
import sys
import time
from collections import defaultdict, deque
from urllib.parse import urlsplit

import aiohttp

# ---------------------------------------------------------------------------------------------- building


def build_requests(a: argparse.Namespace, run_id: str, base: int) -> tuple[list[bytes], list[str], list[str]]:
    """Pre-build and pre-sign every request; return (raw HTTP requests, customer of seq, wamid of seq)."""
    u = urlsplit(a.url)
    if u.hostname not in ("127.0.0.1", "localhost"):
        sys.exit("load.py sends to 127.0.0.1 only")
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{u.port}\r\nUser-Agent: facebookexternalua\r\n"
        f"Accept: */*\r\nContent-Type: application/json\r\n"
    ).encode()
    secret = a.app_secret.encode()
    now = int(time.time())
    reqs, customers, wamids = [], [], []
    for seq in range(a.messages):
        phone = str(a.base_phone + seq % a.customers)
        bsuid = f"US.{phone}0000000"
        wamid = f"wamid.HBgL{run_id}{seq:08d}FQIAEhgU"
        if a.bsuid:  # a customer known only by their BSUID (a username user who hides their number)
            sender: dict[str, str] = {"user_id": bsuid}
            origin: dict[str, str] = {"from_user_id": bsuid}
        else:
            sender = {"wa_id": phone, **({"user_id": bsuid} if a.with_bsuid else {})}
            origin = {"from": phone, **({"from_user_id": bsuid} if a.with_bsuid else {})}
        payload = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": a.waba_id,
                    "changes": [
                        {
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": a.display_phone,
                                    "phone_number_id": a.phone_number_id,
                                },
                                "contacts": [
                                    {
                                        "profile": {"name": f"Customer {seq % a.customers}"},
                                        **sender,
                                    }
                                ],
                                "messages": [
                                    {
                                        **origin,
                                        "id": wamid,
                                        "timestamp": str(now + int(seq / max(a.rate, 1))),
                                        "type": "text",
                                        "text": {"body": f"{a.body} #{base + seq}"},
                                    }
                                ],
                            },
                            "field": "messages",
                        }
                    ],
                }
            ],
        }
        raw = json.dumps(payload, separators=(",", ":")).encode()
        sig = hmac.new(secret, raw, hashlib.sha256).hexdigest()
        reqs.append(
            head + f"Content-Length: {len(raw)}\r\nX-Hub-Signature-256: sha256={sig}\r\n\r\n".encode() + raw
        )
        customers.append(bsuid if a.bsuid else phone)
        wamids.append(wamid)
    return reqs, customers, wamids


# ----------------------------------------------------------------------------- a minimal keep-alive client


class _Conn(asyncio.Protocol):
    __slots__ = ("buf", "close_after", "cur", "need", "pool", "transport")

    def __init__(self, pool: _Pool) -> None:
        self.pool, self.transport, self.buf, self.cur, self.need, self.close_after = (
            pool,
            None,
            bytearray(),
            -1,
            -1,
            False,
        )

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.pool.ready(self)

    def send(self, k: int) -> None:
        self.cur, self.need = k, -1
        self.pool.t_write[k] = time.perf_counter()
        self.transport.write(self.pool.wire[k])

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if self.cur < 0:
            return
        if self.need < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            status = int(head[9:12])
            self.close_after = b"\r\nconnection: close" in head
            i = head.find(b"\r\ncontent-length:")
            if i >= 0:
                j = head.find(b"\r\n", i + 2)
                self.need = end + 4 + int(head[i + 17 : j if j >= 0 else None])
            elif b"chunked" in head:
                k = buf.find(b"0\r\n\r\n", end + 4)
                if k < 0:
                    return
                self.need = k + 5
            else:
                self.need = end + 4
            self.pool.status[self.cur] = status
        if len(buf) < self.need:
            return
        del buf[: self.need]
        k, self.cur, self.need = self.cur, -1, -1
        self.pool.done(k, self)

    def connection_lost(self, exc) -> None:
        self.pool.lost(self)


class _Pool:
    """Up to max_conns keep-alive connections; a delivery waits in a queue when all are busy."""

    def __init__(self, host: str, port: int, max_conns: int, wire: list[bytes], n: int, on_done) -> None:
        self.host, self.port, self.max_conns, self.wire = host, port, max_conns, wire
        self.idle: list[_Conn] = []
        self.queue: deque[int] = deque()
        self.nconn = 0
        self.t_write = [0.0] * n
        self.t_done = [0.0] * n
        self.status = [-1] * n
        self.on_done = on_done
        self.loop = asyncio.get_running_loop()

    def submit(self, k: int) -> None:
        if self.idle:
            self.idle.pop().send(k)
            return
        self.queue.append(k)
        if self.nconn < self.max_conns:
            self._open()

    def _open(self) -> None:
        self.nconn += 1
        fut = asyncio.ensure_future(self.loop.create_connection(lambda: _Conn(self), self.host, self.port))
        fut.add_done_callback(self._opened)

    def _opened(self, fut: asyncio.Future) -> None:
        if fut.cancelled() or fut.exception() is not None:
            self.nconn -= 1
            if self.queue:  # refused: fail one queued delivery, so this always ends
                k = self.queue.popleft()
                self.status[k] = 0
                self.t_done[k] = time.perf_counter()
                self.on_done(k)
                if self.queue and self.nconn < self.max_conns:
                    self.loop.call_later(0.01, self._open)

    def ready(self, conn: _Conn) -> None:
        if conn.transport is None or conn.transport.is_closing():
            return
        if self.queue:
            conn.send(self.queue.popleft())
        else:
            self.idle.append(conn)

    def done(self, k: int, conn: _Conn) -> None:
        self.t_done[k] = time.perf_counter()
        if conn.close_after:
            conn.transport.close()
        else:
            self.ready(conn)
        self.on_done(k)

    def lost(self, conn: _Conn) -> None:
        self.nconn -= 1
        if conn in self.idle:
            self.idle.remove(conn)
        if conn.cur >= 0:  # broken mid-request: a failed delivery
            k, conn.cur = conn.cur, -1
            self.status[k] = 0
            self.t_done[k] = time.perf_counter()
            self.on_done(k)
        if self.queue and self.nconn < self.max_conns:
            self._open()

    def close(self) -> None:
        for c in self.idle:
            c.transport.close()


# ------------------------------------------------------------------------------------------------ running


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000, 1)


async def run(a: argparse.Namespace) -> dict:
    run_id = f"{random.randrange(16**8):08X}"
    base = random.randrange(1, 10**6) * 10**6  # '#<seq>' tokens differ from run to run
    reqs, customer, wamid = build_requests(a, run_id, base)
    n_msg = len(reqs)
    rng = random.Random(a.seed)
    dup_seqs = sorted(rng.sample(range(n_msg), int(n_msg * a.duplicates))) if a.duplicates else []
    # deliveries: (due offset s, seq). A redelivery follows its original by 50 ms to 1 s (Meta retries
    # at once).
    rate = a.rate if not a.concurrency else None
    deliveries = [((i / rate) if rate else float(i), i) for i in range(n_msg)]
    for s in dup_seqs:
        deliveries.append((deliveries[s][0] + (rng.uniform(0.05, 1.0) if rate else 0.5), s))
    deliveries.sort()
    n = len(deliveries)
    wire = [reqs[s] for _, s in deliveries]
    seq_of = [s for _, s in deliveries]
    due = [0.0] * n
    u = urlsplit(a.url)
    outstanding = n
    all_done = asyncio.get_running_loop().create_future()
    nxt = [0]

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        # let a bot still answering an earlier run finish first (bounded), then clear the record
        last, quiet_since, t_settle = -1, time.time(), time.time() + a.settle
        while time.time() < t_settle:
            async with http.get(a.graph + "/stats") as r:
                req_count = (await r.json())["requests"]
            if req_count != last:
                last, quiet_since = req_count, time.time()
            elif time.time() - quiet_since >= 0.5:
                break
            await asyncio.sleep(0.1)
        if not a.no_reset:
            async with http.post(a.graph + "/reset") as r:
                await r.read()

        def on_done(k: int) -> None:
            nonlocal outstanding
            outstanding -= 1
            if a.concurrency and nxt[0] < n:
                j = nxt[0]
                nxt[0] += 1
                due[j] = time.perf_counter()
                pool.submit(j)
            if outstanding == 0 and not all_done.done():
                all_done.set_result(None)

        pool = _Pool(u.hostname, u.port, max(a.connections, a.concurrency or 0), wire, n, on_done)
        # open a few connections before the clock starts, so connect cost is not in the first requests
        warm = min(a.connections, a.concurrency or 8)
        conns = await asyncio.gather(
            *(pool.loop.create_connection(lambda: _Conn(pool), u.hostname, u.port) for _ in range(warm)),
            return_exceptions=True,
        )
        pool.nconn = sum(1 for c in conns if not isinstance(c, BaseException))
        if pool.nconn == 0:
            sys.exit(f"cannot connect to {a.url}")

        wall_off = time.time() - time.perf_counter()
        t0 = time.perf_counter() + 0.02
        if a.concurrency:
            start = min(a.concurrency, n)
            nxt[0] = start
            for k in range(start):
                due[k] = time.perf_counter()
                pool.submit(k)
            limit = a.max_seconds
        else:
            k = 0
            limit = deliveries[-1][0] + 1.0
            while k < n:
                now = time.perf_counter() - t0
                if now > limit:
                    break
                while k < n and deliveries[k][0] <= now:
                    due[k] = t0 + deliveries[k][0]
                    pool.submit(k)
                    k += 1
                if k < n:
                    await asyncio.sleep(min(max(deliveries[k][0] - now, 0.0), 0.005))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(all_done), timeout=limit + a.timeout + 5)
        pool.close()

        # ---- per-inbound view
        first_due: dict[int, float] = {}
        acked: set[int] = set()
        acks, lags, non_200 = [], [], defaultdict(int)
        written = 0
        for k in range(n):
            if pool.t_write[k]:
                written += 1
                lags.append(pool.t_write[k] - due[k])
            st = pool.status[k]
            if pool.t_done[k]:
                acks.append(pool.t_done[k] - due[k])
            if st == 200:
                acked.add(seq_of[k])
            else:
                non_200[str(st if st >= 0 else "no answer")] += 1
            s = seq_of[k]
            if due[k] and s not in first_due:
                first_due[s] = due[k] + wall_off
        # offered rate: first deliveries put on the wire per second, over the span they took
        firsts = [k for k in range(n) if pool.t_write[k] and due[k] + wall_off == first_due.get(seq_of[k])]
        send_span = (
            (max(pool.t_write[k] for k in firsts) - min(due[k] for k in firsts)) if len(firsts) > 1 else 0.0
        )

        # ---- wait for replies: until every acked inbound has one, or --timeout after the last was due
        expect = len(acked)
        deadline = max(first_due.values(), default=time.time()) + a.timeout
        while time.time() < deadline:
            async with http.get(a.graph + "/stats") as r:
                st = await r.json()
            if st["ok"] >= expect:
                await asyncio.sleep(0.3)  # a moment for stray second replies
                break
            await asyncio.sleep(0.2)
        async with http.get(a.graph + "/stats") as r:
            gstats = await r.json()
        async with http.get(a.graph + "/dump") as r:
            sends = await r.json()

    # ---- match replies to inbounds
    wamid_seq = {w: i for i, w in enumerate(wamid)}
    by_ref: dict[int, list[float]] = defaultdict(list)
    by_to: dict[str, list[float]] = defaultdict(list)
    known = set(customer)
    unmatched = stale = 0
    run_start = min(first_due.values(), default=0.0)
    for t, to, _typ, ref, _w in sends:
        to = to.lstrip("+")  # a phone as the bot wrote it ("+1555..."); a BSUID as it is
        if t < run_start:  # a late answer to an earlier run
            stale += 1
            continue
        s = None
        if isinstance(ref, int) and 0 <= ref - base < n_msg and customer[ref - base] == to:
            s = ref - base
        elif isinstance(ref, str) and ref in wamid_seq:
            s = wamid_seq[ref]
        if s is not None:
            by_ref[s].append(t)
        elif ref is not None:  # names an inbound of another run
            stale += 1
        elif to in known:
            by_to[to].append(t)
        else:
            unmatched += 1
    first_reply: dict[int, float] = {s: min(ts) for s, ts in by_ref.items()}
    duplicated = sum(1 for ts in by_ref.values() if len(ts) > 1)
    waiting: dict[str, list[int]] = defaultdict(list)
    for s in sorted(first_due, key=first_due.get):
        if s not in first_reply:
            waiting[customer[s]].append(s)
    surplus = 0
    for to, ts in by_to.items():
        inb, j = waiting.get(to, []), 0
        for t in sorted(ts):
            if j < len(inb) and first_due[inb[j]] <= t + 0.001:
                first_reply[inb[j]] = t
                j += 1
            else:
                surplus += 1
    e2e, lost = [], 0
    for s in acked:
        t = first_reply.get(s)
        if t is None or t - first_due[s] > a.timeout:
            lost += 1
        else:
            e2e.append(t - first_due[s])

    return {
        "mode": f"concurrency {a.concurrency}" if a.concurrency else f"rate {a.rate:g}/s",
        "messages": n_msg,
        "customers": a.customers,
        "redelivered": len(dup_seqs),
        "deliveries": n,
        "written": written,
        "offered_rate": round((len(firsts) - 1) / send_span, 1) if send_span > 0 else None,
        "send_lag_p50_ms": pct(lags, 50),
        "send_lag_p99_ms": pct(lags, 99),
        "acked": len(acked),
        "non_200": dict(non_200),
        "ack_p50_ms": pct(acks, 50),
        "ack_p90_ms": pct(acks, 90),
        "ack_p99_ms": pct(acks, 99),
        "ack_max_ms": pct(acks, 100),
        "replied": len(e2e),
        "e2e_p50_ms": pct(e2e, 50),
        "e2e_p90_ms": pct(e2e, 90),
        "e2e_p99_ms": pct(e2e, 99),
        "e2e_max_ms": pct(e2e, 100),
        "lost": lost,
        "duplicated": duplicated + surplus,
        "unmatched_sends": unmatched,
        "stale_sends": stale,
        "graph": {k: gstats.get(k) for k in ("requests", "ok", "throttled_429", "failed_500", "mark_read")},
        "timeout_s": a.timeout,
        "cpu_s": round(sum(os.times()[:2]), 2),  # the generator's own CPU (user + system) so far
        "load_start": round(run_start, 3),
        "load_end": round(max(first_due.values(), default=0.0), 3),
    }


def table(r: dict) -> str:
    rows = [
        ("mode", r["mode"]),
        ("messages / customers", f"{r['messages']} / {r['customers']}"),
        ("deliveries (redelivered)", f"{r['deliveries']} ({r['redelivered']})"),
        ("offered rate, messages/s", r["offered_rate"]),
        ("generator lag ms p50 p99", f"{r['send_lag_p50_ms']}  {r['send_lag_p99_ms']}"),
        ("acked 200 / other answers", f"{r['acked']} / {r['non_200'] or 0}"),
        (
            "ack ms p50 p90 p99 max",
            f"{r['ack_p50_ms']}  {r['ack_p90_ms']}  {r['ack_p99_ms']}  {r['ack_max_ms']}",
        ),
        (
            "e2e ms p50 p90 p99 max",
            f"{r['e2e_p50_ms']}  {r['e2e_p90_ms']}  {r['e2e_p99_ms']}  {r['e2e_max_ms']}",
        ),
        (f"lost (no reply in {r['timeout_s']:g} s)", r["lost"]),
        ("duplicated", r["duplicated"]),
        ("unmatched / stale sends", f"{r['unmatched_sends']} / {r['stale_sends']}"),
        ("fake Graph API", r["graph"]),
    ]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--url", required=True, help="the bot's webhook URL on 127.0.0.1, e.g. http://127.0.0.1:8080/webhook"
    )
    ap.add_argument("--graph", required=True, help="the fake Graph API's root, e.g. http://127.0.0.1:9999")
    ap.add_argument("--app-secret", default="bench-secret", help="signs the bodies (default bench-secret)")
    ap.add_argument("--customers", type=int, default=1000, help="distinct wa_ids 1555000xxxx (default 1000)")
    ap.add_argument(
        "--messages", type=int, default=0, help="inbound messages in all (default: rate x seconds)"
    )
    ap.add_argument("--rate", type=float, default=200, help="open loop: messages per second (default 200)")
    ap.add_argument(
        "--seconds", type=float, default=10, help="with --rate and no --messages: run length (default 10)"
    )
    ap.add_argument(
        "--concurrency", type=int, default=0, help="closed loop with this many in flight (overrides --rate)"
    )
    ap.add_argument(
        "--duplicates", type=float, default=0.0, help="fraction of messages delivered a second time"
    )
    ap.add_argument("--body", default="hello", help="text of each message; ' #<seq>' is appended")
    ap.add_argument(
        "--timeout",
        "--drain",
        dest="timeout",
        type=float,
        default=5.0,
        help="seconds an inbound may wait for its reply before it counts as lost (default 5)",
    )
    ap.add_argument("--connections", type=int, default=256, help="most keep-alive connections (default 256)")
    ap.add_argument(
        "--max-seconds", type=float, default=120, help="closed loop: stop sending after this long"
    )
    ap.add_argument("--phone-number-id", default="100000000000001")
    ap.add_argument("--display-phone", default="15550001111")
    ap.add_argument("--waba-id", default="200000000000001")
    ap.add_argument(
        "--base-phone", type=int, default=15550000000, help="first customer number (default 15550000000)"
    )
    ap.add_argument(
        "--bsuid",
        action="store_true",
        help="BSUID-only customers: each writes as a business-scoped user id alone (from_user_id, "
        'contacts[].user_id; no phone), and is answered at it ("recipient")',
    )
    ap.add_argument(
        "--with-bsuid",
        action="store_true",
        help="also put a business-scoped user id beside the phone in each notification, as newer payloads "
        "do (pywa 4.5 requires it)",
    )
    ap.add_argument("--seed", type=int, default=1, help="seed for choosing the redelivered messages")
    ap.add_argument("--no-reset", action="store_true", help="do not clear the fake Graph API's record first")
    ap.add_argument(
        "--settle",
        type=float,
        default=10.0,
        help="first wait up to this long for the fake Graph API to go quiet (default 10)",
    )
    ap.add_argument("--json-only", action="store_true", help="print only the JSON line")
    a = ap.parse_args()
    if not a.messages:
        a.messages = int(a.rate * a.seconds) if not a.concurrency else 5000
    if a.messages > 500_000 or a.customers < 1 or not 0 <= a.duplicates <= 1:
        sys.exit("--messages at most 500000, --customers at least 1, --duplicates within 0..1")
    if urlsplit(a.graph).hostname not in ("127.0.0.1", "localhost"):
        sys.exit("--graph must be on 127.0.0.1")
    res = asyncio.run(run(a))
    if not a.json_only:
        print(table(res))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
