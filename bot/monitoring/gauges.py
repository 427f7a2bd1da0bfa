"""What the database holds, read at scrape time: right for the whole server however many processes
serve it, and after any restart (nothing is counted in memory).

A handful of aggregate queries over indexed columns (delivery status, handoff status, reminder status):
a scrape costs the same with ten rows or ten million.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bot.db.models import ConversationMode, ReminderStatus
from bot.db.sql import as_datetime, fetch


@dataclass
class Snapshot:
    now: datetime
    outbox_depth: int = 0
    outbox_oldest_due: datetime | None = None
    inbox_backlog: int = 0
    inbox_oldest: datetime | None = None
    conversations: dict[str, int] = field(default_factory=dict)
    handoff_waiting: int = 0
    handoff_oldest: datetime | None = None
    reminders: dict[str, int] = field(default_factory=dict)
    extra: list[GaugeMetricFamily] = field(default_factory=list)
    """Families other parts add (cost, budget, limits)."""

    def age(self, since: datetime | None) -> float:
        return max(0.0, (self.now - since).total_seconds()) if since else 0.0


async def read_snapshot(now: datetime) -> Snapshot:
    snapshot = Snapshot(now=now)
    queues = await fetch(
        "SELECT delivery_status AS status, COUNT(*) AS n,"
        " MIN(CASE WHEN next_attempt_at <= ? THEN next_attempt_at END) AS oldest_due,"
        " MIN(received_at) AS oldest"
        " FROM message WHERE delivery_status IN ('queued', 'pending') GROUP BY delivery_status",
        [now],
    )
    for row in queues:
        if row["status"] == "queued":
            snapshot.outbox_depth = int(row["n"])
            snapshot.outbox_oldest_due = as_datetime(row["oldest_due"])
        else:
            snapshot.inbox_backlog = int(row["n"])
            snapshot.inbox_oldest = as_datetime(row["oldest"])
    modes = await fetch("SELECT mode, COUNT(*) AS n FROM conversation GROUP BY mode")
    snapshot.conversations = {str(mode): 0 for mode in ConversationMode}
    snapshot.conversations.update({str(row["mode"]): int(row["n"]) for row in modes})
    waiting = await fetch(
        "SELECT COUNT(*) AS n, MIN(requested_at) AS oldest FROM handoff WHERE status = 'waiting'"
    )
    snapshot.handoff_waiting = int(waiting[0]["n"]) if waiting else 0
    snapshot.handoff_oldest = as_datetime(waiting[0]["oldest"]) if waiting else None
    reminders = await fetch(
        "SELECT status, COUNT(*) AS n,"
        " SUM(CASE WHEN send_after > due_at THEN 1 ELSE 0 END) AS held"
        " FROM appointment_reminder GROUP BY status"
    )
    counts = {"sent": 0, "held": 0, "skipped": 0, "pending": 0}
    for row in reminders:
        status, n = str(row["status"]), int(row["n"])
        if status == ReminderStatus.PENDING:
            held = int(row["held"] or 0)
            counts["held"] += held
            counts["pending"] += n - held
        else:
            counts[status] = counts.get(status, 0) + n
    snapshot.reminders = counts
    return snapshot


class DatabaseGauges(Collector):
    """One scrape's gauges, from a snapshot read just before."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        s = self._snapshot
        yield GaugeMetricFamily(
            "bot_outbox_depth", "Outbound rows queued (due or waiting)", value=s.outbox_depth
        )
        yield GaugeMetricFamily(
            "bot_outbox_oldest_due_age_seconds",
            "How long the oldest due outbound row has been due (0: none is)",
            value=s.age(s.outbox_oldest_due),
        )
        yield GaugeMetricFamily(
            "bot_inbox_backlog", "Inbound rows stored and not yet handled", value=s.inbox_backlog
        )
        yield GaugeMetricFamily(
            "bot_inbox_oldest_age_seconds",
            "How long the oldest unhandled inbound row has waited (0: none)",
            value=s.age(s.inbox_oldest),
        )
        modes = GaugeMetricFamily(
            "bot_conversations", "Conversations by mode (bot or human)", labels=["mode"]
        )
        for mode, count in sorted(s.conversations.items()):
            modes.add_metric([mode], count)
        yield modes
        yield GaugeMetricFamily(
            "bot_handoff_queue", "Chats waiting for a person to claim them", value=s.handoff_waiting
        )
        yield GaugeMetricFamily(
            "bot_handoff_oldest_wait_seconds",
            "How long the longest-waiting chat has waited (0: none)",
            value=s.age(s.handoff_oldest),
        )
        reminders = GaugeMetricFamily(
            "bot_reminders",
            "Appointment reminders by state: sent, held (quiet hours), skipped, pending",
            labels=["status"],
        )
        for status, count in sorted(s.reminders.items()):
            reminders.add_metric([status], count)
        yield reminders
        yield from s.extra
