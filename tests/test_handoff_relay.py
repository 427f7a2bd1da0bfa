"""Handoff relayed to the technician's own WhatsApp (handoff.relay_to_whatsapp): the real server, a fake
Graph API, customers and technicians both writing over webhooks."""

from __future__ import annotations

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
)
from bot.handoff.tokens import create_technician
from tests.helpers import BotFactory, eventually, graph_sends, handled, post_webhook, text_notification

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
