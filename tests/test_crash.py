"""Kill the server with SIGKILL while messages are in flight, start it again, and lose nothing.

The bot runs as a real `python -m bot serve` process against a fake Graph API served by this test.
Webhooks are posted concurrently from many customers; mid-way the process is killed. Whatever was not
acknowledged is posted again after the restart, as Meta would retry it, and a share of the acknowledged
ones are posted again too (Meta's duplicates). In the end every acknowledged message has been handled
exactly once (one reply row each), in order per customer, and every reply has reached the Graph API.

It runs again as `bot serve --workers 3`, and one worker process is killed: on PostgreSQL the others go
on answering (the supervisor starts a new one), and the rows the dead worker had claimed are picked up
by the others once its leases have run out. On SQLite the one killed is worker 0, the one that moves
the messages (bot/processes.py): the HTTP processes go on acknowledging, and the worker started again
takes up what its predecessor left, its claimed outbox rows included.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.spine.outbox import OutboxConfig
from bot.whatsapp.signature import sign
from tests.helpers import (
    APP_SECRET,
    POSTGRES_URL,
    REPO,
    free_port,
    graph_sends,
    serve_env,
    text_notification,
    write_settings,
)

CUSTOMERS = 40
MESSAGES_PER_CUSTOMER = 5


class BotProcess:
    """`python -m bot serve` in its own process, as `make run` starts it (with `workers`, as
    `bot serve --workers N`)."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path, workers: int = 1) -> None:
        self.env, self.port, self.log_path, self.workers = env, port, log_path, workers
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        command = [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *command,
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                assert self.process.returncode is None, self.log_path.read_text()[-3000:]
                await asyncio.sleep(0.1)
        raise AssertionError("the bot did not start:\n" + self.log_path.read_text()[-3000:])

    def worker_pids(self) -> list[int]:
        """The supervisor's worker processes (Linux: the kernel lists a process's children)."""
        assert self.process is not None
        pid = self.process.pid
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    async def until_workers(self) -> None:
        """Until every worker is serving (the first one answering /healthz is not all of them)."""
        for _ in range(300):
            log = self.log_path.read_text()
            if all(f"worker {index} ready" in log for index in range(self.workers)):
                return
            await asyncio.sleep(0.1)
        raise AssertionError("the workers did not start:\n" + self.log_path.read_text()[-3000:])

    async def kill_one_worker(self) -> int:
        """SIGKILL one worker process (not the supervisor); returns its pid."""
        victim = self.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        return victim

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.process.wait(), 10)

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> bool:
    """True when the bot acknowledged the webhook with 200."""
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(APP_SECRET, body)}
    try:
        async with session.post(url, data=body, headers=headers) as response:
            return response.status == 200
    except (TimeoutError, aiohttp.ClientError):
        return False


async def _until_sending(graph: TestServer) -> None:
    """Wait (briefly) until the outbox has replies reaching the Graph API."""
    for _ in range(200):
        if await graph_sends(graph):
            return
        await asyncio.sleep(0.01)


async def _query(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    if database_url.startswith("sqlite://"):
        with sqlite3.connect(database_url.removeprefix("sqlite://")) as connection:
            return connection.execute(sql).fetchall()
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        return [tuple(record) for record in await connection.fetch(sql)]
    finally:
        await connection.close()


LEASE_SECONDS = OutboxConfig().lease.total_seconds()


@pytest.mark.parametrize("workers", [1, 3])
async def test_sigkill_loses_no_acknowledged_message(
    tmp_path: Path, database_url: str, fake_graph: TestServer, workers: int
) -> None:
    graph = fake_graph
    settings = write_settings(tmp_path, "outbox:\n  concurrency: 16\n")
    port = free_port()
    env = serve_env(settings, database_url, graph)
    bot = BotProcess(env, port, tmp_path / "bot.log", workers)
    url = f"http://127.0.0.1:{port}/webhook"
    bodies = {
        f"wamid.CRASH.{customer}.{n}": json.dumps(
            text_notification(f"1555700{customer:04d}", f"wamid.CRASH.{customer}.{n}", "hello")
        ).encode()
        for n in range(MESSAGES_PER_CUSTOMER)
        for customer in range(CUSTOMERS)
    }
    by_customer = {
        customer: [f"wamid.CRASH.{customer}.{n}" for n in range(MESSAGES_PER_CUSTOMER)]
        for customer in range(CUSTOMERS)
    }
    acked: set[str] = set()
    try:
        await bot.start()
        if workers > 1:
            await bot.until_workers()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            # wave one: every customer writes their messages one after another (the next once the last
            # was acknowledged), many customers at once; the process
            # dies once a third are acknowledged and replies are going out, so intake, inbox and outbox
            # all have work in flight at the kill
            third_acked = asyncio.Event()
            acked_count = 0

            async def post_and_count(body: bytes) -> bool:
                nonlocal acked_count
                ok = await _post(session, url, body)
                acked_count += ok
                if acked_count >= len(bodies) // 3:
                    third_acked.set()
                return ok

            async def customer_writes(wamids: list[str]) -> dict[str, bool]:
                """Until one is not acknowledged: the rest wait for Meta's retries (wave two)."""
                results = {}
                for wamid in wamids:
                    results[wamid] = await post_and_count(bodies[wamid])
                    if not results[wamid]:
                        break
                return results

            async def stream() -> list[asyncio.Task[dict[str, bool]]]:
                tasks = []
                for wamids in by_customer.values():
                    tasks.append(asyncio.create_task(customer_writes(wamids)))
                    await asyncio.sleep(0.01)
                return tasks

            producer = asyncio.create_task(stream())
            await asyncio.wait_for(third_acked.wait(), 30)
            await _until_sending(graph)
            killed_at = time.time()
            if workers > 1:  # one worker dies; the others (and the one started again) go on
                await bot.kill_one_worker()
            else:
                await bot.kill()
            for task in await producer:
                acked.update(wamid for wamid, ok in (await task).items() if ok)
            acked_first = set(acked)
            if workers > 1 and database_url.startswith("sqlite://"):
                assert acked  # the HTTP processes went on acknowledging while worker 0 was dead
            else:
                assert 0 < len(acked) < len(bodies), "the kill should land mid-way"

            if workers == 1:
                await bot.start()
            # Meta retries what was not acknowledged, and sends some acknowledged ones again; each
            # customer's one after another, each until it is acknowledged
            again = set(sorted(acked)[::4])

            async def redeliver(wamids: list[str]) -> None:
                for wamid in [w for w in wamids if w not in acked] + [w for w in wamids if w in again]:
                    for _ in range(600):
                        if await _post(session, url, bodies[wamid]):
                            acked.add(wamid)
                            break
                        await asyncio.sleep(0.1)

            await asyncio.gather(*(redeliver(wamids) for wamids in by_customer.values()))

        async def settled() -> bool:
            rows = await _query(
                database_url,
                "SELECT count(*) FROM message WHERE delivery_status IN ('pending', 'queued')",
            )
            return rows[0][0] == 0

        # with workers, what the dead one had claimed is the others' once its leases run out
        deadline = time.monotonic() + (60 if workers == 1 else LEASE_SECONDS + 30)
        while not await settled():
            assert time.monotonic() < deadline, "messages still pending after the kill"
            await asyncio.sleep(0.1)
        if workers > 1:
            log = bot.log_path.read_text()
            assert "was killed by signal 9; starting it again" in log, log[-3000:]
    finally:
        await bot.stop()

    inbound = await _query(
        database_url,
        "SELECT whatsapp_message_id, delivery_status FROM message WHERE message_direction = 'inbound'",
    )
    assert {wamid for wamid, _ in inbound} == set(bodies)  # stored exactly once each
    assert len(inbound) == len(bodies)
    assert {status for _, status in inbound} == {"handled"}
    replies = await _query(
        database_url,
        "SELECT reply_to, delivery_status, whatsapp_message_id FROM message"
        " WHERE message_direction = 'outbound'",
    )
    per_inbound = Counter(reply_to for reply_to, _, _ in replies)
    # in order per customer: replies queued in the order the customer's messages were stored, and
    # sent in that order
    stored = await _query(
        database_url,
        "SELECT address, whatsapp_message_id FROM message WHERE message_direction = 'inbound' ORDER BY id",
    )
    answered = await _query(
        database_url,
        "SELECT address, reply_to, sent_at FROM message WHERE message_direction = 'outbound' ORDER BY id",
    )
    for phone in {phone for phone, _ in stored}:
        asked = [wamid for p, wamid in stored if p == phone]
        replied = [(reply_to, sent_at) for p, reply_to, sent_at in answered if p == phone]
        assert [reply_to for reply_to, _ in replied] == asked, f"{phone} answered out of order"
        sent = [sent_at for _, sent_at in replied]
        assert sent == sorted(sent), f"{phone}'s replies sent out of order"
    assert set(per_inbound) == set(bodies)
    assert set(per_inbound.values()) == {1}, "an inbound message was handled twice"
    assert {status for _, status, _ in replies} == {"sent"}

    sends = await graph_sends(graph)
    recorded = {wamid for _, _, wamid in replies}
    delivered = {send[4] for send in sends}
    assert recorded <= delivered  # every reply reached the Graph API
    # The Graph API has no idempotency key: a send it answered whose answer died with the process before
    # the outbox recorded it is sent again after the restart. Every extra send must be exactly that.
    unrecorded = [send for send in sends if send[4] not in recorded]
    assert len(sends) == len(bodies) + len(unrecorded)
    assert all(arrival <= killed_at + 0.5 for arrival, *_ in unrecorded), "a duplicate after the restart"
    print(f"acknowledged before the kill: {len(acked_first)}, re-sent after the restart: {len(unrecorded)}")
