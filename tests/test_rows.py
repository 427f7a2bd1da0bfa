"""bot/db/rows.py builds rows as the ORM's reads do, on SQLite and PostgreSQL; the inbox's hand-written
reads (its pending rows, their customers and conversations, the flood's count, the rows marked handled)
match what the ORM's queries gave."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tortoise.exceptions import IncompleteInstanceError

from bot.db import rows, sql
from bot.db.claims import claims_for
from bot.db.models import (
    Conversation,
    ConversationMode,
    Customer,
    DeliveryStatus,
    Direction,
    Message,
)
from bot.db.transactions import atomic
from bot.db.writes import Writes, update_rows
from bot.spine.flood import throttled
from bot.spine.inbox import _mark_handled
from tests.appointments_helpers import database

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def fields_of(instance: Message | Customer | Conversation, *leave_out: str) -> dict[str, object]:
    return {name: getattr(instance, name) for name in type(instance)._meta.db_fields if name not in leave_out}


async def inbound(customer: Customer, text: str, sent_at: datetime, **more: object) -> Message:
    return await Message.create(
        customer_id=customer.id,
        address=customer.address,
        message_direction=Direction.INBOUND,
        message_type="text",
        message_content=text,
        whatsapp_message_id=f"wamid.ROWS.{text}",
        delivery_status=DeliveryStatus.PENDING,
        payload={"profile_name": "Ana", "message": {"type": "text", "text": {"body": text}}},
        received_at=sent_at,
        sent_at=sent_at,
        **more,
    )


async def test_rows_are_built_as_the_orm_builds_them(database_url: str) -> None:
    async with database(database_url):
        customer = await Customer.create(wa_id="15550007001", profile_name="Ana", language="es")
        other = await Customer.create(wa_id="15550007002", last_inbound_at=NOW)
        conversation = await Conversation.create(
            customer_id=customer.id, flow="main", state="menu", variables={"name": "Ana", "n": [1, 2]}
        )
        first = await inbound(customer, "hola", NOW, pricing={"billable": False})
        await inbound(other, "hi", NOW + timedelta(seconds=1))

        read = await rows.select(Message, '"id" IN (?, ?) ORDER BY "id"', [first.id, first.id + 1])
        expected = await Message.filter(id__in=[first.id, first.id + 1]).order_by("id")
        assert [fields_of(row) for row in read] == [fields_of(row) for row in expected]
        # the same instants in the same zone objects, as the ORM's own reads give them
        assert [repr(fields_of(row)) for row in read] == [repr(fields_of(row)) for row in expected]
        assert read[0].message_content == "hola" and read[0].payload["profile_name"] == "Ana"
        assert not read[0]._partial and read[0]._saved_in_db

        people = await rows.select(Customer, f'"id" IN ({sql.marks(2)})', [customer.id, other.id])
        assert sorted(map(fields_of, people), key=str) == sorted(
            map(fields_of, await Customer.filter(id__in=[customer.id, other.id])), key=str
        )

        columns = rows.columns_of(Conversation, "created_at")
        [partial] = await rows.select(Conversation, '"customer_id" = ?', [customer.id], columns)
        assert fields_of(partial, "created_at") == fields_of(conversation, "created_at")
        assert partial._partial and not hasattr(partial, "created_at")
        with pytest.raises(IncompleteInstanceError):
            await partial.save()  # a partial row saves only what it read
        partial.variables = {"name": "Ana María"}
        partial.mode = ConversationMode.HUMAN
        await update_rows(Conversation, [partial], ["variables", "mode", "updated_at"])
        again = await Conversation.get(id=conversation.id)
        assert again.variables == {"name": "Ana María"} and again.mode == ConversationMode.HUMAN
        assert again.updated_at == partial.updated_at and again.updated_at >= conversation.updated_at


async def test_a_new_row_is_what_the_orm_constructor_builds_and_saves_as_one(database_url: str) -> None:
    """rows.new skips the constructor's conversions: the instance must hold what Message(**values)
    holds, save the same, and never share a default made per instance with another."""
    async with database(database_url):
        customer = await Customer.create(wa_id="15550007101")
        values = {
            "customer_id": customer.id,
            "address": customer.address,
            "message_direction": Direction.OUTBOUND,
            "message_type": "text",
            "message_content": "Mon-Sat 10:00-19:00.",
            "delivery_status": DeliveryStatus.QUEUED,
            "payload": {"type": "text", "body": "Mon-Sat 10:00-19:00."},
            "reply_to": "wamid.R1",
            "next_attempt_at": NOW,
            "created_at": NOW,
        }
        built = rows.new(Message, values)
        assert vars(built) == vars(Message(**values))
        await built.save()
        stored = await Message.get(id=built.id)
        assert fields_of(stored, "id", "updated_at") == fields_of(Message(**values), "id", "updated_at")
        assert stored.payload == values["payload"] and stored.attempts == 0
        first = rows.new(Conversation, {"customer_id": customer.id, "flow": "main", "state": "menu"})
        second = rows.new(Conversation, {"customer_id": customer.id, "flow": "main", "state": "menu"})
        assert first.variables == {} and first.variables is not second.variables
        assert first.mode is ConversationMode.BOT


async def test_pending_rows_are_claimed_oldest_first_and_marked_handled(database_url: str) -> None:
    claims = claims_for(database_url)
    async with database(database_url):
        customer = await Customer.create(wa_id="15550007003")
        made = [await inbound(customer, f"m{n}", NOW + timedelta(seconds=n)) for n in range(4)]
        await Message.filter(id=made[1].id).update(delivery_status=DeliveryStatus.HANDLED)
        async with atomic():
            pending = await claims.pending_inbound(2)
            assert [row.id for row in pending] == [made[0].id, made[2].id]
            assert [row.message_content for row in pending] == ["m0", "m2"]
            pending[1].error_title = "noted"
            writes = Writes()
            _mark_handled(pending, NOW, writes)
            await writes.run(last=True)
        after = {row.id: row for row in await Message.filter(id__in=[row.id for row in made])}
        assert after[made[0].id].delivery_status == DeliveryStatus.HANDLED
        assert after[made[0].id].processed_at == NOW and after[made[0].id].error_title is None
        assert after[made[2].id].error_title == "noted" and after[made[2].id].processed_at == NOW
        assert after[made[3].id].delivery_status == DeliveryStatus.PENDING
        assert after[made[3].id].processed_at is None


async def test_the_flood_count_sees_earlier_rows_and_only_the_minute(database_url: str) -> None:
    """A customer at the limit is not throttled; one over it is, counting their rows already handled
    in the minute before, but not older ones nor later ones."""
    async with database(database_url):
        busy = await Customer.create(wa_id="15550007004")
        calm = await Customer.create(wa_id="15550007005")
        await inbound(busy, "old", NOW - timedelta(minutes=5))  # outside every row's minute
        earlier = [await inbound(busy, f"e{n}", NOW - timedelta(seconds=30 - n)) for n in range(2)]
        handled = [row.id for row in earlier]
        await Message.filter(id__in=handled).update(delivery_status=DeliveryStatus.HANDLED)
        batch = [await inbound(busy, f"b{n}", NOW + timedelta(seconds=n)) for n in range(3)]
        batch += [await inbound(calm, f"c{n}", NOW + timedelta(seconds=n)) for n in range(3)]
        await inbound(busy, "later", NOW + timedelta(seconds=5))  # after the batch: not counted

        assert await throttled(batch, 5) == {}  # busy has 5 in the minute of its last: at the limit
        over = await throttled(batch, 3)
        assert sorted(over) == [batch[1].id, batch[2].id]
        assert over[batch[1].id].note and not over[batch[2].id].note
        assert await throttled(batch, 0) == {}  # off
