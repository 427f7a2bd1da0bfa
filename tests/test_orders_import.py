"""`bot orders import FILE.csv` and `bot apikeys add NAME`: good rows go in (and notify, like the API),
bad rows are reported with their line numbers and reasons; an API key is shown once and stored hashed."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path

import pytest
from tortoise import connections

from bot.db import is_sqlite
from bot.db.models import Message, Order, OrderSource, OrderStatusChange
from bot.orders.importer import ImportFileError, import_orders
from tests.helpers import migrated_sqlite, write_settings
from tests.orders_helpers import TEMPLATES, order_settings, started_service
from tests.test_commands import run_bot

HEADER = "order_number,customer_phone,customer_name,device_model,problem,status,quoted_price,technician\n"
GOOD_AND_BAD = (
    HEADER
    + "R-1,+1 555 000 1111,Ana,iPhone 13,cracked screen,received,129.00,Sam\n"
    + "R-2,not a phone,Ben,Pixel 7,battery,received,,\n"  # line 3: bad phone
    + "\n"  # line 4: blank, skipped
    + 'R-3,15550003333,Cleo,Galaxy S22,"water damage,\nwill not turn on",shipped,abc,\n'  # lines 5-6
    + "R-4,15550004444,Dan,iPad Air,charging port,diagnosing,80,Kim\n"  # line 7
    + "R-1,15550001111,Ana,iPhone 13,cracked screen,in_progress,129.00,Sam\n"  # line 8: update
    + ",15550005555,,Moto G,screen,received,,\n"  # line 9: two errors
)


@pytest.mark.parametrize("batch_size", [500, 2, 1])
async def test_good_rows_go_in_and_bad_rows_are_reported_by_line(
    database_url: str, tmp_path: Path, batch_size: int
) -> None:
    async with started_service(order_settings(tmp_path, database_url)) as service:
        report = await import_orders(GOOD_AND_BAD, service, batch_size=batch_size)
        assert (report.imported, report.updated, report.bad_rows) == (2, 1, 3)
        assert report.summary() == "2 imported, 1 updated, 3 bad rows"
        problems = [str(problem) for problem in report.bad]
        assert problems[0].startswith("line 3: customer_phone: not a phone number")
        assert "line 5: status: unknown status 'shipped'; the statuses are: received," in problems[1]
        assert problems[2].startswith("line 5: quoted_price: ")
        assert problems[3:] == ["line 9: order_number: required", "line 9: customer_name: required"]
        assert await Order.all().order_by("order_number").values_list("order_number", "status") == [
            ("R-1", "in_progress"),
            ("R-4", "diagnosing"),
        ]
        sources = [change.source for change in await OrderStatusChange.all()]
        assert sources == [OrderSource.IMPORT] * 3
        notified = await Message.all().order_by("id").values_list("address", "order_id")
        r1, r4 = await Order.get(order_number="R-1"), await Order.get(order_number="R-4")
        assert notified == [("15550001111", r1.id), ("15550004444", r4.id), ("15550001111", r1.id)]


async def _refuse_order_number(database_url: str, number: str) -> None:
    """A database that will not store this one order (a trigger): a row that fails only when saved."""
    connection = connections.get("default")
    if is_sqlite(database_url):
        await connection.execute_script(
            "CREATE TRIGGER refuse BEFORE INSERT ON repair_order "
            f"WHEN NEW.order_number = '{number}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
        )
        return
    await connection.execute_script(
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
        f"IF NEW.order_number = '{number}' THEN RAISE EXCEPTION 'refused by the test'; END IF; "
        "RETURN NEW; END $$ LANGUAGE plpgsql; "
        "CREATE TRIGGER refuse BEFORE INSERT ON repair_order FOR EACH ROW EXECUTE FUNCTION refuse();"
    )


async def test_a_row_that_cannot_be_saved_never_costs_its_batch_mates_their_place(
    database_url: str, tmp_path: Path
) -> None:
    rows = [f"R-{n},1555000{n:04},Ana,iPhone 13,screen,received,,\n" for n in range(1, 8)]
    async with started_service(order_settings(tmp_path, database_url)) as service:
        await _refuse_order_number(database_url, "R-5")
        report = await import_orders(HEADER + "".join(rows), service, batch_size=3)

        assert report.summary() == "6 imported, 0 updated, 1 bad rows"
        assert [str(problem) for problem in report.bad] == [
            "line 6: row: could not be saved: refused by the test"
        ]
        saved = await Order.all().order_by("id").values_list("order_number", flat=True)
        assert saved == ["R-1", "R-2", "R-3", "R-4", "R-6", "R-7"]
        # the failed batch was rolled back whole before its rows were tried alone:
        # one history row and one message per saved order, none for R-5, none twice
        assert await OrderStatusChange.all().count() == 6
        notified = await Message.all().order_by("id").values_list("address", flat=True)
        assert notified == [f"1555000{n:04}" for n in (1, 2, 3, 4, 6, 7)]


async def test_a_header_that_is_not_the_apis_field_names_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    async with started_service(order_settings(tmp_path, database_url)) as service:
        with pytest.raises(ImportFileError, match=r"unknown column.*phone"):
            await import_orders("order_number,phone\nR-1,1555\n", service)
        with pytest.raises(ImportFileError, match=r"missing column.*customer_name"):
            await import_orders("order_number,customer_phone,device_model,problem\n", service)
        with pytest.raises(ImportFileError, match="empty"):
            await import_orders("\n\n", service)


def test_orders_import_command_prints_the_summary_and_each_bad_row(tmp_path: Path) -> None:
    database = tmp_path / "bot.db"
    settings = write_settings(tmp_path, TEMPLATES)
    env = {"BOT_SETTINGS": str(settings), "DATABASE_URL": migrated_sqlite(database)}
    export = tmp_path / "orders.csv"
    export.write_text(GOOD_AND_BAD, encoding="utf-8-sig")
    result = run_bot("orders", "import", str(export), env=env)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "2 imported, 1 updated, 3 bad rows"
    assert [line.split(":")[0] for line in lines[1:]] == ["line 3", "line 5", "line 5", "line 9", "line 9"]
    good = tmp_path / "good.csv"
    good.write_text(HEADER + "R-4,15550004444,Dan,iPad Air,charging port,completed,80,Kim\n")
    result = run_bot("orders", "import", str(good), env=env)
    assert (result.returncode, result.stdout.strip()) == (0, "0 imported, 1 updated, 0 bad rows")
    with sqlite3.connect(database) as connection:
        queued = connection.execute(
            "SELECT count(*) FROM message WHERE delivery_status = 'queued'"
        ).fetchone()
    assert queued == (4,)


def test_apikeys_add_prints_only_the_key_and_stores_its_hash(tmp_path: Path) -> None:
    database = tmp_path / "bot.db"
    env = {"BOT_SETTINGS": str(write_settings(tmp_path)), "DATABASE_URL": migrated_sqlite(database)}
    result = run_bot("apikeys", "add", "shop-pos", env=env)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"rb_[A-Za-z0-9_-]{43}\n", result.stdout), result.stdout
    key = result.stdout.strip()
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT name, key_hash FROM api_key").fetchall()
        dump = "\n".join(connection.iterdump())
    assert rows == [("shop-pos", hashlib.sha256(key.encode()).hexdigest())]
    assert key not in dump and key.removeprefix("rb_") not in dump
    again = run_bot("apikeys", "add", "shop-pos", env=env)
    assert (again.returncode, again.stdout) == (2, "")
    assert "exists already" in again.stderr
