"""The database schema: Tortoise's migrations in bot/db/migrations/, applied in order and recorded in the
`tortoise_migrations` table of each database.

- `migrate` applies what is pending (`bot db migrate`, `bot serve --migrate`, the simulator's databases).
- `check` refuses a schema older than the code (SchemaBehind, naming `bot db migrate`) or newer than it
  (SchemaAhead), so no command ever runs on tables its models do not describe.
- A database made before migrations existed (every earlier release's `bot db init` called
  generate_schemas: its tables are there, `tortoise_migrations` is not) is adopted: the tables it has
  are checked against the initial migration, column by column; the tables its release did not have yet
  are created; the initial migration is recorded as applied without touching a row; later migrations
  then apply as on any database.
- An in-memory SQLite database (`bot flows test` makes one per test) is migrated for real once per
  process; later ones get a copy of the result (the same CREATE statements and rows), which takes a few
  milliseconds instead of replaying the migrations' model states every time.

Tortoise's SQLite schema editor splits DDL at every ";", including one inside a table comment taken
from a model's docstring; `_SqliteEditor` splits where SQLite's own tokenizer says a statement ends.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.migrations.autodetector import MigrationAutodetector
from tortoise.migrations.executor import MigrationExecutor
from tortoise.migrations.graph import MigrationKey
from tortoise.migrations.migration import Migration
from tortoise.migrations.operations import CreateModel
from tortoise.migrations.schema_editor import BaseSchemaEditor, SqliteSchemaEditor
from tortoise.migrations.schema_generator.state import State
from tortoise.migrations.schema_generator.state_apps import StateApps
from tortoise.migrations.writer import MigrationWriter, format_migration_name
from tortoise.models import Model
from tortoise.transactions import in_transaction

from bot.db.config import APP_LABEL, CONNECTION, MIGRATIONS_TABLE, apps_config, tortoise_config
from bot.db.introspect import describe, table_names

MIGRATE_HINT = "run `bot db migrate`, or start the server with `bot serve --migrate`"


class SchemaError(Exception):
    """The database's schema cannot be used as it is; the message says why and what to run."""


class SchemaBehind(SchemaError):
    pass


class SchemaAhead(SchemaError):
    pass


class SchemaMismatch(SchemaError):
    """A database without migration history whose tables are not the ones the initial migration makes."""


@dataclass(frozen=True)
class SchemaStatus:
    applied: tuple[str, ...]
    pending: tuple[str, ...]
    """Not yet applied, in the order they will be."""
    unknown: tuple[str, ...]
    """Recorded as applied but not in bot/db/migrations/: a newer release migrated this database."""
    legacy: bool
    """Tables but no migration history: made by generate_schemas before migrations existed."""


@dataclass(frozen=True)
class MigrationReport:
    applied: tuple[str, ...] = ()
    adopted: str | None = None
    """The initial migration, when it was recorded for a database made before migrations."""
    created_tables: tuple[str, ...] = ()
    """Tables the adopted database did not have yet (its release predates them)."""
    current: str | None = None
    """The last migration the database now has."""

    def lines(self) -> list[str]:
        """What happened, for people: one line per step."""
        lines = []
        if self.adopted:
            lines.append(
                f"adopted a database made before migrations: its tables match, {self.adopted} recorded "
                "as applied (no table re-created, no row touched)"
            )
        if self.created_tables:
            lines.append(f"created the tables it did not have yet: {', '.join(self.created_tables)}")
        lines.extend(f"applied {name}" for name in self.applied)
        if not self.adopted and not self.applied:
            lines.append(f"nothing to apply: the schema is up to date ({self.current or 'no migrations'})")
        return lines


async def check(connection: BaseDBAsyncClient) -> SchemaStatus:
    """Raise SchemaBehind or SchemaAhead unless every migration, and only those, has been applied."""
    status = await schema_status(connection)
    _refuse_ahead(status)
    if status.pending:
        if status.legacy:
            detail = "it was made before migrations and needs adopting once"
        elif not status.applied:
            detail = "it has no tables yet"
        else:
            detail = f"{len(status.pending)} migration(s) to apply: {', '.join(status.pending)}"
        raise SchemaBehind(
            f"the database schema is behind this version of the bot ({detail}): {MIGRATE_HINT}"
        )
    return status


def _refuse_ahead(status: SchemaStatus) -> None:
    if status.unknown:
        raise SchemaAhead(
            "the database was migrated by a newer version of the bot (migrations this one does not have: "
            f"{', '.join(status.unknown)}): run that version, or restore a backup"
        )


async def schema_status(connection: BaseDBAsyncClient) -> SchemaStatus:
    executor = await _executor(connection)
    applied = await _applied(executor)
    plan = _full_plan(executor)
    legacy = False
    if plan and plan[0] not in applied and (tables := await table_names(connection)):
        legacy = bool({model._meta.db_table for model in await _initial_models(executor)} & tables)
    return SchemaStatus(
        applied=tuple(key.name for key in plan if key in applied),
        pending=tuple(key.name for key in plan if key not in applied),
        unknown=tuple(sorted(key.name for key in applied - set(plan))),
        legacy=legacy,
    )


async def migrate(connection: BaseDBAsyncClient) -> MigrationReport:
    """Apply every pending migration, adopting a database made before migrations first."""
    if _is_memory(connection) and not await table_names(connection):
        return await _migrate_new_memory(connection)
    status = await schema_status(connection)
    _refuse_ahead(status)
    executor = await _executor(connection)
    adopted: str | None = None
    created: tuple[str, ...] = ()
    if status.legacy:
        adopted, created = await _adopt(executor)
    pending = [key.name for key in _full_plan(executor) if key not in await _applied(executor)]
    await executor.migrate(direction="forward")
    plan = _full_plan(executor)
    return MigrationReport(
        applied=tuple(pending),
        adopted=adopted,
        created_tables=created,
        current=plan[-1].name if plan else None,
    )


# ---- for developers: the migration that takes the last one to the models


async def model_changes() -> list[str]:
    """What the models have that the migrations do not make yet, one line per operation."""
    return [operation.describe() for writer in await _writers() for operation in writer.operations]


async def make_migrations(name: str | None = None) -> list[Path]:
    """Write the migration for the models' changes since the last one (none when there are none)."""
    paths = []
    for writer in await _writers():
        if name:
            writer.name = format_migration_name(int(writer.name.split("_", 1)[0]), name)
        paths.append(writer.write())
    return paths


async def _writers() -> list[MigrationWriter]:
    """Tortoise's autodetector compares the models with the state the migrations on disk build."""
    await Tortoise.init(config=tortoise_config("sqlite://:memory:"), _enable_global_fallback=True)
    try:
        assert Tortoise.apps is not None
        return await MigrationAutodetector(Tortoise.apps, apps_config()).changes()
    finally:
        await Tortoise.close_connections()


# ---- the executor, and what it does not do for us


class _SqliteEditor(SqliteSchemaEditor):
    async def _run_sql(self, sql: str) -> None:
        if self.collect_sql or not self.atomic_migration:
            await super()._run_sql(sql)
            return
        for statement in sqlite_statements(sql):
            await self.client.execute_query(statement)


def sqlite_statements(script: str) -> list[str]:
    """The statements of an SQL script, split where SQLite's tokenizer ends one (not inside a comment or
    a string)."""
    statements, current = [], ""
    for piece in script.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \t\r\n;"):
                statements.append(current.strip())
            current = ""
    if current.strip(" \t\r\n;"):
        statements.append(current.strip().removesuffix(";"))
    return statements


class _Executor(MigrationExecutor):
    def _schema_editor(self, atomic: bool = True, collect_sql: bool = False) -> BaseSchemaEditor:
        editor = super()._schema_editor(atomic=atomic, collect_sql=collect_sql)
        if isinstance(editor, SqliteSchemaEditor):
            return _SqliteEditor(self.connection, atomic=atomic, collect_sql=collect_sql)
        return editor


async def _executor(connection: BaseDBAsyncClient) -> _Executor:
    executor = _Executor(connection, apps_config())
    await executor.loader.build_graph()
    return executor


def _full_plan(executor: MigrationExecutor) -> list[MigrationKey]:
    """Every migration of the app on disk, in the order they apply."""
    graph = executor.loader.graph
    plan: list[MigrationKey] = []
    for leaf in graph.leaf_nodes(APP_LABEL):
        plan.extend(key for key in graph.forwards_plan(leaf) if key not in plan)
    return plan


async def _applied(executor: MigrationExecutor) -> set[MigrationKey]:
    """What the history table records (nothing when there is no table: Tortoise's own recorder would
    also say nothing when the database does not answer at all)."""
    if MIGRATIONS_TABLE not in await table_names(executor.connection):
        return set()
    return {key for key in await executor.recorder.applied_migrations() if key.app_label == APP_LABEL}


async def _initial_models(executor: MigrationExecutor) -> list[type[Model]]:
    """The models as the initial migration creates them, in its order (referenced tables first)."""
    plan = _full_plan(executor)
    if not plan:
        return []
    initial = executor.loader.graph.nodes[plan[0]]
    assert isinstance(initial, Migration)
    state = State(models={}, apps=StateApps(default_connections={APP_LABEL: CONNECTION}))
    await initial.apply(state, dry_run=True)
    return [
        state.apps.get_model(APP_LABEL, operation.name)
        for operation in initial.operations
        if isinstance(operation, CreateModel)
    ]


async def _adopt(executor: _Executor) -> tuple[str, tuple[str, ...]]:
    """Record the initial migration for a database generate_schemas made, after checking its tables."""
    initial_key = _full_plan(executor)[0]
    initial = executor.loader.graph.nodes[initial_key]
    assert isinstance(initial, Migration)
    if not all(isinstance(operation, CreateModel) for operation in initial.operations):
        raise SchemaMismatch(f"{initial_key.name} does more than create tables: cannot adopt this database")
    models = await _initial_models(executor)
    present = await table_names(executor.connection)
    existing = await describe(executor.connection, {m._meta.db_table for m in models} & present)
    problems = []
    for model in models:
        table = existing.get(model._meta.db_table)
        if table is None:
            continue
        expected = set(model._meta.fields_db_projection.values())
        missing, extra = expected - set(table.column_names), set(table.column_names) - expected
        if missing:
            problems.append(f"{table.name} lacks {', '.join(sorted(missing))}")
        if extra:
            problems.append(f"{table.name} has {', '.join(sorted(extra))} that {initial_key.name} does not")
    if problems:
        raise SchemaMismatch(
            "the database has no migration history and its tables are not the ones this bot's releases "
            f"made ({'; '.join(problems)}): nothing was changed"
        )
    to_create = [model for model in models if model._meta.db_table not in present]
    editor = executor._schema_editor(atomic=True)
    async with in_transaction(executor.connection.connection_name) as client:
        editor.client = client
        for model in to_create:
            await editor.create_model(model)
    await executor.recorder.ensure_schema(executor._schema_editor(atomic=False))
    await executor.recorder.record_applied(APP_LABEL, initial_key.name)
    return initial_key.name, tuple(model._meta.db_table for model in to_create)


# ---- in-memory SQLite: migrated once per process, copied after


@dataclass
class _MemoryCopy:
    migrations: tuple[str, ...]
    tables: list[str] = field(default_factory=list)
    later: list[str] = field(default_factory=list)
    """Indexes, triggers and views: created after the rows are in."""
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


_memory_copies: dict[tuple[str, ...], _MemoryCopy] = {}
"""The migrated in-memory schema per set of migrations on disk (one set per process, in practice)."""


def _is_memory(connection: BaseDBAsyncClient) -> bool:
    return getattr(connection, "filename", None) == ":memory:"


async def _migrate_new_memory(connection: BaseDBAsyncClient) -> MigrationReport:
    executor = await _executor(connection)
    names = tuple(key.name for key in _full_plan(executor))
    copy = _memory_copies.get(names)
    if copy is None:
        await executor.migrate(direction="forward")
        _memory_copies[names] = await _copy_of(connection, names)
    else:
        await _restore(connection, copy)
    return MigrationReport(applied=names, current=names[-1] if names else None)


async def _copy_of(connection: BaseDBAsyncClient, names: tuple[str, ...]) -> _MemoryCopy:
    copy = _MemoryCopy(migrations=names)
    _, entries = await connection.execute_query(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
        "ORDER BY rowid"
    )
    for entry in entries:
        if entry["type"] == "table":
            copy.tables.append(entry["sql"])
            _, rows = await connection.execute_query(f'SELECT * FROM "{entry["name"]}"')
            copy.rows[entry["name"]] = [dict(row) for row in rows]
        else:
            copy.later.append(entry["sql"])
    return copy


async def _restore(connection: BaseDBAsyncClient, copy: _MemoryCopy) -> None:
    async with in_transaction(connection.connection_name) as client:
        for statement in copy.tables:
            await client.execute_query(statement)
        for table, rows in copy.rows.items():
            for row in rows:
                columns = ", ".join(f'"{name}"' for name in row)
                marks = ", ".join("?" for _ in row)
                await client.execute_insert(
                    f'INSERT INTO "{table}" ({columns}) VALUES ({marks})', list(row.values())
                )
        for statement in copy.later:
            await client.execute_query(statement)
