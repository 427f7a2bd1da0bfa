"""Customers are an internal id: a customer known only by their business-scoped user ID (BSUID) is stored,
answered and gets their statuses; a phone and a BSUID on one message are one customer; the system
messages that change a number or a BSUID keep the customer; one webhook with many messages and statuses
from many customers has every one of them handled. Each case from a real-shaped payload in
tests/payloads/, through the real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestServer

from bot.db.models import (
    Conversation,
    Customer,
    CustomerIdentity,
    DeliveryStatus,
    Direction,
    IdentityKind,
    Message,
)
from bot.db.transactions import atomic
from bot.identity.resolve import _known
from tests.appointments_helpers import database
from tests.helpers import (
    BotFactory,
    eventually,
    graph_sends,
    message_with,
    payload,
    post_webhook,
    text_notification,
)

BSUID = "US.13491208655302741918"
NEW_BSUID = "US.13491208655302749999"
ALEX_BSUID = "US.20000000000000000002"


def _value(notification: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = notification["entry"][0]["changes"][0]["value"]
    return value


def fresh(name: str) -> dict[str, Any]:
    """A payload whose messages were sent just now (the customer's 24-hour window is open)."""
    notification = payload(name)
    for entry in notification["entry"]:
        for change in entry["changes"]:
            for message in change["value"].get("messages", []):
                message["timestamp"] = str(int(time.time()))
    return notification


def bsuid_text(wamid: str, body: str, bsuid: str = BSUID) -> dict[str, Any]:
    """inbound_text_bsuid_only.json with another id and text (and sender)."""
    notification = fresh("inbound_text_bsuid_only.json")
    value = _value(notification)
    value["contacts"][0]["user_id"] = bsuid
    message = value["messages"][0]
    message.update(id=wamid, from_user_id=bsuid, text={"body": body})
    return notification


async def identities(customer: Customer) -> set[tuple[str, str]]:
    rows = await CustomerIdentity.filter(customer_id=customer.id).values_list("kind", "value")
    return {(str(kind), str(value)) for kind, value in rows}


async def handled(*wamids: str) -> bool:
    return await Message.filter(
        whatsapp_message_id__in=list(wamids), delivery_status=DeliveryStatus.HANDLED
    ).count() == len(wamids)


async def reply_to(wamid: str) -> Message:
    async def sent() -> bool:
        return await Message.filter(reply_to=wamid, delivery_status=DeliveryStatus.SENT).exists()

    await eventually(sent)
    row = await Message.filter(reply_to=wamid).order_by("id").first()
    assert row is not None
    return row


async def test_a_customer_with_only_a_bsuid_is_stored_answered_and_gets_statuses(
    bot_client: BotFactory, fake_graph: TestServer
) -> None:
    client = await bot_client()
    response = await post_webhook(client, fresh("inbound_text_bsuid_only.json"))
    assert response.status == 200

    inbound = await Message.get(whatsapp_message_id="wamid.IN_BSUID_0001")
    assert inbound.address == BSUID and inbound.customer_id is not None
    customer = await Customer.get(id=inbound.customer_id)
    assert (customer.wa_id, customer.bsuid) == (None, BSUID)
    assert await identities(customer) == {("bsuid", BSUID), ("username", "@robin.fixes")}

    reply = await reply_to("wamid.IN_BSUID_0001")
    assert reply.address == BSUID and reply.customer_id == customer.id
    sends = [send for send in await graph_sends(fake_graph) if send[4] == reply.whatsapp_message_id]
    assert [send[1] for send in sends] == [BSUID]  # "recipient", not "to"
    customer = await Customer.get(id=customer.id)
    assert customer.username == "@robin.fixes" and customer.profile_name == "Robin Example"
    assert customer.display_name == "@robin.fixes"

    status = payload("status_sent_recipient_user_id.json")
    entry = _value(status)["statuses"][0]
    entry.update(id=reply.whatsapp_message_id, status="delivered")
    assert (await post_webhook(client, status)).status == 200
    delivered = await Message.get(id=reply.id)
    assert delivered.delivery_status == DeliveryStatus.DELIVERED
    assert delivered.pricing == entry["pricing"]


async def test_a_phone_and_a_bsuid_on_one_message_are_one_customer_whichever_comes_later(
    bot_client: BotFactory,
) -> None:
    client = await bot_client()
    await post_webhook(client, text_notification("15550002222", "wamid.PHONE_ONLY", "hi"))
    await eventually(lambda: handled("wamid.PHONE_ONLY"))
    assert (await post_webhook(client, fresh("inbound_text_phone_and_bsuid.json"))).status == 200
    assert (await post_webhook(client, bsuid_text("wamid.BSUID_LATER", "still me", ALEX_BSUID))).status == 200
    await eventually(lambda: handled("wamid.PHONE_ONLY", "wamid.IN_BOTH_0001", "wamid.BSUID_LATER"))

    [customer] = await Customer.all()
    assert (customer.wa_id, customer.bsuid) == ("15550002222", ALEX_BSUID)
    assert await identities(customer) >= {("phone", "15550002222"), ("bsuid", ALEX_BSUID)}
    rows = await Message.filter(message_direction=Direction.INBOUND).order_by("id")
    assert {row.customer_id for row in rows} == {customer.id}
    assert [row.address for row in rows] == ["15550002222", "15550002222", ALEX_BSUID]
    assert await Conversation.filter(customer_id=customer.id).count() == 1
    later = await reply_to("wamid.BSUID_LATER")
    assert later.address == "15550002222"  # they have a phone on file: replies go `to` it


async def test_a_bsuid_only_customer_and_a_phone_customer_seen_apart_are_joined_when_one_message_names_both(
    bot_client: BotFactory,
) -> None:
    client = await bot_client()
    await post_webhook(client, bsuid_text("wamid.FIRST_BSUID", "hello", ALEX_BSUID))
    await post_webhook(client, text_notification("15550002222", "wamid.FIRST_PHONE", "hello"))
    await eventually(lambda: handled("wamid.FIRST_BSUID", "wamid.FIRST_PHONE"))
    assert await Customer.all().count() == 2

    await post_webhook(client, fresh("inbound_text_phone_and_bsuid.json"))
    await eventually(lambda: handled("wamid.IN_BOTH_0001"))

    [customer] = await Customer.all()
    assert (customer.wa_id, customer.bsuid) == ("15550002222", ALEX_BSUID)
    assert {row.customer_id for row in await Message.all()} == {customer.id}
    assert await Conversation.all().count() == 1


async def test_user_changed_user_id_keeps_the_customer_under_the_new_bsuid(bot_client: BotFactory) -> None:
    client = await bot_client()
    await post_webhook(client, fresh("inbound_text_bsuid_only.json"))
    await eventually(lambda: handled("wamid.IN_BSUID_0001"))
    [customer] = await Customer.all()
    chat = await Conversation.get(customer_id=customer.id)

    assert (await post_webhook(client, fresh("inbound_system_user_changed_user_id.json"))).status == 200
    await post_webhook(client, bsuid_text("wamid.AFTER_CHANGE", "me again", NEW_BSUID))
    await eventually(lambda: handled("wamid.IN_SYS_UID_0001", "wamid.AFTER_CHANGE"))

    [changed] = await Customer.all()
    assert changed.id == customer.id and changed.bsuid == NEW_BSUID
    assert {("bsuid", BSUID), ("bsuid", NEW_BSUID)} <= await identities(changed)
    assert (await Conversation.get(customer_id=customer.id)).id == chat.id  # continuity
    after = await reply_to("wamid.AFTER_CHANGE")
    assert after.address == NEW_BSUID


async def test_user_changed_number_gives_the_customer_the_new_phone_and_bsuid(bot_client: BotFactory) -> None:
    client = await bot_client()
    await post_webhook(client, fresh("inbound_text_phone_and_bsuid.json"))
    await eventually(lambda: handled("wamid.IN_BOTH_0001"))
    [customer] = await Customer.all()

    assert (await post_webhook(client, fresh("inbound_system_user_changed_number_bsuid.json"))).status == 200
    await post_webhook(client, text_notification("15550004444", "wamid.NEW_NUMBER", "new phone"))
    await eventually(lambda: handled("wamid.IN_SYS_NUM_0002", "wamid.NEW_NUMBER"))

    [changed] = await Customer.all()
    assert changed.id == customer.id
    assert (changed.wa_id, changed.bsuid) == ("15550004444", "US.20000000000000000044")
    assert {
        ("phone", "15550002222"),
        ("phone", "15550004444"),
        ("bsuid", ALEX_BSUID),
        ("bsuid", "US.20000000000000000044"),
    } <= await identities(changed)
    assert (await reply_to("wamid.NEW_NUMBER")).address == "15550004444"


async def test_a_new_number_someone_else_had_moves_to_the_customer_and_merges_nobody(
    bot_client: BotFactory,
) -> None:
    """A recycled number: its old owner (with a BSUID of their own) keeps their history."""
    client = await bot_client()
    other = bsuid_text("wamid.OLD_OWNER", "I had that number", "US.30000000000000000003")
    _value(other)["messages"][0]["from"] = "15550004444"
    await post_webhook(client, other)
    await post_webhook(client, fresh("inbound_text_phone_and_bsuid.json"))
    await eventually(lambda: handled("wamid.OLD_OWNER", "wamid.IN_BOTH_0001"))
    old_owner = await Customer.get(bsuid="US.30000000000000000003")

    await post_webhook(client, fresh("inbound_system_user_changed_number_bsuid.json"))
    await eventually(lambda: handled("wamid.IN_SYS_NUM_0002"))

    alex = await Customer.get(wa_id="15550004444")
    assert alex.id != old_owner.id and alex.bsuid == "US.20000000000000000044"
    old_owner = await Customer.get(id=old_owner.id)
    assert old_owner.wa_id is None
    assert (await Message.get(whatsapp_message_id="wamid.OLD_OWNER")).customer_id == old_owner.id


async def test_a_failed_status_whose_contacts_carry_only_a_wa_id_is_applied(bot_client: BotFactory) -> None:
    client = await bot_client()
    await post_webhook(client, text_notification("15550002222", "wamid.FAIL_IN", "hi"))
    reply = await reply_to("wamid.FAIL_IN")
    status = payload("status_failed_wa_id_only_contact.json")
    _value(status)["statuses"][0]["id"] = reply.whatsapp_message_id

    assert (await post_webhook(client, status)).status == 200

    failed = await Message.get(id=reply.id)
    assert failed.delivery_status == DeliveryStatus.FAILED and failed.error_code == 131026


async def test_one_webhook_with_many_messages_and_statuses_from_many_customers(
    bot_client: BotFactory,
) -> None:
    client = await bot_client()
    for phone, wamid in (("15550001001", "wamid.EARLY_A"), ("15550001002", "wamid.EARLY_B")):
        await post_webhook(client, text_notification(phone, wamid, "hi"))
    early = [await reply_to("wamid.EARLY_A"), await reply_to("wamid.EARLY_B")]

    notification = fresh("inbound_text_bsuid_only.json")
    value = _value(notification)
    phone_message = copy.deepcopy(fresh("inbound_text.json"))
    _value(phone_message)["contacts"][0]["wa_id"] = _value(phone_message)["messages"][0]["from"] = (
        "15550003003"
    )
    both = _value(fresh("inbound_text_phone_and_bsuid.json"))
    value["contacts"] += _value(phone_message)["contacts"] + both["contacts"]
    value["messages"] += _value(phone_message)["messages"] + both["messages"]
    value["statuses"] = [
        {
            "id": row.whatsapp_message_id,
            "status": "delivered",
            "timestamp": "1750003500",
            "recipient_id": row.address,
        }
        for row in early
    ]
    assert (await post_webhook(client, notification)).status == 200

    wamids = [message["id"] for message in value["messages"]]
    assert len(wamids) == 3
    await eventually(lambda: handled(*wamids))
    for wamid in wamids:
        await reply_to(wamid)
    senders = {(await Message.get(whatsapp_message_id=wamid)).customer_id for wamid in wamids}
    assert len(senders) == 3
    for row in early:
        assert (await Message.get(id=row.id)).delivery_status == DeliveryStatus.DELIVERED


async def test_a_message_without_a_sender_is_refused_with_the_reason(bot_client: BotFactory) -> None:
    client = await bot_client()
    notification = fresh("inbound_text_bsuid_only.json")
    del _value(notification)["messages"][0]["from_user_id"]
    response = await post_webhook(client, notification)
    assert response.status == 400
    assert "`from` (phone) or `from_user_id` (BSUID)" in await response.text()
    too_long = bsuid_text("wamid.LONG", "hi", "US." + "1" * 300)
    assert (await post_webhook(client, too_long)).status == 400
    assert await Message.all().count() == 0
    assert not await CustomerIdentity.filter(kind=IdentityKind.BSUID).exists()


async def _order(number: str, phone: str, device: str = "Pixel 8") -> None:
    from datetime import UTC, datetime

    from bot.db.models import Order
    from bot.identity import customer_for_phone

    owner = await customer_for_phone(phone, datetime.now(UTC))
    await Order.create(
        order_number=number,
        customer_phone=phone,
        customer=owner,
        customer_name="Robin",
        device_model=device,
        problem="battery",
        status="in_progress",
    )


async def _replies(wamid: str) -> list[Message]:
    async def answered() -> bool:
        return await Message.filter(reply_to=wamid, message_direction=Direction.OUTBOUND).exists()

    await eventually(answered)
    return await Message.filter(reply_to=wamid).order_by("id")


async def test_a_customer_without_a_phone_shares_it_and_then_finds_their_order_and_only_theirs(
    bot_client: BotFactory, fake_graph: TestServer
) -> None:
    client = await bot_client()
    await _order("7001", "15550007777")  # Robin's, filed by the shop under the phone
    await _order("8001", "15550008888", "Galaxy S21")  # someone else's

    await post_webhook(client, bsuid_text("wamid.ASK_1", "status 7001"))
    [offer] = await _replies("wamid.ASK_1")
    assert offer.payload is not None and offer.payload["kind"] == "contact_request"
    assert "7001" in offer.payload["body"] and "Pixel" not in (offer.message_content or "")
    await eventually(lambda: _sent(offer))
    sends = [
        s
        for s in await graph_sends(fake_graph)
        if s[4] == (await Message.get(id=offer.id)).whatsapp_message_id
    ]
    assert [(s[1], s[2]) for s in sends] == [(BSUID, "interactive")]

    someone_elses_card = fresh("inbound_contacts.json")  # a card of another person: links nothing
    message = _value(someone_elses_card)["messages"][0]
    del message["from"]
    message.update(from_user_id=BSUID, id="wamid.CARD_1")
    _value(someone_elses_card)["contacts"] = [{"profile": {"name": "Robin Example"}, "user_id": BSUID}]
    await post_webhook(client, someone_elses_card)
    await eventually(lambda: handled("wamid.CARD_1"))
    assert (await Customer.get(bsuid=BSUID)).wa_id is None

    await post_webhook(client, bsuid_text("wamid.ASK_2", "status 7001"))
    await _replies("wamid.ASK_2")
    assert (await post_webhook(client, fresh("inbound_contacts_contact_request.json"))).status == 200
    shown = await _replies("wamid.IN_CONREQ_0001")
    robin = await Customer.get(bsuid=BSUID)
    assert robin.wa_id == "15550007777"
    assert ("phone", "15550007777") in await identities(robin)
    assert any(
        "7001" in (row.message_content or "") and "Pixel 8" in (row.message_content or "") for row in shown
    )
    assert shown[0].address == "15550007777"  # a phone on file now: replies go `to` it

    await post_webhook(client, bsuid_text("wamid.ASK_3", "8001"))
    texts = " ".join(row.message_content or "" for row in await _replies("wamid.ASK_3"))
    assert "8001" in texts and "Galaxy" not in texts  # the other customer's order: never shown
    assert "Order 8001" not in texts


async def _sent(row: Message) -> bool:
    return (await Message.get(id=row.id)).delivery_status == DeliveryStatus.SENT


async def test_the_technician_api_serves_a_customer_without_a_phone_by_their_id(
    bot_client: BotFactory, fake_graph: TestServer
) -> None:
    from bot.handoff.tokens import create_technician
    from tests.helpers import bearer

    client = await bot_client()
    await post_webhook(client, bsuid_text("wamid.H_1", "hi"))
    await post_webhook(client, bsuid_text("wamid.H_2", "I want a human please"))
    await eventually(lambda: handled("wamid.H_1", "wamid.H_2"))
    _, token = await create_technician("Tess")
    robin = await Customer.get(bsuid=BSUID)

    [waiting] = await (await client.get("/api/tech/queue", headers=bearer(token))).json()
    assert (waiting["customer_id"], waiting["phone"], waiting["address"]) == (robin.id, None, BSUID)
    assert waiting["display_name"] == "@robin.fixes"

    base = f"/api/tech/customers/{robin.id}"
    assert (await client.post(f"{base}/claim", headers=bearer(token))).status == 200
    history = await (await client.get(f"{base}/messages", headers=bearer(token))).json()
    assert [m["content"] for m in history["messages"] if m["direction"] == "inbound"] == [
        "hi",
        "I want a human please",
    ]
    sent = await client.post(
        f"{base}/messages", json={"text": "Tess here, how can I help?"}, headers=bearer(token)
    )
    assert sent.status == 200, await sent.text()
    row = await message_with("Tess here, how can I help?")
    assert (row.address, row.customer_id) == (BSUID, robin.id)
    await eventually(lambda: _sent(row))
    # the phone routes take the BSUID as well
    by_address = await client.get(f"/api/tech/chats/{BSUID}/messages", headers=bearer(token))
    assert by_address.status == 200
    assert (await client.get("/api/tech/customers/999999/messages", headers=bearer(token))).status == 404


async def test_the_message_log_api_finds_a_customer_by_their_bsuid(bot_client: BotFactory) -> None:
    from tests.helpers import ADMIN_TOKEN, bearer

    client = await bot_client()
    await post_webhook(client, bsuid_text("wamid.LOG_B", "hi", "US.15550002222"))
    await post_webhook(client, text_notification("15550002222", "wamid.LOG_P", "hello"))  # another customer
    await eventually(lambda: handled("wamid.LOG_B", "wamid.LOG_P"))
    by_bsuid = await (
        await client.get("/api/conversations/US.15550002222/messages", headers=bearer(ADMIN_TOKEN))
    ).json()
    by_phone = await (
        await client.get("/api/conversations/15550002222/messages", headers=bearer(ADMIN_TOKEN))
    ).json()
    assert [m["message_content"] for m in by_bsuid["messages"] if m["message_direction"] == "inbound"] == [
        "hi"
    ]
    assert [m["message_content"] for m in by_phone["messages"] if m["message_direction"] == "inbound"] == [
        "hello"
    ]
    assert by_bsuid["customer_id"] != by_phone["customer_id"]
    assert by_bsuid["messages"][0]["address"] == "US.15550002222"


async def test_each_answered_identity_payload_gets_its_reply_and_the_reply_its_status(
    bot_client: BotFactory,
) -> None:
    """parse → store → reply → status for the payloads a customer writes (system messages are not
    answered: they are covered above)."""
    client = await bot_client()
    for name in (
        "inbound_text_bsuid_only.json",
        "inbound_text_phone_and_bsuid.json",
        "inbound_contacts_contact_request.json",
    ):
        notification = fresh(name)
        wamid = _value(notification)["messages"][0]["id"]
        assert (await post_webhook(client, notification)).status == 200, name
        reply = await reply_to(wamid)
        sent_to = {"recipient_id": reply.address} if reply.address.isdigit() else {}
        if not sent_to:
            sent_to = {"recipient_user_id": reply.address}
        status = payload("status_sent_recipient_user_id.json")
        entry = _value(status)["statuses"][0]
        entry.pop("recipient_user_id")
        entry.update(id=reply.whatsapp_message_id, status="read", **sent_to)
        assert (await post_webhook(client, status)).status == 200, name
        assert (await Message.get(id=reply.id)).delivery_status == DeliveryStatus.READ, name


async def test_an_identity_seen_long_ago_is_stamped_again_and_a_recent_one_is_not_written(
    database_url: str,
) -> None:
    """last_seen_at says when a number or BSUID last wrote: refreshed when an hour or more behind (not
    on every message), and the lookup finds each sender whatever the kinds and values asked together."""
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    async with database(database_url):
        old = await Customer.create(wa_id="15550009001")
        recent = await Customer.create(wa_id="15550009002", bsuid=BSUID)
        await CustomerIdentity.create(
            customer=old,
            kind=IdentityKind.PHONE,
            value="15550009001",
            first_seen_at=now,
            last_seen_at=now - timedelta(hours=2),
        )
        await CustomerIdentity.create(
            customer=recent,
            kind=IdentityKind.BSUID,
            value=BSUID,
            first_seen_at=now,
            last_seen_at=now - timedelta(minutes=5),
        )
        keys = {(IdentityKind.PHONE, "15550009001"), (IdentityKind.BSUID, BSUID), (IdentityKind.PHONE, BSUID)}
        async with atomic():
            found = await _known(keys, now)
        assert found == {(IdentityKind.PHONE, "15550009001"): old.id, (IdentityKind.BSUID, BSUID): recent.id}
        seen = {row.value: row.last_seen_at for row in await CustomerIdentity.all()}
        assert seen == {"15550009001": now, BSUID: now - timedelta(minutes=5)}
