"""The CLI's order commands: `bot apikeys add|revoke NAME`, `bot apikeys list`, `bot orders import FILE`."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from bot.db import close_db, init_db
from bot.engine.content import served
from bot.master_keys import load_key_ring
from bot.orders.importer import ImportFileError, import_orders, read_csv
from bot.orders.keys import KeyNameTaken, create_key, list_keys, revoke_key
from bot.orders.setup import build_order_service
from bot.settings import Settings
from bot.wiring import load_shop_content

T = TypeVar("T")


async def _with_db(settings: Settings, run: Callable[[], Awaitable[T]]) -> T:
    await init_db(settings.database_url)
    load_key_ring(settings)
    try:
        return await run()
    finally:
        await close_db()


async def apikeys_add(settings: Settings, name: str) -> int:
    """Print only the key on stdout (`KEY=$(bot apikeys add shop-pos)` works); 2 if the name is taken."""
    name = name.strip()
    if not name or len(name) > 64:
        print("give the key a name of 1 to 64 characters", file=sys.stderr)
        return 2
    try:
        key = await _with_db(settings, lambda: create_key(name))
    except KeyNameTaken:
        print(f"an API key named '{name}' exists already; choose another name", file=sys.stderr)
        return 2
    print(key)
    print(f"API key '{name}' created; it is shown only this once: keep it safe", file=sys.stderr)
    return 0


async def apikeys_revoke(settings: Settings, name: str) -> int:
    if await _with_db(settings, lambda: revoke_key(name)):
        print(f"API key '{name}' revoked")
        return 0
    print(f"there is no live API key named '{name}'", file=sys.stderr)
    return 1


async def apikeys_list(settings: Settings) -> int:
    keys = await _with_db(settings, list_keys)
    print(f"{'name':<24} {'created':<20} {'last used':<20} revoked")
    for key in keys:
        created, used = _when(key.created_at), _when(key.last_used_at)
        print(f"{key.name:<24} {created:<20} {used:<20} {_when(key.revoked_at)}")
    return 0


def _when(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at else "-"


async def orders_import(settings: Settings, path: Path) -> int:
    """Print the summary and each bad row; 1 when any row was bad, 2 when the file cannot be used."""
    content = load_shop_content(settings)  # the status texts and the template, read once
    if content.problems:
        print("The templates or texts have problems; nothing was imported:", file=sys.stderr)
        for found in content.problems:
            print(f"  {found}", file=sys.stderr)
        return 2
    try:
        text = read_csv(path)
        service = build_order_service(settings, served(content))  # the server's outbox sends the messages
        report = await _with_db(settings, lambda: import_orders(text, service))
    except ImportFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(report.summary())
    for problem in report.bad:
        print(problem)
    return 1 if report.bad else 0
