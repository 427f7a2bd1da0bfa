"""What a database's tables look like, read from the database itself (SQLite and PostgreSQL).

bot/db/schema.py uses the table and column names to recognise a database made before migrations; the
tests compare whole descriptions to prove the migrations make exactly the schema the models describe,
and that an adopted old database ends up the same as a new one.
"""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.backends.base.client import BaseDBAsyncClient


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    default: str | None


@dataclass(frozen=True)
class Index:
    """An index or a unique or primary-key constraint's index: PostgreSQL's definition, SQLite's columns."""

    name: str
    unique: bool
    definition: str


@dataclass(frozen=True)
class Constraint:
    """Primary key, unique and foreign-key constraints as the database states them."""

    name: str
    definition: str


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    indexes: frozenset[Index]
    constraints: frozenset[Constraint]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


def _is_sqlite(connection: BaseDBAsyncClient) -> bool:
    return connection.capabilities.dialect == "sqlite"


async def table_names(connection: BaseDBAsyncClient) -> set[str]:
    """The tables in the database (PostgreSQL: in the current schema)."""
    if _is_sqlite(connection):
        query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    else:
        query = (
            "SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
        )
    _, rows = await connection.execute_query(query)
    return {row["name"] for row in rows}


async def describe(connection: BaseDBAsyncClient, tables: set[str] | None = None) -> dict[str, Table]:
    """Every table (or the ones named) with its columns, indexes and constraints."""
    names = sorted(tables if tables is not None else await table_names(connection))
    if _is_sqlite(connection):
        return {name: await _sqlite_table(connection, name) for name in names}
    return {name: await _postgres_table(connection, name) for name in names}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _sqlite_table(connection: BaseDBAsyncClient, name: str) -> Table:
    _, info = await connection.execute_query(f"PRAGMA table_info({_quoted(name)})")
    columns = tuple(
        Column(row["name"], row["type"].upper(), not row["notnull"] and not row["pk"], row["dflt_value"])
        for row in sorted(info, key=lambda row: row["cid"])
    )
    _, listed = await connection.execute_query(f"PRAGMA index_list({_quoted(name)})")
    indexes = set()
    for index in listed:
        _, parts = await connection.execute_query(f"PRAGMA index_info({_quoted(index['name'])})")
        covered = ",".join(part["name"] for part in sorted(parts, key=lambda part: part["seqno"]))
        indexes.add(Index(index["name"], bool(index["unique"]), f"{index['origin']}:({covered})"))
    constraints = {Constraint(f"pk:{column['name']}", "PRIMARY KEY") for column in info if column["pk"]}
    _, foreign = await connection.execute_query(f"PRAGMA foreign_key_list({_quoted(name)})")
    for key in foreign:
        constraints.add(
            Constraint(
                f"fk:{key['from']}",
                f"REFERENCES {key['table']}({key['to']}) ON UPDATE {key['on_update']} "
                f"ON DELETE {key['on_delete']}",
            )
        )
    return Table(name, columns, frozenset(indexes), frozenset(constraints))


async def _postgres_table(connection: BaseDBAsyncClient, name: str) -> Table:
    relation = (
        "(SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relname = $1)"
    )
    _, info = await connection.execute_query(
        "SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, "
        "NOT a.attnotnull AS nullable, pg_get_expr(d.adbin, d.adrelid) AS default "
        "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        f"WHERE a.attrelid = {relation} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        [name],
    )
    columns = tuple(Column(row["name"], row["type"], row["nullable"], row["default"]) for row in info)
    _, listed = await connection.execute_query(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1",
        [name],
    )
    indexes = frozenset(
        Index(row["indexname"], row["indexdef"].startswith("CREATE UNIQUE"), row["indexdef"])
        for row in listed
    )
    _, defined = await connection.execute_query(
        "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint "
        f"WHERE conrelid = {relation}",
        [name],
    )
    constraints = frozenset(Constraint(row["conname"], row["definition"]) for row in defined)
    return Table(name, columns, indexes, constraints)
