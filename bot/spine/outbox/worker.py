"""The outbox sender: queued rows → the Cloud API, with the window rule, pacing, retries and pauses.

Messages are written as `queued` rows in the same transaction as the change that caused them
(bot/spine/outbox/queue.py); this worker sends them. Rows are claimed with a short lease (their
`next_attempt_at` moves into the future), so a crashed sender's rows come back by themselves. A live
sender keeps the leases of the rows it holds alive (leases.py) and never claims a customer whose
results it has not written yet, so a row whose result waits in memory is never sent again. Each
customer's messages go one at a time and in order; different customers go concurrently, under the
client's pacing. Results are written back in groups, and a write the database refuses is tried again,
with a short backoff, until it succeeds: the wamid and `sent`, a retry time (retries.py: from the
error's class, never the HTTP status, within the row's horizon), or `failed` with the error's code and
a title that says why, logged at ERROR. An account-wide error pauses the whole outbox (pause.py). Free-form
messages to a customer whose 24-hour window has closed are refused here, before any API call, and so
are templates the shop starts to a customer who opted out (consent.py). Error 131050 on a send records
the customer's marketing opt-out with the row's result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Collection, Coroutine, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from tortoise.transactions import in_transaction

from bot.clock import Clock, utc_now
from bot.db import rows as db_rows
from bot.db.claims import Claims, DueRow, due_messages
from bot.db.models import Customer, DeliveryStatus, Direction, Message
from bot.db.sql import marks
from bot.db.writes import Writes
from bot.identity import masked
from bot.loops import finish
from bot.monitoring import metrics
from bot.privacy.consent import marketing_refused
from bot.spine.outbox.consent import CategoryOf, CustomerState, refusal
from bot.spine.outbox.leases import Leases
from bot.spine.outbox.pause import AccountPause
from bot.spine.outbox.queue import fail_row
from bot.spine.outbox.retries import GiveUp, Horizon, RetryPolicy
from bot.spine.outbox.window import WINDOW_ERROR_CODE, WINDOW_ERROR_TITLE, window_open
from bot.spine.read_receipts import ReadReceipts
from bot.spine.statuses import claim_early_statuses
from bot.whatsapp.client import WhatsAppClient
from bot.whatsapp.errors import CODE_UNSENDABLE, GraphError, MarketingOptOut
from bot.whatsapp.outbound import OUTBOUND_ADAPTER, is_free_form

log = logging.getLogger(__name__)

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
LEASE_CHECK_SECONDS = 1.0  # how often an idle results writer looks for leases to renew
WRITE_RETRY_SECONDS = (0.05, 5.0)  # the first and the longest wait before a refused write is tried again
ROWS_PER_GROUP = 4
"""Rows read per free sender in a claim: a customer rarely has more than a few replies queued at once."""


@dataclass(frozen=True)
class OutboxConfig:
    concurrency: int = 64
    max_attempts: int = 8
    """The most tries for the errors that are retried only a few times (code 1 on a 4xx, a 2xx without
    a message id); transient errors are bounded by the horizon instead."""
    batch_size: int = 500
    lease: timedelta = timedelta(seconds=30)
    mark_read: bool = True
    mark_read_every: float = 0.0
    """At most one mark-read per customer every so many seconds (bot/spine/read_receipts.py); 0: one
    per customer and handled batch."""
    quote_replies: bool = False
    retry_horizon: timedelta | None = None
    """How long after queueing transient errors are retried; None: as long as the customer's 24-hour
    window allows (free-form), 24 hours (templates)."""


@dataclass
class _Group:
    customer: int
    """The customer the rows go to (`_customer_of`): one group in flight per customer."""
    rows: list[Message]
    last_inbound_at: datetime | None
    recorded: int = 0
    """How many of `rows` have their outcome in `_results` (the rest are still this group's to send)."""


class OutboxWorker:
    def __init__(
        self,
        client: WhatsAppClient,
        claims: Claims,
        config: OutboxConfig,
        clock: Clock = utc_now,
        on_recorded: Callable[[list[Message]], None] | None = None,
        limits: SendLimits | None = None,
        category_of: CategoryOf | None = None,
    ) -> None:
        self._on_recorded = on_recorded
        self._category_of = category_of
        """A template's category (marketing ones are refused to customers who stopped marketing)."""
        self._limits = limits
        """The daily cap, the messaging limit and the budget (bot/costs/guard.py); None: none."""
        """After send results are committed (live status in the technician panel)."""
        self._client = client
        self._claims = claims
        self._config = config
        self._clock = clock
        self._retries = RetryPolicy(config.retry_horizon, config.max_attempts)
        self._pause = AccountPause()
        self._leases = Leases(config.lease)
        self._sending: set[int] = set()
        """Customers with a group of sends in flight: at most `concurrency`."""
        self._unwritten: Counter[int] = Counter()
        """Customer -> rows whose outcome is in memory, not yet in the database: never claimed meanwhile."""
        self._results: list[Message] = []
        self._marketing_stops: list[tuple[int, datetime, str]] = []
        """(customer, when, what) of sends Meta refused with 131050: recorded with the next results."""
        self._results_ready = asyncio.Event()
        self._writing = asyncio.Lock()
        """One write at a time: results and lease renewals never overtake each other."""
        self._wakeup = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False
        self._receipts_in_flight = asyncio.Semaphore(config.concurrency)
        self._read_receipts = ReadReceipts(self._mark_read, self._spawn, config.mark_read_every)
        self._more_due = False
        """The last claim read as many rows as it asked for: more may be due now. When it read fewer,
        it took everything due, and the sender waits for a wake (a commit that queued rows, a group
        done) or the poll instead of claiming again at once (an empty transaction per message)."""

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._run(), name="outbox-sender"),
            asyncio.create_task(self._results_loop(), name="outbox-results"),
        ]
        self._read_receipts.start()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming, give the sends in flight `grace` seconds to finish, cancel the rest, and write
        every result in hand (tried again for up to `grace` seconds if the database refuses)."""
        self._stopping = True
        self._stop_requested.set()
        self._wakeup.set()
        self._results_ready.set()
        for task in self._loops:
            await finish(task)
        await self._read_receipts.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._sends_done(), grace)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._write_within(grace)

    async def release_leases(self) -> int:
        """At start-up of a single-process database: rows a dead sender had claimed are due again now."""
        now = self._clock()
        return await Message.filter(
            message_direction=Direction.OUTBOUND,
            delivery_status=DeliveryStatus.QUEUED,
            attempts=0,
            next_attempt_at__gt=now,
        ).update(next_attempt_at=now)

    def mark_read(self, newest: Sequence[tuple[Hashable, str]]) -> None:
        """Blue ticks for handled inbound messages, given each sender's newest one: best effort,
        nothing is stored about them."""
        if self._config.mark_read:
            self._read_receipts.handled(newest)

    async def _mark_read(self, wamid: str) -> None:
        async with self._receipts_in_flight:  # never more receipts in flight than sends
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
            if started and self._more_due and len(self._sending) < self._config.concurrency:
                continue  # the claim read a full batch: more may be due for the senders still free
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), IDLE_POLL_SECONDS)

    async def dispatch(self) -> int:
        """Claim due rows for idle customers and start sending them; returns how many groups started.
        Nothing while the outbox is paused; one group at a time while a pause is being probed."""
        now = self._clock()
        if self._pause.holds(now) is not None:
            return 0
        free = self._config.concurrency - len(self._sending)
        if self._pause.probing:
            free = 0 if self._sending else 1
        if free <= 0:
            return 0
        groups = await self._claim(free, now)
        for group in groups:
            self._sending.add(group.customer)
            self._spawn(self._send_group(group))
        return len(groups)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _claim(self, max_groups: int, now: datetime) -> list[_Group]:
        held = sorted(key for key in self._sending | self._unwritten.keys() if key > 0)
        # read only about as many rows as the free senders can take: a claim runs each time a group
        # finishes, and hydrating a full batch for one free sender made a long queue longer
        limit = min(self._config.batch_size, max_groups * ROWS_PER_GROUP)
        async with in_transaction():
            rows = await self._claims.due_outbound(now, limit, held)
            self._more_due = len(rows) >= limit
            by_customer = _groups([row for row in rows if not row.behind], max_groups)
            if not by_customer:
                return []
            writes = Writes()  # the lease, the refusals and the holds: with the COMMIT, in one trip
            states = await _states(list(by_customer))
            refused = await self._refuse(by_customer, states, now, writes)
            if refused:
                by_customer = _without(by_customer, {row.id for row in refused})
            claimed = [row.id for group in by_customer.values() for row in group]
            _lease(claimed, now + self._config.lease, writes)
            windows = {key: state.last_inbound_at for key, state in states.items()}
            if self._limits is not None:
                held_back = await self._limits.hold(
                    [r for g in by_customer.values() for r in g], windows, now, writes
                )
                if held_back:  # queued with the reason, due when the limit allows: not this claim's
                    by_customer = _without(by_customer, held_back)
                    claimed = [row_id for row_id in claimed if row_id not in held_back]
            await writes.run(last=True)
        self._leases.hold(claimed, now)
        if refused:
            metrics.outbound(_moved(refused))
            if self._on_recorded:
                self._on_recorded(refused)
        return [_Group(key, group, windows.get(key)) for key, group in by_customer.items()]

    async def _refuse(
        self,
        groups: Mapping[int, list[Message]],
        states: Mapping[int, CustomerState],
        now: datetime,
        writes: Writes,
    ) -> list[Message]:
        """Inside the claim: fail the rows the customer's consent forbids (consent.py), the reason on
        each, before any limit counts them (written with the claim's `writes`); returns them."""
        refused = []
        for key, rows in groups.items():
            state = states.get(key)
            if state is None:
                continue
            for row in rows:
                found = refusal(row, state, now, self._category_of)
                if found is None:
                    continue
                fail_row(row, now, *found)
                refused.append(row)
                metrics.held("opted_out")
                log.warning("outbox row %s to %s refused: error %s: %s", row.id, masked(row.address), *found)
        await writes.update(Message, refused, RESULT_FIELDS)
        return refused

    async def _send_group(self, group: _Group) -> None:
        try:
            for index, row in enumerate(group.rows):
                retry_at = await self._send_one(row, group.last_inbound_at)
                self._record(group, row)
                if retry_at is not None:  # keep this customer's order: the rest wait behind it
                    for later in group.rows[index + 1 :]:
                        later.next_attempt_at = retry_at
                        self._record(group, later)
                    break
        finally:
            # rows never sent (a stop cancelled the group) keep the claim's lease and come back after it
            self._leases.release(row.id for row in group.rows[group.recorded :])
            self._sending.discard(group.customer)
            self.wake()

    async def _send_one(self, row: Message, last_inbound_at: datetime | None) -> datetime | None:
        """Send one row and note the outcome on it; returns when to retry, if it must wait."""
        now = self._clock()
        try:
            message = OUTBOUND_ADAPTER.validate_python(row.payload)
        except ValueError as exc:
            self._give_up(row, now, CODE_UNSENDABLE, f"not a message that can be sent: {exc}", "invalid row")
            return None
        free_form = is_free_form(message)
        if free_form and not window_open(last_inbound_at, now):
            metrics.held("window")
            self._give_up(row, now, WINDOW_ERROR_CODE, _window_title(row), "refused before sending")
            return None
        paused_until = self._pause.holds(now)  # another send found an account-wide error meanwhile
        if paused_until is not None:
            row.next_attempt_at = paused_until
            return paused_until
        pacer = self._client.pacer
        pace_as = f"customer:{_customer_of(row)}"
        wait = pacer.delay_for(pace_as) if pacer else 0.0
        if wait > PACE_HOLD_SECONDS:
            metrics.held("pacing")
            row.next_attempt_at = now + timedelta(seconds=wait)
            return row.next_attempt_at
        row.attempts += 1
        try:
            reply_to = row.reply_to if self._config.quote_replies else None
            result = await self._client.send(row.address, message, reply_to=reply_to, pace_as=pace_as)
        except GraphError as exc:
            if exc.code in MarketingOptOut.codes and row.customer_id is not None:
                self._marketing_stops.append((row.customer_id, now, f"message {row.id}"))
            horizon = self._retries.horizon(row.created_at, free_form, last_inbound_at)
            return self._failed_attempt(row, exc, horizon)
        self._pause.cleared(self._clock())
        row.whatsapp_message_id = result.wamid
        row.delivery_status = DeliveryStatus.SENT
        row.sent_at = self._clock()
        row.next_attempt_at = None
        row.error_code = row.error_title = None
        return None

    def _failed_attempt(self, row: Message, exc: GraphError, horizon: Horizon) -> datetime | None:
        now = self._clock()
        paused_until = self._pause.pause(exc, now) if exc.account_wide else None
        if not exc.account_wide and not exc.retryable:
            self._pause.cleared(now)  # Meta judged this message itself: the account is fine
        decision = self._retries.after(exc, row.attempts, now, horizon, paused_until)
        if isinstance(decision, GiveUp):
            permanent = not exc.retryable and paused_until is None  # its own title says why
            title = (
                exc.title
                if permanent
                else f"{exc.title}; gave up after {row.attempts} tries: {decision.reason}"
            )
            self._give_up(row, now, exc.code, title, decision.reason)
            return None
        row.error_code, row.error_title = exc.code, exc.title
        row.next_attempt_at = decision.at
        metrics.retry()
        log.info(
            "send %s to %s: %s; attempt %d failed, next at %s",
            row.id,
            masked(row.address),
            exc,
            row.attempts,
            f"{decision.at:%Y-%m-%d %H:%M:%S}",
        )
        return decision.at

    def _give_up(self, row: Message, now: datetime, code: int, title: str, why: str) -> None:
        """The row fails for good: said on the row (the panel and the message log show it) and at ERROR."""
        fail_row(row, now, code, title)
        log.error(
            "outbox row %s to %s failed after %d attempts (%s): error %s: %s",
            row.id,
            masked(row.address),
            row.attempts,
            why,
            code,
            row.error_title,
        )

    def _record(self, group: _Group, row: Message) -> None:
        group.recorded += 1
        self._unwritten[_customer_of(row)] += 1
        self._results.append(row)
        self._results_ready.set()

    async def _results_loop(self) -> None:
        failures = 0
        while not self._stopping:
            if failures:
                first, longest = WRITE_RETRY_SECONDS
                with contextlib.suppress(TimeoutError):
                    delay = min(longest, first * 2 ** (failures - 1))
                    await asyncio.wait_for(self._stop_requested.wait(), delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._results_ready.wait(), LEASE_CHECK_SECONDS)
            self._results_ready.clear()
            try:
                await self._write()
            except Exception as exc:
                failures += 1
                log.warning(
                    "outbox results not stored (%d tries so far): %r; trying again",
                    failures,
                    exc,
                    exc_info=failures == 1,
                )
            else:
                if failures:
                    log.warning("outbox results stored after %d refused tries", failures)
                failures = 0

    async def _write(self) -> None:
        """Renew the leases that need it, then write the results in hand."""
        async with self._writing:
            try:
                await self._leases.renew(self._clock())
            except Exception as exc:
                log.warning("outbox leases not renewed: %r", exc)
            await self._flush()

    async def _flush(self) -> None:
        if not self._results:
            return  # a 131050 is noted with its row's result, which is not in hand yet
        rows, self._results = self._results, []
        stops, self._marketing_stops = self._marketing_stops, []
        moved = _moved(rows)  # before parked statuses move them further
        try:
            async with in_transaction():
                # statuses that came before the wamid was stored move the rows in memory first, so one
                # UPDATE writes both, with the COMMIT (Writes)
                early = await claim_early_statuses(row for row in rows if row.whatsapp_message_id)
                await marketing_refused(stops)
                writes = Writes()
                await writes.update(Message, rows, RESULT_FIELDS)
                await writes.run(last=True)
        except BaseException:
            # not written (an error, or a stop in the middle): keep them for the next write, so a send
            # Meta accepted is never forgotten and sent again
            self._results[:0] = rows
            self._marketing_stops[:0] = stops
            raise
        self._leases.release(row.id for row in rows)
        metrics.outbound(moved + _moved(early))
        for row in rows:
            key = _customer_of(row)
            self._unwritten[key] -= 1
            if not self._unwritten[key]:
                del self._unwritten[key]
        if self._on_recorded:
            self._on_recorded(rows)

    async def _write_within(self, seconds: float) -> None:
        """At stop: write what is left, trying again until `seconds` have passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        first, longest = WRITE_RETRY_SECONDS
        delay = first
        while True:
            try:
                await self._write()
                return
            except Exception as exc:
                if loop.time() + delay > deadline:
                    log.error(
                        "outbox stopped with the results of rows %s not stored (%r): they are sent "
                        "again after their leases",
                        [row.id for row in self._results],
                        exc,
                    )
                    return
            await asyncio.sleep(delay)
            delay = min(longest, delay * 2)

    async def _sends_done(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def settle(self) -> None:
        """Wait for the sends in flight and write their results (tests; the simulator)."""
        await self._sends_done()
        await self._write()


def _without(groups: dict[int, list[Message]], held: Collection[int]) -> dict[int, list[Message]]:
    kept = {key: [row for row in rows if row.id not in held] for key, rows in groups.items()}
    return {key: rows for key, rows in kept.items() if rows}


class SendLimits(Protocol):
    """The send limits at the claim (bot/costs/guard.py implements them): inside the claim's
    transaction, add to `writes` the holds of the rows that must wait (the reason on the row; they run
    with the claim's commit) and return their ids; the outbox sends the rest."""

    async def hold(
        self,
        rows: Sequence[Message],
        windows: Mapping[int, datetime | None],
        now: datetime,
        writes: Writes,
    ) -> Collection[int]: ...


def _groups(rows: Sequence[DueRow], max_groups: int) -> dict[int, list[Message]]:
    """The first `max_groups` customers' rows, in order, made Messages: only these are hydrated (the
    rest of the read, often most of it, waits for the next claim)."""
    picked: dict[int, list[DueRow]] = {}
    for row in rows:
        key = _customer_of(row)
        if key in picked or len(picked) < max_groups:
            picked.setdefault(key, []).append(row)
    built = iter(due_messages([row for group in picked.values() for row in group]))
    return {key: [next(built) for _ in group] for key, group in picked.items()}


def _customer_of(row: Message | DueRow) -> int:
    """The customer a row goes to; a row without one (none is written so) is a group of its own."""
    return row.customer_id if row.customer_id is not None else -row.id


def _moved(rows: Sequence[Message]) -> list[tuple[str, str]]:
    """(type, status) of what a results write moved, for /metrics: sends and failures, then the
    parked statuses it applied (a row put back for later is still queued: no transition)."""
    return [
        (row.message_type, str(row.delivery_status))
        for row in rows
        if row.delivery_status != DeliveryStatus.QUEUED
    ]


def _window_title(row: Message) -> str:
    if row.error_code is None:
        return WINDOW_ERROR_TITLE
    last = f"error {row.error_code}: {row.error_title}"
    return f"{WINDOW_ERROR_TITLE} (after {row.attempts} failed attempts; the last: {last})"


STATE_COLUMNS = ("id", "last_inbound_at", "opted_out_at", "marketing_opted_out_at")


async def _states(customers: list[int]) -> dict[int, CustomerState]:
    """What the claim reads of its customers (consent.py), hand-written (bot/db/rows.py), not a
    values_list Tortoise builds per claim; a row written without its customer has none."""
    ids = [key for key in customers if key > 0]
    if not ids:
        return {}
    found = await db_rows.select(Customer, f'"id" IN ({marks(len(ids))})', ids, STATE_COLUMNS)
    return {
        customer.id: CustomerState(
            customer.last_inbound_at, customer.opted_out_at, customer.marketing_opted_out_at
        )
        for customer in found
    }


def _lease(claimed: list[int], until: datetime, writes: Writes) -> None:
    """The claimed rows are this sender's until `until` (leases.py renews it while they are held): one
    parameterised UPDATE, as the QuerySet's `.update()` wrote it, without building it per claim."""
    if claimed:
        writes.execute(
            f'UPDATE "message" SET "next_attempt_at" = ? WHERE "id" IN ({marks(len(claimed))})',
            [until, *claimed],
        )
