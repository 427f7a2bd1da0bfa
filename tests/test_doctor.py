"""`bot doctor` against a fake Graph API (tests/fake_account.py): one line per check, in order, with what
to do about a failure; exit 0 only when everything is ready."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from bot.cli.doctor import run_doctor
from bot.cli.whatsapp import subscribe
from bot.engine.templates import load_templates
from bot.settings import load_settings
from tests.fake_account import WABA_ID, FakeAccount, approved_templates, base_url, graph_error, serve
from tests.helpers import (
    APP_SECRET,
    ENCRYPTION_KEY,
    GRAPH_TOKEN,
    PHONE_NUMBER_ID,
    REPO,
    VERIFY_TOKEN,
    create_schema,
    write_settings,
)

CHECK_NAMES = [
    "settings",
    "database",
    "migrations",
    "flows and templates",
    "encryption key",
    "phone number",
    "webhooks",
    "templates at Meta",
]


@pytest.fixture
async def meta() -> AsyncIterator[tuple[FakeAccount, TestServer]]:
    fake = FakeAccount(templates=approved_templates(load_templates(REPO / "templates")[0]))
    fake.subscribed = [{"whatsapp_business_api_data": {"id": "670843887433847", "name": "Fix-It Bot"}}]
    server = await serve(fake)
    yield fake, server
    await server.close()


def live_environ(database_url: str, server: TestServer | None, **changes: str) -> dict[str, str]:
    environ = {"DATABASE_URL": database_url, "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID}
    if server is not None:
        environ |= {
            "WHATSAPP_ACCESS_TOKEN": GRAPH_TOKEN,
            "WHATSAPP_APP_SECRET": APP_SECRET,
            "WHATSAPP_WEBHOOK_VERIFY_TOKEN": VERIFY_TOKEN,
            "WHATSAPP_BUSINESS_ACCOUNT_ID": WABA_ID,
            "WHATSAPP_API_BASE_URL": base_url(server),
            "BOT_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        }
    return {**environ, **changes}


def shop_settings(tmp_path: Path) -> Path:
    return write_settings(tmp_path, f"templates:\n  directory: {REPO / 'templates'}\n")


async def ready_database(url: str) -> None:
    """The database as `bot db migrate` leaves it (the `database_url` fixture's already are)."""
    await create_schema(url)


async def doctor(settings: Path, environ: dict[str, str]) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = await run_doctor(settings, environ, out)
    return code, out.getvalue().splitlines()


def by_name(lines: list[str]) -> dict[str, str]:
    """check name -> (status, the rest of its line)."""
    found = {}
    for line in lines[:-1]:
        status, rest = line.split(maxsplit=1)
        name, _, text = rest.partition(": ")
        found[name] = f"{status} {text}"
    return found


async def test_a_ready_installation_passes_every_check_in_order_and_exits_0(
    tmp_path: Path, database_url: str, meta: tuple[FakeAccount, TestServer]
) -> None:
    fake, server = meta

    code, lines = await doctor(shop_settings(tmp_path), live_environ(database_url, server))

    assert code == 0, "\n".join(lines)
    assert [line.split(maxsplit=1)[1].split(":")[0] for line in lines[:-1]] == CHECK_NAMES
    assert all(line.startswith("ok ") for line in lines[:-1])
    checks = by_name(lines)
    assert checks["phone number"] == (
        "ok +1 555-000-1111 · Fix-It Phone Repair · quality GREEN · throughput STANDARD · "
        "messaging limit TIER_2K"
    )
    assert checks["webhooks"] == "ok subscribed: Fix-It Bot"
    assert checks["templates at Meta"].startswith("ok 15 language version(s) of 5 template(s) approved")
    assert lines[-1] == "ready: every check passed"
    fields = fake.requests[0][2]["fields"].split(",")
    assert fields == [
        "display_phone_number",
        "verified_name",
        "quality_rating",
        "throughput",
        "whatsapp_business_manager_messaging_limit",
    ]
    assert [path for method, path, _ in fake.requests if method == "POST"] == []  # the doctor changes nothing


async def test_an_app_not_subscribed_is_named_and_bot_whatsapp_subscribe_fixes_it(
    tmp_path: Path, database_url: str, meta: tuple[FakeAccount, TestServer]
) -> None:
    fake, server = meta
    fake.subscribed = []
    settings_path, environ = shop_settings(tmp_path), live_environ(database_url, server)

    code, lines = await doctor(settings_path, environ)

    assert code == 1
    assert by_name(lines)["webhooks"] == (
        f"FAIL no app is subscribed to the webhooks of WABA {WABA_ID}: customers' messages will not reach "
        "the bot → run `bot whatsapp subscribe`"
    )
    assert by_name(lines)["templates at Meta"].startswith("ok ")  # the other checks still ran
    assert lines[-1] == "not ready: webhooks"

    out, err = io.StringIO(), io.StringIO()
    assert await subscribe(load_settings(settings_path, environ), None, None, out, err) == 0, err.getvalue()
    assert out.getvalue() == f"subscribed to the webhooks of WABA {WABA_ID}: Fix-It Bot\n"

    code, lines = await doctor(settings_path, environ)
    assert code == 0, "\n".join(lines)


async def test_an_expired_token_fails_the_phone_number_and_skips_what_needs_it(
    tmp_path: Path, database_url: str, meta: tuple[FakeAccount, TestServer]
) -> None:
    fake, server = meta
    fake.token_error = graph_error(190, "Error validating access token: Session has expired")

    code, lines = await doctor(shop_settings(tmp_path), live_environ(database_url, server))

    assert code == 1
    checks = by_name(lines)
    assert checks["phone number"].startswith("FAIL Graph error 190: Error validating access token")
    assert "→ the token expired or is invalid: set WHATSAPP_ACCESS_TOKEN" in checks["phone number"]
    assert checks["webhooks"] == "skip needs phone number first → fix phone number above"
    assert checks["templates at Meta"] == "skip needs phone number first → fix phone number above"
    assert len(fake.requests) == 1


async def test_a_wrong_phone_number_id_is_named(
    tmp_path: Path, database_url: str, meta: tuple[FakeAccount, TestServer]
) -> None:
    _, server = meta
    environ = live_environ(database_url, server, WHATSAPP_PHONE_NUMBER_ID="123")

    code, lines = await doctor(shop_settings(tmp_path), environ)

    assert code == 1
    assert by_name(lines)["phone number"].startswith("FAIL Graph error 100: Unsupported get request")
    assert "→ check WHATSAPP_PHONE_NUMBER_ID" in by_name(lines)["phone number"]


async def test_a_template_not_approved_as_written_is_named(
    tmp_path: Path, database_url: str, meta: tuple[FakeAccount, TestServer]
) -> None:
    fake, server = meta
    reminder_es = next(
        t for t in fake.templates if (t["name"], t["language"]) == ("appointment_reminder", "es")
    )
    reminder_es["status"] = "PENDING"
    fake.templates = [t for t in fake.templates if (t["name"], t["language"]) != ("follow_up", "es")]

    code, lines = await doctor(shop_settings(tmp_path), live_environ(database_url, server))

    assert code == 1
    assert by_name(lines)["templates at Meta"] == (
        "FAIL 2 of 15 not ready: appointment_reminder (es) pending, follow_up (es) missing → run `bot "
        "templates sync` for the details; submit or correct them in WhatsApp Manager"
    )


async def test_sandbox_mode_is_not_ready_and_says_what_to_set(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'bot.db'}"
    await ready_database(url)

    code, lines = await doctor(shop_settings(tmp_path), live_environ(url, None))

    assert code == 1
    checks = by_name(lines)
    assert checks["settings"].endswith("is valid; sandbox mode (no WHATSAPP_ACCESS_TOKEN)")
    assert checks["database"] == f"ok {url} answers"
    latest = max(path.stem for path in (REPO / "bot" / "db" / "migrations").glob("0*.py"))
    assert checks["migrations"] == f"ok the schema is current ({latest})"
    assert checks["phone number"].startswith("skip sandbox mode: no WHATSAPP_ACCESS_TOKEN")
    assert "→ set WHATSAPP_ACCESS_TOKEN (a system-user token)" in checks["phone number"]
    assert lines[-1] == "not ready: phone number, webhooks, templates at Meta"


async def test_a_missing_database_and_bad_flows_are_each_explained(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text("flow: main\nstart: menu\nstates:\n  menu:\n    goto: nowhere\n")
    settings = write_settings(tmp_path, f"templates:\n  directory: {REPO / 'templates'}\n")
    settings.write_text(settings.read_text().replace(str(REPO / "flows"), str(flows)))
    database = tmp_path / "data" / "bot.db"

    code, lines = await doctor(settings, live_environ(f"sqlite://{database}", None))

    assert code == 1
    checks = by_name(lines)
    assert checks["database"] == f"FAIL no database at {database} → run `bot db init` (make run does it too)"
    assert not database.exists()  # looked at, not created
    assert checks["migrations"] == "skip needs database first → fix database above"
    assert checks["flows and templates"].startswith(f"FAIL 1 problem(s), the first: {flows / 'main.yaml'}:5:")
    assert checks["flows and templates"].endswith(
        "→ run `bot flows check` and fix each file:line:column it prints"
    )


async def test_invalid_settings_are_the_first_line_and_nothing_else_runs(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, "server:\n  port: 99999\n")

    code, lines = await doctor(settings, {})

    assert code == 1
    assert lines[0].startswith(f"FAIL  settings: {settings}: invalid settings; server.port: ")
    assert lines[0].endswith("→ correct the key or environment variable named above")
    assert [line.split()[0] for line in lines[1:-1]] == ["skip"] * 7


async def test_credentials_without_encryption_keys_fail_the_encryption_check(tmp_path: Path) -> None:
    environ = live_environ("sqlite://x.db", None) | {
        "WHATSAPP_ACCESS_TOKEN": GRAPH_TOKEN,
        "WHATSAPP_APP_SECRET": APP_SECRET,
    }

    code, lines = await doctor(shop_settings(tmp_path), environ)

    assert code == 1
    check = by_name(lines)["encryption key"]
    assert check.startswith("FAIL BOT_ENCRYPTION_KEYS is not set: with WhatsApp credentials"), check
    assert check.endswith("→ set BOT_ENCRYPTION_KEYS (`bot keys generate` makes a key)")
    assert by_name(lines)["settings"].startswith("ok ")
    assert not (tmp_path / "data").exists()


async def test_the_command_prints_the_lines_and_exits_0_when_ready(
    tmp_path: Path, database_url: str, meta: tuple[FakeAccount, TestServer]
) -> None:
    _, server = meta
    environ = {
        **os.environ,
        **live_environ(database_url, server),
        "BOT_SETTINGS": str(shop_settings(tmp_path)),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "doctor",
        cwd=REPO,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)

    assert process.returncode == 0, stdout.decode() + stderr.decode()
    lines = stdout.decode().splitlines()
    assert [line.split()[0] for line in lines] == ["ok"] * len(CHECK_NAMES) + ["ready:"]
    assert "1 master key(s) from BOT_ENCRYPTION_KEYS" in by_name(lines)["encryption key"]
    assert stderr.decode() == ""


async def test_a_database_that_does_not_answer_is_named_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgres://postgres@127.0.0.1:{port}/shop"

    code, lines = await doctor(shop_settings(tmp_path), live_environ(url, None))

    assert code == 1
    database = by_name(lines)["database"]
    assert database.startswith(f"FAIL {url}: ") and "Connect call failed" in database
    assert database.endswith("→ start the database, or correct DATABASE_URL / database.url")
    assert by_name(lines)["flows and templates"].startswith("ok ")  # the checks after it still ran


async def test_a_database_behind_the_code_is_named_with_the_command_that_migrates_it(tmp_path: Path) -> None:
    database = tmp_path / "old.db"
    sqlite3.connect(database).close()  # there, but no table and no migration yet

    code, lines = await doctor(shop_settings(tmp_path), live_environ(f"sqlite://{database}", None))

    assert code == 1
    checks = by_name(lines)
    assert checks["database"].startswith("ok ")
    assert checks["migrations"] == (
        "FAIL the database schema is behind this version of the bot (it has no tables yet) → run "
        "`bot db migrate`, or start the server with `bot serve --migrate`"
    )
    assert sqlite3.connect(database).execute("SELECT name FROM sqlite_master").fetchall() == []  # unchanged
