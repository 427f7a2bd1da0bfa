"""The WAL is copied back into the SQLite file by one thread of the server, never inside a commit
(bot/db/checkpoints.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tortoise import connections

from bot.app import create_app
from bot.db.checkpoints import Checkpointer
from bot.db.process_turns import ProcessTurns
from bot.processes import Duty, ProcessRole, Wakes
from tests.helpers import (
    AppFactory,
    create_schema,
    eventually,
    make_settings,
    post_webhook,
    text_notification,
)

ROWS = 2000
ROW_BYTES = 1000


def _writer(path: Path) -> sqlite3.Connection:
    """A connection that writes in WAL mode and never checkpoints, as the server's do."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("CREATE TABLE blob (data BLOB)")
    return connection


def _write(connection: sqlite3.Connection, rows: int) -> None:
    for _ in range(rows // 100):
        connection.execute("BEGIN")
        connection.executemany("INSERT INTO blob VALUES (?)", [(b"x" * ROW_BYTES,)] * 100)
        connection.execute("COMMIT")


async def test_the_log_reaches_the_file_while_the_writer_never_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    writer = _writer(path)
    try:
        _write(writer, ROWS)
        assert path.stat().st_size < ROWS * ROW_BYTES / 10  # all of it still in the log only
        checkpointer = Checkpointer(str(path), interval=0.01)
        checkpointer.start()
        try:
            await eventually(lambda: path.stat().st_size >= ROWS * ROW_BYTES, within=5.0)
            _write(writer, ROWS)  # the writer goes on beside it, never waiting for it
            await eventually(lambda: path.stat().st_size >= 2 * ROWS * ROW_BYTES, within=5.0)
        finally:
            await checkpointer.stop()
        assert checkpointer.checkpoints > 0
        ran = checkpointer.checkpoints
        await asyncio.sleep(0.05)
        assert checkpointer.checkpoints == ran  # stopped: its thread has ended
    finally:
        writer.close()


async def test_an_http_process_commits_without_checkpointing_and_its_thread_copies(
    serve_app: AppFactory, tmp_path: Path
) -> None:
    """`bot serve --workers N` on SQLite: an HTTP process's commits leave the log to its thread."""
    url = f"sqlite://{tmp_path / 'bot.db'}"
    await create_schema(url)
    turns = ProcessTurns(2)
    role = ProcessRole(Duty.HTTP, Wakes(), turns.turn(1, first=True))
    try:
        client = await serve_app(create_app(make_settings(tmp_path, url), role=role))
        assert await _auto_checkpoint() == 0
        before = (tmp_path / "bot.db").stat().st_size
        for n in range(30):
            notification = text_notification(f"1555000{n:04d}", f"wamid.CKPT.{n}", "hi " * 300)
            assert (await post_webhook(client, notification)).status == 200
        await eventually(lambda: (tmp_path / "bot.db").stat().st_size > before, within=5.0)
    finally:
        turns.close()


async def test_one_bot_serve_keeps_sqlites_own_checkpoints(serve_app: AppFactory, tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'bot.db'}"
    await create_schema(url)
    await serve_app(create_app(make_settings(tmp_path, url)))
    assert await _auto_checkpoint() == 1000


async def _auto_checkpoint() -> int:
    [row] = await connections.get("default").execute_query_dict("PRAGMA wal_autocheckpoint")
    return int(next(iter(row.values())))
