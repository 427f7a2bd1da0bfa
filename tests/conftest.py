"""Shared fixtures: real databases, the real server, and a fake Graph API at the HTTP boundary only.

Every test that asks for `database_url` runs twice: on a fresh SQLite file, and on the local PostgreSQL
(127.0.0.1:5432, user postgres) whenever it answers, so the PostgreSQL path never rots. The database has
the current schema already (tests/helpers.create_schema), as `bot db migrate` leaves it. Each run makes
its own PostgreSQL database and drops it at the end, so two runs on one machine never meet.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from tortoise.backends.base.executor import EXECUTOR_CACHE

from bot.app import create_app
from bot.engine import FlowSet, load_flows
from tests.helpers import (
    BENCH,
    FLOWS,
    GRAPH_TOKEN,
    POSTGRES_AVAILABLE,
    POSTGRES_URL,
    AppFactory,
    BotFactory,
    create_schema,
    drop_postgres,
    graph_base,
    install_test_keys,
    make_settings,
    reset_postgres,
    shop_actions,
)


@pytest.fixture(scope="session", autouse=True)
def _own_postgres_database() -> Iterator[None]:
    yield
    if POSTGRES_AVAILABLE:
        asyncio.run(drop_postgres())


@pytest.fixture(scope="module")
def shipped() -> FlowSet:
    """The shipped flows, loaded with the actions the server registers."""
    return load_flows(FLOWS, shop_actions())


@pytest.fixture
def fresh_executor_cache() -> Iterator[None]:
    """Tortoise caches SQL per connection name process-wide: a test that opens its own database (the
    simulator's, a command's) after a PostgreSQL test starts from an empty cache, and leaves one."""
    EXECUTOR_CACHE.clear()
    yield
    EXECUTOR_CACHE.clear()


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
    # Tortoise caches each model's SQL per connection name, process-wide; one process switching between
    # SQLite and PostgreSQL (only the tests do) must start from an empty cache
    EXECUTOR_CACHE.clear()
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path / 'bot.db'}"
    else:
        await reset_postgres()
        url = POSTGRES_URL
    await create_schema(url)
    # a fresh key ring per test: ids restart in every database, so no data key may outlive its test
    install_test_keys(url)
    return url


@pytest.fixture
async def keyed_db(database_url: str) -> AsyncIterator[None]:
    """The test database connected in this process, with the test servers' key ring installed."""
    from bot.db import close_db, init_db

    install_test_keys()
    await init_db(database_url)
    yield
    await close_db()


@pytest.fixture
async def fake_graph() -> AsyncIterator[TestServer]:
    """bench/fake_graph.py served on a free port: records every send like the real API."""
    sys.path.insert(0, str(BENCH))
    try:
        import fake_graph
    finally:
        sys.path.remove(str(BENCH))
    server = TestServer(fake_graph.build_app(token=GRAPH_TOKEN))
    await server.start_server()
    yield server
    await server.close()


AppClient = TestClient[web.Request, web.Application]


@pytest.fixture
async def serve_app() -> AsyncIterator[AppFactory]:
    """Serve an app and return a client for it, like pytest-aiohttp's `aiohttp_client`, but a server
    whose start-up fails is closed as well: the client's session and whatever the app's cleanup
    contexts had opened (its database, its Graph API session). aiohttp_client forgets such a server,
    and its sessions end as "Unclosed client session" warnings."""
    clients: list[AppClient] = []

    async def start(app: web.Application) -> AppClient:
        client: AppClient = TestClient(TestServer(app))
        try:
            await client.start_server()
        except BaseException:
            await client.close()
            raise
        clients.append(client)
        return client

    yield start
    while clients:
        await clients.pop().close()


@pytest.fixture
async def bot_client(
    serve_app: AppFactory,
    tmp_path: Path,
    database_url: str,
    fake_graph: TestServer,
) -> BotFactory:
    """Start the real server (create_app) on the test database, sending to the fake Graph API."""

    async def start(extra: str = "", **env: str) -> AppClient:
        settings = make_settings(tmp_path, database_url, graph_base(fake_graph), extra, **env)
        return await serve_app(create_app(settings))

    return start
