"""The handoff guards with a controllable clock: unclaimed chats get an apology (once), idle chats go
back to the bot with a note to their technician."""

from __future__ import annotations

from bot.app import PIPELINE, SETTINGS
from bot.db.models import (
    AuditEvent,
    Conversation,
    ConversationMode,
    Handoff,
    HandoffNote,
    HandoffStatus,
    Message,
)
from bot.handoff.guards import HandoffGuards
from bot.handoff.tokens import create_technician
from tests.helpers import BotFactory, Clock, bearer, eventually, handled, outbound_texts
from tests.test_handoff_api import PHONE, waiting_chat


async def test_a_waiting_chat_nobody_claims_gets_one_apology(bot_client: BotFactory) -> None:
    client = await bot_client()
    await waiting_chat(client)
    clock = Clock()
    guards = HandoffGuards(client.app[SETTINGS], client.app[PIPELINE].content, clock=clock)
    assert await guards.run_once() == (0, 0)
    clock.advance(minutes=11)
    assert await guards.run_once() == (1, 0)
    assert await guards.run_once() == (0, 0)  # once per handoff
    texts = await outbound_texts(PHONE)
    assert "Leave us a message" in (texts[-1] or "")
    assert await AuditEvent.filter(kind="guard_unclaimed").count() == 1
    assert (await Handoff.get(conversation__customer__wa_id=PHONE)).status == HandoffStatus.WAITING


async def test_a_claimed_chat_idle_too_long_goes_back_to_the_bot(bot_client: BotFactory) -> None:
    client = await bot_client()
    await waiting_chat(client)
    technician, token = await create_technician("Ana")
    assert (await client.post(f"/api/tech/chats/{PHONE}/claim", headers=bearer(token))).status == 200
    clock = Clock()
    guards = HandoffGuards(client.app[SETTINGS], client.app[PIPELINE].content, clock=clock)
    clock.advance(minutes=29)
    assert await guards.run_once() == (0, 0)
    clock.advance(minutes=2)
    assert await guards.run_once() == (0, 1)
    handoff = await Handoff.get(conversation__customer__wa_id=PHONE)
    assert handoff.status == HandoffStatus.RELEASED
    assert (await Conversation.get(customer__wa_id=PHONE)).mode == ConversationMode.BOT
    note = await HandoffNote.get(handoff_id=handoff.id)
    assert note.technician_id == technician.id and "back to the bot" in note.text
    assert await AuditEvent.filter(kind="guard_idle").count() == 1

    async def no_queued() -> bool:
        return not await Message.filter(delivery_status="queued").exists()

    await eventually(no_queued)


async def test_too_many_misunderstandings_hand_the_chat_to_a_person(bot_client: BotFactory) -> None:
    from tests.test_handoff_api import say

    client = await bot_client("handoff:\n  after_misses: 3\n")
    await say(client, "hi", "wamid.m.0")
    for n in range(1, 4):
        await say(client, f"gibberish {n}", f"wamid.m.{n}")
    await eventually(lambda: handled("wamid.m.3"))
    handoff = await Handoff.get(conversation__customer__wa_id=PHONE)
    assert (handoff.status, handoff.reason) == (HandoffStatus.WAITING, "misunderstood")
    assert (await Conversation.get(customer__wa_id=PHONE)).mode == ConversationMode.HUMAN
    # one reply to the last misunderstanding, the wait: not the help state's hint before it
    replies = await Message.filter(reply_to="wamid.m.3", message_direction="outbound")
    assert len(replies) == 1 and "technician will answer you" in (replies[0].message_content or "")
