"""The panel's live events cross the processes of `bot serve --workers N` (bot/peer_events.py).

In one test process two links of one PeerEvents stand for two forked processes: the sockets are the
same ones the forked processes inherit. The end-to-end test runs `bot serve --workers 2` on SQLite,
where worker 0 sends every reply and worker 1 holds the technician's WebSocket.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.handoff.events import EventHub
from bot.peer_events import MAX_EVENT_BYTES, PeerEvents
from tests.helpers import (
    POSTGRES_AVAILABLE,
    POSTGRES_URL,
    REPO,
    create_schema,
    free_port,
    reset_postgres,
    serve_env,
    text_notification,
    write_settings,
)
from tests.test_crash import BotProcess, _post


@pytest.fixture
def peers() -> Iterator[PeerEvents]:
    peers = PeerEvents(3)
    yield peers
    peers.close()


async def _received(queue: asyncio.Queue[dict[str, Any]], within: float = 2.0) -> dict[str, Any]:
    return await asyncio.wait_for(queue.get(), within)


async def test_an_event_reaches_the_processes_that_listen_and_no_other(peers: PeerEvents) -> None:
    first, second, third = (peers.link(index) for index in range(3))
    heard: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    stops = [second.listen(heard[1].append), third.listen(heard[2].append)]
    assert not first.peers_listening
    second.set_listening(True)
    assert first.peers_listening
    first.forward({"type": "status", "status": "sent", "message_id": 7})
    await asyncio.sleep(0.05)
    assert heard == {1: [{"type": "status", "status": "sent", "message_id": 7}], 2: []}
    for stop in stops:
        stop()


async def test_an_event_too_large_or_to_a_full_peer_is_dropped_without_blocking(peers: PeerEvents) -> None:
    first, second = peers.link(0), peers.link(1)
    second.set_listening(True)  # listening, but never reading: its buffer fills
    first.forward({"type": "message", "text": "x" * (MAX_EVENT_BYTES + 1)})
    for n in range(10_000):
        first.forward({"type": "status", "n": n, "padding": "y" * 1000})  # never raises, never blocks
    heard: list[dict[str, Any]] = []
    stop = second.listen(heard.append)
    await asyncio.sleep(0.1)
    stop()
    assert heard, "the events that fitted arrive"
    assert all(event["type"] == "status" for event in heard), "the oversized one was not sent"
    assert len(heard) < 10_000, "the ones over a full buffer were dropped"


async def test_hubs_share_committed_events_once_without_echo(peers: PeerEvents) -> None:
    here, there = EventHub(), EventHub()
    here.connect(peers.link(0))
    link = peers.link(1)
    there.connect(link)
    stop = link.listen(there.receive)
    assert not here.listening
    with there.subscription() as technicians_there, here.subscription() as technicians_here:
        assert here.listening
        here.publish({"type": "queue", "action": "waiting", "phone": "+15550001111"})
        assert (await _received(technicians_there))["action"] == "waiting"
        assert (await _received(technicians_here))["action"] == "waiting"
        await asyncio.sleep(0.05)
        assert technicians_here.empty(), "the other hub did not send it back"
    assert not here.listening, "nobody listens there any more"
    stop()


CUSTOMERS = [f"155582000{n:02d}" for n in range(6)]


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_a_technician_sees_the_other_workers_sends_live(
    tmp_path: Path, fake_graph: TestServer, database: str
) -> None:
    """`bot serve --workers 2`: on SQLite the admin's WebSocket is on worker 1 and every reply is sent by
    worker 0; on PostgreSQL the replies are sent by both workers. Each reply's "sent" status reaches the
    panel live, not at the next refresh."""
    if database == "postgres":
        if not POSTGRES_AVAILABLE:
            pytest.skip("no PostgreSQL at 127.0.0.1:5432")
        await reset_postgres()
        database_url = POSTGRES_URL
    else:
        database_url = f"sqlite://{tmp_path}/bot.db"
    env = serve_env(write_settings(tmp_path), database_url, fake_graph)
    await create_schema(database_url)
    added = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bot", "technicians", "add", "Ana", "--role", "admin"),
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    token = (await added.communicate())[0].decode().strip()
    assert added.returncode == 0 and token
    port = free_port()
    bot = BotProcess(env, port, tmp_path / "bot.log", workers=2)
    sent: set[str] = set()
    try:
        await bot.start()
        await bot.until_workers()
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"http://127.0.0.1:{port}/api/tech/ws?token={token}") as ws,
        ):
            assert json.loads((await ws.receive(timeout=5)).data)["type"] == "hello"
            for n, phone in enumerate(CUSTOMERS):
                body = json.dumps(text_notification(phone, f"wamid.PEER.{n}", "hi")).encode()
                assert await _post(session, f"http://127.0.0.1:{port}/webhook", body)
            while sent != set(CUSTOMERS):
                event = json.loads((await ws.receive(timeout=15)).data)
                if event["type"] == "status" and event["status"] == "sent":
                    sent.add(event["phone"])
    finally:
        await bot.stop()
    if database == "sqlite":
        log = bot.log_path.read_text()
        handled = [line for line in log.splitlines() if ": handled wamid.PEER." in line]
        assert len(handled) == len(CUSTOMERS), log[-3000:]
        assert all("[worker 0]" in line for line in handled), handled
