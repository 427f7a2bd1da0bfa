"""Schema changes are migrations: old databases upgrade in place, new ones get exactly the models' schema.

The fixtures (tests/fixtures/make_db_v0.py) are a shop's database as the last release before migrations
left it, with rows in every table: as a SQLite file and as a PostgreSQL dump. `bot db migrate` must adopt
them without losing or changing a row, and leave them with the same schema as a database migrated from
nothing, which in turn must be exactly what generate_schemas makes from the models: so the models and the
migrations cannot drift apart (a model change without its migration fails here).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from tortoise import Tortoise, connections
from tortoise.backends.base.executor import EXECUTOR_CACHE

from bot.app import create_app
from bot.db import close_db, init_db
from bot.db.config import tortoise_config
from bot.db.introspect import Column, Constraint, Index, describe
from bot.db.models import (
    Appointment,
    Conversation,
    Customer,
    CustomerIdentity,
    DeliveryStatus,
    IdentityKind,
    Message,
    Order,
)
from bot.db.schema import SchemaAhead, SchemaBehind, model_changes, sqlite_statements
from tests.helpers import (
    POSTGRES_AVAILABLE,
    POSTGRES_URL,
    REPO,
    free_port,
    make_settings,
    reset_postgres,
    write_settings,
)
from tests.test_commands import run_bot

FIXTURES = REPO / "tests" / "fixtures"
SQLITE_V0 = FIXTURES / "db_v0.sqlite3"
POSTGRES_V0 = FIXTURES / "db_v0.postgres.sql"
MIGRATE_HINT = "run `bot db migrate`, or start the server with `bot serve --migrate`"
TABLES = {
    "customer": 3,
    "conversation": 2,
    "message": 5,
    "conversation_timer": 1,
    "early_status": 2,
    "template": 2,
    "template_text": 2,
    "repair_order": 2,
    "order_status_change": 4,
    "api_key": 2,
    "appointment": 2,
    "appointment_seat": 1,
    "appointment_reminder": 3,
    "appointment_change": 3,
    "technician": 2,
    "handoff": 2,
    "handoff_note": 2,
    "audit_event": 4,
}
"""Every table of the v0 schema, with the rows make_db_v0.py put in it."""
HANDOFF_TABLES = ("technician", "audit_event", "handoff", "handoff_note")
"""What the release before the technician handoff (6648f76) did not have yet, in the order they are made."""

MIGRATIONS = tuple(path.stem for path in sorted((REPO / "bot" / "db" / "migrations").glob("[0-9]*_*.py")))
"""Every migration on disk, in order."""
V0_IDS = {table: set(range(1, rows + 1)) for table, rows in TABLES.items()}

postgres_only = pytest.mark.skipif(not POSTGRES_AVAILABLE, reason="no PostgreSQL at 127.0.0.1:5432")


@pytest.fixture(autouse=True)
def _fresh_sql_cache() -> Iterator[None]:
    EXECUTOR_CACHE.clear()  # the tests here switch between SQLite and PostgreSQL in one process
    yield


# ---- helpers


def sqlite_copy(tmp_path: Path, name: str = "bot.db") -> Path:
    path = tmp_path / name
    shutil.copy(SQLITE_V0, path)
    return path


async def restore_postgres_v0() -> str:
    """The dump restored into this run's own (emptied) database; psql's \\restrict lines dropped."""
    await reset_postgres()
    script = "\n".join(line for line in POSTGRES_V0.read_text().splitlines() if not line.startswith("\\"))
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        await connection.execute(script)
    finally:
        await connection.close()
    return POSTGRES_URL


@asynccontextmanager
async def raw(url: str) -> AsyncIterator[Any]:
    """The database through Tortoise's client without any schema check (to look, not to use)."""
    await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
    try:
        yield connections.get("default")
    finally:
        await Tortoise.close_connections()


async def counts(url: str) -> dict[str, int]:
    async with raw(url) as connection:
        result = {}
        for table in TABLES:
            _, rows = await connection.execute_query(f'SELECT count(*) AS n FROM "{table}"')
            result[table] = rows[0]["n"]
        return result


Schema = dict[str, tuple[frozenset[Column], frozenset[Index], frozenset[Constraint]]]


async def schema_of(url: str) -> Schema:
    """Each table (but the migration history) with its columns (in any order: a column a migration
    adds comes last, where the model may list it elsewhere), indexes and constraints."""
    async with raw(url) as connection:
        tables = await describe(connection)
    tables.pop("tortoise_migrations", None)
    return {
        name: (frozenset(table.columns), table.indexes, table.constraints) for name, table in tables.items()
    }


def assert_same_schema(found: Schema, expected: Schema) -> None:
    assert sorted(found) == sorted(expected)
    for name, table in found.items():  # table by table: a difference shows where it is
        assert table == expected[name], name


async def migrated_from_nothing(url: str) -> Schema:
    await init_db(url, migrate_schema=True)
    await close_db()
    return await schema_of(url)


async def generated(url: str) -> Schema:
    async with raw(url):
        await Tortoise.generate_schemas(safe=False)
    return await schema_of(url)


def migrate_command(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"BOT_SETTINGS": str(write_settings(tmp_path)), "DATABASE_URL": url}
    return run_bot("db", "migrate", env=env)


async def ids(url: str) -> dict[str, set[int]]:
    async with raw(url) as connection:
        result = {}
        for table in TABLES:
            _, rows = await connection.execute_query(f'SELECT id FROM "{table}"')
            result[table] = {row["id"] for row in rows}
        return result


def dump(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        return "\n".join(connection.iterdump())


async def check_the_rows_survived(url: str, *, served: bool = False) -> None:
    """Every row there, and the values the models read back are the ones make_db_v0.py wrote.

    `served`: a server ran on it and did its work (handled the pending message, fired the due timer,
    a guard acted): rows were added, the timer is gone and the conversation moved on, but every other
    row of the old database is still there."""
    if served:
        found = await ids(url)
        assert all(
            ids_before <= found[table]
            for table, ids_before in V0_IDS.items()
            if table != "conversation_timer"
        )
    else:
        assert await counts(url) == TABLES
    await init_db(url)  # the schema is current now: the commands and the server accept it
    try:
        text = await Message.get(whatsapp_message_id="wamid.IN_TEXT_0001")
        assert text.message_content == "Hi, is my order shipped?"
        assert text.payload is not None
        assert text.payload["message"]["text"] == {"body": "Hi, is my order shipped?"}
        assert text.delivery_status == DeliveryStatus.HANDLED  # stored as `delivered`: 0002_inbound_handled
        reply = await Message.get(whatsapp_message_id="wamid.OUT_0001")
        assert reply.payload == {
            "kind": "text",
            "body": "Hi Alex! Your order R-1001 is ready for pickup. ¿Algo más? 🙂",
            "preview_url": False,
        }
        assert reply.reply_to == "wamid.IN_TEXT_0001" and reply.read_at is not None
        chat = await Conversation.get(customer__wa_id="15550002222")
        assert served or chat.variables == {
            "name": "Alex",
            "device": "iPhone 13",
            "misses": 1,
            "choices": ["mon", "tue"],
        }
        order = await Order.get(order_number="R-1001").prefetch_related("history")
        assert str(order.quoted_price) == "129.90"
        assert [change.to_status for change in sorted(order.history, key=lambda c: c.id)] == [
            "received",
            "in_progress",
            "ready_for_pickup",
        ]
        appointment = await Appointment.get(order_number="R-1001")
        assert appointment.starts_at.isoformat() == "2026-03-03T10:00:00+00:00"
        assert (await Customer.get(wa_id="34600111222")).profile_name == "María Pérez"
        await check_the_customers_own_their_rows()
        newcomer = await Customer.create(wa_id="15550007777")  # ids go on from the old rows
        assert newcomer.id == len(V0_IDS["customer"]) + 1 or served
    finally:
        await close_db()


async def check_the_customers_own_their_rows() -> None:
    """0003_identity: every phone is a customer's identity, and every row of a phone is its customer's."""
    customers = {c.wa_id: c for c in await Customer.all()}
    phones = set(await CustomerIdentity.filter(kind=IdentityKind.PHONE).values_list("value", flat=True))
    assert phones == set(customers)
    for identity in await CustomerIdentity.all():
        assert customers[identity.value].id == identity.customer_id
    for row in await Message.all():
        assert row.customer_id == customers[row.address].id, row.id
    for order in await Order.all():
        assert order.customer_id == customers[order.customer_phone].id
    for appointment in await Appointment.all():
        assert appointment.customer_phone is not None
        assert appointment.customer_id == customers[appointment.customer_phone].id


# ---- upgrading the committed databases in place


def test_the_sqlite_database_of_the_last_release_upgrades_in_place(tmp_path: Path) -> None:
    path = sqlite_copy(tmp_path)
    url = f"sqlite://{path}"

    result = migrate_command(url, tmp_path)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "adopted a database made before migrations: its tables match, 0001_initial recorded as applied "
        "(no table re-created, no row touched)"
    )
    assert all(line.startswith("applied ") for line in lines[1:-1])  # the migrations since, if any
    assert lines[-1] == f"database ready: {url}"
    asyncio.run(check_the_rows_survived(url))
    again = migrate_command(url, tmp_path)
    assert again.stdout.splitlines()[0].startswith("nothing to apply: the schema is up to date (")
    fresh = asyncio.run(migrated_from_nothing(f"sqlite://{tmp_path / 'fresh.db'}"))
    assert_same_schema(asyncio.run(schema_of(url)), fresh)  # adopted: the schema of a database made today


@postgres_only
async def test_the_postgres_database_of_the_last_release_upgrades_in_place(tmp_path: Path) -> None:
    url = await restore_postgres_v0()
    assert await counts(url) == TABLES

    result = await asyncio.to_thread(migrate_command, url, tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("adopted a database made before migrations")
    await check_the_rows_survived(url)
    upgraded = await schema_of(url)
    await reset_postgres()
    assert_same_schema(upgraded, await migrated_from_nothing(url))


def test_a_database_from_before_the_handoff_tables_gets_them_and_keeps_its_rows(tmp_path: Path) -> None:
    path = sqlite_copy(tmp_path)
    with sqlite3.connect(path) as connection:
        for table in reversed(HANDOFF_TABLES):
            connection.execute(f'DROP TABLE "{table}"')

    result = migrate_command(f"sqlite://{path}", tmp_path)

    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.splitlines()[1]
        == f"created the tables it did not have yet: {', '.join(HANDOFF_TABLES)}"
    )
    found = asyncio.run(counts(f"sqlite://{path}"))
    assert found == {table: 0 if table in HANDOFF_TABLES else rows for table, rows in TABLES.items()}
    fresh = asyncio.run(migrated_from_nothing(f"sqlite://{tmp_path / 'fresh.db'}"))
    assert_same_schema(asyncio.run(schema_of(f"sqlite://{path}")), fresh)


def test_phones_that_only_orders_appointments_or_messages_name_become_customers(tmp_path: Path) -> None:
    """Sam the technician wrote to the business number, a shop order and a booking name phones nobody
    wrote from: after the upgrade each is a customer (Sam's 24-hour window his message's), owning them."""
    path = sqlite_copy(tmp_path)
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO message (customer_phone, message_direction, message_type, message_content, "
            "delivery_status, attempts, sent_at, created_at, updated_at) VALUES ('15550003333', 'inbound', "
            "'text', 'list', 'delivered', 0, '2026-03-02 08:00:00+00:00', '2026-03-02 08:00:01+00:00', "
            "'2026-03-02 08:00:01+00:00')"
        )
        connection.execute(
            "INSERT INTO repair_order (order_number, customer_phone, customer_name, device_model, problem, "
            "status, created_at, updated_at) VALUES ('R-2000', '15550009000', 'Kim', 'Pixel 8', 'battery', "
            "'received', '2026-03-01 10:00:00+00:00', '2026-03-01 10:00:00+00:00')"
        )
        connection.execute(
            "INSERT INTO appointment (customer_phone, starts_at, duration_minutes, status, plan, created_at, "
            "updated_at) VALUES ('15550009001', '2026-03-04 10:00:00+00:00', 30, 'booked', 1, "
            "'2026-03-01 10:00:00+00:00', '2026-03-01 10:00:00+00:00')"
        )

    result = migrate_command(f"sqlite://{path}", tmp_path)

    assert result.returncode == 0, result.stderr
    asyncio.run(_check_new_customers(f"sqlite://{path}"))


async def _check_new_customers(url: str) -> None:
    await init_db(url)
    try:
        await check_the_customers_own_their_rows()
        assert await Customer.all().count() == TABLES["customer"] + 3
        sam = await Customer.get(wa_id="15550003333")
        assert sam.last_inbound_at is not None and sam.last_inbound_at.isoformat().startswith(
            "2026-03-02T08:00"
        )
        assert (await Order.get(order_number="R-2000")).customer_id == (
            await Customer.get(wa_id="15550009000")
        ).id
    finally:
        await close_db()


def test_tables_that_are_not_the_releases_are_refused_and_left_alone(tmp_path: Path) -> None:
    path = sqlite_copy(tmp_path)
    with sqlite3.connect(path) as connection:
        connection.execute("ALTER TABLE technician DROP COLUMN phone")
        connection.execute("ALTER TABLE customer ADD COLUMN email TEXT")
    before = dump(path)

    result = migrate_command(f"sqlite://{path}", tmp_path)

    assert result.returncode == 2
    assert "technician lacks phone" in result.stderr
    assert "customer has email that 0001_initial does not" in result.stderr
    assert "nothing was changed" in result.stderr and "Traceback" not in result.stderr
    assert dump(path) == before


# ---- new databases: exactly the models' schema


def test_a_new_sqlite_database_gets_exactly_the_schema_of_the_models(tmp_path: Path) -> None:
    migrated = asyncio.run(migrated_from_nothing(f"sqlite://{tmp_path / 'migrated.db'}"))
    made = asyncio.run(generated(f"sqlite://{tmp_path / 'generated.db'}"))
    assert set(TABLES) <= set(migrated)
    assert_same_schema(migrated, made)


@postgres_only
async def test_a_new_postgres_database_gets_exactly_the_schema_of_the_models() -> None:
    await reset_postgres()
    migrated = await migrated_from_nothing(POSTGRES_URL)
    await reset_postgres()
    made = await generated(POSTGRES_URL)
    assert set(TABLES) <= set(migrated)
    assert_same_schema(migrated, made)


def test_no_model_change_is_without_its_migration() -> None:
    """Fails after a model change until `bot db makemigrations` has written the migration for it."""
    assert asyncio.run(model_changes()) == []
    result = run_bot("db", "makemigrations", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


async def test_in_memory_databases_are_migrated_once_and_copied_after(tmp_path: Path) -> None:
    """`bot flows test` makes one per test: the first is migrated, the others get the same result,
    which is what migrating a file makes."""
    await init_db(f"sqlite://{tmp_path / 'real.db'}", migrate_schema=True)
    real = await _sqlite_schema()
    await close_db()
    for _ in range(3):
        report = await init_db("sqlite://:memory:", migrate_schema=True)
        try:
            assert report is not None and report.applied == MIGRATIONS
            assert await _sqlite_schema() == real
            await Customer.create(wa_id="15550001111")  # each its own database
            assert await Customer.all().count() == 1
        finally:
            await close_db()
    assert real[1] == [("models", name) for name in MIGRATIONS]


async def _sqlite_schema() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    connection = connections.get("default")
    _, entries = await connection.execute_query("SELECT type, name, sql FROM sqlite_master ORDER BY name")
    _, history = await connection.execute_query("SELECT app, name FROM tortoise_migrations ORDER BY id")
    return [tuple(entry) for entry in entries], [tuple(row) for row in history]


def test_a_comment_with_a_semicolon_stays_in_its_statement() -> None:
    script = 'CREATE TABLE "t" ("a" INT) /* one; two */;\nCREATE INDEX "i" ON "t" ("a");'
    assert sqlite_statements(script) == [
        'CREATE TABLE "t" ("a" INT) /* one; two */;',
        'CREATE INDEX "i" ON "t" ("a");',
    ]


# ---- the server and the commands on a schema that is behind


def test_serve_refuses_a_database_that_is_behind_and_changes_nothing(tmp_path: Path) -> None:
    path = sqlite_copy(tmp_path)
    before = dump(path)
    env = {"BOT_SETTINGS": str(write_settings(tmp_path)), "DATABASE_URL": f"sqlite://{path}"}

    result = run_bot("serve", "--port", "1", env=env)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "the database schema is behind this version of the bot (it was made before migrations and needs "
        f"adopting once): {MIGRATE_HINT}"
    ]
    assert dump(path) == before


def test_serve_refuses_a_new_empty_database(tmp_path: Path) -> None:
    database = tmp_path / "new.db"
    env = {"BOT_SETTINGS": str(write_settings(tmp_path)), "DATABASE_URL": f"sqlite://{database}"}
    result = run_bot("serve", "--port", "1", env=env)
    assert result.returncode == 2
    assert f"(it has no tables yet): {MIGRATE_HINT}" in result.stderr


def test_the_commands_refuse_a_database_that_is_behind(tmp_path: Path) -> None:
    path = sqlite_copy(tmp_path)
    env = {"BOT_SETTINGS": str(write_settings(tmp_path)), "DATABASE_URL": f"sqlite://{path}"}
    for command in (["apikeys", "add", "pos"], ["technicians", "add", "Kim"], ["reminders", "due"]):
        result = run_bot(*command, env=env)
        assert (result.returncode, result.stdout) == (2, ""), command
        assert MIGRATE_HINT in result.stderr and "Traceback" not in result.stderr
    assert asyncio.run(counts(f"sqlite://{path}")) == TABLES


async def test_serve_with_migrate_upgrades_the_database_and_starts(tmp_path: Path) -> None:
    path = sqlite_copy(tmp_path)
    port = free_port()
    env = {"BOT_SETTINGS": str(write_settings(tmp_path)), "DATABASE_URL": f"sqlite://{path}"}
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "bot", "serve", "--migrate", "--port", str(port)),
        cwd=REPO,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                assert server.returncode is None, "the server stopped"
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the server did not answer")
    finally:
        server.terminate()
        output, _ = await asyncio.wait_for(server.communicate(), 30)
    assert "database: adopted a database made before migrations" in output.decode()
    await check_the_rows_survived(f"sqlite://{path}", served=True)


async def test_create_app_refuses_a_schema_behind_and_migrates_when_asked(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    path = sqlite_copy(tmp_path)
    settings = make_settings(tmp_path, f"sqlite://{path}")
    refused = TestServer(create_app(settings))
    with pytest.raises(SchemaBehind, match="bot db migrate"):
        await refused.start_server()
    await refused.close()
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings, migrate=True))
    assert (await client.get("/healthz")).status == 200
    await client.close()
    await check_the_rows_survived(f"sqlite://{path}", served=True)


def test_a_database_migrated_by_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    url = asyncio.run(_newer(path))
    env = {"BOT_SETTINGS": str(write_settings(tmp_path)), "DATABASE_URL": url}
    for command in (["serve", "--port", "1"], ["db", "migrate"]):
        result = run_bot(*command, env=env)
        assert result.returncode == 2, command
        assert (
            "migrated by a newer version of the bot" in result.stderr
            and "0002_from_the_future" in result.stderr
        )
    with pytest.raises(SchemaAhead):
        asyncio.run(init_db(url))


async def _newer(path: Path) -> str:
    url = f"sqlite://{path}"
    await init_db(url, migrate_schema=True)
    await connections.get("default").execute_query(
        "INSERT INTO tortoise_migrations (app, name, applied_at) "
        "VALUES ('models', '0002_from_the_future', '2030-01-01')"
    )
    await close_db()
    return url
