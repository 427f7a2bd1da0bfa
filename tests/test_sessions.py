"""No HTTP client session outlives its server: one whose start-up fails (here: a database that does
not exist) is closed too, so the suite prints no "Unclosed client session" warnings, and the database
connection it had half opened does not block the next start."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import warnings
from pathlib import Path

import pytest

from bot.app import create_app
from bot.db import close_db, init_db
from bot.db.models import Customer
from tests.helpers import POSTGRES_SERVER, AppFactory, create_schema, make_settings


def _unclosed(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "Unclosed" in str(w.message)]


async def test_a_server_whose_start_up_fails_leaves_no_session_open(
    serve_app: AppFactory, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, f"{POSTGRES_SERVER}/no_such_database", "http://127.0.0.1:9/v21.0")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(OSError):  # refused or unknown: the server never starts
            await serve_app(create_app(settings))
        gc.collect()
    assert _unclosed(caught) == []

    # and the database it had half opened is closed: the next test's server (a task of its own,
    # with none of this one's context) starts cleanly
    async def next_start() -> int:
        url = f"sqlite://{tmp_path / 'next.db'}"
        await create_schema(url)
        await init_db(url)
        try:
            return await Customer.all().count()
        finally:
            await close_db()

    assert await asyncio.create_task(next_start(), context=contextvars.Context()) == 0
