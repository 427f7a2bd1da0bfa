"""How a worker claims rows so that nothing is handled twice: one small interface, two backends.

This is the one place that knows which database it runs on; `claims_for(url)` picks the backend once,
and everything else (inbox, outbox, reminders, the handoff desk, start-up) asks the interface.

SQLite serves one process: its transactions are already exclusive, so claiming is a plain ordered read
and holding a row needs nothing. PostgreSQL may serve several processes on one database: inbound rows,
outbound rows, timers and reminders are taken with `FOR UPDATE SKIP LOCKED`, a conversation is held
with a transaction-scoped advisory lock, and a conversation with an earlier message still unhandled
elsewhere is left for the worker that holds it, so each conversation's messages are processed one at a
time and in order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from tortoise import connections
from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from bot.db import rows, sql
from bot.db.buckets import DatabaseBuckets
from bot.db.models import (
    Appointment,
    AppointmentReminder,
    Conversation,
    ConversationTimer,
    DeliveryStatus,
    Direction,
    Message,
    ReminderStatus,
)

NOT_SENT = ("message_content", "file_name")
"""The encrypted columns of an outbound row the sender never reads (what it sends is the payload): not
read at the claim, so not decrypted per row; its results write other columns (RESULT_FIELDS)."""


def sent_columns() -> tuple[str, ...]:
    """The columns the claim reads of a due row: all of Message's but NOT_SENT."""
    return rows.columns_of(Message, *NOT_SENT)


@dataclass(frozen=True, slots=True)
class DueRow:
    """A due outbound row as read, not yet a Message: the claim picks its rows by these three values,
    and only the rows it keeps pay for a Message (`due_messages`: datetimes parsed, encrypted columns
    opened). A claim reads a few rows per free sender, and most of them are left for the next claim."""

    id: int
    customer_id: int | None
    address: str
    values: Sequence[Any]
    """The columns of `sent_columns()`, in that order, as the driver returned them."""
    behind: bool = False
    """An earlier queued row of its customer is not due: this one waits behind it (`_FIRST_WAITING`)."""


def due_messages(due: Sequence[DueRow]) -> list[Message]:
    """The rows as Messages, built as Tortoise's reads build them (bot/db/rows.py): partial, as
    `.only()` makes them, without NOT_SENT, so only what was read can be written back."""
    dialect = sql.connection().capabilities.dialect
    return rows.hydrate(Message, [row.values for row in due], sent_columns(), dialect)


class _Sender(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def customer_id(self) -> int | None: ...
    @property
    def address(self) -> str: ...


R = TypeVar("R", bound=_Sender)


class Claims(ABC):
    one_process: bool
    """True when one process has the database to itself (SQLite): whatever was claimed when it starts
    was claimed by a process that has died, so its outbox leases are released at once."""
    buckets: DatabaseBuckets | None
    """The throughput buckets processes share (PostgreSQL); None: one process, which paces in memory."""

    @abstractmethod
    async def pending_inbound(self, limit: int) -> list[Message]:
        """Unhandled inbound rows this worker may process now, oldest first. Call inside a transaction."""

    async def read_pending_inbound(self, limit: int) -> list[Message] | None:
        """Before the batch's transaction, outside any: the rows it will take, read with no lock held
        (inside it, `still_pending` keeps those still pending). None: `pending_inbound` reads them
        inside the transaction (where reading them claims them)."""
        return None

    async def still_pending(self, read: Sequence[Message]) -> list[Message]:
        """Of the rows `read_pending_inbound` read, those still pending now (one read of their ids).
        Call inside a transaction."""
        if not read:
            return []
        ids = [row.id for row in read]
        found = await sql.fetch_rows(
            f'SELECT "id" FROM "message" WHERE "delivery_status" = ? AND "id" IN ({sql.marks(len(ids))})',
            [DeliveryStatus.PENDING.value, *ids],
        )
        pending = {row_id for (row_id,) in found}
        return [row for row in read if row.id in pending]

    @abstractmethod
    async def inbound_row(self, row_id: int) -> Message | None:
        """This inbound row, if it is pending, the earliest pending one of its customer, and this worker
        may process it now (else None). For one row handled alone. Call inside a transaction."""

    @abstractmethod
    async def due_outbound(self, now: datetime, limit: int, skip_customers: Sequence[int]) -> list[DueRow]:
        """Queued outbound rows due by `now`, oldest first, but those of `skip_customers`, each noted
        `behind` when an earlier row of its customer waits (the claim leaves it). Call inside a
        transaction."""

    @abstractmethod
    async def due_timers(self, now: datetime, limit: int) -> list[ConversationTimer]:
        """Timers due by `now` whose conversation this worker may move now. Call inside a transaction."""

    @abstractmethod
    async def due_reminders(self, now: datetime, limit: int) -> list[AppointmentReminder]:
        """Pending appointment reminders due by `now`, soonest first, that no other worker holds. Call
        inside a transaction."""

    @abstractmethod
    async def reminder_appointments(self, ids: Sequence[int]) -> dict[int, Appointment]:
        """The appointments of claimed reminders, by id; one being changed right now (locked) is left out
        for the next round, so a reminder never goes out for a change it has not seen, and no lock order
        can deadlock. Call inside a transaction."""

    @abstractmethod
    async def lock_conversation(self, conversation_id: int) -> None:
        """Hold the conversation's row until the transaction ends (opening a handoff: at most one open
        per conversation). Call inside a transaction."""

    @abstractmethod
    async def lock_sends(self, customers: Sequence[int], messaging_limit: bool) -> None:
        """Wait for and hold, until the transaction ends, the send limits' count of these customers
        (and of Meta's messaging limit): two claims count one after the other (bot/costs/guard.py).
        Call inside a transaction."""


def _due_timers(now: datetime) -> QuerySet[ConversationTimer]:
    return ConversationTimer.filter(due_at__lte=now).order_by("due_at", "id")


def _pending_inbound() -> QuerySet[Message]:
    return Message.filter(
        message_direction=Direction.INBOUND, delivery_status=DeliveryStatus.PENDING
    ).order_by("id")


_PENDING_INBOUND = '"message_direction" = ? AND "delivery_status" = ? ORDER BY "id" LIMIT ?'
"""`_pending_inbound()`'s rows, oldest first, hand-written (bot/db/rows.py): the inbox reads them every
batch, and building the query and its rows through the ORM cost more than the read."""


async def _pending_inbound_rows(limit: int, *, lock: bool = False) -> list[Message]:
    """Up to `limit` pending inbound rows, whole; `lock`: FOR UPDATE SKIP LOCKED (PostgreSQL)."""
    where = f"{_PENDING_INBOUND} FOR UPDATE SKIP LOCKED" if lock else _PENDING_INBOUND
    return await rows.select(Message, where, [Direction.INBOUND.value, DeliveryStatus.PENDING.value, limit])


def _due_reminders(now: datetime) -> QuerySet[AppointmentReminder]:
    return AppointmentReminder.filter(status=ReminderStatus.PENDING, send_after__lte=now).order_by(
        "send_after", "id"
    )


_FIRST_WAITING = (
    "waiting AS (SELECT customer_id, MIN(id) AS first_id FROM message WHERE message_direction = ?"
    " AND delivery_status = ? AND next_attempt_at > ? AND customer_id IN (SELECT customer_id FROM due)"
    " GROUP BY customer_id)"
)
"""Each due row's customer's first queued row that is not due (waiting for a retry, or claimed by a
sender). A due row after it is `behind`: each customer's messages go out in order, so it waits."""


async def _due_outbound(
    now: datetime, limit: int, skip_customers: Sequence[int], locking: str = ""
) -> list[DueRow]:
    """One hand-written select instead of one Tortoise builds per claim; its rows stay as the driver
    returned them (`DueRow`). `locking` ends the read of the due rows (PostgreSQL's FOR UPDATE).

    The same statement says of each row it read whether it is `behind` (`_FIRST_WAITING`; that was a
    second query per claim): from the queued rows only, grouped per customer. Asked per due row instead,
    PostgreSQL probed before the LIMIT (every queued row, so a backlog slowed every claim) and SQLite
    walked each customer's whole history (9.6 ms a claim at 78,000 messages; this way 0.7 ms)."""
    columns = sent_columns()
    skip = f" AND customer_id NOT IN ({sql.marks(len(skip_customers))})" if skip_customers else ""
    queued = [Direction.OUTBOUND.value, DeliveryStatus.QUEUED.value]
    found = await sql.fetch_rows(
        f"WITH due AS (SELECT {rows.listed(columns)} FROM message WHERE message_direction = ?"
        f" AND delivery_status = ? AND next_attempt_at <= ?{skip} ORDER BY id LIMIT ?{locking}),"
        f" {_FIRST_WAITING} SELECT due.*, waiting.first_id IS NOT NULL AND waiting.first_id < due.id"
        " FROM due LEFT JOIN waiting ON waiting.customer_id = due.customer_id ORDER BY due.id",
        [*queued, now, *skip_customers, limit, *queued, now],
    )
    at = columns.index("id"), columns.index("customer_id"), columns.index("address")
    width = len(columns)
    return [DueRow(row[at[0]], row[at[1]], row[at[2]], row[:width], bool(row[width])) for row in found]


def _sender(row: _Sender) -> int | str:
    """Whose turn a row waits for: its customer's (its address's, for a row written without one)."""
    return row.customer_id if row.customer_id is not None else row.address


def _queued_outbound() -> QuerySet[Message]:
    return Message.filter(message_direction=Direction.OUTBOUND, delivery_status=DeliveryStatus.QUEUED)


async def _leading(rows: list[R], waiting: QuerySet[Message]) -> list[R]:
    """Of each customer's claimed rows (oldest first), those that overtake none of theirs in `waiting`:
    a customer's rows are kept up to the first gap, where an earlier row of theirs is not among them
    (another process holds it: SKIP LOCKED passed it by; it waits for a lease or a retry). So a
    customer's messages are taken in order even while several processes claim at once. A row written
    without its customer (tools, tests) is its address's."""
    if not rows:
        return rows
    last: dict[int | str, int] = {}
    for row in rows:
        last[_sender(row)] = row.id
    earlier: dict[int | str, list[int]] = {key: [] for key in last}
    ids = [key for key in last if isinstance(key, int)]
    addresses = [key for key in last if isinstance(key, str)]
    mine = (
        Q(customer_id__in=ids) | Q(customer_id=None, address__in=addresses)
        if addresses
        else Q(customer_id__in=ids)
    )
    found = await (
        waiting.filter(mine, id__lte=max(last.values()))
        .order_by("id")
        .values_list("customer_id", "address", "id")
    )
    for customer_id, address, row_id in found:
        key = customer_id if customer_id is not None else address
        if key in last and row_id <= last[key]:
            earlier[key].append(row_id)
    kept, taken, broken = [], dict.fromkeys(last, 0), set()
    for row in rows:
        key = _sender(row)
        if key in broken:
            continue
        ids_before = earlier[key]
        if taken[key] < len(ids_before) and ids_before[taken[key]] == row.id:
            kept.append(row)
            taken[key] += 1
        else:
            broken.add(key)
    return kept


async def _earliest_pending(row: Message | None) -> Message | None:
    if row is None:
        return None
    sender = {"customer_id": row.customer_id} if row.customer_id is not None else {"address": row.address}
    earlier = _pending_inbound().filter(
        **sender, id__lt=row.id
    )  # a row written without its customer: by address
    return None if await earlier.exists() else row


class SqliteClaims(Claims):
    """One process per SQLite file, whose write transactions are exclusive: plain reads."""

    one_process = True
    buckets = None

    def __init__(self, *, shared_file: bool = False) -> None:
        self.shared_file = shared_file
        """Other processes write the file too (`bot serve --workers N`): `read_pending_inbound` reads."""

    async def pending_inbound(self, limit: int) -> list[Message]:
        return await _pending_inbound_rows(limit)

    async def read_pending_inbound(self, limit: int) -> list[Message] | None:
        """With other processes on the file, read before the write lock is taken: only this process
        handles inbound rows (the file's one worker process), so what is pending now stays so but for
        an erasure, which the transaction checks for (`still_pending`). Reading and opening them was
        much of what the batch did while it held the lock that the HTTP processes' commits wait for.
        In one process there is nobody to let in meanwhile, and it measured slower (2026-12-08, one
        process at 500 msg/s, two rounds: e2e p99 354 and 193 ms without it, 487 and 728 with it)."""
        return await _pending_inbound_rows(limit) if self.shared_file else None

    async def inbound_row(self, row_id: int) -> Message | None:
        return await _earliest_pending(await _pending_inbound().filter(id=row_id).first())

    async def due_outbound(self, now: datetime, limit: int, skip_customers: Sequence[int]) -> list[DueRow]:
        return await _due_outbound(now, limit, skip_customers)

    async def due_timers(self, now: datetime, limit: int) -> list[ConversationTimer]:
        return await _due_timers(now).limit(limit)

    async def due_reminders(self, now: datetime, limit: int) -> list[AppointmentReminder]:
        return await _due_reminders(now).limit(limit)

    async def reminder_appointments(self, ids: Sequence[int]) -> dict[int, Appointment]:
        return {a.id: a for a in await Appointment.filter(id__in=list(ids))}

    async def lock_conversation(self, conversation_id: int) -> None:
        """Nothing to do: the transaction is the only writer."""

    async def lock_sends(self, customers: Sequence[int], messaging_limit: bool) -> None:
        """Nothing to do: the transaction is the only writer."""


class PostgresClaims(Claims):
    """Several processes on one database: rows another worker holds are skipped, never waited for."""

    one_process = False

    def __init__(self) -> None:
        self.buckets = DatabaseBuckets()

    async def pending_inbound(self, limit: int) -> list[Message]:
        claimed = await _pending_inbound_rows(limit, lock=True)
        claimed = await _leading(claimed, _pending_inbound())
        held = await _hold_conversations(list(dict.fromkeys(_sender(row) for row in claimed)))
        return [row for row in claimed if _sender(row) in held]  # the others: a timer moves them

    async def inbound_row(self, row_id: int) -> Message | None:
        row = await _pending_inbound().filter(id=row_id).select_for_update(skip_locked=True).first()
        row = await _earliest_pending(row)
        if row is None or not await _hold_conversations([_sender(row)]):
            return None
        return row

    async def due_outbound(self, now: datetime, limit: int, skip_customers: Sequence[int]) -> list[DueRow]:
        """Only a customer's rows that nothing of theirs queued earlier waits before (claimed by another
        process, being claimed there right now, or waiting for a retry): see `_leading`."""
        rows = await _due_outbound(now, limit, skip_customers, " FOR UPDATE SKIP LOCKED")
        return await _leading(rows, _queued_outbound())

    async def due_timers(self, now: datetime, limit: int) -> list[ConversationTimer]:
        timers = await _due_timers(now).limit(limit).select_for_update(skip_locked=True)
        if not timers:
            return []
        customers = dict(
            await Conversation.filter(id__in=[t.conversation_id for t in timers]).values_list(
                "id", "customer_id"
            )
        )
        held = await _hold_conversations(list(customers.values()))
        return [t for t in timers if customers.get(t.conversation_id) in held]

    async def due_reminders(self, now: datetime, limit: int) -> list[AppointmentReminder]:
        return await _due_reminders(now).limit(limit).select_for_update(skip_locked=True)

    async def reminder_appointments(self, ids: Sequence[int]) -> dict[int, Appointment]:
        locked = await Appointment.filter(id__in=list(ids)).select_for_update(skip_locked=True)
        return {a.id: a for a in locked}

    async def lock_conversation(self, conversation_id: int) -> None:
        """Waits for a transaction that holds it (a handoff opening there): never two open ones. A query
        set, not values_list(), which Tortoise builds without the FOR UPDATE."""
        await Conversation.filter(id=conversation_id).select_for_update().only("id")

    async def lock_sends(self, customers: Sequence[int], messaging_limit: bool) -> None:
        """Advisory locks, waited for in one order (customers ascending, then the limit's): no deadlock."""
        connection = connections.get("default")
        if customers:
            await connection.execute_query(_SEND_LOCKS, [sorted(customers)])
        if messaging_limit:
            await connection.execute_query(_LIMIT_LOCK)


async def _hold_conversations(customers: Sequence[Any]) -> set[Any]:
    """Transaction-scoped advisory locks, one per customer (or address, for a row written without its
    customer): one worker moves a conversation at a time (inbox or timer)."""
    by_key = {str(customer): customer for customer in customers}
    return {by_key[key] for key in await _hold(list(by_key), "conversation")}


_TRY_LOCKS = "SELECT k FROM unnest($1::text[]) AS k WHERE pg_try_advisory_xact_lock(hashtext($2 || ':' || k))"
"""Every lock a claim wants, tried in one statement (one round trip, not one per key)."""


async def _hold(keys: Sequence[str], kind: str) -> set[str]:
    """The keys whose `kind` advisory lock this transaction now holds (others hold the rest)."""
    if not keys:
        return set()
    _, rows = await connections.get("default").execute_query(_TRY_LOCKS, [list(keys), kind])
    return {row["k"] for row in rows}


_SEND_LOCKS = (
    "SELECT pg_advisory_xact_lock(hashtext('send:' || c::text)) FROM unnest($1::int[]) AS c ORDER BY c"
)
_LIMIT_LOCK = "SELECT pg_advisory_xact_lock(hashtext('messaging_limit'))"


def claims_for(database_url: str, *, shared_file: bool = False) -> Claims:
    """The backend for this database URL: chosen once, where the pipeline is assembled. `shared_file`:
    a SQLite file other processes of `bot serve --workers N` write too."""
    if database_url.startswith("sqlite://"):
        return SqliteClaims(shared_file=shared_file)
    return PostgresClaims()
