"""Retention: messages, their stored media files and finished conversations older than
`privacy.retention_days` are deleted, daily inside `bot serve` and by `bot retention run [--dry-run]`.

Deletes go in batches of BATCH rows, each its own short transaction (bot/privacy/batches.py), so the
inbox and the webhook (one writer on SQLite) wait for at most one batch. A message still in flight
(inbound pending, outbound queued) is never deleted, however old. A media file goes before its row,
and files left in the folder by nothing are swept by their age too. A finished conversation is one
with the bot (no person has it) not touched since the cut-off: its state, answers and timer go (its
handoffs, notes and audit events with it); the customer's next message starts a new one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

from bot.clock import Clock, utc_now
from bot.db.models import Conversation, ConversationMode, DeliveryStatus, Message
from bot.loops import Loop
from bot.media.store import MediaStore, is_stored
from bot.privacy.batches import delete_messages, delete_rows

log = logging.getLogger(__name__)

BATCH = 500
IN_FLIGHT = (DeliveryStatus.PENDING, DeliveryStatus.QUEUED)
DAY_SECONDS = 24 * 3600.0
FIRST_RUN_SECONDS = 60.0
"""After start-up, the first run waits this long (the server's own start first)."""


@dataclass
class RetentionReport:
    cutoff: datetime
    messages: int = 0
    media_files: int = 0
    conversations: int = 0
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return (
            f"retention ({self.cutoff:%Y-%m-%d %H:%M} UTC and before): {verb} {self.messages} message(s), "
            f"{self.media_files} media file(s), {self.conversations} finished conversation(s)"
        )


class Retention:
    def __init__(self, retention_days: int, media: MediaStore, clock: Clock = utc_now) -> None:
        self.retention_days = retention_days
        self._media = media
        self._clock = clock

    def cutoff(self) -> datetime:
        return self._clock() - timedelta(days=self.retention_days)

    async def run(self, *, dry_run: bool = False) -> RetentionReport:
        report = RetentionReport(self.cutoff(), dry_run=dry_run)
        old = Message.filter(created_at__lt=report.cutoff).exclude(delivery_status__in=IN_FLIGHT)
        finished = Conversation.filter(updated_at__lt=report.cutoff, mode=ConversationMode.BOT)
        if dry_run:
            report.messages = await old.count()
            refs = cast(list[str | None], await old.values_list("file_url", flat=True))
            report.media_files = len([ref for ref in refs if is_stored(ref)])
            report.media_files += len(await self._orphans(report.cutoff))
            report.conversations = await finished.count()
            return report
        deleted = await delete_messages(old, self._media, BATCH)
        report.messages, report.media_files = deleted.rows, deleted.media_files
        for path in await self._orphans(report.cutoff):
            await asyncio.to_thread(path.unlink, missing_ok=True)
            report.media_files += 1
        report.conversations = await delete_rows(finished, BATCH)  # their timers, handoffs, notes with them
        return report

    async def _orphans(self, cutoff: datetime) -> list[Path]:
        """Files in the media folder older than the cut-off that no message names."""
        directory = self._media.directory
        files = await asyncio.to_thread(_old_files, directory, cutoff.timestamp())
        if not files:
            return []
        references = [f"media:{path.name}" for path in files]
        named = set(
            cast(list[str], await Message.filter(file_url__in=references).values_list("file_url", flat=True))
        )
        return [path for path in files if f"media:{path.name}" not in named]


def _old_files(directory: Path, before: float) -> list[Path]:
    if not directory.is_dir():
        return []
    return [path for path in directory.iterdir() if path.is_file() and path.stat().st_mtime < before]


class RetentionJob:
    """The daily run inside `bot serve`: the first a minute after start-up, then once a day. The loop
    looks every minute, so stopping the server never waits for a day."""

    def __init__(self, retention: Retention, interval: float = DAY_SECONDS) -> None:
        self._retention = retention
        self._interval = interval
        self._last = float("-inf")
        self._loop = Loop("retention", self._step, FIRST_RUN_SECONDS, wait_first=True)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _step(self) -> int:
        if time.monotonic() - self._last < self._interval:
            return 0
        self._last = time.monotonic()
        report = await self._retention.run()
        log.info("%s", report.summary())
        return 0
