"""`bot serve --workers N`: several server processes on one port and one PostgreSQL database.

The business number's throughput is Meta's limit for the number, not for a process: three workers
together must stay under `whatsapp.messages_per_second`, counted where Meta would count it (the fake
Graph API's arrival times), not by timing the bot. On one SQLite file the work is split by kind
instead: worker 0 moves the messages, the others serve HTTP (bot/processes.py).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.helpers import (
    POSTGRES_AVAILABLE,
    POSTGRES_URL,
    create_schema,
    eventually,
    free_port,
    graph_sends,
    reset_postgres,
    serve_env,
    text_notification,
    write_settings,
)
from tests.test_crash import BotProcess, _post, _query

RATE = 20
CUSTOMERS = 120


async def test_on_sqlite_worker_0_moves_the_messages_and_the_others_serve_http(
    tmp_path: Path, fake_graph: TestServer
) -> None:
    """`bot serve --workers 3` on one SQLite file: the webhooks are answered by the HTTP processes
    and every message is handled by worker 0, once, with one reply each; the HTTP processes handle
    none themselves (the inbox's one line per handled message says which process wrote it)."""
    port = free_port()
    env = serve_env(write_settings(tmp_path), f"sqlite://{tmp_path}/bot.db", fake_graph)
    await create_schema(f"sqlite://{tmp_path}/bot.db")
    bot = BotProcess(env, port, tmp_path / "bot.log", workers=3)
    url = f"http://127.0.0.1:{port}/webhook"
    wamids = [f"wamid.SPLIT.{n}" for n in range(30)]
    try:
        await bot.start()
        await bot.until_workers()
        async with aiohttp.ClientSession() as session:
            bodies = [
                json.dumps(text_notification(f"1555810{n % 10:04d}", wamid, "hi")).encode()
                for n, wamid in enumerate(wamids)
            ]
            acked = [await _post(session, url, body) for body in bodies]
        assert all(acked)

        async def all_sent() -> bool:
            return len(await graph_sends(fake_graph)) >= len(wamids)

        await eventually(all_sent, within=30)
    finally:
        await bot.stop()
    log = bot.log_path.read_text()
    assert "[worker 0] bot.workers: worker 0 ready" in log and ", workers)" in log, log[-3000:]
    assert ", http)" in log, log[-3000:]
    handled = [line for line in log.splitlines() if ": handled wamid.SPLIT." in line]
    assert sorted(line.split("handled ")[1].split()[0] for line in handled) == sorted(wamids)
    assert all("[worker 0]" in line for line in handled), handled
    replies = Counter(
        reply_to
        for (reply_to,) in await _query(
            f"sqlite://{tmp_path}/bot.db",
            "SELECT reply_to FROM message WHERE message_direction = 'outbound'",
        )
    )
    assert set(replies) == set(wamids) and set(replies.values()) == {1}


def _most_within(arrivals: list[float], seconds: float) -> int:
    """The most sends whose arrivals fall within `seconds` of each other (a sliding window)."""
    arrivals = sorted(arrivals)
    most, start = 0, 0
    for end, arrival in enumerate(arrivals):
        while arrival - arrivals[start] >= seconds:
            start += 1
        most = max(most, end - start + 1)
    return most


@pytest.mark.slow
@pytest.mark.skipif(not POSTGRES_AVAILABLE, reason="no PostgreSQL at 127.0.0.1:5432")
async def test_three_workers_together_stay_under_messages_per_second(
    tmp_path: Path, fake_graph: TestServer
) -> None:
    await reset_postgres()
    await create_schema(POSTGRES_URL)
    settings = write_settings(tmp_path, "outbox:\n  concurrency: 16\n").read_text()
    settings = settings.replace("messages_per_second: 1000", f"messages_per_second: {RATE}")
    (tmp_path / "settings.yaml").write_text(settings)
    port = free_port()
    env = serve_env(tmp_path / "settings.yaml", POSTGRES_URL, fake_graph)
    bot = BotProcess(env, port, tmp_path / "bot.log", workers=3)
    url = f"http://127.0.0.1:{port}/webhook"
    try:
        await bot.start()
        await bot.until_workers()
        async with aiohttp.ClientSession() as session:
            bodies = [
                json.dumps(text_notification(f"1555800{n:04d}", f"wamid.RATE.{n}", "hi")).encode()
                for n in range(CUSTOMERS)
            ]
            acked = await asyncio.gather(*(_post(session, url, body) for body in bodies))
        assert all(acked)

        async def all_sent() -> bool:
            return len(await graph_sends(fake_graph)) >= CUSTOMERS

        await eventually(all_sent, within=CUSTOMERS / RATE * 4 + 30)
        log = bot.log_path.read_text()
    finally:
        await bot.stop()

    arrivals = [send[0] for send in await graph_sends(fake_graph)]
    assert len(arrivals) == CUSTOMERS
    burst = max(1, round(RATE / 10))  # the business bucket's burst (bot/whatsapp/pacing.py)
    # Arrivals are seen at the fake Graph server, after each send's own trip: on a loaded machine a
    # process that stalls after taking its tokens delivers its sends bunched. Over a 3-second window one
    # second's worth of sends absorbs that; pacing per process instead of shared puts 3 x 60 there.
    window = 3.0
    most = _most_within(arrivals, window)
    seen = f"{most} sends within {window} s; {sorted(arrivals)}\n{log[-2000:]}"
    assert most <= RATE * window + burst + RATE, seen
    # and over the whole run, no faster than the limit: n sends need (n - burst) / rate seconds
    assert max(arrivals) - min(arrivals) >= (CUSTOMERS - burst) / RATE * 0.95
