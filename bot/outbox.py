"""The transactional outbox sender: queued rows → the Cloud API, with the window rule, pacing and retries.

Replies are written as `queued` rows in the same transaction as the state change that caused them; this
worker sends them. Rows are claimed with a short lease (their `next_attempt_at` moves into the future),
so a crashed sender's rows come back by themselves. Each customer's messages go one at a time and in
order; different customers go concurrently, under the client's pacing. Results are written back in
groups: the wamid and `sent`, a retry time (from the error's own class, never the HTTP status), or
`failed` with the Graph error's code and title. Free-form messages to a customer whose last message is
older than 24 hours are refused here, before any API call, with the reason on the row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from bot.clock import Clock, utc_now
from bot.db.claims import Claims
from bot.db.models import Customer, DeliveryStatus, Direction, Message
from bot.loops import finish
from bot.statuses import claim_early_statuses
from bot.whatsapp.client import WhatsAppClient
from bot.whatsapp.errors import GraphError
from bot.whatsapp.outbound import OUTBOUND_ADAPTER, is_free_form

log = logging.getLogger(__name__)

CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)
WINDOW_ERROR_CODE = 131047
WINDOW_ERROR_TITLE = (
    "Outside the 24-hour customer service window: refused before sending; only an approved template can "
    "reach this customer until they write again"
)
RESULT_FIELDS = (
    "whatsapp_message_id",
    "delivery_status",
    "attempts",
    "next_attempt_at",
    "error_code",
    "error_title",
    "sent_at",
    "delivered_at",
    "read_at",
    "failed_at",
    "pricing",
    "updated_at",
)
IDLE_POLL_SECONDS = 1.0
PACE_HOLD_SECONDS = 1.0  # a customer who must wait longer than this is put back, not waited for


@dataclass(frozen=True)
class OutboxConfig:
    concurrency: int = 64
    max_attempts: int = 8
    batch_size: int = 500
    lease: timedelta = timedelta(seconds=30)
    mark_read: bool = True
    quote_replies: bool = False


@dataclass
class _Group:
    phone: str
    rows: list[Message]
    last_inbound_at: datetime | None
    done: list[Message] = field(default_factory=list)


class OutboxWorker:
    def __init__(
        self,
        client: WhatsAppClient,
        claims: Claims,
        config: OutboxConfig,
        clock: Clock = utc_now,
        on_recorded: Callable[[list[Message]], None] | None = None,
    ) -> None:
        self._on_recorded = on_recorded
        """After send results are committed (live status in the technician panel)."""
        self._client = client
        self._claims = claims
        self._config = config
        self._clock = clock
        self._busy: set[str] = set()
        self._results: list[Message] = []
        self._results_ready = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False
        self._read_receipts = asyncio.Semaphore(config.concurrency)

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._run(), name="outbox-sender"),
            asyncio.create_task(self._flush_loop(), name="outbox-results"),
        ]

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming, give the sends in flight `grace` seconds to finish and be recorded, then cancel."""
        self._stopping = True
        self._wakeup.set()
        self._results_ready.set()
        for task in self._loops:
            await finish(task)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.settle(), grace)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._flush()

    async def release_leases(self) -> int:
        """At start-up of a single-process database: rows a dead sender had claimed are due again now."""
        now = self._clock()
        return await Message.filter(
            message_direction=Direction.OUTBOUND,
            delivery_status=DeliveryStatus.QUEUED,
            attempts=0,
            next_attempt_at__gt=now,
        ).update(next_attempt_at=now)

    def mark_read(self, wamids: Sequence[str]) -> None:
        """Blue ticks for handled inbound messages: best effort, nothing is stored about them."""
        if not self._config.mark_read:
            return
        for wamid in wamids:
            self._spawn(self._mark_read(wamid))

    async def _mark_read(self, wamid: str) -> None:
        async with self._read_receipts:  # never more receipts in flight than sends
            try:
                await self._client.mark_read(wamid)
            except GraphError as exc:
                log.debug("mark-read of %s failed: %s", wamid, exc)

    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            try:
                started = await self.dispatch()
            except Exception:
                log.exception("outbox claim failed; retrying")
                started = 0
            if started and len(self._busy) < self._config.concurrency:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), IDLE_POLL_SECONDS)

    async def dispatch(self) -> int:
        """Claim due rows for idle customers and start sending them; returns how many groups started."""
        free = self._config.concurrency - len(self._busy)
        if free <= 0:
            return 0
        groups = await self._claim(free)
        for group in groups:
            self._busy.add(group.phone)
            self._spawn(self._send_group(group))
        return len(groups)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _claim(self, max_groups: int) -> list[_Group]:
        now = self._clock()
        async with in_transaction():
            rows = await self._claims.due_outbound(now, self._config.batch_size, sorted(self._busy))
            rows = await _behind_nothing(rows, now)
            by_phone: dict[str, list[Message]] = {}
            for row in rows:
                if row.customer_phone in by_phone or len(by_phone) < max_groups:
                    by_phone.setdefault(row.customer_phone, []).append(row)
            if not by_phone:
                return []
            claimed = [row.id for group in by_phone.values() for row in group]
            await Message.filter(id__in=claimed).update(next_attempt_at=now + self._config.lease)
            windows = dict(
                await Customer.filter(wa_id__in=list(by_phone)).values_list("wa_id", "last_inbound_at")
            )
            for phone in by_phone.keys() - windows.keys():  # no customer: a technician (the relay)
                windows[phone] = await _last_inbound(phone)
        return [_Group(phone, group, windows.get(phone)) for phone, group in by_phone.items()]

    async def _send_group(self, group: _Group) -> None:
        try:
            for index, row in enumerate(group.rows):
                retry_at = await self._send_one(row, group.last_inbound_at)
                self._record(row)
                if retry_at is not None:  # keep this customer's order: the rest wait behind it
                    for later in group.rows[index + 1 :]:
                        later.next_attempt_at = retry_at
                        self._record(later)
                    break
        finally:
            self._busy.discard(group.phone)
            self.wake()

    async def _send_one(self, row: Message, last_inbound_at: datetime | None) -> datetime | None:
        """Send one row and note the outcome on it; returns when to retry, if it must wait."""
        now = self._clock()
        message = OUTBOUND_ADAPTER.validate_python(row.payload)
        if is_free_form(message) and (
            last_inbound_at is None or now - last_inbound_at > CUSTOMER_SERVICE_WINDOW
        ):
            _fail(row, now, WINDOW_ERROR_CODE, WINDOW_ERROR_TITLE)
            return None
        pacer = self._client.pacer
        wait = pacer.delay_for(row.customer_phone) if pacer else 0.0
        if wait > PACE_HOLD_SECONDS:
            row.next_attempt_at = now + timedelta(seconds=wait)
            return row.next_attempt_at
        row.attempts += 1
        try:
            reply_to = row.reply_to if self._config.quote_replies else None
            result = await self._client.send(row.customer_phone, message, reply_to=reply_to)
        except GraphError as exc:
            return self._failed_attempt(row, exc)
        row.whatsapp_message_id = result.wamid
        row.delivery_status = DeliveryStatus.SENT
        row.sent_at = self._clock()
        row.next_attempt_at = None
        row.error_code = row.error_title = None
        return None

    def _failed_attempt(self, row: Message, exc: GraphError) -> datetime | None:
        now = self._clock()
        if not exc.retryable or row.attempts >= min(exc.max_attempts, self._config.max_attempts):
            log.warning("send %s to %s failed: %s", row.id, row.customer_phone, exc)
            _fail(row, now, exc.code, exc.title)
            return None
        row.error_code, row.error_title = exc.code, exc.title
        row.next_attempt_at = now + timedelta(seconds=exc.retry_delay(row.attempts - 1))
        log.info(
            "send %s to %s: %s; retry %d at %s",
            row.id,
            row.customer_phone,
            exc,
            row.attempts,
            row.next_attempt_at,
        )
        return row.next_attempt_at

    def _record(self, row: Message) -> None:
        self._results.append(row)
        self._results_ready.set()

    async def _flush_loop(self) -> None:
        while not self._stopping:
            await self._results_ready.wait()
            self._results_ready.clear()
            try:
                await self._flush()
            except Exception:
                log.exception("outbox results not stored; the rows' leases will bring them back")

    async def _flush(self) -> None:
        rows, self._results = self._results, []
        if not rows:
            return
        try:
            async with in_transaction():
                await Message.bulk_update(rows, fields=list(RESULT_FIELDS))
                early = await claim_early_statuses(row for row in rows if row.whatsapp_message_id)
                if early:
                    await Message.bulk_update(early, fields=list(RESULT_FIELDS))
        except BaseException:
            # not written (an error, or a stop in the middle): keep them for the next write, so a send
            # Meta accepted is never forgotten and sent again
            self._results[:0] = rows
            raise
        if self._on_recorded:
            self._on_recorded(rows)

    async def settle(self) -> None:
        """Wait for the sends in flight and write their results (tests; a graceful stop)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self._flush()


async def _behind_nothing(rows: list[Message], now: datetime) -> list[Message]:
    """Drop rows that would overtake an earlier queued row of the same customer that is not due yet
    (waiting for a retry, or claimed by a sender): each customer's messages go out in order."""
    if not rows:
        return rows
    waiting = await Message.filter(
        message_direction=Direction.OUTBOUND,
        delivery_status=DeliveryStatus.QUEUED,
        customer_phone__in=list({row.customer_phone for row in rows}),
        next_attempt_at__gt=now,
    ).values_list("customer_phone", "id")
    first_waiting: dict[str, int] = {}
    for phone, row_id in waiting:
        first_waiting[phone] = min(row_id, first_waiting.get(phone, row_id))
    return [row for row in rows if row.id < first_waiting.get(row.customer_phone, row.id + 1)]


async def _last_inbound(phone: str) -> datetime | None:
    """When this phone last wrote to the business number, from the message log (for non-customers)."""
    inbound = Message.filter(customer_phone=phone, message_direction=Direction.INBOUND)
    last = await inbound.order_by("-id").first()
    return (last.sent_at or last.received_at) if last else None


def _fail(row: Message, now: datetime, code: int, title: str) -> None:
    row.delivery_status = DeliveryStatus.FAILED
    row.failed_at = now
    row.next_attempt_at = None
    row.error_code = code
    row.error_title = title
