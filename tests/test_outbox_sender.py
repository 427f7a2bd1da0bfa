"""The outbox sender against a scripted Graph API, with a clock the test moves (no sleeping).

Retries follow the Graph error code, never the HTTP status; permanent errors are recorded and never
retried; a pair-rate-limited customer waits alone; each customer's messages keep their order; the
24-hour window is enforced before any call; a status that came early is applied when the send is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from tortoise.transactions import in_transaction

from bot.db import close_db, init_db
from bot.db.claims import claims_for
from bot.db.models import Customer, DeliveryStatus, EarlyStatus, Message
from bot.inbox import outbound_row
from bot.outbox import OutboxConfig, OutboxWorker
from bot.statuses import StatusChange, record_statuses
from bot.whatsapp.client import HttpTransport, WhatsAppClient
from bot.whatsapp.outbound import OutboundMessage, Template, Text
from bot.whatsapp.pacing import Pacer
from tests.helpers import PAYLOADS

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ALICE, BOB = "15550001001", "15550001002"


def error_body(code: int) -> dict[str, Any]:
    path = PAYLOADS / f"error_{code}.json"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    body: dict[str, Any] = json.loads(path.read_text())
    return body


@dataclass
class ScriptedGraph:
    """Answers each recipient from its script of (status, body) in turn, then with success."""

    scripts: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    sent = 0

    async def messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        to = str(body["to"]).lstrip("+")
        script = self.scripts.get(to, [])
        if script:
            status, answer = script.pop(0)
            if isinstance(answer, str):
                return web.Response(status=status, text=answer)
            return web.json_response(answer, status=status)
        self.sent += 1
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": to}],
                "messages": [{"id": f"wamid.OUT.{self.sent}"}],
            }
        )

    def sends_to(self, phone: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if str(r.get("to", "")).lstrip("+") == phone]


class Clock:
    """Wall-clock time for the outbox and monotonic time for the pacer, moved together by the test."""

    def __init__(self) -> None:
        self.now = T0
        self.mono = 1000.0

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


@dataclass
class Rig:
    graph: ScriptedGraph
    clock: Clock
    worker: OutboxWorker

    async def queue(self, phone: str, message: OutboundMessage) -> Message:
        row = outbound_row(phone, message, reply_to=None, now=self.clock.now)
        await row.save()
        return row

    async def run(self) -> None:
        """One round: claim what is due, send it, write the results."""
        await self.worker.dispatch()
        await self.worker.settle()

    async def run_until_quiet(self, rounds: int = 10) -> None:
        for _ in range(rounds):
            await self.run()


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[Rig]:
    graph = ScriptedGraph()
    app = web.Application()
    app.router.add_post("/{version}/{phone_id}/messages", graph.messages)
    server = TestServer(app)
    await server.start_server()
    clock = Clock()
    await init_db(database_url)
    for phone in (ALICE, BOB):
        await Customer.create(wa_id=phone, last_inbound_at=T0 - timedelta(minutes=5))
    async with aiohttp.ClientSession() as session:
        transport = HttpTransport(session, str(server.make_url("/v21.0")), "token")
        pacer = Pacer(messages_per_second=1000, pair_interval=6, pair_burst=20, clock=clock.monotonic)
        client = WhatsAppClient(transport, "100000000000001", pacer)
        worker = OutboxWorker(
            client, claims_for(database_url), OutboxConfig(mark_read=False), clock=clock.wall
        )
        yield Rig(graph, clock, worker)
    await close_db()
    await server.close()


async def test_throttling_with_http_400_is_retried_by_its_code(rig: Rig) -> None:
    rig.graph.scripts[ALICE] = [(400, error_body(130429))]
    row = await rig.queue(ALICE, Text(body="Your phone is ready"))
    await rig.run()
    waiting = await Message.get(id=row.id)
    assert waiting.delivery_status == DeliveryStatus.QUEUED
    assert (waiting.attempts, waiting.error_code) == (1, 130429)
    assert waiting.next_attempt_at is not None and waiting.next_attempt_at > rig.clock.now
    await rig.run()
    assert len(rig.graph.sends_to(ALICE)) == 1  # not re-sent before its time
    rig.clock.advance((waiting.next_attempt_at - rig.clock.now).total_seconds() + 0.01)
    await rig.run()
    sent = await Message.get(id=row.id)
    assert sent.delivery_status == DeliveryStatus.SENT
    assert sent.whatsapp_message_id == "wamid.OUT.1"
    assert (sent.attempts, sent.error_code, sent.error_title) == (2, None, None)
    assert len(rig.graph.sends_to(ALICE)) == 2


async def test_server_errors_are_retried_and_131000_only_a_few_times(rig: Rig) -> None:
    rig.graph.scripts[ALICE] = [(502, "<html>Bad gateway</html>")]
    rig.graph.scripts[BOB] = [(500, error_body(131000))] * 10
    garbage = await rig.queue(ALICE, Text(body="one"))
    unknown = await rig.queue(BOB, Text(body="two"))
    for _ in range(12):
        await rig.run()
        rig.clock.advance(600)
    assert (await Message.get(id=garbage.id)).delivery_status == DeliveryStatus.SENT
    failed = await Message.get(id=unknown.id)
    assert (failed.delivery_status, failed.error_code) == (DeliveryStatus.FAILED, 131000)
    assert 2 <= failed.attempts <= 4
    assert len(rig.graph.sends_to(BOB)) == failed.attempts


@pytest.mark.parametrize("code", [131026, 131047, 132000, 190])
async def test_permanent_errors_are_recorded_and_never_retried(rig: Rig, code: int) -> None:
    rig.graph.scripts[ALICE] = [(401 if code == 190 else 400, error_body(code))]
    row = await rig.queue(ALICE, Text(body="hello"))
    await rig.run()
    rig.clock.advance(86400)
    await rig.run_until_quiet(3)
    failed = await Message.get(id=row.id)
    assert failed.delivery_status == DeliveryStatus.FAILED
    assert failed.error_code == code
    assert failed.error_title
    assert failed.attempts == 1
    assert len(rig.graph.requests) == 1


async def test_pair_rate_limit_holds_only_that_customer(rig: Rig) -> None:
    rig.graph.scripts[ALICE] = [(400, error_body(131056))]
    held = await rig.queue(ALICE, Text(body="first"))
    other = await rig.queue(BOB, Text(body="meanwhile"))
    await rig.run()
    await rig.run()
    assert (await Message.get(id=other.id)).delivery_status == DeliveryStatus.SENT
    waiting = await Message.get(id=held.id)
    assert waiting.delivery_status == DeliveryStatus.QUEUED
    assert waiting.next_attempt_at is not None
    rig.clock.advance((waiting.next_attempt_at - rig.clock.now).total_seconds() + 0.01)
    await rig.run_until_quiet(3)
    assert (await Message.get(id=held.id)).delivery_status == DeliveryStatus.SENT
    assert len(rig.graph.sends_to(ALICE)) == 2


async def test_a_customers_messages_keep_their_order_behind_a_retry(rig: Rig) -> None:
    rig.graph.scripts[ALICE] = [(503, error_body(131000))]
    rows = [await rig.queue(ALICE, Text(body=f"part {n}")) for n in (1, 2, 3)]
    await rig.run()
    assert [r["text"]["body"] for r in rig.graph.sends_to(ALICE)] == ["part 1"]  # the others wait
    for _ in range(5):
        rig.clock.advance(60)
        await rig.run()
    bodies = [r["text"]["body"] for r in rig.graph.sends_to(ALICE)]
    assert bodies == ["part 1", "part 1", "part 2", "part 3"]
    assert {(await Message.get(id=r.id)).delivery_status for r in rows} == {DeliveryStatus.SENT}


async def test_outside_the_window_only_templates_go_out(rig: Rig) -> None:
    await Customer.filter(wa_id=ALICE).update(last_inbound_at=T0 - timedelta(hours=25))
    text = await rig.queue(ALICE, Text(body="Your repair is done"))
    template = await rig.queue(
        ALICE, Template(name="order_status_update", language="en", body_params=("10452", "ready"))
    )
    await rig.run_until_quiet(2)
    refused = await Message.get(id=text.id)
    assert (refused.delivery_status, refused.error_code, refused.attempts) == (
        DeliveryStatus.FAILED,
        131047,
        0,
    )
    assert refused.error_title is not None and "24-hour" in refused.error_title
    assert (await Message.get(id=template.id)).delivery_status == DeliveryStatus.SENT
    assert [r["type"] for r in rig.graph.sends_to(ALICE)] == ["template"]


async def test_a_status_that_came_before_the_send_is_applied_with_it(rig: Rig) -> None:
    async with in_transaction():
        await record_statuses([StatusChange("wamid.OUT.1", "delivered", T0 + timedelta(seconds=1))])
    row = await rig.queue(ALICE, Text(body="hi"))
    await rig.run()
    stored = await Message.get(id=row.id)
    assert stored.whatsapp_message_id == "wamid.OUT.1"
    assert stored.delivery_status == DeliveryStatus.DELIVERED
    assert stored.delivered_at == T0 + timedelta(seconds=1)
    assert await EarlyStatus.all().count() == 0


async def test_rows_claimed_by_a_dead_sender_come_back(rig: Rig) -> None:
    row = await rig.queue(ALICE, Text(body="claimed, then the process died"))
    await Message.filter(id=row.id).update(next_attempt_at=T0 + timedelta(seconds=30))  # its lease
    await rig.run()
    assert rig.graph.requests == []  # the lease still holds
    assert await rig.worker.release_leases() == 1
    await rig.run()
    assert (await Message.get(id=row.id)).delivery_status == DeliveryStatus.SENT
