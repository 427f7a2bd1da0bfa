"""Helpers the tests share, each written once: settings for a test server, signed webhooks, payloads,
polling, a clock the test moves, flow files written and checked."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import json
import os
import re
import secrets
import socket
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite.core
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from tortoise import connections

from bot.db.models import Direction, Message
from bot.engine import ActionRegistry, FlowProblem, check_flows
from bot.engine.content import ContentSource, served
from bot.settings import Settings, load_settings
from bot.whatsapp.signature import sign

REPO = Path(__file__).resolve().parents[1]
FLOWS = REPO / "flows"
TEMPLATES = REPO / "templates"
"""The shipped flows and templates (with templates/texts/: the bot's own words)."""
PAYLOADS = REPO / "tests" / "payloads"
BENCH = REPO / "bench"
POSTGRES_SERVER = "postgres://postgres@127.0.0.1:5432"
POSTGRES_ADMIN_URL = f"{POSTGRES_SERVER}/test"
"""The database the machine provides; only used to create and drop each run's own database."""
POSTGRES_URL = f"{POSTGRES_SERVER}/bot_test_{os.getpid()}_{secrets.token_hex(3)}"
"""This test run's own database (created on first use, dropped at the end), so runs never meet."""
INBOUND_KINDS = frozenset(
    {
        "text",
        "image",
        "document",
        "audio",
        "video",
        "sticker",
        "location",
        "contacts",
        "interactive",
        "button",
        "reaction",
        "order",
        "system",
        "unsupported",
    }
)
"""What an inbound message's `kind` (and its stored message_type) can be."""
APP_SECRET = "test-app-secret"
GRAPH_TOKEN = "bench-token"
ADMIN_TOKEN = "test-admin-token"
ENCRYPTION_KEY = "dGVzdC1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcy0hISE="
"""BOT_ENCRYPTION_KEYS of the test servers (32 bytes, base64)."""
VERIFY_TOKEN = "test-verify-token"
PHONE_NUMBER_ID = "100000000000001"


def install_test_keys(database_url: str | None = None) -> None:
    """The test servers' master key as a new key ring of this process (encrypted values, media files),
    reading the data keys it has not seen (another process's) from `database_url`."""
    from bot import crypto
    from bot.db.keystore import sync_loader

    loader = sync_loader(database_url) if database_url else None
    crypto.install(crypto.KeyRing(crypto.parse_master_keys(ENCRYPTION_KEY), loader))


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


def serve_env(settings: Path, database_url: str, graph: TestServer, **extra: str) -> dict[str, str]:
    """The environment of a `python -m bot serve` subprocess against the fake Graph API `graph`."""
    return {
        **os.environ,
        "BOT_SETTINGS": str(settings),
        "DATABASE_URL": database_url,
        "WHATSAPP_ACCESS_TOKEN": GRAPH_TOKEN,
        "WHATSAPP_APP_SECRET": APP_SECRET,
        "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "WHATSAPP_API_BASE_URL": graph_base(graph),
        "BOT_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        **extra,
    }


async def graph_sends(server: TestServer, *, every_attempt: bool = False) -> list[list[Any]]:
    """Sends recorded by the fake Graph API: [arrival, to, type, ref, wamid(, status)]."""
    async with aiohttp.ClientSession() as session:
        url = server.make_url("/dump?all=1" if every_attempt else "/dump")
        async with session.get(url) as response:
            sends: list[list[Any]] = await response.json()
    return sends


async def receive_file(server: TestServer, media_id: str, data: bytes, mime_type: str) -> None:
    """A file someone sent the business number, kept by the fake Graph API (bench/fake_graph.py) to be
    asked for (GET /{media-id}) and downloaded as the Cloud API would."""
    async with aiohttp.ClientSession() as session:
        url = server.make_url(f"/received/{media_id}")
        body = io.BytesIO(data)  # a large file as raw bytes would hold up the event loop (aiohttp warns)
        async with session.put(url, data=body, headers={"Content-Type": mime_type}) as response:
            assert response.status == 200


async def fake_graph_json(server: TestServer, path: str) -> Any:
    """What the fake Graph API recorded: /uploads, /dump?bodies=1 (see bench/fake_graph.py)."""
    async with aiohttp.ClientSession() as session, session.get(server.make_url(path)) as response:
        return await response.json()


async def post_webhook(
    client: TestClient[web.Request, web.Application],
    body: dict[str, Any] | bytes,
    secret: str = APP_SECRET,
    signature: str | None = None,
) -> web.Response | Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature or sign(secret, raw)}
    return await client.post("/webhook", data=raw, headers=headers)


async def eventually(check: Callable[[], Awaitable[bool] | bool], within: float = 10.0) -> None:
    """Poll until `check` (a coroutine function or a plain one) holds; fail with a clear message after
    `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await _holds(check):
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached within {within} s")
        await asyncio.sleep(0.02)


async def _holds(check: Callable[[], Awaitable[bool] | bool]) -> bool:
    result = check()
    return bool(await result) if inspect.isawaitable(result) else bool(result)


class Clock:
    """Time stands still until a test moves it: no sleeping anywhere. `now` defaults to the present.
    Also the pacer's clock (`monotonic`, and a `sleep` in which time passes and nobody waits)."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now if now is not None else datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def monotonic(self) -> float:
        return self.now.timestamp()

    async def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        await asyncio.sleep(0)  # others run meanwhile, as they would

    def jump_to(self, when: datetime | None) -> None:
        """On to `when` (a retry's due time), never back."""
        assert when is not None
        self.now = max(self.now, when)


def write_flow(directory: Path, name: str, text: str) -> str:
    """`text` as the flow file `name` in `directory` (made when missing), the indentation a test writes
    it with inside a function taken off and the first blank line dropped; returns the text written (to
    find a problem's line and column in, with `at`)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = textwrap.dedent(text).lstrip("\n")
    (directory / name).write_text(written, encoding="utf-8")
    return written


def check_flow(tmp_path: Path, flow: str, templates: Path | None = TEMPLATES) -> list[FlowProblem]:
    """The problems `bot flows check` finds in `flow` as flows/main.yaml, beside `templates`."""
    write_flow(tmp_path / "flows", "main.yaml", flow)
    return check_flows(tmp_path / "flows", templates=templates)


def reasons(problems: list[FlowProblem]) -> list[str]:
    """Each problem as "line: reason"."""
    return [f"{p.line}: {p.reason}" for p in problems]


def where(problems: list[FlowProblem], file: str) -> dict[tuple[int, int], str]:
    """The problems in `file` (a name) by (line, column), the reasons at one place run together."""
    found: dict[tuple[int, int], str] = {}
    for p in problems:
        if Path(p.file).name == file:
            found[(p.line, p.column)] = found.get((p.line, p.column), "") + p.reason
    return found


def at(text: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """1-based line and column of the nth occurrence of `needle` in `text`."""
    index = -1
    for _ in range(nth):
        index = text.index(needle, index + 1)
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def free_port() -> int:
    """A TCP port nothing listens on now (for a server started as its own process)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def handled(wamid: str) -> bool:
    """The inbound message `wamid` is stored and the inbox has handled it."""
    row = await Message.get_or_none(whatsapp_message_id=wamid)
    return row is not None and row.processed_at is not None


async def store_inbound(phone: str, wamid: str, text: str) -> None:
    """A customer's text stored as the webhook's intake stores it, for the inbox to handle."""
    from bot.spine.intake import inbound_row
    from bot.whatsapp.notifications import parse_notification

    raw = json.dumps(text_notification(phone, wamid, text)).encode()
    [item] = parse_notification(raw).inbound_messages()
    await inbound_row(item, datetime.now(UTC)).save()


async def outbound_rows() -> list[Message]:
    """Every message the bot queued or sent, oldest first."""
    return await Message.filter(message_direction=Direction.OUTBOUND).order_by("id")


async def outbound_texts(phone: str) -> list[str | None]:
    """What the bot queued or sent to `phone`, oldest first: each message's text."""
    rows = await Message.filter(address=phone, message_direction=Direction.OUTBOUND).order_by("id")
    return [row.message_content for row in rows]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def errors_of(body: dict[str, Any]) -> dict[str, str]:
    """An API's 422 answer as field -> message."""
    return {error["field"]: error["message"] for error in body["errors"]}


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


async def message_with(content: str, **where: Any) -> Message:
    """The one message of `where` with this content: compared once read, since the column is encrypted
    (an equality lookup in SQL cannot match a ciphertext, every encryption differs)."""
    found = [row for row in await Message.filter(**where).order_by("id") if row.message_content == content]
    assert len(found) == 1, f"{len(found)} messages say {content!r}"
    return found[0]


def dialect_sql(sql: str) -> str:
    """$1-style placeholders, as SQLite's ? when the test runs there."""
    if connections.get("default").capabilities.dialect == "postgres":
        return sql
    return re.sub(r"\$\d+", "?", sql)


async def execute(sql: str, *values: object) -> None:
    """A raw statement on the test database (to put it in a state the bot would not)."""
    await connections.get("default").execute_query(dialect_sql(sql), list(values))


async def settle() -> None:
    """Let every task that is ready run a few steps (no time passes)."""
    for _ in range(5):
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def sqlite_trips(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[list[str]]]:
    """While inside: each trip to SQLite's thread (aiosqlite's `_execute`) as the first words of the
    statements SQLite ran in it (sqlite3's trace), appended in order. The default connection must be
    SQLite and open."""
    trips: list[list[str]] = []
    ran: list[str] = []
    connection = connections.get("default")._connection
    await connection.set_trace_callback(lambda statement: ran.append(statement.split()[0].upper()))
    original = aiosqlite.core.Connection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        ran.clear()
        try:
            return await original(self, fn, *args, **kwargs)
        finally:
            trips.append(list(ran))

    monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counted)
    try:
        yield trips
    finally:
        monkeypatch.setattr(aiosqlite.core.Connection, "_execute", original)
        await connection.set_trace_callback(None)
