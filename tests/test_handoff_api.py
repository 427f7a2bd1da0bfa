"""The technician API end to end: the real server, a fake Graph API, customers writing over webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import re
import sqlite3
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.db.models import (
    AuditEvent,
    Conversation,
    ConversationMode,
    Handoff,
    HandoffStatus,
    Message,
    TechnicianRole,
)
from bot.handoff.tokens import create_technician
from tests.helpers import (
    ADMIN_TOKEN,
    BotFactory,
    bearer,
    eventually,
    handled,
    message_with,
    migrated_sqlite,
    outbound_texts,
    post_webhook,
    text_notification,
    write_settings,
)
from tests.test_commands import run_bot

PHONE = "15550007777"
Client = TestClient[web.Request, web.Application]


async def say(client: Client, text: str, wamid: str, phone: str = PHONE) -> None:
    response = await post_webhook(client, text_notification(phone, wamid, text))
    assert response.status == 200


async def waiting_chat(client: Client, phone: str = PHONE) -> None:
    """A customer asks for a person: the chat waits in the queue."""
    await say(client, "hi", f"wamid.{phone}.1", phone)
    await say(client, "I want a human please", f"wamid.{phone}.2", phone)
    await eventually(lambda: handled(f"wamid.{phone}.2"))


async def test_no_token_a_bad_token_or_an_inactive_one_gets_401(bot_client: BotFactory) -> None:
    client = await bot_client()
    gone, gone_token = await create_technician("Gone")
    gone.active = False
    await gone.save()
    for headers in ({}, bearer("rt_nope"), bearer("nope"), bearer(gone_token)):
        for method, path in (("GET", "/api/tech/queue"), ("POST", f"/api/tech/chats/{PHONE}/claim")):
            response = await client.request(method, path, headers=headers)
            assert response.status == 401, (method, path, headers)
    response = await client.get("/api/tech/ws")
    assert response.status == 401
    _, token = await create_technician("Ana")
    response = await client.get("/api/tech/me", headers=bearer(token))
    assert (await response.json())["name"] == "Ana"


async def test_handled_messages_read_as_handled(bot_client: BotFactory) -> None:
    """An inbound message the bot has taken is `handled`, never `delivered` (Meta's word for what we
    send), in the message log's API and in the panel."""
    client = await bot_client()
    await waiting_chat(client)
    _, boss = await create_technician("Boss", TechnicianRole.ADMIN)

    log = await client.get(
        f"/api/conversations/{PHONE}/messages", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    messages = (await log.json())["messages"]
    assert [m["delivery_status"] for m in messages if m["message_direction"] == "inbound"] == ["handled"] * 2
    history = await (await client.get(f"/api/tech/chats/{PHONE}/messages", headers=bearer(boss))).json()
    assert [m["status"] for m in history["messages"] if m["direction"] == "inbound"] == ["handled"] * 2
    assert [m["status"] for m in history["messages"] if m["direction"] == "outbound"] != []


async def test_the_engine_is_silent_while_a_person_has_the_chat(bot_client: BotFactory) -> None:
    client = await bot_client()
    await waiting_chat(client)
    conversation = await Conversation.get(customer__wa_id=PHONE)
    assert conversation.mode == ConversationMode.HUMAN
    texts = await outbound_texts(PHONE)
    assert "technician will answer" in (texts[-1] or "") or "technicians are away" in (texts[-1] or "")
    _, token = await create_technician("Ana")
    response = await client.get("/api/tech/queue", headers=bearer(token))
    [queued] = await response.json()
    assert queued["phone"] == PHONE and queued["reason"] == "asked" and queued["waiting_seconds"] >= 0
    async with client.ws_connect(f"/api/tech/ws?token={token}") as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "hello"
        before = len(texts)
        await say(client, "menu", f"wamid.{PHONE}.3")
        await eventually(lambda: handled(f"wamid.{PHONE}.3"))
        event = await ws.receive_json(timeout=5)
        while event["type"] == "status":  # the wait text's delivery, when the outbox sends it late
            event = await ws.receive_json(timeout=5)
        assert event["type"] == "message" and event["message"]["content"] == "menu"
    assert len(await outbound_texts(PHONE)) == before  # logged and shown, never answered
    assert await AuditEvent.filter(kind="handoff").count() == 1


async def test_two_technicians_racing_to_claim_one_wins(bot_client: BotFactory) -> None:
    client = await bot_client()
    await waiting_chat(client)
    _, ana = await create_technician("Ana")
    _, ben = await create_technician("Ben")
    first, second = await asyncio.gather(
        client.post(f"/api/tech/chats/{PHONE}/claim", headers=bearer(ana)),
        client.post(f"/api/tech/chats/{PHONE}/claim", headers=bearer(ben)),
    )
    assert sorted([first.status, second.status]) == [200, 409]
    handoff = await Handoff.get(conversation__customer__wa_id=PHONE)
    assert handoff.status == HandoffStatus.CLAIMED
    assert await AuditEvent.filter(kind="claim").count() == 1
    response = await client.get("/api/tech/queue", headers=bearer(ana))
    assert await response.json() == []


async def test_another_technicians_chat_is_closed_to_a_technician_but_not_to_an_admin(
    bot_client: BotFactory,
) -> None:
    client = await bot_client()
    await waiting_chat(client)
    ana_row, ana = await create_technician("Ana")
    _, ben = await create_technician("Ben")
    _, boss = await create_technician("Boss", TechnicianRole.ADMIN)
    assert (await client.post(f"/api/tech/chats/{PHONE}/claim", headers=bearer(ana))).status == 200
    for method, path, body in (
        ("GET", f"/api/tech/chats/{PHONE}/messages", None),
        ("POST", f"/api/tech/chats/{PHONE}/messages", {"text": "hello"}),
        ("POST", f"/api/tech/chats/{PHONE}/release", {}),
    ):
        response = await client.request(method, path, json=body, headers=bearer(ben))
        assert response.status == 403, (method, path)
    response = await client.get(f"/api/tech/chats/{PHONE}/messages", headers=bearer(boss))
    assert response.status == 200
    assert [c["phone"] for c in await (await client.get("/api/tech/chats", headers=bearer(boss))).json()] == [
        PHONE
    ]
    assert await (await client.get("/api/tech/chats", headers=bearer(ben))).json() == []
    # the owner writes: an outbox row carrying their id, sent by the outbox; a note is never sent
    response = await client.post(
        f"/api/tech/chats/{PHONE}/messages", json={"text": "Hi, Ana here"}, headers=bearer(ana)
    )
    assert response.status == 200, await response.text()
    response = await client.post(
        f"/api/tech/chats/{PHONE}/notes", json={"text": "screen only"}, headers=bearer(ana)
    )
    assert response.status == 200
    row = await message_with("Hi, Ana here")
    assert row.technician_id == ana_row.id

    async def sent() -> bool:
        return (await Message.get(id=row.id)).delivery_status != "queued"

    await eventually(sent)
    history: dict[str, Any] = await (
        await client.get(f"/api/tech/chats/{PHONE}/messages", headers=bearer(ana))
    ).json()
    kinds = [(item["kind"], item["content"]) for item in history["messages"]]
    assert ("note", "screen only") in kinds and ("message", "Hi, Ana here") in kinds
    assert "screen only" not in await outbound_texts(PHONE)


async def test_transfer_then_release_gives_the_chat_back_to_the_bot(bot_client: BotFactory) -> None:
    client = await bot_client()
    await waiting_chat(client)
    _, ana = await create_technician("Ana")
    ben_row, ben = await create_technician("Ben")
    assert (await client.post(f"/api/tech/chats/{PHONE}/claim", headers=bearer(ana))).status == 200
    response = await client.post(
        f"/api/tech/chats/{PHONE}/transfer", json={"technician_id": ben_row.id}, headers=bearer(ana)
    )
    assert response.status == 200, await response.text()
    assert (await Handoff.get(conversation__customer__wa_id=PHONE)).technician_id == ben_row.id
    response = await client.post(f"/api/tech/chats/{PHONE}/messages", json={"text": "x"}, headers=bearer(ana))
    assert response.status == 403
    response = await client.post(
        f"/api/tech/chats/{PHONE}/release", json={"state": "nowhere"}, headers=bearer(ben)
    )
    assert response.status == 422
    response = await client.post(
        f"/api/tech/chats/{PHONE}/release", json={"state": "menu"}, headers=bearer(ben)
    )
    assert response.status == 200, await response.text()
    conversation = await Conversation.get(customer__wa_id=PHONE)
    assert (conversation.mode, conversation.state) == (ConversationMode.BOT, "menu")
    kinds = await AuditEvent.all().order_by("id").values_list("kind", flat=True)
    assert list(kinds) == ["handoff", "claim", "transfer", "release"]
    before = len(await outbound_texts(PHONE))
    await say(client, "hello", f"wamid.{PHONE}.9")
    await eventually(lambda: handled(f"wamid.{PHONE}.9"))
    texts = await outbound_texts(PHONE)
    assert len(texts) > before and "What can we do for you?" in (texts[-1] or "")  # the bot answers again


async def test_free_text_outside_the_24_hour_window_is_refused_with_the_templates(
    bot_client: BotFactory,
) -> None:
    from datetime import UTC, datetime, timedelta

    from bot.db.models import Customer

    client = await bot_client()
    await waiting_chat(client)
    _, ana = await create_technician("Ana")
    assert (await client.post(f"/api/tech/chats/{PHONE}/claim", headers=bearer(ana))).status == 200
    await Customer.filter(wa_id=PHONE).update(last_inbound_at=datetime.now(UTC) - timedelta(hours=25))
    response = await client.post(
        f"/api/tech/chats/{PHONE}/messages", json={"text": "hi"}, headers=bearer(ana)
    )
    assert response.status == 409
    body = await response.json()
    assert body["error"] == "outside the 24-hour window: only a template can be sent"
    assert isinstance(body["templates"], list)  # the approved ones the panel can offer instead


async def test_a_template_to_a_customer_who_opted_out_is_refused_with_the_outboxs_reason(
    bot_client: BotFactory,
) -> None:
    from datetime import UTC, datetime, timedelta

    from bot.db.models import ConsentAction, ConsentScope, ConsentSource, Customer, Direction
    from bot.privacy.consent import record

    client = await bot_client()
    await waiting_chat(client)
    _, ana = await create_technician("Ana")
    assert (await client.post(f"/api/tech/chats/{PHONE}/claim", headers=bearer(ana))).status == 200
    await Customer.filter(wa_id=PHONE).update(last_inbound_at=datetime.now(UTC) - timedelta(hours=25))
    customer = await Customer.get(wa_id=PHONE)
    now = datetime.now(UTC)
    await record(customer, ConsentScope.ALL, ConsentAction.OPT_OUT, ConsentSource.KEYWORD, now, "STOP")
    await record(customer, ConsentScope.MARKETING, ConsentAction.OPT_OUT, ConsentSource.USER_PREFERENCES, now)
    url, template = f"/api/tech/chats/{PHONE}/messages", {"template": "follow_up", "params": ["Alex"]}
    outbound = Message.filter(address=PHONE, message_direction=Direction.OUTBOUND)
    before = await outbound.count()

    response = await client.post(url, json=template, headers=bearer(ana))
    assert response.status == 409
    body = await response.json()
    assert "opted out (STOP)" in body["error"] and body["error_code"] == -5
    assert await outbound.count() == before  # nothing queued to fail later

    # back in (START): a utility template goes, whatever their marketing choice
    await record(customer, ConsentScope.ALL, ConsentAction.OPT_IN, ConsentSource.KEYWORD, now, "START")
    assert (await client.post(url, json=template, headers=bearer(ana))).status == 200
    assert await outbound.count() == before + 1


async def test_media_is_uploaded_then_sent_by_id_and_bad_types_are_refused(bot_client: BotFactory) -> None:
    from aiohttp import FormData

    client = await bot_client()
    await waiting_chat(client)
    _, ana = await create_technician("Ana")
    assert (await client.post(f"/api/tech/chats/{PHONE}/claim", headers=bearer(ana))).status == 200
    form = FormData()
    form.add_field("file", b"%PDF-1.4 quote", filename="quote.pdf", content_type="application/pdf")
    response = await client.post(f"/api/tech/chats/{PHONE}/media", data=form, headers=bearer(ana))
    assert response.status == 200, await response.text()
    row = await Message.filter(address=PHONE, message_type="document").first()
    assert row is not None and row.payload and row.payload["media_id"]
    form = FormData()
    form.add_field("file", b"MZ...", filename="virus.exe", content_type="application/x-msdownload")
    response = await client.post(f"/api/tech/chats/{PHONE}/media", data=form, headers=bearer(ana))
    assert response.status == 422


def test_technicians_add_prints_only_the_token_and_stores_its_hash(tmp_path: Path) -> None:
    database = tmp_path / "bot.db"
    env = {"BOT_SETTINGS": str(write_settings(tmp_path)), "DATABASE_URL": migrated_sqlite(database)}
    result = run_bot("technicians", "add", "Tess", "--role", "admin", "--phone", "15550001234", env=env)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"rt_[A-Za-z0-9_-]{43}\n", result.stdout), result.stdout
    token = result.stdout.strip()
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT name, role, phone, token_hash FROM technician").fetchall()
        dump = "\n".join(connection.iterdump())
    assert rows == [("Tess", "admin", "15550001234", hashlib.sha256(token.encode()).hexdigest())]
    assert token.removeprefix("rt_") not in dump
    again = run_bot("technicians", "add", "Tess", env=env)
    assert (again.returncode, again.stdout) == (2, "")
    assert "exists already" in again.stderr


POISON_FLOW = """
flow: main
start: menu
states:
  menu:
    say: "Hi!"
    on:
      keywords:
        when: [when]
  when:
    call: stamp
    say: "Noted."
    goto: menu
"""


def poison_flows(client: Client, directory: Path) -> None:
    """The running server's flows become one whose `when` sets a variable that is no JSON, so its batch
    cannot be written: the inbox parks that message after its attempts."""
    from datetime import UTC, datetime

    from bot.app import ENGINE, SETTINGS
    from bot.engine import ActionContext, ActionResult, load_flows

    engine = client.app[ENGINE]

    async def stamp(context: ActionContext) -> ActionResult:
        return ActionResult(variables={"when": datetime.now(UTC)})

    engine.actions.add("stamp", stamp)
    directory.mkdir()
    (directory / "main.yaml").write_text(POISON_FLOW)
    engine.replace_flows(load_flows(directory, engine.actions, client.app[SETTINGS].templates_dir))


async def test_a_message_the_bot_gave_up_on_is_in_the_log_and_listed_for_admins(
    bot_client: BotFactory, tmp_path: Path
) -> None:

    client = await bot_client()
    poison_flows(client, tmp_path / "poison")
    _, boss = await create_technician("Boss", TechnicianRole.ADMIN)
    _, ana = await create_technician("Ana")
    async with client.ws_connect(f"/api/tech/ws?token={boss}") as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        await say(client, "when", f"wamid.{PHONE}.1")
        await say(client, "hi", "wamid.other.1", "15550004444")
        event = await ws.receive_json(timeout=15)
        while event["type"] != "failed":  # parked after its attempts: the panel hears of it
            event = await ws.receive_json(timeout=15)
    assert (event["type"], event["phone"], event["message"]["wamid"]) == ("failed", PHONE, f"wamid.{PHONE}.1")
    assert event["message"]["status"] == "failed" and "not JSON serializable" in event["message"]["error"]
    await eventually(lambda: handled("wamid.other.1"))  # the other customer was never held up

    log = await client.get(
        f"/api/conversations/{PHONE}/messages", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    [inbound] = [m for m in (await log.json())["messages"] if m["message_direction"] == "inbound"]
    assert (inbound["delivery_status"], inbound["attempts"]) == ("failed", 3)
    assert "not JSON serializable" in inbound["error_title"]
    assert "something went wrong" in ((await outbound_texts(PHONE))[-1] or "")  # one apology

    response = await client.get("/api/tech/failed", headers=bearer(boss))
    assert response.status == 200
    [item] = await response.json()
    assert (item["phone"], item["name"], item["wamid"], item["status"], item["attempts"]) == (
        PHONE,
        "Alex Example",
        f"wamid.{PHONE}.1",
        "failed",
        3,
    )
    assert (await client.get("/api/tech/failed", headers=bearer(ana))).status == 403
    history = await (await client.get(f"/api/tech/chats/{PHONE}/messages", headers=bearer(boss))).json()
    [shown] = [m for m in history["messages"] if m["wamid"] == f"wamid.{PHONE}.1"]
    assert shown["status"] == "failed" and "not JSON serializable" in shown["error"]
