"""A conversation through the real server: state survives restarts; statuses move its replies."""

from __future__ import annotations

import copy
import time

from bot.db.models import Conversation, Customer, DeliveryStatus, Direction, Message
from tests.helpers import BotFactory, eventually, payload, post_webhook, text_notification

PHONE = "15550007777"


async def _reply_to(wamid: str) -> Message:
    async def sent() -> bool:
        return await Message.filter(reply_to=wamid, delivery_status=DeliveryStatus.SENT).exists()

    await eventually(sent)
    return (
        await Message.filter(reply_to=wamid)
        .order_by("-id")
        .first()
        .only(  # type: ignore[union-attr]
            "id", "message_type", "message_content", "payload", "whatsapp_message_id"
        )
    )


async def test_a_restart_continues_the_conversation_where_it_was(bot_client: BotFactory) -> None:
    client = await bot_client()
    await post_webhook(client, text_notification(PHONE, "wamid.C1", "hi", name="Maya"))
    greeting = await _reply_to("wamid.C1")
    assert greeting.message_type == "interactive"
    assert greeting.message_content is not None and "Maya" in greeting.message_content
    await post_webhook(client, text_notification(PHONE, "wamid.C2", "qwerty asdf", name="Maya"))
    first_miss = await _reply_to("wamid.C2")
    assert first_miss.message_type == "text"  # a polite "sorry, I didn't get that"
    await client.close()  # the server stops: workers, database, everything in memory is gone

    client = await bot_client()
    await post_webhook(client, text_notification(PHONE, "wamid.C3", "zxcv uiop", name="Maya"))
    second_miss = await _reply_to("wamid.C3")
    # the second misunderstanding in a row, counted across the restart, offers the list of options
    assert second_miss.payload is not None and second_miss.payload["kind"] == "list"
    customer = await Customer.get(wa_id=PHONE)
    conversation = await Conversation.get(customer_id=customer.id)
    assert (conversation.flow, conversation.mode) == ("main", "bot")
    assert customer.profile_name == "Maya"
    assert customer.last_inbound_at is not None


def _status(wamid: str, status: str, at: int, pricing: dict[str, object] | None = None) -> dict[str, object]:
    body = copy.deepcopy(payload("status_sent.json"))
    entry = body["entry"][0]["changes"][0]["value"]["statuses"][0]
    entry.update({"id": wamid, "status": status, "timestamp": str(at), "recipient_id": PHONE})
    if pricing is None:
        entry.pop("pricing", None)
    else:
        entry["pricing"] = pricing
    return body


async def test_status_webhooks_move_the_reply_forward_only(bot_client: BotFactory) -> None:
    client = await bot_client()
    await post_webhook(client, text_notification(PHONE, "wamid.S1", "hi"))
    reply = await _reply_to("wamid.S1")
    wamid = reply.whatsapp_message_id
    assert wamid is not None
    now = int(time.time())
    pricing = {
        "billable": False,
        "pricing_model": "PMP",
        "type": "free_customer_service",
        "category": "service",
    }
    assert (await post_webhook(client, _status(wamid, "delivered", now + 1, pricing))).status == 200
    assert (await post_webhook(client, _status(wamid, "read", now + 2))).status == 200
    assert (
        await post_webhook(client, _status(wamid, "delivered", now + 3))
    ).status == 200  # late, out of order
    row = await Message.get(id=reply.id)
    assert row.delivery_status == DeliveryStatus.READ
    assert row.delivered_at is not None and int(row.delivered_at.timestamp()) == now + 1
    assert row.read_at is not None and int(row.read_at.timestamp()) == now + 2
    assert row.pricing == pricing  # kept for the cost figures

    failed = copy.deepcopy(payload("status_failed_131026.json"))
    failed["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = wamid
    await post_webhook(client, failed)
    assert (await Message.get(id=reply.id)).delivery_status == DeliveryStatus.READ  # read stays read

    assert await Message.filter(message_direction=Direction.OUTBOUND).count() == 1
