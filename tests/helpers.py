"""Helpers the tests share: settings for a test server, signed webhooks, payloads, polling."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.engine import ActionRegistry
from bot.engine.content import ContentSource, served
from bot.settings import Settings, load_settings
from bot.whatsapp.signature import sign

REPO = Path(__file__).resolve().parents[1]
PAYLOADS = REPO / "tests" / "payloads"
BENCH = REPO / "bench"
POSTGRES_SERVER = "postgres://postgres@127.0.0.1:5432"
POSTGRES_ADMIN_URL = f"{POSTGRES_SERVER}/test"
"""The database the machine provides; only used to create and drop each run's own database."""
POSTGRES_URL = f"{POSTGRES_SERVER}/bot_test_{os.getpid()}_{secrets.token_hex(3)}"
"""This test run's own database (created on first use, dropped at the end), so runs never meet."""
APP_SECRET = "test-app-secret"
GRAPH_TOKEN = "bench-token"
ADMIN_TOKEN = "test-admin-token"
ENCRYPTION_KEY = "dGVzdC1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcy0hISE="
"""BOT_ENCRYPTION_KEYS of the test servers (32 bytes, base64)."""
VERIFY_TOKEN = "test-verify-token"
PHONE_NUMBER_ID = "100000000000001"


def shop_actions() -> ActionRegistry:
    """The actions the shipped flows call, as the server registers them (from the repo's settings)."""
    from bot.wiring import registered_actions

    settings = load_settings(REPO / "settings.yaml", {})
    return registered_actions(settings, shop_content(settings))


def shop_content(settings: Settings) -> ContentSource:
    """settings' templates and texts, read once as a (re)load reads them (their problems fail the test)."""
    from bot.wiring import load_shop_content

    content = load_shop_content(settings)
    assert not content.problems, "\n".join(str(problem) for problem in content.problems)
    return served(content)


def _postgres_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


POSTGRES_AVAILABLE = _postgres_answers()


_postgres_created = False


async def reset_postgres() -> None:
    """An empty public schema in this run's own database (created the first time)."""
    import asyncpg

    global _postgres_created
    if not _postgres_created:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await admin.execute(f'CREATE DATABASE "{POSTGRES_URL.rsplit("/", 1)[1]}"')
        finally:
            await admin.close()
        _postgres_created = True
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        await connection.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
    finally:
        await connection.close()


async def drop_postgres() -> None:
    """At the end of the run: this run's database goes (its connections are closed first)."""
    import asyncpg

    if not _postgres_created:
        return
    name = POSTGRES_URL.rsplit("/", 1)[1]
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def create_schema(database_url: str) -> None:
    """A new test database at the current schema, quickly: generate_schemas from the models, then every
    migration recorded as applied (Tortoise's `migrate --fake`). tests/test_migrations.py proves that the
    migrations make exactly this schema; a real migration costs ~0.5 s a database (see its docstring)."""
    from tortoise import Tortoise, connections
    from tortoise.migrations.executor import MigrationExecutor

    from bot.db.config import apps_config, tortoise_config

    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)
    try:
        await Tortoise.generate_schemas(safe=False)
        await MigrationExecutor(connections.get("default"), apps_config()).migrate(fake=True)
    finally:
        await Tortoise.close_connections()


def migrated_sqlite(path: Path) -> str:
    """A new SQLite file at the current schema, as `bot db migrate` leaves it (for the commands' tests)."""
    url = f"sqlite://{path}"
    asyncio.run(create_schema(url))
    return url


def payload(name: str) -> dict[str, Any]:
    """A real-shaped Cloud API example from tests/payloads."""
    loaded: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return loaded


def write_settings(tmp_path: Path, extra: str = "") -> Path:
    """The shipped flows, templates and texts (templates/texts/: the bot's own words), unless `extra`
    names other templates."""
    path = tmp_path / "settings.yaml"
    templates = "" if "templates:" in extra else f"templates:\n  directory: {REPO / 'templates'}\n"
    path.write_text(
        f"""
shop:
  name: Test Repairs
  timezone: Europe/Madrid
  default_language: en
  address: 1 Test Street          # the shipped status texts use both
  opening_hours: Mon-Fri 9-5
flows:
  directory: {REPO / "flows"}
{templates}whatsapp:
  messages_per_second: 1000
  pair_interval_seconds: 6
  pair_burst: 20
{extra}
"""
    )
    return path


def make_settings(
    tmp_path: Path, database_url: str, graph_url: str | None = None, extra: str = "", **env: str
) -> Settings:
    environ = {
        "DATABASE_URL": database_url,
        "WHATSAPP_APP_SECRET": APP_SECRET,
        "WHATSAPP_WEBHOOK_VERIFY_TOKEN": VERIFY_TOKEN,
        "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "BOT_ADMIN_TOKEN": ADMIN_TOKEN,
        "BOT_ENCRYPTION_KEYS": ENCRYPTION_KEY,
    }
    if graph_url:
        environ["WHATSAPP_ACCESS_TOKEN"] = GRAPH_TOKEN
        environ["WHATSAPP_API_BASE_URL"] = graph_url
    environ.update(env)
    return load_settings(write_settings(tmp_path, extra), environ)


def graph_base(server: TestServer) -> str:
    return str(server.make_url("/v21.0"))


async def graph_sends(server: TestServer, *, every_attempt: bool = False) -> list[list[Any]]:
    """Sends recorded by the fake Graph API: [arrival, to, type, ref, wamid(, status)]."""
    async with aiohttp.ClientSession() as session:
        url = server.make_url("/dump?all=1" if every_attempt else "/dump")
        async with session.get(url) as response:
            sends: list[list[Any]] = await response.json()
    return sends


async def post_webhook(
    client: TestClient[web.Request, web.Application],
    body: dict[str, Any] | bytes,
    secret: str = APP_SECRET,
    signature: str | None = None,
) -> web.Response | Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature or sign(secret, raw)}
    return await client.post("/webhook", data=raw, headers=headers)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Poll until `check` holds; fail with a clear message after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached within {within} s")
        await asyncio.sleep(0.02)


def text_notification(phone: str, wamid: str, body: str, name: str = "Alex Example") -> dict[str, Any]:
    """An inbound text notification in Meta's envelope, for a given customer and wamid."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "200000000000001",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550001111",
                                "phone_number_id": PHONE_NUMBER_ID,
                            },
                            "contacts": [{"profile": {"name": name}, "wa_id": phone}],
                            "messages": [
                                {
                                    "from": phone,
                                    "id": wamid,
                                    "timestamp": str(int(time.time())),
                                    "type": "text",
                                    "text": {"body": body},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


BotFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
AppFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
"""The `serve_app` fixture: serve an app, get a client for it."""
