"""GET /metrics: prometheus-client's text, parsed back with its own parser; counters of what happened,
gauges read from the database (seeded rows with known answers), the token, the local port, and the
counters of several processes added up (multiprocess mode)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bot.db import close_db, init_db
from bot.db.models import (
    Appointment,
    AppointmentReminder,
    AppointmentStatus,
    Conversation,
    ConversationMode,
    Customer,
    DeliveryStatus,
    Direction,
    Handoff,
    HandoffStatus,
    Message,
    ReminderStatus,
)
from bot.monitoring import metrics
from bot.monitoring.gauges import DatabaseGauges, read_snapshot
from tests.helpers import (
    ADMIN_TOKEN,
    REPO,
    BotFactory,
    eventually,
    free_port,
    payload,
    post_webhook,
    text_notification,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, by (name, sorted labels)."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def growth(before: Samples, after: Samples) -> Callable[..., float]:
    """How much a sample grew from `before` to `after`: `growth(before, after)(name, **labels)`."""

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    return grew


async def scrape(client: object, token: str = ADMIN_TOKEN) -> Samples:
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})  # type: ignore[attr-defined]
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return samples(await response.text())


async def test_metrics_need_a_token(bot_client: BotFactory) -> None:
    client = await bot_client(BOT_METRICS_TOKEN="scraper-token")
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
    await scrape(client, ADMIN_TOKEN)
    await scrape(client, "scraper-token")


async def test_a_conversation_is_counted(bot_client: BotFactory) -> None:
    client = await bot_client()
    before = await scrape(client)
    assert (await post_webhook(client, text_notification("15550002222", "wamid.M1", "hi"))).status == 200
    assert (await post_webhook(client, b"{}", signature="sha256=" + "0" * 64)).status == 401

    async def replied() -> bool:
        return await Message.filter(
            message_direction=Direction.OUTBOUND, delivery_status=DeliveryStatus.SENT
        ).exists()

    await eventually(replied)
    reply = await Message.get(message_direction=Direction.OUTBOUND)
    delivered = copy.deepcopy(payload("status_delivered.json"))
    delivered["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = reply.whatsapp_message_id
    assert (await post_webhook(client, delivered)).status == 200
    after = await scrape(client)

    grew = growth(before, after)

    assert grew("bot_webhook_requests_total", outcome="ok") == 2
    assert grew("bot_webhook_requests_total", outcome="unauthorized") == 1
    assert grew("bot_webhook_request_duration_seconds_count") == 3
    assert grew("bot_inbound_messages_total", type="text", status="handled") == 1
    assert grew("bot_outbound_messages_total", type=reply.message_type, status="sent") == 1
    assert grew("bot_outbound_messages_total", type=reply.message_type, status="delivered") == 1
    assert value(after, "bot_conversations", mode="bot") == 1
    assert value(after, "bot_inbox_backlog") == 0
    assert value(after, "bot_outbox_depth") == 0


async def _seed() -> None:
    """Known rows: 3 queued (2 due, the oldest for 90 s), 2 pending inbound (the oldest 30 s old), 3
    conversations (1 with a person), 2 waiting chats (the longest for 10 minutes), reminders 1 sent,
    1 skipped, 1 held for quiet hours, 1 pending."""
    for due in (NOW - timedelta(seconds=90), NOW - timedelta(seconds=5), NOW + timedelta(minutes=5)):
        await Message.create(
            address="15550001001",
            message_direction=Direction.OUTBOUND,
            message_type="text",
            delivery_status=DeliveryStatus.QUEUED,
            next_attempt_at=due,
        )
    for index, received in enumerate((NOW - timedelta(seconds=30), NOW - timedelta(seconds=2))):
        await Message.create(
            address="15550001002",
            message_direction=Direction.INBOUND,
            message_type="text",
            whatsapp_message_id=f"wamid.P{index}",
            delivery_status=DeliveryStatus.PENDING,
            received_at=received,
        )
    conversations = []
    for index, mode in enumerate((ConversationMode.BOT, ConversationMode.BOT, ConversationMode.HUMAN)):
        customer = await Customer.create(wa_id=f"1555000200{index}")
        conversations.append(await Conversation.create(customer=customer, mode=mode))
    for conversation, waited in zip(conversations, (600, 60), strict=False):
        await Handoff.create(
            conversation=conversation,
            status=HandoffStatus.WAITING,
            reason="asked",
            requested_at=NOW - timedelta(seconds=waited),
        )
    await Handoff.create(
        conversation=conversations[2],
        status=HandoffStatus.CLAIMED,
        reason="asked",
        requested_at=NOW - timedelta(hours=3),
    )
    appointment = await Appointment.create(
        customer_phone="15550002000",
        starts_at=NOW + timedelta(days=1),
        duration_minutes=30,
        status=AppointmentStatus.BOOKED,
    )
    due = NOW - timedelta(hours=1)
    for offset, status, send_after in (
        (1440, ReminderStatus.SENT, due),
        (120, ReminderStatus.SKIPPED, due),
        (60, ReminderStatus.PENDING, due + timedelta(hours=9)),  # held until quiet hours end
        (30, ReminderStatus.PENDING, due),
    ):
        await AppointmentReminder.create(
            appointment=appointment,
            plan=1,
            offset_minutes=offset,
            due_at=due,
            send_after=send_after,
            status=status,
        )


async def test_gauges_are_read_from_the_database(database_url: str) -> None:
    await init_db(database_url)
    try:
        await _seed()
        snapshot = await read_snapshot(NOW)
    finally:
        await close_db()
    found: Samples = {}
    for family in DatabaseGauges(snapshot).collect():
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    assert value(found, "bot_outbox_depth") == 3
    assert value(found, "bot_outbox_oldest_due_age_seconds") == 90
    assert value(found, "bot_inbox_backlog") == 2
    assert value(found, "bot_inbox_oldest_age_seconds") == 30
    assert value(found, "bot_conversations", mode="bot") == 2
    assert value(found, "bot_conversations", mode="human") == 1
    assert value(found, "bot_handoff_queue") == 2
    assert value(found, "bot_handoff_oldest_wait_seconds") == 600
    assert value(found, "bot_reminders", status="sent") == 1
    assert value(found, "bot_reminders", status="skipped") == 1
    assert value(found, "bot_reminders", status="held") == 1
    assert value(found, "bot_reminders", status="pending") == 1


async def test_the_local_metrics_port_needs_no_token(bot_client: BotFactory) -> None:
    port = free_port()
    await bot_client(f"server:\n  metrics_port: {port}\n")
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as answer:
        assert answer.status == 200
        found = samples(await answer.text())
    assert ("bot_outbox_depth", ()) in found


COUNT_IN_A_PROCESS = """
import sys
from bot.monitoring import metrics
for _ in range(int(sys.argv[1])):
    metrics.webhook_request("ok", 0.01)
metrics.graph_error(131026)
"""
SCRAPE_IN_A_PROCESS = """
from prometheus_client import generate_latest
from bot.monitoring import metrics
print(generate_latest(metrics.counters_registry()).decode())
"""


def test_several_processes_add_up(tmp_path: Path) -> None:
    """`bot serve --workers N`: each process counts into PROMETHEUS_MULTIPROC_DIR; any one scrapes all."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    for count in (3, 4):
        subprocess.run([sys.executable, "-c", COUNT_IN_A_PROCESS, str(count)], env=env, check=True)
    scraped = subprocess.run(
        [sys.executable, "-c", SCRAPE_IN_A_PROCESS], env=env, check=True, capture_output=True, text=True
    )
    found = samples(scraped.stdout)
    assert value(found, "bot_webhook_requests_total", outcome="ok") == 7
    assert value(found, "bot_webhook_request_duration_seconds_count") == 7
    assert value(found, "bot_graph_api_errors_total", code="131026") == 2


PREPARE_THEN_COUNT = """
import os, sys
from bot.monitoring.multiprocess import prepare
folder = prepare(int(sys.argv[1]))
from bot.monitoring import metrics
metrics.retry()
print(folder or "", metrics.multiprocess_dir() or "")
"""


def test_prepare_gives_several_workers_a_folder(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = str(REPO)
    one = subprocess.run(
        [sys.executable, "-c", PREPARE_THEN_COUNT, "1"], env=env, check=True, capture_output=True, text=True
    )
    assert one.stdout.split() == []  # one process: nothing to share
    many = subprocess.run(
        [sys.executable, "-c", PREPARE_THEN_COUNT, "4"], env=env, check=True, capture_output=True, text=True
    )
    folder, used = many.stdout.split()
    assert folder == used and list(Path(folder).glob("*.db"))  # the counter went to the shared folder
    (tmp_path / "counter_1.db").write_bytes(b"stale")
    named = {**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    again = subprocess.run(
        [sys.executable, "-c", PREPARE_THEN_COUNT, "4"], env=named, check=True, capture_output=True, text=True
    )
    assert again.stdout.split() == [str(tmp_path), str(tmp_path)]
    assert not (tmp_path / "counter_1.db").exists()  # an earlier run's files are gone


def test_a_batch_is_counted_row_by_row_whatever_the_grouping() -> None:
    """The inbox and outbox count a batch per type at once: each row still counts once, under its own
    type and status."""

    def now() -> Samples:  # what a scrape reports of the counters
        return samples(generate_latest(metrics.counters_registry()).decode())

    before = now()
    metrics.inbound(["text", "image", "text", "text"], "handled")
    metrics.outbound([("text", "sent"), ("template", "sent"), ("text", "sent"), ("text", "failed")])
    after = now()

    grew = growth(before, after)

    assert grew("bot_inbound_messages_total", type="text", status="handled") == 3
    assert grew("bot_inbound_messages_total", type="image", status="handled") == 1
    assert grew("bot_outbound_messages_total", type="text", status="sent") == 2
    assert grew("bot_outbound_messages_total", type="template", status="sent") == 1
    assert grew("bot_outbound_messages_total", type="text", status="failed") == 1
