"""`bot replay`: run stored inbound messages through the engine again, for debugging.

By default nothing is written and nothing is sent: each customer's messages since the given time are
run through the current flows' engine (the server's, from bot/pipeline.py) from a fresh conversation,
and what the engine would answer is printed beside what was actually sent. The actions run for real (a
handoff opens, a booking takes a seat), so the whole dry run happens inside one transaction that is
always rolled back: the database afterwards is exactly what it was. With `resend`, the messages go back
to the server's inbox as if just received (the handoff policy included): the conversation moves on from
where it is, and the replies are queued for the running server's outbox.
"""

from __future__ import annotations

from datetime import datetime

from tortoise.transactions import in_transaction

from bot.db import close_db, init_db
from bot.db.models import Customer, DeliveryStatus, Direction, Message
from bot.engine import Conversation as ConversationState
from bot.engine import Customer as CustomerInfo
from bot.engine import Engine
from bot.identity import customer_by_address
from bot.master_keys import load_key_ring
from bot.pipeline import Pipeline
from bot.settings import Settings
from bot.spine.inbox import event_for


async def replay(settings: Settings, *, since: datetime, phone: str | None, resend: bool) -> int:
    pipeline = Pipeline(settings)
    await init_db(settings.database_url)
    load_key_ring(settings)
    try:
        query = Message.filter(message_direction=Direction.INBOUND, created_at__gte=since)
        if phone:
            owner = await customer_by_address(phone)
            query = query.filter(customer_id=owner.id if owner else -1)
        rows = await query.order_by("id")
        if not rows:
            print("no inbound messages in that range")
            return 0
        if resend:
            return await _resend(pipeline, rows)
        try:
            async with in_transaction():
                await _dry_run(pipeline.engine, settings, rows)
                raise _RolledBack
        except _RolledBack:
            pass
        return 0
    finally:
        await close_db()


class _RolledBack(Exception):
    """Raised at the end of a dry run so that its transaction rolls back whatever the actions wrote."""


async def _dry_run(engine: Engine, settings: Settings, rows: list[Message]) -> None:
    states: dict[int | None, ConversationState] = {}
    customers = {
        c.id: c for c in await Customer.filter(id__in={r.customer_id for r in rows if r.customer_id})
    }
    sent: dict[str | None, list[Message]] = {}
    for reply in await Message.filter(
        message_direction=Direction.OUTBOUND, reply_to__in=[r.whatsapp_message_id for r in rows]
    ).order_by("id"):
        sent.setdefault(reply.reply_to, []).append(reply)
    for row in rows:
        customer = customers.get(row.customer_id or 0)
        info = CustomerInfo(
            wa_id=customer.wa_id if customer else None,
            name=(customer.profile_name or customer.username) if customer else None,
            language=(customer.language if customer else None) or settings.shop.default_language,
            id=customer.id if customer else None,
        )
        state = states.get(row.customer_id, ConversationState(flow=None, state=None, variables={}))
        outcome = await engine.handle(state, info, event_for(row))
        states[row.customer_id] = ConversationState(outcome.flow, outcome.state, outcome.variables)
        when = f"{row.created_at:%Y-%m-%d %H:%M:%S}"
        print(f"{when} {row.address} ({row.message_type}): {row.message_content!r}")
        print(f"  now → {outcome.flow}.{outcome.state}")
        for message in outcome.outbound:
            print(f"    would send: {message.log_content()!r}")
        for reply in sent.get(row.whatsapp_message_id, []):
            print(f"    was sent:   {reply.message_content!r} [{reply.delivery_status}]")


async def _resend(pipeline: Pipeline, rows: list[Message]) -> int:
    await Message.filter(id__in=[row.id for row in rows]).update(  # parked ones get their tries back
        delivery_status=DeliveryStatus.PENDING,
        processed_at=None,
        failed_at=None,
        attempts=0,
        error_title=None,
    )
    worker = pipeline.inbox()  # the server's, handoff policy and all; its outbox sends the replies
    handled = 0
    while batch := await worker.process_batch():
        handled += batch
    print(f"{handled} message(s) handled again; their replies are queued and go out with the running server")
    return 0
