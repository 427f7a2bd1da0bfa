"""Blue ticks: at most one mark-read per customer per interval, the newest message marking the rest."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.db.models import DeliveryStatus, Direction, Message
from bot.spine.read_receipts import ReadReceipts
from tests.helpers import AppFactory, eventually, post_webhook, text_notification


class Receipts:
    """A ReadReceipts on a clock the test moves, its mark-reads run at once and recorded."""

    def __init__(self, every: float) -> None:
        self.now = 100.0
        self.marked: list[str] = []
        self.receipts = ReadReceipts(self._mark_read, self._spawn, every, clock=lambda: self.now)
        self._tasks: set[asyncio.Task[None]] = set()

    async def _mark_read(self, wamid: str) -> None:
        self.marked.append(wamid)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self._tasks.add(asyncio.ensure_future(coroutine))

    async def advance(self, seconds: float) -> None:
        """Move the clock and let the flusher look again (a handled batch with nobody in it wakes it)."""
        self.now += seconds
        self.receipts.handled([])
        await self.settle()

    async def settle(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)


@pytest.fixture
async def receipts() -> AsyncIterator[Receipts]:
    receipts = Receipts(every=3.0)
    receipts.receipts.start()
    yield receipts
    await receipts.receipts.stop()


async def test_a_first_message_is_marked_at_once_and_a_burst_by_its_newest(receipts: Receipts) -> None:
    receipts.receipts.handled([(1, "wamid.A1")])
    await receipts.settle()
    assert receipts.marked == ["wamid.A1"]
    receipts.receipts.handled([(1, "wamid.A2")])
    await receipts.advance(1.0)
    receipts.receipts.handled([(1, "wamid.A3")])
    await receipts.advance(1.0)
    assert receipts.marked == ["wamid.A1"]  # within the interval: A2 and A3 wait
    assert receipts.receipts.waiting == 1
    await receipts.advance(1.0)
    assert receipts.marked == ["wamid.A1", "wamid.A3"]  # A3 marks A2 read too
    assert receipts.receipts.waiting == 0


async def test_customers_are_throttled_apart(receipts: Receipts) -> None:
    receipts.receipts.handled([(1, "wamid.A1"), (2, "wamid.B1")])
    await receipts.advance(2.0)
    receipts.receipts.handled([(1, "wamid.A2"), (3, "wamid.C1")])
    await receipts.settle()
    assert receipts.marked == ["wamid.A1", "wamid.B1", "wamid.C1"]
    await receipts.advance(1.0)
    assert receipts.marked == ["wamid.A1", "wamid.B1", "wamid.C1", "wamid.A2"]


async def test_a_customer_quiet_for_the_interval_is_marked_at_once_again(receipts: Receipts) -> None:
    receipts.receipts.handled([(1, "wamid.A1")])
    await receipts.advance(3.5)
    receipts.receipts.handled([(1, "wamid.A2")])
    await receipts.settle()
    assert receipts.marked == ["wamid.A1", "wamid.A2"]


async def test_stop_sends_what_waits() -> None:
    receipts = Receipts(every=3.0)
    receipts.receipts.start()
    receipts.receipts.handled([(1, "wamid.A1")])
    receipts.receipts.handled([(1, "wamid.A2")])
    await asyncio.wait_for(receipts.receipts.stop(), 1.0)
    await receipts.settle()
    assert receipts.marked == ["wamid.A1", "wamid.A2"]


async def test_no_interval_marks_every_batch() -> None:
    receipts = Receipts(every=0.0)
    receipts.receipts.handled([(1, "wamid.A1")])
    receipts.receipts.handled([(1, "wamid.A2")])
    await receipts.settle()
    assert receipts.marked == ["wamid.A1", "wamid.A2"]
    assert receipts.receipts.waiting == 0


async def test_the_server_marks_a_customers_burst_with_two_calls(
    serve_app: AppFactory, tmp_path: Path, database_url: str
) -> None:
    """Through the sandbox: three messages in a row get three replies but at most two mark-reads, the
    newest marking the others."""
    from bot.app import CLIENT, create_app
    from bot.whatsapp.sandbox import SandboxTransport
    from tests.helpers import make_settings

    settings = make_settings(tmp_path, database_url, extra="  mark_read_every_seconds: 2\n")
    client = await serve_app(create_app(settings))
    transport = client.app[CLIENT].transport
    assert isinstance(transport, SandboxTransport)

    def marked() -> list[str]:
        return [body["message_id"] for body in transport.requests if body.get("status") == "read"]

    async def replied() -> bool:
        sent = Message.filter(message_direction=Direction.OUTBOUND, delivery_status=DeliveryStatus.SENT)
        return await sent.count() == 3

    for n in (1, 2, 3):
        notification = text_notification("15550002222", f"wamid.RR_{n}", "hello?")
        assert (await post_webhook(client, notification)).status == 200
    await eventually(replied)
    await eventually(lambda: marked()[-1:] == ["wamid.RR_3"], within=5.0)
    assert len(marked()) <= 2
    assert "wamid.RR_2" not in marked()


class TimedReceipts(Receipts):
    """Receipts that note the clock when each mark-read is started."""

    def __init__(self, every: float) -> None:
        super().__init__(every)
        self.when: list[tuple[float, str]] = []

    def _mark_read(self, wamid: str) -> Coroutine[Any, Any, None]:
        self.when.append((self.now, wamid))
        return asyncio.sleep(0)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(0, 3), st.floats(0, 5, allow_nan=False)), min_size=1, max_size=40)
)
def test_each_customer_at_most_once_per_interval_and_their_newest_always_marked(
    steps: list[tuple[int, float]],
) -> None:
    async def run() -> None:
        receipts = TimedReceipts(every=3.0)
        receipts.receipts.start()
        newest: dict[int, str] = {}
        for n, (sender, pause) in enumerate(steps):
            wamid = f"wamid.{sender}.{n}"
            receipts.receipts.handled([(sender, wamid)])
            newest[sender] = wamid
            await receipts.advance(pause)
        await receipts.advance(3.0)
        await asyncio.wait_for(receipts.receipts.stop(), 1.0)
        await receipts.settle()
        for sender in newest:
            mine = [(at, wamid) for at, wamid in receipts.when if wamid.split(".")[1] == str(sender)]
            gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(mine)]
            assert all(gap >= 3.0 for gap in gaps), mine
            numbers = [int(wamid.rsplit(".", 1)[1]) for _, wamid in mine]
            assert numbers == sorted(set(numbers)), mine  # in order, none twice
            assert mine[-1][1] == newest[sender], mine  # the newest is always marked

    asyncio.run(run())
