"""Delivery statuses move forward only, and early ones wait for their message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tortoise.transactions import in_transaction

from bot.db import close_db, init_db
from bot.db.models import DeliveryStatus, Direction, EarlyStatus, Message
from bot.spine.statuses import StatusChange, apply_status, claim_early_statuses, record_statuses

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def _sent(wamid: str = "wamid.OUT_1") -> Message:
    return Message(
        address="15550002222",
        message_direction=Direction.OUTBOUND,
        message_type="text",
        delivery_status=DeliveryStatus.SENT,
        whatsapp_message_id=wamid,
        sent_at=T0,
    )


def test_read_implies_delivered_and_never_goes_back() -> None:
    message = _sent()
    assert apply_status(message, StatusChange("wamid.OUT_1", "read", T0 + timedelta(seconds=5)))
    assert message.delivery_status == DeliveryStatus.READ
    assert message.delivered_at == T0 + timedelta(seconds=5)  # Meta may skip "delivered"
    assert message.read_at == T0 + timedelta(seconds=5)
    # a late "delivered" neither downgrades nor moves the timestamps
    assert not apply_status(message, StatusChange("wamid.OUT_1", "delivered", T0 + timedelta(seconds=9)))
    assert message.delivery_status == DeliveryStatus.READ
    assert message.delivered_at == T0 + timedelta(seconds=5)


def test_failed_keeps_code_and_title_but_not_after_delivery() -> None:
    message = _sent()
    failed = StatusChange("wamid.OUT_1", "failed", T0, error_code=131026, error_title="Message undeliverable")
    assert apply_status(message, failed)
    assert (message.delivery_status, message.error_code) == (DeliveryStatus.FAILED, 131026)
    assert message.error_title == "Message undeliverable"
    # nothing moves a failed message back to read
    assert not apply_status(message, StatusChange("wamid.OUT_1", "read", T0))
    delivered = _sent("wamid.OUT_2")
    apply_status(delivered, StatusChange("wamid.OUT_2", "delivered", T0))
    apply_status(delivered, StatusChange("wamid.OUT_2", "failed", T0, error_code=131000))
    assert delivered.delivery_status == DeliveryStatus.DELIVERED


def test_pricing_is_kept_and_unknown_statuses_are_harmless() -> None:
    message = _sent()
    pricing = {"billable": True, "pricing_model": "PMP", "type": "regular", "category": "utility"}
    assert apply_status(message, StatusChange("wamid.OUT_1", "sent", T0, pricing=pricing))
    assert message.pricing == pricing
    assert not apply_status(message, StatusChange("wamid.OUT_1", "played", T0))
    assert message.delivery_status == DeliveryStatus.SENT


def test_a_status_never_touches_an_inbound_message_the_bot_has_handled() -> None:
    handled = Message(
        address="15550002222",
        message_direction=Direction.INBOUND,
        message_type="text",
        delivery_status=DeliveryStatus.HANDLED,
        whatsapp_message_id="wamid.IN_1",
    )
    for status in ("sent", "delivered", "read", "failed"):
        assert not apply_status(handled, StatusChange("wamid.IN_1", status, T0))
    assert handled.delivery_status == DeliveryStatus.HANDLED


async def test_statuses_for_unknown_wamids_are_parked_then_applied(database_url: str) -> None:
    await init_db(database_url)
    try:
        async with in_transaction():
            changed = await record_statuses(
                [
                    StatusChange("wamid.LATE", "delivered", T0 + timedelta(seconds=2)),
                    StatusChange("wamid.LATE", "delivered", T0 + timedelta(seconds=2)),  # a redelivery
                    StatusChange(
                        "wamid.LATE", "sent", T0 + timedelta(seconds=1), pricing={"category": "service"}
                    ),
                ]
            )
        assert changed == []
        assert await EarlyStatus.filter(whatsapp_message_id="wamid.LATE").count() == 2

        # the outbox records the send afterwards: the parked statuses apply, oldest first, and go away
        message = _sent("wamid.LATE")
        message.delivery_status = DeliveryStatus.QUEUED
        message.sent_at = None
        await message.save()
        changed_rows = await claim_early_statuses([message])
        assert [m.id for m in changed_rows] == [message.id]
        assert message.delivery_status == DeliveryStatus.DELIVERED
        assert message.sent_at == T0 + timedelta(seconds=1)
        assert message.pricing == {"category": "service"}
        assert await EarlyStatus.all().count() == 0

        # and a status for a known message updates the row directly
        async with in_transaction():
            await message.save()
            assert await record_statuses([StatusChange("wamid.LATE", "read", T0 + timedelta(seconds=3))]) == [
                ("text", "read")
            ]
        stored = await Message.get(id=message.id)
        assert stored.delivery_status == DeliveryStatus.READ
        assert stored.read_at == T0 + timedelta(seconds=3)
    finally:
        await close_db()
