"""The outbox sender against a Graph API faked at the HTTP boundary, on SQLite and PostgreSQL.

The worker is built as bot/app.py builds it: a real database, a WhatsAppClient over HttpTransport and a
Pacer, sending to tests/scripted_graph.py (a real aiohttp server that answers each recipient from a
script, or fails at random). Time is a fake clock shared by the worker and the pacer: the tests never
sleep through a backoff, they move the clock to the retry time the row holds and run the worker again.
Where the database itself must refuse a write, a trigger does it: the real failure, not a mock.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from tortoise import connections
from tortoise.transactions import in_transaction

from bot.app import create_app
from bot.costs.guard import SendLimits
from bot.db import close_db, init_db, sql
from bot.db.claims import Claims, claims_for
from bot.db.models import (
    ConsentAction,
    ConsentScope,
    ConsentSource,
    Customer,
    DeliveryStatus,
    Direction,
    EarlyStatus,
    Message,
    SendAdmission,
)
from bot.db.writes import Writes
from bot.identity import customer_for_phone
from bot.privacy.consent import consent_history, record
from bot.spine.outbox import OutboxConfig, OutboxWorker, outbound_row, write_outbound
from bot.spine.outbox.consent import CategoryOf
from bot.spine.statuses import StatusChange, record_statuses
from bot.whatsapp.client import HttpTransport, WhatsAppClient
from bot.whatsapp.errors import CODE_MARKETING_OPTED_OUT, CODE_OPTED_OUT, CODE_UNSENDABLE
from bot.whatsapp.outbound import Media, OutboundMessage, Template, Text
from bot.whatsapp.pacing import Pacer
from tests.helpers import (
    BENCH,
    GRAPH_TOKEN,
    PHONE_NUMBER_ID,
    POSTGRES_URL,
    AppFactory,
    Clock,
    eventually,
    graph_base,
    graph_sends,
    make_settings,
    payload,
    post_webhook,
    sqlite_trips,
    text_notification,
)
from tests.scripted_graph import ScriptedGraph

ALICE = "15550001001"
BOB = "15550001002"
CAROL = "15550001003"
START = datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=UTC)
GARBAGE = "<html><body><h1>502 Bad Gateway</h1></body></html>"
POSSIBLE_SERVER_ERROR = {  # bench/fake_graph.py's HTTP 500 body: code 1
    "error": {"message": "An unknown error has occurred.", "type": "OAuthException", "code": 1}
}


def error_body(code: int) -> dict[str, Any]:
    """A real-shaped Graph error body from tests/payloads/error_<code>.json."""
    return payload(f"error_{code}.json")


@dataclass
class Outbox:
    worker: OutboxWorker
    clock: Clock
    graph: ScriptedGraph
    client: WhatsAppClient
    claims: Claims
    session: aiohttp.ClientSession
    others: list[OutboxWorker] = field(default_factory=list)

    def another_worker(
        self, timeout: float | None = None, category_of: CategoryOf | None = None, **config: Any
    ) -> OutboxWorker:
        """A second sender on the same database and clock (another process, or other settings); with
        `timeout`, its client gives up on an answer after that many seconds; `category_of`: the
        templates' categories it knows."""
        client = self.client
        if timeout is not None:
            transport = HttpTransport(self.session, self.graph.base_url, GRAPH_TOKEN, timeout=timeout)
            client = WhatsAppClient(transport, PHONE_NUMBER_ID, self.client.pacer)
        worker = OutboxWorker(
            client,
            self.claims,
            OutboxConfig(mark_read=False, **config),
            self.clock,
            category_of=category_of,
        )
        self.others.append(worker)
        return worker

    async def customer(self, phone: str, last_inbound_ago: timedelta = timedelta(minutes=5)) -> None:
        await Customer.create(wa_id=phone, last_inbound_at=self.clock.now - last_inbound_ago)

    async def queue(self, phone: str, message: OutboundMessage | str) -> Message:
        """A queued outbox row, as the inbox writes it."""
        if isinstance(message, str):
            message = Text(body=message)
        row = outbound_row(await customer_for_phone(phone, self.clock.now), message, now=self.clock.now)
        await row.save()
        return row

    async def run(self, worker: OutboxWorker | None = None) -> int:
        """One pass of the sender: claim what is due now, send it, and write the results."""
        worker = worker or self.worker
        started = await worker.dispatch()
        await worker.settle()
        return started

    async def drain(self, worker: OutboxWorker | None = None, rounds: int = 100) -> None:
        """Run the sender until nothing is queued, moving the clock on to the last retry time each time."""
        queued = Message.filter(message_direction=Direction.OUTBOUND, delivery_status=DeliveryStatus.QUEUED)
        for _ in range(rounds):
            while await self.run(worker):
                pass
            waiting = await queued.order_by("-next_attempt_at").first()
            if waiting is None:
                return
            self.clock.jump_to(waiting.next_attempt_at)
        raise AssertionError(f"still queued after {rounds} rounds")


async def reload(row: Message) -> Message:
    return await Message.get(id=row.id)


@pytest.fixture
async def graph() -> AsyncIterator[ScriptedGraph]:
    scripted = ScriptedGraph(token=GRAPH_TOKEN)
    await scripted.start()
    yield scripted
    await scripted.close()


@pytest.fixture
async def outbox(database_url: str, graph: ScriptedGraph) -> AsyncIterator[Outbox]:
    await init_db(database_url)
    try:
        clock = Clock(START)
        async with aiohttp.ClientSession() as session:
            pacer = Pacer(
                messages_per_second=1000,
                pair_interval=6,
                pair_burst=20,
                clock=clock.monotonic,
                sleep=clock.sleep,
            )
            client = WhatsAppClient(
                HttpTransport(session, graph.base_url, GRAPH_TOKEN), PHONE_NUMBER_ID, pacer
            )
            claims = claims_for(database_url)
            worker = OutboxWorker(client, claims, OutboxConfig(mark_read=False), clock=clock)
            outbox = Outbox(worker, clock, graph, client, claims, session)
            yield outbox
            for sender in (worker, *outbox.others):
                await sender.stop()
    finally:
        await close_db()


def failures_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The outbox's ERROR lines about rows that failed for good."""
    return [
        r
        for r in caplog.records
        if r.name.startswith("bot.spine.outbox") and "failed after" in r.getMessage()
    ]


# --- retries are decided by the Graph error code ------------------------------------------------------


async def test_130429_with_http_400_is_retried_at_its_time_then_sent(outbox: Outbox) -> None:
    await outbox.customer(ALICE)
    outbox.graph.script(ALICE, (400, error_body(130429)))
    row = await outbox.queue(ALICE, "Your phone is ready")

    await outbox.run()
    waiting = await reload(row)
    assert waiting.delivery_status == DeliveryStatus.QUEUED  # HTTP 400, yet throttling: kept for a retry
    assert waiting.attempts == 1
    assert waiting.error_code == 130429
    assert waiting.next_attempt_at is not None
    assert timedelta(seconds=1) <= waiting.next_attempt_at - outbox.clock.now <= timedelta(minutes=5)

    await outbox.run()  # no time has passed
    outbox.clock.jump_to(waiting.next_attempt_at - timedelta(milliseconds=1))
    await outbox.run()  # a moment before the retry time
    assert len(outbox.graph.requests) == 1
    assert (await reload(row)).attempts == 1

    outbox.clock.jump_to(waiting.next_attempt_at)
    await outbox.run()
    sent = await reload(row)
    assert sent.delivery_status == DeliveryStatus.SENT
    assert sent.whatsapp_message_id == "wamid.X1"
    assert sent.attempts == 2
    assert sent.sent_at is not None and sent.next_attempt_at is None
    assert sent.error_code is None and sent.error_title is None
    first, second = outbox.graph.requests
    assert (first.status, second.status) == (400, 200)
    assert first.body == second.body  # the same message, not a new one


async def test_5xx_with_a_garbage_body_is_retried_then_sent(outbox: Outbox) -> None:
    await outbox.customer(ALICE)
    outbox.graph.script(ALICE, (502, GARBAGE))
    row = await outbox.queue(ALICE, "Your phone is ready")

    await outbox.run()
    waiting = await reload(row)
    assert waiting.delivery_status == DeliveryStatus.QUEUED
    assert waiting.attempts == 1
    assert waiting.next_attempt_at is not None and waiting.next_attempt_at > outbox.clock.now

    outbox.clock.jump_to(waiting.next_attempt_at)
    await outbox.run()
    sent = await reload(row)
    assert sent.delivery_status == DeliveryStatus.SENT
    assert sent.whatsapp_message_id == "wamid.X1"
    assert sent.attempts == 2
    assert [request.status for request in outbox.graph.requests] == [502, 200]


async def test_131000_is_retried_with_growing_capped_waits_until_the_window_closes_then_failed(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """131000 is transient: no attempt limit, only the customer's window (here an hour left) ends it."""
    caplog.set_level(logging.INFO, logger="bot.spine.outbox")
    await outbox.customer(ALICE, last_inbound_ago=timedelta(hours=23))
    window_closes = START + timedelta(hours=1)
    outbox.graph.script(ALICE, *[(500, error_body(131000))] * 200)
    row = await outbox.queue(ALICE, "Your phone is ready")

    waits: list[timedelta] = []
    for _ in range(200):
        await outbox.run()
        current = await reload(row)
        if current.delivery_status != DeliveryStatus.QUEUED:
            break
        assert current.next_attempt_at is not None
        waits.append(current.next_attempt_at - outbox.clock.now)
        outbox.clock.jump_to(current.next_attempt_at)

    failed = await reload(row)
    assert failed.delivery_status == DeliveryStatus.FAILED
    assert failed.error_code == 131000
    title = error_body(131000)["error"]["message"]
    assert failed.error_title is not None and failed.error_title.startswith(title)
    assert "24-hour window closes" in failed.error_title  # why it stopped, for the panel and the log
    assert failed.failed_at is not None and failed.next_attempt_at is None
    attempts = len(outbox.graph.requests)
    assert attempts > 8  # more than any attempt limit there was: the window is the limit
    assert failed.attempts == attempts
    assert waits[:4] == sorted(waits[:4]) and waits[0] < waits[3]  # exponential backoff
    assert max(waits) <= timedelta(seconds=300 * 1.5)  # capped (with its jitter)
    assert window_closes - timedelta(minutes=8) <= failed.failed_at <= window_closes  # tried to the end

    (logged,) = failures_logged(caplog)
    assert logged.levelno == logging.ERROR
    line = logged.getMessage()
    assert str(row.id) in line and "131000" in line and title in line and "24-hour window" in line
    assert "***1001" in line and ALICE not in line  # the phone masked: its last four digits only

    outbox.clock.advance(days=1)
    await outbox.run()
    assert len(outbox.graph.requests) == attempts


@pytest.mark.parametrize(
    ("code", "http_status", "message"),
    [
        (131026, 400, Text(body="Your phone is ready")),
        (131047, 400, Text(body="Your phone is ready")),
        (132000, 400, Template(name="repair_ready", language="en", body_params=("Alex",))),
    ],
)
async def test_permanent_errors_fail_after_one_attempt_and_are_never_retried(
    outbox: Outbox, code: int, http_status: int, message: OutboundMessage
) -> None:
    await outbox.customer(ALICE)
    body = error_body(code)
    outbox.graph.script(ALICE, (http_status, body))
    row = await outbox.queue(ALICE, message)

    await outbox.run()
    failed = await reload(row)
    assert failed.delivery_status == DeliveryStatus.FAILED
    assert failed.error_code == code
    assert failed.error_title == body["error"]["message"]
    assert failed.attempts == 1
    assert failed.failed_at is not None and failed.next_attempt_at is None
    assert failed.whatsapp_message_id is None

    outbox.clock.advance(days=1)
    await outbox.run()
    assert len(outbox.graph.requests) == 1
    assert (await reload(row)).delivery_status == DeliveryStatus.FAILED


async def test_transient_faults_on_40_percent_of_sends_lose_no_reply(outbox: Outbox) -> None:
    """30% of sends answered 5xx (code 1, 131000, a garbage page) and 10% hanging 2 s, past the client's
    timeout: every reply is sent in the end, in order, and none fails."""
    worker = outbox.another_worker(timeout=0.3, concurrency=128)
    customers = [f"1555000{2000 + n}" for n in range(100)]
    for phone in customers:
        await outbox.customer(phone)
    outbox.graph.faults(
        [(500, POSSIBLE_SERVER_ERROR), (500, error_body(131000)), (503, GARBAGE)],
        fail_rate=0.3,
        hang_rate=0.1,
        hang_seconds=2.0,
        seed=10,
    )
    rows = [await outbox.queue(phone, f"Reply {n} to {phone}") for n in range(2) for phone in customers]

    await outbox.drain(worker)

    stored = await Message.filter(id__in=[row.id for row in rows])
    assert {row.delivery_status for row in stored} == {DeliveryStatus.SENT}
    accepted: dict[str | None, list[str | None]] = {}
    for request in outbox.graph.requests:
        if request.status == 200:
            accepted.setdefault(request.text, []).append(request.wamid)
    # each reply went out, and the row holds the id Meta gave it. (Exactly once, unless a machine this
    # busy made the client give up on an answer Meta had sent: then the retry may duplicate, by design.)
    assert accepted.keys() == {row.message_content for row in stored}
    assert all(row.whatsapp_message_id in accepted[row.message_content] for row in stored)
    failures = [r.status for r in outbox.graph.requests if r.status != 200]
    assert {500, 503, 504} <= set(failures) and len(failures) > len(rows) / 4  # the faults happened
    for phone in customers:  # and each customer's replies arrived in order
        texts = [r.text for r in outbox.graph.sent_to(phone) if r.status == 200]
        assert list(dict.fromkeys(texts)) == [f"Reply {n} to {phone}" for n in range(2)]


async def test_a_template_stops_when_the_configured_horizon_runs_out(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.spine.outbox")
    worker = outbox.another_worker(retry_horizon=timedelta(hours=2))
    await outbox.customer(ALICE, last_inbound_ago=timedelta(days=3))  # templates need no window
    outbox.graph.script(ALICE, *[(503, GARBAGE)] * 500)
    row = await outbox.queue(ALICE, Template(name="repair_ready", language="en", body_params=("Alex",)))

    await outbox.drain(worker)

    failed = await reload(row)
    assert failed.delivery_status == DeliveryStatus.FAILED
    assert failed.error_code == -3 and failed.error_title is not None
    assert failed.error_title.startswith("HTTP 503; gave up after")
    assert "retry horizon (2 h after queueing) ends" in failed.error_title
    assert failed.failed_at is not None and START + timedelta(
        hours=1
    ) < failed.failed_at <= START + timedelta(hours=2)
    assert failed.attempts == len(outbox.graph.requests) > 8
    (logged,) = failures_logged(caplog)
    assert logged.levelno == logging.ERROR and "retry horizon" in logged.getMessage()


async def test_a_row_that_is_not_a_valid_message_fails_with_its_reason_and_holds_up_nobody(
    outbox: Outbox,
) -> None:
    await outbox.customer(ALICE)
    broken = await outbox.queue(ALICE, "soon broken")
    broken.payload = {"kind": "text", "body": ""}  # e.g. an old release's
    await broken.save(update_fields=["payload"])
    after = await outbox.queue(ALICE, "the next reply")

    await outbox.run()
    failed = await reload(broken)
    assert failed.delivery_status == DeliveryStatus.FAILED
    assert failed.error_code == CODE_UNSENDABLE
    assert failed.error_title is not None and failed.error_title.startswith("not a message that can be sent")
    assert (await reload(after)).delivery_status == DeliveryStatus.SENT
    assert [r.text for r in outbox.graph.requests] == ["the next reply"]


async def test_a_claimed_row_sends_its_stored_payload_and_keeps_its_encrypted_columns(outbox: Outbox) -> None:
    """The claim reads rows as the driver returns them and makes Messages only of those it keeps: the
    payload decrypts for its owner (a customer's data key; the master key for a row written without a
    customer), the result is written, and the columns the send never reads stay as they were."""
    await outbox.customer(ALICE)
    document = Media(media_type="document", link="https://example.com/q.pdf", filename="quote-7.pdf")
    mine = await outbox.queue(ALICE, document)
    orphan = Message(
        address=BOB,
        message_direction=Direction.OUTBOUND,
        message_type="template",
        message_content="written without its customer",
        delivery_status=DeliveryStatus.QUEUED,
        payload=notice().model_dump(mode="json"),
        next_attempt_at=outbox.clock.now,
        created_at=outbox.clock.now,
    )
    await orphan.save()

    await outbox.drain()
    sent = {r.to: r.body for r in outbox.graph.requests}
    assert sent[ALICE]["document"] == {"link": "https://example.com/q.pdf", "filename": "quote-7.pdf"}
    assert sent[BOB]["template"]["name"] == notice().name
    for row, content in ((mine, "quote-7.pdf"), (orphan, "written without its customer")):
        stored = await reload(row)
        assert stored.delivery_status == DeliveryStatus.SENT and stored.whatsapp_message_id
        assert stored.attempts == 1 and stored.sent_at is not None and stored.next_attempt_at is None
        assert stored.message_content == content and stored.payload == row.payload
    assert (await reload(mine)).file_name == "quote-7.pdf"


async def test_write_outbound_writes_what_bulk_create_wrote(outbox: Outbox) -> None:
    """The inbox's replies go in as rows of values (queue.write_outbound): every column reads back as
    Message.bulk_create wrote it, the encrypted ones opened for their customer, the rows stamped as it
    stamps them; and the rows are sent."""
    await outbox.customer(ALICE)
    await outbox.customer(BOB)
    alice = await customer_for_phone(ALICE, outbox.clock.now)
    bob = await customer_for_phone(BOB, outbox.clock.now)
    bob.opted_out_at = outbox.clock.now
    document = Media(media_type="document", link="https://example.com/q.pdf", filename="quote-7.pdf")

    def batch() -> list[Message]:
        now = outbox.clock.now
        rows = [
            outbound_row(alice, Text(body="Café ☕ #1"), reply_to="wamid.IN_1", now=now),
            outbound_row(alice, document, order_id=7, now=now),
            outbound_row(bob, notice(), initiated=True, technician_id=3, about_customer_id=alice.id, now=now),
        ]
        rows[0].flow = "welcome"
        return rows

    by_orm, by_values = batch(), batch()
    async with in_transaction():
        await Message.bulk_create(by_orm)
    async with in_transaction():
        writes = Writes()
        await write_outbound(by_values, writes)
        await writes.run(last=True)
    assert all(row.updated_at is not None and row.id is None for row in by_values)
    stored = await Message.filter(message_direction=Direction.OUTBOUND).order_by("id")
    assert len(stored) == 6
    fields = [name for name in Message._meta.fields_db_projection if name not in ("id", "updated_at")]
    assert [[getattr(row, name) for name in fields] for row in stored[:3]] == [
        [getattr(row, name) for name in fields] for row in stored[3:]
    ]
    assert [row.message_content for row in stored[3:]] == [
        "Café ☕ #1",
        "quote-7.pdf",
        notice().log_content(),
    ]
    assert stored[4].file_name == "quote-7.pdf" and stored[4].payload == document.model_dump(mode="json")
    assert stored[5].delivery_status == DeliveryStatus.FAILED and stored[5].error_code == CODE_OPTED_OUT
    assert all(row.updated_at is not None for row in stored)
    ((raw,),) = await sql.fetch_rows('SELECT "payload" FROM "message" WHERE "id" = ?', [stored[4].id])
    assert "quote-7.pdf" not in raw  # sealed at rest

    await outbox.drain()
    assert [r.text for r in outbox.graph.requests if r.to == ALICE].count("Café ☕ #1") == 2


async def test_a_send_neither_opens_nor_writes_the_content_and_the_file_name(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """The claim leaves out the columns a send never reads (bot/db/claims.NOT_SENT): a row whose stored
    content cannot be opened (another customer's ciphertext copied into it) still goes, no decryption
    error is logged, and both columns keep the ciphertext they held."""
    await outbox.customer(ALICE)
    await outbox.customer(BOB)
    document = Media(media_type="document", link="https://example.com/q.pdf", filename="quote-7.pdf")
    mine = await outbox.queue(ALICE, document)
    theirs = await outbox.queue(BOB, "for Bob")
    stored = 'SELECT "message_content", "file_name" FROM "message" WHERE "id" = ?'
    ((bobs_content, _),) = await sql.fetch_rows(stored, [theirs.id])
    await sql.execute('UPDATE "message" SET "message_content" = ? WHERE "id" = ?', [bobs_content, mine.id])
    ((content, file_name),) = await sql.fetch_rows(stored, [mine.id])

    with caplog.at_level(logging.ERROR, logger="bot.db.encrypted"):
        await outbox.drain()
    assert not [r for r in caplog.records if r.name == "bot.db.encrypted"]
    assert {r.to for r in outbox.graph.requests} == {ALICE, BOB}
    assert (await reload(mine)).delivery_status == DeliveryStatus.SENT
    assert [tuple(row) for row in await sql.fetch_rows(stored, [mine.id])] == [(content, file_name)]
    assert (await reload(mine)).file_name == "quote-7.pdf"


# --- account-wide errors pause everything ------------------------------------------------------------


async def test_an_expired_token_pauses_the_whole_outbox_until_a_probe_succeeds(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.spine.outbox")
    for phone in (ALICE, BOB, CAROL):
        await outbox.customer(phone)
    rows = [
        await outbox.queue(ALICE, "first"),
        await outbox.queue(ALICE, "second"),
        await outbox.queue(BOB, "for Bob"),
        await outbox.queue(CAROL, "for Carol"),
    ]
    outbox.graph.expire_token()

    await outbox.run()  # three customers' first messages were in flight together: all refused
    assert sorted(r.to for r in outbox.graph.requests) == [ALICE, BOB, CAROL]
    waiting = [await reload(row) for row in rows]
    assert {row.delivery_status for row in waiting} == {DeliveryStatus.QUEUED}  # none failed
    assert [row.error_code for row in waiting] == [190, None, 190, 190]
    assert [row.attempts for row in waiting] == [1, 0, 1, 1]  # "second" was never tried
    paused_until = waiting[0].next_attempt_at
    assert paused_until is not None and paused_until > outbox.clock.now
    paused = [r for r in caplog.records if "outbox paused" in r.getMessage()]
    assert [r.levelno for r in paused] == [logging.ERROR]  # once, however many rows were refused

    outbox.clock.jump_to(paused_until - timedelta(milliseconds=1))
    await outbox.run()
    assert len(outbox.graph.requests) == 3  # nothing is claimed during the pause

    outbox.clock.jump_to(paused_until)
    await outbox.run()  # one probe: one customer, still refused; the pause grows
    assert len(outbox.graph.requests) == 4
    probed = await reload(rows[0])
    assert probed.delivery_status == DeliveryStatus.QUEUED and probed.next_attempt_at is not None
    assert probed.next_attempt_at - outbox.clock.now > paused_until - START
    assert len([r for r in caplog.records if "outbox paused" in r.getMessage()]) == 1

    outbox.graph.renew_token()
    outbox.clock.jump_to(probed.next_attempt_at)
    assert await outbox.run() == 1  # the probe succeeds: Alice's messages, in order
    await outbox.run()  # and everyone else at full speed
    sent = [await reload(row) for row in rows]
    assert [row.delivery_status for row in sent] == [DeliveryStatus.SENT] * 4
    assert [row.attempts for row in sent] == [3, 1, 2, 2]
    assert [r.text for r in outbox.graph.requests if r.status == 200][:2] == ["first", "second"]
    assert any("outbox resumed" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert not failures_logged(caplog)


async def test_130429_pauses_every_customer_not_only_the_throttled_one(outbox: Outbox) -> None:
    """The throughput limit is the business number's: Bob's send would be refused the same way. (131056,
    the pair rate limit, holds only its recipient: test_pair_rate_limit_holds_only_that_recipient.)"""
    await outbox.customer(ALICE)
    await outbox.customer(BOB)
    outbox.graph.script(ALICE, (400, error_body(130429)))
    throttled = await outbox.queue(ALICE, "For Alice")
    await outbox.run()
    waiting = await reload(throttled)
    assert waiting.delivery_status == DeliveryStatus.QUEUED and waiting.next_attempt_at is not None

    other = await outbox.queue(BOB, "For Bob")
    await outbox.run()
    assert [(r.to, r.status) for r in outbox.graph.requests] == [(ALICE, 400)]  # Bob waits too

    outbox.clock.jump_to(waiting.next_attempt_at)
    await outbox.run()
    await outbox.run()
    assert (await reload(throttled)).delivery_status == DeliveryStatus.SENT
    assert (await reload(other)).delivery_status == DeliveryStatus.SENT
    assert [(r.to, r.status) for r in outbox.graph.requests] == [(ALICE, 400), (ALICE, 200), (BOB, 200)]


# --- per recipient: holds and order -------------------------------------------------------------------


async def test_pair_rate_limit_holds_only_that_recipient(outbox: Outbox) -> None:
    await outbox.customer(ALICE)
    await outbox.customer(BOB)
    outbox.graph.script(ALICE, (400, error_body(131056)))
    held = await outbox.queue(ALICE, "For Alice")

    await outbox.run()
    waiting = await reload(held)
    assert waiting.delivery_status == DeliveryStatus.QUEUED
    assert waiting.error_code == 131056
    assert waiting.next_attempt_at is not None and waiting.next_attempt_at > outbox.clock.now

    other = await outbox.queue(BOB, "For Bob")
    await outbox.run()  # the clock has not moved
    assert (await reload(other)).delivery_status == DeliveryStatus.SENT
    assert [(r.to, r.status) for r in outbox.graph.requests] == [(ALICE, 400), (BOB, 200)]
    assert (await reload(held)).delivery_status == DeliveryStatus.QUEUED

    outbox.clock.jump_to(waiting.next_attempt_at)
    await outbox.run()
    sent = await reload(held)
    assert sent.delivery_status == DeliveryStatus.SENT
    assert sent.attempts == 2
    assert [(r.to, r.status) for r in outbox.graph.requests][-1] == (ALICE, 200)


async def test_a_customers_messages_wait_behind_a_retrying_one_and_arrive_in_order(outbox: Outbox) -> None:
    await outbox.customer(ALICE)
    outbox.graph.script(ALICE, (429, error_body(130429)))
    rows = [await outbox.queue(ALICE, text) for text in ("first", "second", "third")]

    await outbox.run()
    first, *later = [await reload(row) for row in rows]
    assert first.delivery_status == DeliveryStatus.QUEUED and first.attempts == 1
    assert first.next_attempt_at is not None
    for row in later:
        assert row.delivery_status == DeliveryStatus.QUEUED and row.attempts == 0
        assert row.next_attempt_at is not None and row.next_attempt_at >= first.next_attempt_at
    assert [r.text for r in outbox.graph.requests] == ["first"]

    outbox.clock.jump_to(first.next_attempt_at - timedelta(milliseconds=1))
    await outbox.run()
    assert [r.text for r in outbox.graph.requests] == ["first"]

    outbox.clock.jump_to(first.next_attempt_at)
    await outbox.run()
    assert [(r.text, r.status) for r in outbox.graph.requests] == [
        ("first", 429),
        ("first", 200),
        ("second", 200),
        ("third", 200),
    ]
    sent = [await reload(row) for row in rows]
    assert [row.delivery_status for row in sent] == [DeliveryStatus.SENT] * 3
    assert [row.whatsapp_message_id for row in sent] == ["wamid.X1", "wamid.X2", "wamid.X3"]


async def test_a_message_queued_after_a_retryable_failure_still_waits_behind_it(outbox: Outbox) -> None:
    await outbox.customer(ALICE)
    outbox.graph.script(ALICE, (429, error_body(130429)))
    first = await outbox.queue(ALICE, "first")
    await outbox.run()
    assert (await reload(first)).delivery_status == DeliveryStatus.QUEUED

    await outbox.queue(ALICE, "second")  # e.g. the customer wrote again and the bot answered
    await outbox.run()
    assert [r.text for r in outbox.graph.requests] == ["first"]  # "second" waits for "first"


# --- the 24-hour customer service window --------------------------------------------------------------


async def test_free_form_outside_the_24_hour_window_is_refused_before_any_request(outbox: Outbox) -> None:
    await outbox.customer(ALICE, last_inbound_ago=timedelta(hours=25))
    await outbox.customer(BOB, last_inbound_ago=timedelta(hours=23))
    late_text = await outbox.queue(ALICE, "Your phone is ready")
    never_wrote = await outbox.queue("15550009999", "Hello stranger")
    template = await outbox.queue(ALICE, Template(name="repair_ready", language="en", body_params=("Alex",)))
    in_window = await outbox.queue(BOB, "Your phone is ready")

    await outbox.run()
    for row in (late_text, never_wrote):
        refused = await reload(row)
        assert refused.delivery_status == DeliveryStatus.FAILED
        assert refused.error_code == 131047
        assert refused.error_title is not None and "24-hour" in refused.error_title
        assert refused.attempts == 0 and refused.failed_at is not None
    assert (await reload(template)).delivery_status == DeliveryStatus.SENT
    assert (await reload(in_window)).delivery_status == DeliveryStatus.SENT
    assert sorted((r.to, r.body["type"]) for r in outbox.graph.requests) == [
        (ALICE, "template"),
        (BOB, "text"),
    ]


# --- consent: opted-out customers get no template the shop starts ---------------------------------------


def offer() -> Template:
    return Template(name="spring_offer", language="en", body_params=("Alex",))


def notice() -> Template:
    return Template(name="repair_ready", language="en", body_params=("Alex",))


def categories(name: str) -> str | None:
    return {"spring_offer": "marketing", "repair_ready": "utility"}.get(name)


async def opt_out(phone: str, scope: ConsentScope, at: datetime) -> None:
    customer = await Customer.get(wa_id=phone)
    await record(customer, scope, ConsentAction.OPT_OUT, ConsentSource.KEYWORD, at)


async def test_templates_the_shop_starts_are_refused_to_opted_out_customers_and_replies_still_go(
    outbox: Outbox,
) -> None:
    worker = outbox.another_worker(category_of=categories)
    await outbox.customer(ALICE, last_inbound_ago=timedelta(days=3))  # STOP, window closed
    await outbox.customer(BOB, last_inbound_ago=timedelta(minutes=5))  # STOP, talking to the shop now
    await outbox.customer(CAROL, last_inbound_ago=timedelta(days=3))  # stopped marketing only
    await opt_out(ALICE, ConsentScope.ALL, outbox.clock.now)
    await opt_out(BOB, ConsentScope.ALL, outbox.clock.now)
    await opt_out(CAROL, ConsentScope.MARKETING, outbox.clock.now)
    started = await outbox.queue(ALICE, notice())
    offer_to_talking = await outbox.queue(BOB, offer())
    reply = await outbox.queue(BOB, "Your phone is ready")
    in_open_chat = await outbox.queue(BOB, notice())
    marketing = await outbox.queue(CAROL, offer())
    utility = await outbox.queue(CAROL, notice())

    await outbox.run(worker)
    for row, code, words in (
        (started, CODE_OPTED_OUT, "opted out (STOP)"),
        (offer_to_talking, CODE_OPTED_OUT, "opted out (STOP)"),
        (marketing, CODE_MARKETING_OPTED_OUT, "stopped marketing messages"),
    ):
        refused = await reload(row)
        assert refused.delivery_status == DeliveryStatus.FAILED and refused.error_code == code
        assert refused.error_title is not None and words in refused.error_title
        assert refused.attempts == 0 and refused.failed_at is not None and refused.next_attempt_at is None
    for row in (reply, in_open_chat, utility):
        assert (await reload(row)).delivery_status == DeliveryStatus.SENT
    assert sorted((r.to, r.body["type"]) for r in outbox.graph.requests) == [
        (BOB, "template"),
        (BOB, "text"),
        (CAROL, "template"),
    ]


async def test_131050_fails_the_send_and_records_a_marketing_opt_out_once(outbox: Outbox) -> None:
    await outbox.customer(ALICE, last_inbound_ago=timedelta(days=3))
    body = error_body(131050)
    outbox.graph.script(ALICE, (400, body), (400, body))
    first, second = await outbox.queue(ALICE, notice()), await outbox.queue(ALICE, notice())

    await outbox.run()
    for row in (first, second):
        failed = await reload(row)
        assert failed.delivery_status == DeliveryStatus.FAILED and failed.error_code == 131050
        assert failed.error_title == body["error"]["message"] and failed.attempts == 1
    customer = await Customer.get(wa_id=ALICE)
    assert customer.marketing_opted_out_at == outbox.clock.now and customer.opted_out_at is None
    assert [
        (h["scope"], h["action"], h["source"], h["detail"]) for h in await consent_history(customer.id)
    ] == [("marketing", "opt_out", "error_131050", f"message {first.id}")]

    # Meta's status webhook says the same of a template it accepted first: still one opt-out
    sent = await outbox.queue(ALICE, notice())
    await outbox.run()
    wamid = (await reload(sent)).whatsapp_message_id
    assert wamid is not None
    async with in_transaction():
        await record_statuses([StatusChange(wamid, "failed", outbox.clock.now, error_code=131050)])
    assert (await reload(sent)).delivery_status == DeliveryStatus.FAILED
    assert len(await consent_history(customer.id)) == 1


async def test_131050_in_a_status_webhook_records_the_marketing_opt_out(outbox: Outbox) -> None:
    await outbox.customer(BOB, last_inbound_ago=timedelta(days=3))
    row = await outbox.queue(BOB, notice())
    await outbox.run()
    wamid = (await reload(row)).whatsapp_message_id
    assert wamid is not None
    failed_at = outbox.clock.now + timedelta(seconds=2)
    async with in_transaction():
        await record_statuses([StatusChange(wamid, "failed", failed_at, error_code=131050, error_title="x")])
    customer = await Customer.get(wa_id=BOB)
    assert customer.marketing_opted_out_at == failed_at
    [entry] = await consent_history(customer.id)
    assert (entry["source"], entry["detail"]) == ("error_131050", wamid)


# --- statuses and crash recovery ----------------------------------------------------------------------


async def test_a_status_that_arrived_before_the_send_was_recorded_is_applied(outbox: Outbox) -> None:
    await outbox.customer(ALICE)
    delivered_at = outbox.clock.now + timedelta(seconds=1)
    async with in_transaction():
        changed = await record_statuses([StatusChange("wamid.X1", "delivered", delivered_at)])
    assert changed == []
    assert await EarlyStatus.all().count() == 1
    row = await outbox.queue(ALICE, "Your phone is ready")

    await outbox.run()
    done = await reload(row)
    assert done.whatsapp_message_id == "wamid.X1"
    assert done.delivery_status == DeliveryStatus.DELIVERED
    assert done.delivered_at == delivered_at
    assert done.sent_at is not None
    assert await EarlyStatus.all().count() == 0


async def test_on_sqlite_a_claim_and_a_results_write_commit_with_their_writes_in_one_trip(
    outbox: Outbox, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each trip to SQLite's thread waits for a turn of the busy event loop while the one connection is
    held: a claim reads what is due (the rows behind a waiting one noted in the same statement), the
    customers and the send limits' counts, then writes the lease and the admissions with its COMMIT;
    a results write reads the parked statuses, then writes the results with its COMMIT."""
    if not database_url.startswith("sqlite"):
        pytest.skip("trips to SQLite's thread")
    settings = make_settings(tmp_path, database_url)
    limits = SendLimits(settings, outbox.claims, lambda name: None)
    worker = OutboxWorker(
        outbox.client, outbox.claims, OutboxConfig(mark_read=False), outbox.clock, limits=limits
    )
    await outbox.customer(ALICE)
    await outbox.customer(BOB)
    first = await outbox.queue(ALICE, "Your phone is ready")
    await outbox.queue(BOB, "We open at ten")
    async with sqlite_trips(monkeypatch) as trips:
        assert await worker.dispatch() == 2
        claim = list(trips)
        trips.clear()
        await worker.settle()
        results = [trip for trip in trips if trip]
    # the lease, an admission per row (one executemany), the COMMIT
    writes = ["UPDATE", "INSERT", "INSERT", "COMMIT"]
    # the due rows (WITH: which wait behind another, in the same statement), the customers, the limits'
    # two counts, then the writes with the COMMIT
    assert claim == [["BEGIN", "WITH"], ["SELECT"], ["SELECT"], ["SELECT"], writes]
    assert results == [["BEGIN", "SELECT"], ["UPDATE", "UPDATE", "COMMIT"]]  # a row each, the COMMIT
    sent = await Message.filter(message_direction=Direction.OUTBOUND).order_by("id")
    assert [row.delivery_status for row in sent] == [DeliveryStatus.SENT] * 2
    assert all(row.whatsapp_message_id for row in sent)
    assert await SendAdmission.filter(message_id=first.id).count() == 1


async def test_rows_claimed_by_a_dead_sender_are_due_again_after_release_leases(outbox: Outbox) -> None:
    await outbox.customer(ALICE)
    await outbox.customer(BOB)
    claimed = await outbox.queue(ALICE, "claimed, then the sender died")
    claimed.next_attempt_at = outbox.clock.now + timedelta(seconds=30)  # the dead sender's lease
    await claimed.save()
    backing_off = await outbox.queue(BOB, "waiting for its retry")
    backing_off.attempts = 1
    backing_off.next_attempt_at = outbox.clock.now + timedelta(minutes=5)
    await backing_off.save()

    assert await outbox.run() == 0  # neither is due
    assert await outbox.worker.release_leases() == 1

    await outbox.run()
    assert (await reload(claimed)).delivery_status == DeliveryStatus.SENT
    assert (await reload(backing_off)).delivery_status == DeliveryStatus.QUEUED  # its backoff is kept
    assert [r.to for r in outbox.graph.requests] == [ALICE]


async def test_after_a_restart_rows_held_behind_a_retrying_one_keep_waiting(outbox: Outbox) -> None:
    await outbox.customer(ALICE)
    outbox.graph.script(ALICE, (429, error_body(130429)))
    for text in ("first", "second", "third"):
        await outbox.queue(ALICE, text)
    await outbox.run()

    await outbox.worker.release_leases()  # what bot/app.py does at every start on SQLite
    await outbox.run()
    assert [r.text for r in outbox.graph.requests] == ["first"]


async def test_stopping_during_a_results_write_keeps_what_was_sent(outbox: Outbox, database_url: str) -> None:
    if not database_url.startswith("postgres"):
        pytest.skip("holds the row with a PostgreSQL row lock to catch the results write in the act")
    import asyncpg  # type: ignore[import-untyped]

    await outbox.customer(ALICE)
    row = await outbox.queue(ALICE, "Your phone is ready")
    outbox.graph.hold_answers()
    outbox.worker.start()

    async def in_flight() -> bool:
        return len(outbox.graph.requests) == 1

    await eventually(in_flight)

    holder = await asyncpg.connect(POSTGRES_URL)
    watcher = await asyncpg.connect(POSTGRES_URL)
    try:
        hold = holder.transaction()
        await hold.start()
        await holder.execute("SELECT id FROM message WHERE id = $1 FOR UPDATE", row.id)
        outbox.graph.release_answers()  # Meta accepts the message; the worker now writes "sent"

        async def blocked_writes() -> set[datetime]:
            found = await watcher.fetch(
                "SELECT query_start FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database() AND query ILIKE 'UPDATE%message%'"
            )
            return {record["query_start"] for record in found}

        async def write_blocked() -> bool:
            return bool(await blocked_writes())

        await eventually(write_blocked, within=5)
        first_write = await blocked_writes()
        stopping = asyncio.create_task(outbox.worker.stop())  # shut down while the results are written

        async def write_interrupted() -> bool:
            return stopping.done() or bool(await blocked_writes() - first_write)

        # a stop that waits for the write in progress never interrupts it: then stop watching after 1 s
        with contextlib.suppress(AssertionError):
            await eventually(write_interrupted, within=1.0)
        await hold.rollback()
        await stopping
    finally:
        await holder.close()
        await watcher.close()

    stored = await reload(row)
    assert stored.delivery_status == DeliveryStatus.SENT
    assert stored.whatsapp_message_id == "wamid.X1"


async def refuse_status_changes(database_url: str, refuse: bool) -> None:
    """A trigger that makes the database refuse any write changing a message's delivery status (the
    results write) while letting lease updates through, as a failing disk or a conflict would."""
    connection = connections.get("default")
    if database_url.startswith("sqlite"):
        await connection.execute_script(
            "CREATE TRIGGER refuse_results BEFORE UPDATE OF delivery_status ON message "
            "WHEN OLD.delivery_status <> NEW.delivery_status "
            "BEGIN SELECT RAISE(ABORT, 'the test refuses this write'); END;"
            if refuse
            else "DROP TRIGGER refuse_results;"
        )
    elif refuse:
        await connection.execute_script(
            "CREATE FUNCTION refuse_results() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'the test refuses this write'; END $$; "
            "CREATE TRIGGER refuse_results BEFORE UPDATE ON message FOR EACH ROW "
            "WHEN (OLD.delivery_status IS DISTINCT FROM NEW.delivery_status) "
            "EXECUTE FUNCTION refuse_results();"
        )
    else:
        await connection.execute_script(
            "DROP TRIGGER refuse_results ON message; DROP FUNCTION refuse_results();"
        )


async def test_a_refused_results_write_is_retried_and_the_row_is_not_sent_again_after_its_lease(
    outbox: Outbox, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.spine.outbox")
    await outbox.customer(ALICE)
    row = await outbox.queue(ALICE, "Your phone is ready")
    await refuse_status_changes(database_url, True)
    outbox.worker.start()

    async def sent_but_not_stored() -> bool:
        refused = [r for r in caplog.records if "results not stored" in r.getMessage()]
        return len(outbox.graph.requests) == 1 and bool(refused)

    await eventually(sent_but_not_stored)
    outbox.clock.advance(minutes=5)  # far past the claim's 30-second lease, the result still in memory
    await outbox.worker.dispatch()  # what the sender loop does every second
    await refuse_status_changes(database_url, False)
    await outbox.worker.settle()

    stored = await reload(row)
    assert stored.delivery_status == DeliveryStatus.SENT
    assert stored.whatsapp_message_id == "wamid.X1"
    assert [r.to for r in outbox.graph.requests] == [ALICE]  # one send to Graph for one row


async def test_a_stop_while_the_database_refuses_the_results_keeps_trying_within_its_grace(
    outbox: Outbox, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.spine.outbox")
    await outbox.customer(ALICE)
    row = await outbox.queue(ALICE, "Your phone is ready")
    await refuse_status_changes(database_url, True)
    outbox.worker.start()

    def refusals() -> int:
        return len([r for r in caplog.records if "results not stored" in r.getMessage()])

    async def refused() -> bool:
        return refusals() > 0

    await eventually(refused)
    before = refusals()
    stopping = asyncio.create_task(outbox.worker.stop(grace=10))

    async def refused_while_stopping() -> bool:
        return refusals() > before

    await eventually(refused_while_stopping)
    await refuse_status_changes(database_url, False)
    await stopping

    stored = await reload(row)
    assert stored.delivery_status == DeliveryStatus.SENT and stored.whatsapp_message_id == "wamid.X1"
    assert len(outbox.graph.requests) == 1


async def test_a_row_held_past_its_lease_is_not_taken_by_another_sender(outbox: Outbox) -> None:
    await outbox.customer(ALICE)
    row = await outbox.queue(ALICE, "Your phone is ready")
    other = outbox.another_worker()  # a second process on the same database
    outbox.graph.hold_answers()  # the send stays in flight
    outbox.worker.start()

    async def in_flight() -> bool:
        return len(outbox.graph.requests) == 1

    await eventually(in_flight)
    outbox.clock.advance(seconds=20)  # two thirds of the 30-second lease

    async def renewed() -> bool:
        held = await reload(row)
        return held.next_attempt_at is not None and held.next_attempt_at > START + timedelta(seconds=30)

    await eventually(renewed)
    outbox.clock.advance(seconds=20)  # past the lease the claim gave
    assert await other.dispatch() == 0
    outbox.graph.release_answers()
    await outbox.worker.settle()

    assert (await reload(row)).delivery_status == DeliveryStatus.SENT
    assert len(outbox.graph.requests) == 1


# --- end to end: the real server and the fake Graph API of bench/ ------------------------------------------


@pytest.fixture
async def throttling_graph() -> AsyncIterator[TestServer]:
    """bench/fake_graph.py answering every 2nd send with 130429 (HTTP 429)."""
    sys.path.insert(0, str(BENCH))
    try:
        fake_graph = importlib.import_module("fake_graph")
    finally:
        sys.path.remove(str(BENCH))
    server = TestServer(fake_graph.build_app(token=GRAPH_TOKEN, fail_every=2))
    await server.start_server()
    yield server
    await server.close()


async def test_end_to_end_a_throttled_reply_is_retried_and_sent(
    serve_app: AppFactory, tmp_path: Path, database_url: str, throttling_graph: TestServer
) -> None:
    """130429 pauses the whole outbox for RateLimitHit's first backoff, 2-3 s of real time (the pause is
    the server's own, in memory): the test waits it out, and the retry is what ends it."""
    settings = make_settings(tmp_path, database_url, graph_base(throttling_graph))
    client: TestClient[web.Request, web.Application] = await serve_app(create_app(settings))
    for number, phone in enumerate((ALICE, BOB)):
        response = await post_webhook(client, text_notification(phone, f"wamid.IN{number}", "hi"))
        assert response.status == 200

    outbound = Message.filter(message_direction=Direction.OUTBOUND)

    async def one_sent_one_waiting() -> bool:
        rows = await outbound
        statuses = sorted((row.delivery_status, row.error_code, row.attempts) for row in rows)
        return statuses == [(DeliveryStatus.QUEUED, 130429, 1), (DeliveryStatus.SENT, None, 1)]

    await eventually(one_sent_one_waiting)
    waiting = await outbound.filter(delivery_status=DeliveryStatus.QUEUED).get()
    assert waiting.next_attempt_at is not None
    assert waiting.next_attempt_at - datetime.now(UTC) > timedelta(seconds=1)  # a backoff, not a spin

    async def both_sent() -> bool:
        return await outbound.filter(delivery_status=DeliveryStatus.SENT).count() == 2

    await eventually(both_sent)
    retried = await reload(waiting)
    assert retried.attempts == 2 and retried.error_code is None
    attempts = await graph_sends(throttling_graph, every_attempt=True)
    assert sorted(attempt[5] for attempt in attempts) == [200, 200, 429]
    assert retried.whatsapp_message_id in {attempt[4] for attempt in attempts}
