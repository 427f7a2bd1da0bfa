"""Handoff relayed to the technician's own WhatsApp (handoff.relay_to_whatsapp): the real server, a fake
Graph API, customers and technicians both writing over webhooks."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.db.models import (
    AuditEvent,
    Conversation,
    ConversationMode,
    Customer,
    Direction,
    Handoff,
    HandoffStatus,
    Message,
    Order,
    RelayPointer,
)
from bot.handoff.tokens import create_technician
from tests.helpers import (
    BotFactory,
    eventually,
    fake_graph_json,
    graph_sends,
    handled,
    payload,
    post_webhook,
    receive_file,
    text_notification,
)

PHONE = "15550007777"
ANA = "15550002001"
BEN = "15550002002"
RELAY = "handoff:\n  relay_to_whatsapp: true\n"
Client = TestClient[web.Request, web.Application]


async def say(client: Client, text: str, wamid: str, phone: str = PHONE, name: str = "Alex Example") -> None:
    response = await post_webhook(client, text_notification(phone, wamid, text, name))
    assert response.status == 200
    await eventually(lambda: handled(wamid))


async def to(phone: str) -> list[Message]:
    return await Message.filter(address=phone, message_direction=Direction.OUTBOUND).order_by("id")


async def sent_to(fake_graph: TestServer, phone: str) -> list[str]:
    """The message types the fake Graph API accepted for `phone`, in order."""
    sends: list[list[Any]] = await graph_sends(fake_graph)
    return [send[2] for send in sends if str(send[1]).lstrip("+") == phone]


async def test_a_technician_answers_a_handed_off_chat_from_their_own_whatsapp(
    bot_client: BotFactory, fake_graph: TestServer
) -> None:
    client = await bot_client(RELAY)
    ana, _ = await create_technician("Ana", phone="+1 555-000-2001")
    await create_technician("Ben", phone=BEN)
    await create_technician("Desk only")  # no phone: never relayed to
    await Order.create(
        order_number="10452",
        customer_phone=PHONE,
        customer_name="Alex",
        device_model="iPhone 13",
        problem="screen",
        status="in_progress",
    )

    # the customer hands off: both technicians with a phone hear of it, as a template (their windows
    # are closed: neither has written to the business number yet)
    await say(client, "hi", "wamid.c.1")
    await say(client, "I want a human please", "wamid.c.2")
    assert (await Conversation.get(customer__wa_id=PHONE)).mode == ConversationMode.HUMAN
    for phone in (ANA, BEN):
        [notice] = await to(phone)
        assert notice.message_type == "template"
        assert notice.payload and notice.payload["name"] == "technician_relay"
        assert notice.payload["body_params"][:2] == ["Alex Example", f"+{PHONE} · order 10452"]

    async def templates_sent() -> bool:
        return [await sent_to(fake_graph, phone) for phone in (ANA, BEN)] == [["template"], ["template"]]

    await eventually(templates_sent)

    # Ana claims from her phone: she owns the chat, audited with her id; her number has no conversation
    # (its customer row holds only her identity and her 24-hour window)
    await say(client, "Claim", "wamid.a.1", ANA, "Ana")
    handoff = await Handoff.get(conversation__customer__wa_id=PHONE)
    assert (handoff.status, handoff.technician_id) == (HandoffStatus.CLAIMED, ana.id)
    claim = await AuditEvent.get(kind="claim")
    assert claim.technician_id == ana.id
    assert "You have Alex Example" in ((await to(ANA))[-1].message_content or "")
    assert (await Customer.get(wa_id=ANA)).last_inbound_at is not None
    assert not await Conversation.exists(customer__wa_id=ANA)

    # the customer writes: relayed to Ana as free text now (she wrote a moment ago), with who and order
    await say(client, "is it ready?", "wamid.c.3")
    relayed = (await to(ANA))[-1]
    assert relayed.message_type == "text"
    assert relayed.message_content == f"[Alex Example · +{PHONE} · order 10452] is it ready?"

    async def relayed_sent() -> bool:  # her own window is open: the free text is not refused (131047)
        return "text" in await sent_to(fake_graph, ANA)

    await eventually(relayed_sent)

    # Ana replies: it reaches the customer from the business number, with her id on the row
    before = len(await to(PHONE))
    await say(client, "Yes, come by at 5", "wamid.a.2", ANA, "Ana")
    rows = await to(PHONE)
    assert len(rows) == before + 1
    assert (rows[-1].message_content, rows[-1].technician_id) == ("Yes, come by at 5", ana.id)

    async def reply_sent() -> bool:
        return (await Message.get(id=rows[-1].id)).delivery_status != "queued"

    await eventually(reply_sent)
    assert (await Message.get(id=rows[-1].id)).delivery_status != "failed"
    assert "text" in await sent_to(fake_graph, PHONE)

    # Ben's late claim is told who has the chat; his plain text goes nowhere
    await say(client, "claim", "wamid.b.1", BEN, "Ben")
    assert (await to(BEN))[-1].message_content == "Ana has this chat already."
    await say(client, "hello?", "wamid.b.2", BEN, "Ben")
    assert "You have no chat" in ((await to(BEN))[-1].message_content or "")
    assert len(await to(PHONE)) == before + 1
    assert (await Handoff.get(conversation__customer__wa_id=PHONE)).technician_id == ana.id

    # list, then release: the bot answers the customer's next message, and Ana hears nothing of it
    await say(client, "lista", "wamid.a.3", ANA, "Ana")
    listing = (await to(ANA))[-1].message_content or ""
    assert "Nobody is waiting." in listing and "1. Alex Example" in listing
    await say(client, "release", "wamid.a.4", ANA, "Ana")
    assert "Released Alex Example" in ((await to(ANA))[-1].message_content or "")
    release = await AuditEvent.get(kind="release")
    assert release.technician_id == ana.id
    assert (await Conversation.get(customer__wa_id=PHONE)).mode == ConversationMode.BOT
    told_ana = len(await to(ANA))
    before = len(await to(PHONE))
    await say(client, "hello", "wamid.c.4")
    rows = await to(PHONE)
    assert len(rows) > before and rows[-1].technician_id is None
    assert len(await to(ANA)) == told_ana


async def test_replies_outside_the_customers_window_are_refused_and_commands_explain_themselves(
    bot_client: BotFactory,
) -> None:
    from datetime import UTC, datetime, timedelta

    client = await bot_client(RELAY)
    ana, _ = await create_technician("Ana", phone=ANA)
    await say(client, "hi", "wamid.c.1")
    await say(client, "I want a human please", "wamid.c.2")
    await say(client, "help", "wamid.a.1", ANA, "Ana")
    assert "claim" in ((await to(ANA))[-1].message_content or "")
    await say(client, "claim 1", "wamid.a.2", ANA, "Ana")
    assert (await Handoff.get(conversation__customer__wa_id=PHONE)).technician_id == ana.id
    await Customer.filter(wa_id=PHONE).update(last_inbound_at=datetime.now(UTC) - timedelta(hours=25))
    before = len(await to(PHONE))
    await say(client, "are you there?", "wamid.a.3", ANA, "Ana")
    assert (await to(ANA))[-1].message_content == (
        "Outside the customer's 24-hour window: only a template can be sent — use the panel."
    )
    assert len(await to(PHONE)) == before
    await say(client, "switch 2", "wamid.a.4", ANA, "Ana")
    assert "Give the number of one of your chats (1-1)" in ((await to(ANA))[-1].message_content or "")


async def test_without_the_setting_a_technicians_phone_is_just_a_customer(bot_client: BotFactory) -> None:
    client = await bot_client()
    await create_technician("Ana", phone=ANA)
    await say(client, "claim", "wamid.a.1", ANA, "Ana")
    assert await Customer.exists(wa_id=ANA)
    assert all(row.technician_id is None for row in await to(ANA))


def technician_file(name: str, wamid: str, sender: str) -> dict[str, Any]:
    """tests/payloads/`name` (a photo, a document ...) as sent by `sender`, with its own wamid."""
    body = payload(name)
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = sender
    message = value["messages"][0]
    message.update({"from": sender, "id": wamid, "timestamp": str(int(time.time()))})
    return body


async def test_a_technicians_photo_and_document_reach_the_customer_as_copies(
    bot_client: BotFactory, fake_graph: TestServer
) -> None:
    client = await bot_client(RELAY)
    ana, _ = await create_technician("Ana", phone=ANA)
    photo, invoice = b"\xff\xd8\xff the repaired screen", b"%PDF-1.7 invoice 123"
    await receive_file(fake_graph, "300000000000001", photo, "image/jpeg")  # inbound_image.json's id
    await receive_file(fake_graph, "300000000000002", invoice, "application/pdf")  # inbound_document.json's
    await say(client, "hi", "wamid.c.1")
    await say(client, "I want a human please", "wamid.c.2")
    await say(client, "claim", "wamid.a.1", ANA, "Ana")
    before, told_ana = len(await to(PHONE)), len(await to(ANA))

    for name, wamid in (("inbound_image.json", "wamid.a.2"), ("inbound_document.json", "wamid.a.3")):
        assert (await post_webhook(client, technician_file(name, wamid, ANA))).status == 200
        await eventually(lambda wamid=wamid: handled(wamid))
    image, document = (await to(PHONE))[before:]
    assert (image.message_type, image.technician_id, image.message_content) == (
        "image",
        ana.id,
        "Damaged box",
    )
    assert image.payload is not None and image.payload["relayed_media_id"] == "300000000000001"
    assert (document.message_type, document.message_content) == ("document", "Invoice")

    async def both_sent() -> bool:
        rows = [await Message.get(id=row.id) for row in (image, document)]
        return all(row.delivery_status not in ("queued", "failed") for row in rows)

    await eventually(both_sent)
    uploads = {row[0]: row[1:] for row in await fake_graph_json(fake_graph, "/uploads")}
    bodies = await fake_graph_json(fake_graph, "/dump?bodies=1")
    sent = [body for body in bodies if str(body["to"]).lstrip("+") == PHONE]
    sent_image, sent_document = sent[-2:]
    assert sent_image["image"]["caption"] == "Damaged box"
    assert uploads[sent_image["image"]["id"]] == ["image/jpeg", "file.jpg", hashlib.sha256(photo).hexdigest()]
    assert sent_document["document"]["filename"] == "invoice-123.pdf"
    assert uploads[sent_document["document"]["id"]] == [
        "application/pdf",
        "invoice-123.pdf",
        hashlib.sha256(invoice).hexdigest(),
    ]
    assert len(await to(ANA)) == told_ana  # sent: nothing to tell Ana (no "only text" note)


async def test_what_list_and_switch_numbered_survives_a_restart(bot_client: BotFactory) -> None:
    """Kept in the database by customer: after a restart `claim 2` is still the second chat of Ana's
    last list, and her replies still go where `switch` sent them, not to her latest chat."""
    carla, dan = "15550007001", "15550007002"
    client = await bot_client(RELAY)
    ana, _ = await create_technician("Ana", phone=ANA)
    await create_technician("Ben", phone=BEN)
    for n, (phone, name) in enumerate(((PHONE, "Alex"), (carla, "Carla")), start=1):
        await say(client, "hi", f"wamid.c{n}.1", phone, name)
        await say(client, "I want a human please", f"wamid.c{n}.2", phone, name)
    await say(client, "list", "wamid.a.1", ANA, "Ana")
    listing = (await to(ANA))[-1].message_content or ""
    assert "1. Alex" in listing and "2. Carla" in listing
    await say(client, "claim 1", "wamid.b.1", BEN, "Ben")  # Alex is Ben's now: only Carla waits

    await client.close()  # the server restarts
    client = await bot_client(RELAY)
    await say(client, "claim 2", "wamid.a.2", ANA, "Ana")  # 2 of her list: Carla, not "no chat 2"
    assert "You have Carla" in ((await to(ANA))[-1].message_content or "")
    await say(client, "hi", "wamid.c3.1", dan, "Dan")
    await say(client, "I want a human please", "wamid.c3.2", dan, "Dan")
    await say(client, "claim", "wamid.a.3", ANA, "Ana")  # Dan: her latest chat
    await say(client, "switch 1", "wamid.a.4", ANA, "Ana")  # back to Carla, claimed first
    assert "Your replies now go to Carla" in ((await to(ANA))[-1].message_content or "")
    carla_id = (await Customer.get(wa_id=carla)).id
    assert (await RelayPointer.get(technician_id=ana.id)).current_customer_id == carla_id

    await client.close()  # and again
    client = await bot_client(RELAY)
    told_dan = len(await to(dan))
    await say(client, "Your screen is done", "wamid.a.5", ANA, "Ana")
    assert (await to(carla))[-1].message_content == "Your screen is done"
    assert len(await to(dan)) == told_dan
