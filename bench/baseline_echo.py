"""The floor reference bot: the least a Python/aiohttp WhatsApp Cloud API bot can do per message.

POST /webhook  verifies X-Hub-Signature-256 over the raw body (401 missing, 403 wrong), parses the JSON
               (400 if it is not a notification), answers 200, and for each inbound text sends one reply
               "Echo: <text>" to the (fake) Graph API in a background task over one shared ClientSession.
GET  /webhook  the hub.challenge verification handshake.

--db none      (default) nothing stored: the practical ceiling for a Python/aiohttp bot on a machine.
--db sqlite    a naive durable variant: every inbound message is written as one row through Tortoise ORM
               (aiosqlite) before the 200, and every outbound message as one row after the Graph API
               answers; one transaction per row. The inbound row's wamid is unique, so a redelivered
               message is acknowledged and not answered again.
--db sqlite3   the same two rows per message through the standard sqlite3 module, synchronously on the
               event loop (WAL, synchronous=NORMAL), for comparison with the ORM.
--dedupe       with --db none: skip messages whose wamid was seen (in memory, last 200,000).
No retries, no state machine, no outbox: it marks what the hardware allows, not what a product must do.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import os
import sqlite3
from collections import OrderedDict

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

SESSION = web.AppKey("session", ClientSession)

try:  # the ORM is needed only for --db sqlite
    from tortoise import Tortoise, fields
    from tortoise.exceptions import IntegrityError
    from tortoise.models import Model

    class Message(Model):
        id = fields.IntField(primary_key=True)
        whatsapp_message_id = fields.CharField(max_length=128, unique=True, null=True)
        customer_phone = fields.CharField(max_length=32, db_index=True)
        message_direction = fields.CharField(max_length=8)
        message_type = fields.CharField(max_length=16, default="text")
        message_content = fields.TextField(null=True)
        delivery_status = fields.CharField(max_length=16, default="received")
        created_at = fields.DatetimeField(auto_now_add=True)

        class Meta:
            table = "message"
except ImportError:  # pragma: no cover
    Tortoise = None  # type: ignore[assignment]


def build_app(
    secret: str,
    graph: str,
    token: str,
    phone_id: str,
    db: str = "none",
    db_path: str = "",
    dedupe: bool = False,
    verify_token: str = "bench-verify",
) -> web.Application:
    url = f"{graph.rstrip('/')}/{phone_id}/messages"
    headers = {"Authorization": f"Bearer {token}"}
    key = secret.encode()
    tasks: set[asyncio.Task] = set()
    seen: OrderedDict[str, None] = OrderedDict()
    stats = {"inbound": 0, "duplicates": 0, "replied": 0, "reply_failed": 0}
    con: sqlite3.Connection | None = None

    async def store_in(m: dict, text: str) -> bool:
        """Store the inbound row; False if this wamid was stored before (a redelivery)."""
        if db == "sqlite":
            try:
                await Message.create(
                    whatsapp_message_id=m["id"],
                    customer_phone=m.get("from") or m["from_user_id"],
                    message_direction="inbound",
                    message_content=text,
                )
            except IntegrityError:
                return False
        elif db == "sqlite3":
            try:
                con.execute(
                    "INSERT INTO message (whatsapp_message_id, customer_phone, message_direction, "
                    "message_content) VALUES (?,?,?,?)",
                    (m["id"], m.get("from") or m["from_user_id"], "inbound", text),
                )
            except sqlite3.IntegrityError:
                return False
        elif dedupe:
            if m["id"] in seen:
                return False
            seen[m["id"]] = None
            if len(seen) > 200_000:
                seen.popitem(last=False)
        return True

    async def reply(session: ClientSession, to: str, text: str) -> None:
        payload = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            **({"to": to} if to.isdigit() else {"recipient": to}),  # a BSUID goes as "recipient"
            "type": "text",
            "text": {"preview_url": False, "body": text},
        }
        try:
            async with session.post(url, json=payload, headers=headers) as r:
                data = await r.json(content_type=None)
                ok = r.status == 200
        except Exception:
            stats["reply_failed"] += 1
            return
        if not ok:
            stats["reply_failed"] += 1
            return
        stats["replied"] += 1
        wamid = data["messages"][0]["id"]
        if db == "sqlite":
            await Message.create(
                whatsapp_message_id=wamid,
                customer_phone=to,
                message_direction="outbound",
                message_content=text,
                delivery_status="sent",
            )
        elif db == "sqlite3":
            con.execute(
                "INSERT INTO message (whatsapp_message_id, customer_phone, message_direction, "
                "message_content, delivery_status) VALUES (?,?,?,?,?)",
                (wamid, to, "outbound", text, "sent"),
            )

    async def webhook(request: web.Request) -> web.Response:
        raw = await request.read()
        header = request.headers.get("X-Hub-Signature-256")
        if not header:
            return web.Response(status=401, text="missing signature")
        expected = "sha256=" + hmac.new(key, raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, header):
            return web.Response(status=403, text="bad signature")
        try:
            note = json.loads(raw)
            values = [c["value"] for e in note["entry"] for c in e["changes"]]
        except (ValueError, KeyError, TypeError):
            return web.Response(status=400, text="not a notification")
        session = request.app[SESSION]
        for value in values:
            for m in value.get("messages") or ():
                if m.get("type") != "text":
                    continue
                stats["inbound"] += 1
                text = m["text"]["body"]
                if not await store_in(m, text):
                    stats["duplicates"] += 1
                    continue
                sender = m.get("from") or m["from_user_id"]
                t = asyncio.create_task(reply(session, sender, f"Echo: {text}"))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
        return web.Response(text="OK")

    async def verify(request: web.Request) -> web.Response:
        q = request.query
        if q.get("hub.mode") == "subscribe" and q.get("hub.verify_token") == verify_token:
            return web.Response(text=q.get("hub.challenge", ""))
        return web.Response(status=403, text="Forbidden")

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response({**stats, "in_flight": len(tasks)})

    async def lifetime(app: web.Application):
        nonlocal con
        if db == "sqlite":
            await Tortoise.init(db_url=f"sqlite://{db_path}", modules={"models": [__name__]})
            await Tortoise.generate_schemas()
        elif db == "sqlite3":
            con = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute(
                "CREATE TABLE IF NOT EXISTS message (id INTEGER PRIMARY KEY, whatsapp_message_id TEXT "
                "UNIQUE, customer_phone TEXT, message_direction TEXT, message_type TEXT DEFAULT 'text', "
                "message_content TEXT, delivery_status TEXT DEFAULT 'received', "
                "created_at TEXT DEFAULT CURRENT_TIMESTAMP)"
            )
        app[SESSION] = ClientSession(connector=TCPConnector(limit=100), timeout=ClientTimeout(total=30))
        yield
        if tasks:
            await asyncio.wait(list(tasks), timeout=5)
        await app[SESSION].close()
        if db == "sqlite":
            await Tortoise.close_connections()
        elif con is not None:
            con.close()

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.cleanup_ctx.append(lifetime)
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/webhook", verify)
    app.router.add_get("/stats", get_stats)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8081, help="port on 127.0.0.1 (default 8081)")
    ap.add_argument(
        "--graph",
        default="http://127.0.0.1:9999/v21.0",
        help="Graph API base with version (default http://127.0.0.1:9999/v21.0)",
    )
    ap.add_argument("--app-secret", default="bench-secret")
    ap.add_argument("--token", default="bench-token", help="Bearer token for the Graph API")
    ap.add_argument("--verify-token", default="bench-verify")
    ap.add_argument("--phone-number-id", default="100000000000001")
    ap.add_argument(
        "--db",
        choices=("none", "sqlite", "sqlite3"),
        default="none",
        help="none (default), sqlite (Tortoise ORM + aiosqlite) or sqlite3 (stdlib, synchronous)",
    )
    ap.add_argument("--db-path", default="", help="SQLite file (default: a new file in the temp directory)")
    ap.add_argument(
        "--dedupe", action="store_true", help="with --db none: drop redelivered wamids (in memory)"
    )
    a = ap.parse_args()
    if a.db != "none" and not a.db_path:
        import tempfile

        a.db_path = os.path.join(tempfile.mkdtemp(prefix="bench-"), "bot.db")
    if a.db == "sqlite" and Tortoise is None:
        ap.error("--db sqlite needs tortoise-orm and aiosqlite installed")
    logging.basicConfig(level=logging.WARNING)
    app = build_app(
        a.app_secret, a.graph, a.token, a.phone_number_id, a.db, a.db_path, a.dedupe, a.verify_token
    )
    web.run_app(app, host="127.0.0.1", port=a.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
