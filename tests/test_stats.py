"""bot/stats.py against seeded rows with known answers (SQLite and PostgreSQL), across a daylight-saving
change, and over 200,000 messages: a fixed number of queries and memory that does not grow with rows."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.db import close_db, init_db
from bot.db.models import (
    Conversation,
    DeliveryStatus,
    Direction,
    Handoff,
    HandoffStatus,
    Message,
    TechnicianRole,
)
from bot.db.sql import connection, on_sqlite
from bot.handoff.tokens import create_technician
from bot.identity import customer_for_phone
from bot.periods import Range, offsets
from bot.stats import compute, describe
from tests.helpers import ADMIN_TOKEN, BotFactory, migrated_sqlite, write_settings
from tests.test_commands import run_bot

MADRID = ZoneInfo("Europe/Madrid")
A, B, C = "15550000001", "15550000002", "15550000003"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def message(direction: Direction, created: str, **fields: Any) -> Message:
    fields.setdefault("message_type", "text")
    phone = fields.pop("customer_phone", A)
    fields.update(address=phone, customer_id=(await customer_for_phone(phone, at(created))).id)
    fields.setdefault(
        "delivery_status", DeliveryStatus.HANDLED if direction == Direction.INBOUND else DeliveryStatus.SENT
    )
    row = await Message.create(message_direction=direction, **fields)
    await Message.filter(id=row.id).update(created_at=at(created))  # auto_now_add would say "now"
    return row


async def seed() -> None:
    """See test_every_figure_of_a_known_week for what these add up to."""
    await message(
        Direction.INBOUND, "2026-10-31T22:30:00", whatsapp_message_id="wamid.before"
    )  # Oct 31 local
    await message(
        Direction.INBOUND,
        "2026-11-01T10:00:00",
        whatsapp_message_id="wamid.i1",
        received_at=at("2026-11-01T10:00:00"),
    )
    await message(
        Direction.INBOUND,
        "2026-11-01T23:30:00",
        whatsapp_message_id="wamid.i2",
        received_at=at("2026-11-01T23:30:00"),
    )  # Nov 2 in Madrid
    await message(
        Direction.INBOUND,
        "2026-11-02T12:00:00",
        customer_phone=B,
        message_type="image",
        whatsapp_message_id="wamid.i3",
        received_at=at("2026-11-02T12:00:00"),
    )
    await message(
        Direction.OUTBOUND,
        "2026-11-01T10:00:01",
        reply_to="wamid.i1",
        sent_at=at("2026-11-01T10:00:02"),
        delivered_at=at("2026-11-01T10:00:03"),
        read_at=at("2026-11-01T10:01:00"),
        delivery_status=DeliveryStatus.READ,
    )
    await message(
        Direction.OUTBOUND,
        "2026-11-01T23:30:01",
        reply_to="wamid.i2",
        sent_at=at("2026-11-01T23:30:05"),
        delivered_at=at("2026-11-01T23:30:06"),
        delivery_status=DeliveryStatus.DELIVERED,
    )
    await message(
        Direction.OUTBOUND,
        "2026-11-02T12:00:05",
        customer_phone=B,
        reply_to="wamid.i3",
        sent_at=at("2026-11-02T12:00:10"),
        delivery_status=DeliveryStatus.FAILED,
        error_code=131026,
    )
    await message(  # a technician's answer in the handed-off chat, 60 s after the request
        Direction.OUTBOUND,
        "2026-11-02T12:01:20",
        customer_phone=B,
        technician_id=1,
        sent_at=at("2026-11-02T12:01:21"),
    )
    for created, code in (("2026-11-03T09:00:00", 131047), ("2026-11-03T09:05:00", 131026)):
        await message(
            Direction.OUTBOUND,
            created,
            customer_phone=C,
            message_type="template",
            delivery_status=DeliveryStatus.FAILED,
            error_code=code,
        )
    for phone, requested in ((B, "2026-11-02T12:00:20"), (C, "2026-11-02T13:00:00")):
        customer = await customer_for_phone(phone, at(requested))
        conversation = await Conversation.create(customer=customer)
        await Handoff.create(
            conversation=conversation,
            status=HandoffStatus.WAITING,
            reason="asked",
            requested_at=at(requested),
        )


async def test_every_figure_of_a_known_week(database_url: str) -> None:
    await init_db(database_url)
    try:
        await seed()
        stats = await compute(
            Range(date(2026, 11, 1), date(2026, 11, 4), MADRID), "day", at("2026-11-03T12:00:00")
        )
        weekly = await compute(
            Range(date(2026, 11, 1), date(2026, 11, 4), MADRID), "week", at("2026-11-03T12:00:00")
        )
    finally:
        await close_db()
    days = {period.period: period for period in stats.periods}
    assert list(days) == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert (days["2026-11-01"].inbound, days["2026-11-01"].outbound) == (1, 1)
    assert (days["2026-11-02"].inbound, days["2026-11-02"].outbound) == (2, 3)  # 23:30 UTC is Nov 2 there
    assert (days["2026-11-03"].inbound, days["2026-11-03"].outbound) == (0, 2)
    assert days["2026-11-02"].by_type == {
        "image": {"inbound": 1, "outbound": 0},
        "text": {"inbound": 1, "outbound": 3},
    }
    d2 = days["2026-11-02"].delivery
    assert (d2.sent, d2.delivered, d2.read, d2.failed) == (3, 1, 0, 1)
    assert stats.messages == {"inbound": 3, "outbound": 6}
    assert stats.by_type == {
        "image": {"inbound": 1, "outbound": 0},
        "template": {"inbound": 0, "outbound": 2},
        "text": {"inbound": 2, "outbound": 4},
    }
    total = stats.delivery
    assert (total.sent, total.delivered, total.read, total.failed) == (4, 2, 1, 3)
    assert (total.delivery_rate, total.read_rate) == (0.5, 0.5)
    last = stats.last_24h  # since Nov 2 12:00 UTC
    assert (last.sent, last.delivered, last.read, last.failed) == (2, 0, 0, 3)
    assert [(f.code, f.count, f.error) for f in stats.failures] == [
        (131026, 2, "Undeliverable"),
        (131047, 1, "ReEngagement"),
    ]
    assert stats.failures[0].meaning == "not a WhatsApp user, terms not accepted, or an outdated app."
    assert stats.response_seconds.model_dump() == {"count": 3, "median": 5.0, "p90": None, "p95": 10.0}
    handoffs = stats.handoffs
    assert handoffs.count == 2
    assert handoffs.first_reply_seconds.model_dump() == {"count": 1, "median": 60.0, "p90": 60.0, "p95": None}
    assert (handoffs.conversations, handoffs.finished_by_bot) == (2, 1)
    assert [(p.period, p.inbound, p.outbound) for p in weekly.periods] == [
        ("2026-10-26", 1, 1),  # Sunday Nov 1 is in the week from Monday Oct 26
        ("2026-11-02", 2, 5),
    ]


async def test_days_follow_the_shop_across_daylight_saving(database_url: str) -> None:
    """Madrid leaves summer time on 2026-10-25 at 01:00 UTC (+02:00 -> +01:00)."""
    await init_db(database_url)
    try:
        for created in (
            "2026-10-24T21:59:59",
            "2026-10-24T22:30:00",
            "2026-10-25T22:30:00",
            "2026-10-25T23:30:00",
        ):
            await message(Direction.INBOUND, created, whatsapp_message_id=f"wamid.{created}")
        stats = await compute(
            Range(date(2026, 10, 24), date(2026, 10, 27), MADRID), "day", at("2026-10-27T00:00:00")
        )
    finally:
        await close_db()
    assert [(p.period, p.inbound) for p in stats.periods] == [
        ("2026-10-24", 1),  # 23:59:59 summer time
        ("2026-10-25", 2),  # 00:30 summer time, and 23:30 winter time
        ("2026-10-26", 1),  # 00:30 winter time
    ]


def test_offsets_are_cut_at_the_change() -> None:
    cuts = offsets(at("2026-10-24T00:00:00"), at("2026-10-27T00:00:00"), MADRID)
    assert cuts == [(at("2026-10-24T00:00:00"), 120), (at("2026-10-25T01:00:00"), 60)]


def test_failure_codes_say_what_they_mean() -> None:
    assert describe(131047)[0] == "ReEngagement"
    assert describe(-1)[0] == "TransportError"
    assert describe(None) == ("unknown", "failed without an error code")
    assert describe(999999)[0] == "GraphError"


@contextmanager
def counting_queries() -> Iterator[list[str]]:
    client = connection()
    seen: list[str] = []
    originals = {name: getattr(client, name) for name in ("execute_query", "execute_query_dict")}

    def wrap(name: str) -> Any:
        async def counted(sql: str, values: Any = None) -> Any:
            seen.append(sql)
            return await originals[name](sql, values)

        return counted

    for name in originals:
        setattr(client, name, wrap(name))
    try:
        yield seen
    finally:
        for name, original in originals.items():
            setattr(client, name, original)


async def add_messages(count: int) -> None:
    """`count` messages over 30 days, inbound and outbound, in one INSERT ... SELECT."""
    if on_sqlite():
        source = (
            f"WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {count})"
            " SELECT n, strftime('%Y-%m-%d %H:%M:%S', '2026-11-01', '+' || (n % 42000) || ' minutes')"
            " || '+00:00' AS at FROM seq"
        )
    else:
        source = (
            "SELECT n, timestamptz '2026-11-01 00:00+00' + (n % 42000) * interval '1 minute' AS at"
            f" FROM generate_series(1, {count}) AS n"
        )
    await connection().execute_script(
        "INSERT INTO message (address, message_direction, message_type, delivery_status, attempts,"
        " sent_at, delivered_at, error_code, created_at, updated_at)"
        " SELECT '1555' || (n % 5000), CASE WHEN n % 2 = 0 THEN 'inbound' ELSE 'outbound' END,"
        " CASE WHEN n % 3 = 0 THEN 'image' ELSE 'text' END,"
        " CASE WHEN n % 7 = 0 THEN 'failed' ELSE 'delivered' END, 0, at, at,"
        f" CASE WHEN n % 7 = 0 THEN 131026 END, at, at FROM ({source}) AS s"
    )


async def test_two_hundred_thousand_messages_in_one_pass(database_url: str) -> None:
    span = Range(date(2026, 11, 1), date(2026, 12, 1), MADRID)
    now = at("2026-11-30T12:00:00")
    await init_db(database_url)
    try:
        measured = []
        for total in (20_000, 200_000):
            await add_messages(total - await Message.all().count())
            with counting_queries() as queries:
                await compute(span, "day", now)  # warm: imports, caches, statement plans
            tracemalloc.start()
            with counting_queries() as queries:
                stats = await compute(span, "day", now)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            measured.append((total, len(queries), peak, stats))
    finally:
        await close_db()
    (_, small_queries, small_peak, _), (_, big_queries, big_peak, big) = measured
    assert big.messages["inbound"] + big.messages["outbound"] == 200_000
    outbound_failed = sum(1 for size in (20_000, 180_000) for n in range(1, size + 1) if n % 2 and n % 7 == 0)
    assert big.failures[0].count == outbound_failed
    assert small_queries == big_queries <= 8  # the same few grouped queries, whatever the rows
    # ten times the rows, about the same memory: nothing grows with the row count (a row in Python
    # would cost hundreds of bytes: 180,000 of them tens of megabytes)
    assert big_peak < small_peak * 1.5 + 64 * 1024, (small_peak, big_peak)


async def test_the_api_answers_admins_only(bot_client: BotFactory) -> None:
    client = await bot_client()
    await seed()
    _, technician = await create_technician("Tess", TechnicianRole.TECHNICIAN)
    _, admin = await create_technician("Ada", TechnicianRole.ADMIN)
    query = {"from": "2026-11-01", "to": "2026-11-04", "group": "day"}
    assert (await client.get("/api/stats", params=query)).status == 401
    forbidden = await client.get(
        "/api/stats", params=query, headers={"Authorization": f"Bearer {technician}"}
    )
    assert forbidden.status == 403
    for token in (ADMIN_TOKEN, admin):
        answer = await client.get("/api/stats", params=query, headers={"Authorization": f"Bearer {token}"})
        assert answer.status == 200
        body = await answer.json()
        assert (body["from"], body["to"], body["timezone"]) == ("2026-11-01", "2026-11-04", "Europe/Madrid")
        assert [p["period"] for p in body["periods"]] == ["2026-11-01", "2026-11-02", "2026-11-03"]
        assert body["messages"] == {"inbound": 3, "outbound": 6}
        assert body["failures"][0]["code"] == 131026
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for bad in (
        {"group": "year"},
        {"from": "2026-11-04", "to": "2026-11-01"},
        {"from": "yesterday"},
        {"colour": "red"},
        {"from": "2000-01-01", "to": "2026-01-01"},
    ):
        refused = await client.get("/api/stats", params=bad, headers=headers)
        assert refused.status == 422, bad
        assert (await refused.json())["errors"]
    recent = await client.get("/api/stats", headers=headers)  # the last 30 days
    assert len((await recent.json())["periods"]) == 30


def test_bot_stats_prints_the_tables(tmp_path: Path) -> None:
    url = migrated_sqlite(tmp_path / "bot.db")

    async def seeded() -> None:
        await init_db(url)
        try:
            await seed()
        finally:
            await close_db()

    asyncio.run(seeded())
    settings = write_settings(tmp_path)
    env = {"BOT_SETTINGS": str(settings), "DATABASE_URL": url}
    result = run_bot("stats", "--from", "2026-11-01", "--to", "2026-11-04", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "2026-11-02         2       3       3       1       0       1" in lines
    assert "total              3       6       4       2       1       3" in lines
    assert any("2 × 131026 Undeliverable" in line for line in lines)
    assert any(line.startswith("the bot's reply time") and "median     5.0 s" in line for line in lines)
    refused = run_bot("stats", "--from", "2026-11-04", "--to", "2026-11-01", env=env)
    assert refused.returncode == 2
    assert "to must be after from" in refused.stderr


async def test_each_flow_has_its_funnel(database_url: str) -> None:
    """Conversations that entered the appointments flow and reached its states, goto hops included."""
    from bot.db.models import ConversationStep
    from bot.engine import load_flows
    from tests.helpers import REPO, shop_actions

    flows = load_flows(REPO / "flows", shop_actions(), REPO / "templates")
    await init_db(database_url)
    try:
        steps = [
            (1, "main", "menu"),
            (1, "appointments", "start"),
            (1, "appointments", "offer"),
            (1, "appointments", "book"),
            (1, "appointments", "booked"),
            (1, "main", "menu"),
            (2, "appointments", "start"),
            (2, "appointments", "offer"),
            (2, "appointments", "offer"),
            (3, "appointments", "start"),
            (4, "main", "menu"),
        ]
        await ConversationStep.bulk_create(
            [
                ConversationStep(conversation_id=c, flow=f, state=s, at=at("2026-11-02T10:00:00"))
                for c, f, s in steps
            ]
        )
        await ConversationStep.create(
            conversation_id=5, flow="appointments", state="booked", at=at("2026-10-01T10:00:00")
        )
        stats = await compute(
            Range(date(2026, 11, 1), date(2026, 11, 4), MADRID), "day", at("2026-11-03T12:00:00"), flows
        )
    finally:
        await close_db()
    funnels = {funnel.flow: funnel for funnel in stats.funnels}
    booking = funnels["appointments"]
    counts = {step.state: step.conversations for step in booking.states}
    assert booking.entered == 3
    assert (counts["start"], counts["offer"], counts["book"], counts["booked"], counts["cancelled"]) == (
        3,
        2,
        1,
        1,
        0,
    )
    assert [step.state for step in booking.states][:2] == ["start", "offer"]  # the flow's own order
    assert "booked" in booking.end_states
    assert (funnels["main"].entered, funnels["orders"].entered) == (2, 0)


async def test_a_handled_message_writes_its_steps(bot_client: BotFactory) -> None:
    from bot.db.models import ConversationStep
    from tests.helpers import eventually, post_webhook, text_notification

    client = await bot_client()
    assert (await post_webhook(client, text_notification("15550003333", "wamid.STEP1", "hi"))).status == 200

    async def stepped() -> bool:
        return await ConversationStep.exists()

    await eventually(stepped)
    steps = await ConversationStep.all().order_by("id")
    assert (steps[0].flow, steps[0].state) == ("main", "menu")
    reply = await Message.get(message_direction=Direction.OUTBOUND, reply_to="wamid.STEP1")
    assert reply.flow == "main"  # the ledger's flow: the state that sent it
