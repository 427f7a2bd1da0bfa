"""Shared fixtures: real databases, the real server, and a fake Graph API at the HTTP boundary only.

Every test that asks for `database_url` runs twice: on a fresh SQLite file, and on the local PostgreSQL
(127.0.0.1:5432, user postgres, database test) whenever it answers, so the PostgreSQL path never rots.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.settings import Settings, load_settings
from bot.whatsapp.signature import sign

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PAYLOADS = SHARED / "payloads"
BENCH = SHARED / "bench"
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test"
APP_SECRET = "test-app-secret"
GRAPH_TOKEN = "bench-token"
ADMIN_TOKEN = "test-admin-token"
VERIFY_TOKEN = "test-verify-token"
PHONE_NUMBER_ID = "100000000000001"


def _postgres_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


POSTGRES_AVAILABLE = _postgres_answers()


async def _reset_postgres() -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        await connection.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
    finally:
        await connection.close()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgres",
            marks=pytest.mark.skipif(not POSTGRES_AVAILABLE, reason="no PostgreSQL at 127.0.0.1:5432"),
        ),
    ]
)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'bot.db'}"
    await _reset_postgres()
    return POSTGRES_URL


def payload(name: str) -> dict[str, Any]:
    """A real-shaped Cloud API example from ../shared/payloads."""
    path = PAYLOADS / name
    if not path.exists():
        pytest.skip(f"{path} is not here (../shared/payloads comes with the project's shared folder)")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def write_settings(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(
        f"""
shop:
  name: Test Repairs
  timezone: Europe/Madrid
  default_language: en
flows:
  directory: {REPO / "flows"}
whatsapp:
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
    }
    if graph_url:
        environ["WHATSAPP_ACCESS_TOKEN"] = GRAPH_TOKEN
        environ["WHATSAPP_API_BASE_URL"] = graph_url
    environ.update(env)
    return load_settings(write_settings(tmp_path, extra), environ)


@pytest.fixture
async def fake_graph() -> AsyncIterator[TestServer]:
    """../shared/bench/fake_graph.py served on a free port: records every send like the real API."""
    if not (BENCH / "fake_graph.py").exists():
        pytest.skip("../shared/bench/fake_graph.py is not here")
    sys.path.insert(0, str(BENCH))
    try:
        import fake_graph
    finally:
        sys.path.remove(str(BENCH))
    server = TestServer(fake_graph.build_app(token=GRAPH_TOKEN))
    await server.start_server()
    yield server
    await server.close()


def graph_base(server: TestServer) -> str:
    return str(server.make_url("/v21.0"))


async def graph_sends(server: TestServer, *, every_attempt: bool = False) -> list[list[Any]]:
    """Sends recorded by the fake Graph API: [arrival, to, type, ref, wamid(, status)]."""
    async with aiohttp.ClientSession() as session:
        url = server.make_url("/dump?all=1" if every_attempt else "/dump")
        async with session.get(url) as response:
            sends: list[list[Any]] = await response.json()
    return sends


BotFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def bot_client(
    aiohttp_client: Any, tmp_path: Path, database_url: str, fake_graph: TestServer
) -> BotFactory:
    """Start the real server (create_app) on the test database, sending to the fake Graph API."""

    async def start(extra: str = "", **env: str) -> TestClient[web.Request, web.Application]:
        settings = make_settings(tmp_path, database_url, graph_base(fake_graph), extra, **env)
        client: TestClient[web.Request, web.Application] = await aiohttp_client(create_app(settings))
        return client

    return start


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
