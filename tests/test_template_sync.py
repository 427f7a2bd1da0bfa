"""`bot templates sync` against a fake Graph API: templates/ into the database, then compared with Meta's."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.db import close_db, init_db
from bot.db.models import Template, TemplateText
from bot.settings import Settings
from bot.template_sync import SyncState, sync_templates
from tests.helpers import GRAPH_TOKEN, make_settings, migrated_sqlite
from tests.test_commands import run_bot

WABA = "300000000000001"
GRAPH_VERSION = "v25.0"

REPAIR_READY = """\
name: repair_ready
category: utility
languages:
  en: "Hi {{1}}, your {{2}} is repaired and ready to collect."
  es: "Hola {{1}}, tu {{2}} está reparado y listo para recoger."
examples: ["Ana", "iPhone 13"]
"""
APPOINTMENT_REMINDER = """\
name: appointment_reminder
languages:
  en: "Reminder: your repair appointment is on {{1}} at {{2}}."
  es: "Recordatorio: tu cita de reparación es el {{1}} a las {{2}}."
examples: ["12 May", "10:30"]
"""
ORDER_STATUS_UPDATE = """\
name: order_status_update
languages:
  en: "Order {{1}}: {{2}}"
examples: ["R-1042", "waiting for the screen"]
"""


def meta(
    name: str,
    language: str,
    status: str,
    body: str,
    category: str = "UTILITY",
    quick_replies: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One template as GET /{waba}/message_templates lists it."""
    components: list[dict[str, Any]] = [
        {"type": "BODY", "text": body},
        {"type": "FOOTER", "text": "Fix-It Repairs"},
    ]
    if quick_replies:
        buttons = [{"type": "QUICK_REPLY", "text": title} for title in quick_replies]
        components.append({"type": "BUTTONS", "buttons": buttons})
    return {
        "name": name,
        "language": language,
        "status": status,
        "category": category,
        "components": components,
        "id": f"1{len(name):03}{len(language)}",
    }


META_TEMPLATES = [
    # approved, the same text up to whitespace
    meta("repair_ready", "en", "APPROVED", "Hi {{1}},  your {{2}} is repaired\nand ready to collect."),
    meta("repair_ready", "es", "REJECTED", "Hola {{1}}, tu {{2}} está reparado y listo para recoger."),
    meta("appointment_reminder", "en", "PENDING", "Reminder: your repair appointment is on {{1}} at {{2}}."),
    # appointment_reminder/es is missing
    meta("order_status_update", "en", "APPROVED", "Order {{1}} update: {{2}}"),
    meta("black_friday", "en", "APPROVED", "{{1}}% off screen repairs this week!", "MARKETING"),
]


@dataclass
class FakeGraph:
    """GET /v25.0/{waba}/message_templates in pages of `page_size`, behind the bearer token."""

    templates: list[dict[str, Any]]
    page_size: int = 3
    error: dict[str, Any] | None = None
    next_url: str | None = None
    """When set, every page's paging.next (a hostile or broken answer)."""
    requests: list[dict[str, str]] = field(default_factory=list)

    async def list_templates(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.query))
        if request.headers.get("Authorization") != f"Bearer {GRAPH_TOKEN}":
            return web.json_response(_graph_error(190, "Error validating access token"), status=401)
        if self.error is not None:
            return web.json_response(self.error, status=400)
        if request.match_info["waba"] != WABA:
            return web.json_response(_graph_error(100, "Unsupported get request"), status=400)
        assert request.query["fields"] == "name,language,status,category,components"
        start = int(request.query.get("after", "0"))
        page = self.templates[start : start + self.page_size]
        body: dict[str, Any] = {"data": page, "paging": {"cursors": {"before": str(start)}}}
        if self.next_url is not None:
            body["paging"]["next"] = self.next_url
        elif start + self.page_size < len(self.templates):
            after = str(start + self.page_size)
            body["paging"]["cursors"]["after"] = after
            body["paging"]["next"] = str(request.url.update_query(after=after))
        return web.json_response(body)


def _graph_error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "ATrace"}}


@pytest.fixture
async def graph() -> AsyncIterator[tuple[FakeGraph, TestServer]]:
    fake = FakeGraph(list(META_TEMPLATES))
    app = web.Application()
    app.router.add_get(f"/{GRAPH_VERSION}/{{waba}}/message_templates", fake.list_templates)
    server = TestServer(app)
    await server.start_server()
    yield fake, server
    await server.close()


def write_templates(directory: Path, *texts: str) -> Path:
    directory.mkdir(exist_ok=True)
    for text in texts:
        name = text.split("\n", 1)[0].removeprefix("name: ")
        (directory / f"{name}.yaml").write_text(text, encoding="utf-8")
    return directory


def settings_for(tmp_path: Path, database_url: str, server: TestServer | None, **env: str) -> Settings:
    templates = write_templates(
        tmp_path / "templates", REPAIR_READY, APPOINTMENT_REMINDER, ORDER_STATUS_UPDATE
    )
    graph_url = str(server.make_url(f"/{GRAPH_VERSION}")) if server else None
    if server:
        env.setdefault("WHATSAPP_BUSINESS_ACCOUNT_ID", WABA)
    return make_settings(tmp_path, database_url, graph_url, f"templates:\n  directory: {templates}\n", **env)


async def rows(database_url: str) -> tuple[dict[str, Template], dict[tuple[str, str], TemplateText]]:
    await init_db(database_url)
    try:
        templates = {row.template_name: row for row in await Template.all()}
        texts = {(row.template_name, row.language_code): row for row in await TemplateText.all()}
    finally:
        await close_db()
    return templates, texts


async def test_each_template_and_language_gets_its_state_at_meta(
    tmp_path: Path, database_url: str, graph: tuple[FakeGraph, TestServer]
) -> None:
    fake, server = graph
    report = await sync_templates(settings_for(tmp_path, database_url, server))

    states = {(check.name, check.language): check.state for check in report.checks}
    assert states == {
        ("repair_ready", "en"): SyncState.OK,
        ("repair_ready", "es"): SyncState.REJECTED,
        ("appointment_reminder", "en"): SyncState.PENDING,
        ("appointment_reminder", "es"): SyncState.MISSING,
        ("order_status_update", "en"): SyncState.DIFFERS,
        ("black_friday", "en"): SyncState.ONLY_AT_META,
    }
    differs = next(check for check in report.checks if check.state is SyncState.DIFFERS)
    assert differs.detail is not None and "Order {{1}} update: {{2}}" in differs.detail
    assert report.exit_code == 1
    assert len(fake.requests) == 2  # two pages, the second by paging.next
    assert fake.requests[0]["limit"] == "100" and fake.requests[1]["after"] == "3"


async def test_all_approved_and_matching_exits_0(
    tmp_path: Path, database_url: str, graph: tuple[FakeGraph, TestServer]
) -> None:
    fake, server = graph
    fake.templates = [t for t in META_TEMPLATES if t["name"] == "repair_ready"]
    fake.templates[1] = {**fake.templates[1], "status": "APPROVED"}
    settings = settings_for(tmp_path, database_url, server)
    for path in settings.templates_dir.glob("*.yaml"):
        if path.stem != "repair_ready":
            path.unlink()

    report = await sync_templates(settings)

    assert [(c.language, c.state) for c in report.checks] == [("en", SyncState.OK), ("es", SyncState.OK)]
    assert report.exit_code == 0


async def test_quick_reply_titles_are_compared_with_what_meta_approved(
    tmp_path: Path, database_url: str, graph: tuple[FakeGraph, TestServer]
) -> None:
    fake, server = graph
    reminder_en = "Reminder: your repair appointment is on {{1}} at {{2}}."
    moved = ("Confirm", "Move", "Cancel")
    reminder_es = "Recordatorio: tu cita de reparación es el {{1}} a las {{2}}."
    fake.templates = [
        meta("appointment_reminder", "en", "APPROVED", reminder_en, quick_replies=moved),
        meta("appointment_reminder", "es", "APPROVED", reminder_es, quick_replies=("Confirmar", "Cancelar")),
        meta("repair_ready", "en", "APPROVED", "Hi {{1}}, your {{2}} is repaired and ready to collect."),
        meta(
            "repair_ready",
            "es",
            "APPROVED",
            "Hola {{1}}, tu {{2}} está reparado y listo para recoger.",
            quick_replies=("Gracias",),
        ),
    ]
    settings = settings_for(tmp_path, database_url, server)
    (settings.templates_dir / "order_status_update.yaml").unlink()
    (settings.templates_dir / "appointment_reminder.yaml").write_text(
        APPOINTMENT_REMINDER + "buttons:\n  en: [Confirm, Reschedule, Cancel]\n  es: [Confirmar, Cancelar]\n",
        encoding="utf-8",
    )

    report = await sync_templates(settings)

    checks = {(check.name, check.language): check for check in report.checks}
    assert checks["appointment_reminder", "es"].state is SyncState.OK
    assert checks["repair_ready", "en"].state is SyncState.OK  # no quick replies on either side
    renamed = checks["appointment_reminder", "en"]
    assert renamed.state is SyncState.DIFFERS
    assert renamed.detail == (
        "Meta's quick replies are [Confirm, Move, Cancel], templates/ says [Confirm, Reschedule, Cancel]"
    )
    extra = checks["repair_ready", "es"]
    assert (extra.state, extra.detail) == (
        SyncState.DIFFERS,
        "Meta's quick replies are [Gracias], templates/ says none",
    )
    assert report.exit_code == 1


async def test_sync_loads_the_database_and_records_meta_states(
    tmp_path: Path, database_url: str, graph: tuple[FakeGraph, TestServer]
) -> None:
    _, server = graph
    await sync_templates(settings_for(tmp_path, database_url, server))

    templates, texts = await rows(database_url)
    assert set(templates) == {"repair_ready", "appointment_reminder", "order_status_update"}
    ready = templates["repair_ready"]
    assert ready.language_code == "en"  # the shop's default language
    assert ready.template_content == "Hi {{1}}, your {{2}} is repaired and ready to collect."
    assert (ready.category, ready.variables, ready.is_active) == ("utility", ["Ana", "iPhone 13"], True)
    assert len(texts) == 5 and "black_friday" not in templates
    assert texts["repair_ready", "es"].body.startswith("Hola {{1}}")
    assert {key: row.sync_state for key, row in texts.items()} == {
        ("repair_ready", "en"): "ok",
        ("repair_ready", "es"): "rejected",
        ("appointment_reminder", "en"): "pending",
        ("appointment_reminder", "es"): "missing",
        ("order_status_update", "en"): "differs",
    }
    assert all(row.checked_at is not None for row in texts.values())


async def test_a_removed_file_or_language_is_deactivated_and_a_new_text_forgets_its_check(
    tmp_path: Path, database_url: str, graph: tuple[FakeGraph, TestServer]
) -> None:
    _, server = graph
    settings = settings_for(tmp_path, database_url, server)
    await sync_templates(settings)
    (settings.templates_dir / "order_status_update.yaml").unlink()
    (settings.templates_dir / "repair_ready.yaml").write_text(
        REPAIR_READY.replace("ready to collect", "ready for pick-up").replace("  es:", "  #es:")
    )

    sandbox = settings.secrets.model_copy(update={"access_token": None})
    await sync_templates(settings.model_copy(update={"secrets": sandbox}))  # loads, compares nothing

    templates, texts = await rows(database_url)
    assert templates["order_status_update"].is_active is False
    assert texts["order_status_update", "en"].is_active is False
    assert texts["repair_ready", "es"].is_active is False
    assert templates["repair_ready"].template_content.endswith("ready for pick-up.")
    assert texts["repair_ready", "en"].sync_state is None  # a new text: Meta's old verdict is dropped
    assert texts["appointment_reminder", "en"].sync_state == "pending"  # unchanged: kept
    assert texts["appointment_reminder", "en"].is_active is True

    await sync_templates(settings, fetch=_nothing_at_meta)  # an account with no templates at all
    _, texts = await rows(database_url)
    assert texts["repair_ready", "en"].sync_state == "missing"


async def _nothing_at_meta() -> list[Any]:
    return []


async def test_sandbox_skips_the_comparison_but_loads_the_database(
    tmp_path: Path, database_url: str, graph: tuple[FakeGraph, TestServer]
) -> None:
    fake, _ = graph
    report = await sync_templates(settings_for(tmp_path, database_url, None))

    assert report.skipped is not None and "sandbox" in report.skipped
    assert {check.state for check in report.checks} == {SyncState.NOT_CHECKED}
    assert report.exit_code == 0
    assert fake.requests == []
    templates, texts = await rows(database_url)
    assert len(templates) == 3 and len(texts) == 5
    assert all(row.sync_state is None for row in texts.values())


async def test_no_business_account_id_skips_the_comparison(
    tmp_path: Path, database_url: str, graph: tuple[FakeGraph, TestServer]
) -> None:
    fake, server = graph
    report = await sync_templates(
        settings_for(tmp_path, database_url, server, WHATSAPP_BUSINESS_ACCOUNT_ID="")
    )
    assert report.skipped is not None and "WHATSAPP_BUSINESS_ACCOUNT_ID" in report.skipped
    assert report.exit_code == 0 and fake.requests == []


async def test_an_expired_token_is_a_clear_error_and_exit_1(
    tmp_path: Path, database_url: str, graph: tuple[FakeGraph, TestServer]
) -> None:
    fake, server = graph
    fake.error = _graph_error(190, "Error validating access token: Session has expired")
    report = await sync_templates(settings_for(tmp_path, database_url, server))

    assert report.exit_code == 1
    assert report.error is not None
    assert "replace WHATSAPP_ACCESS_TOKEN" in report.error and "190" in report.error
    _, texts = await rows(database_url)
    assert len(texts) == 5  # the files were loaded all the same


async def test_a_wrong_business_account_id_is_named(
    tmp_path: Path, database_url: str, graph: tuple[FakeGraph, TestServer]
) -> None:
    _, server = graph
    report = await sync_templates(
        settings_for(tmp_path, database_url, server, WHATSAPP_BUSINESS_ACCOUNT_ID="123")
    )
    assert report.exit_code == 1
    assert report.error is not None and "WHATSAPP_BUSINESS_ACCOUNT_ID (123)" in report.error


async def test_paging_next_to_another_host_is_refused(
    tmp_path: Path, database_url: str, graph: tuple[FakeGraph, TestServer]
) -> None:
    fake, server = graph
    fake.next_url = "https://elsewhere.example/v25.0/300000000000001/message_templates?after=3"
    report = await sync_templates(settings_for(tmp_path, database_url, server))
    assert report.error is not None and "elsewhere.example" in report.error
    assert len(fake.requests) == 1


async def test_the_command_prints_each_state_and_a_summary(
    tmp_path: Path, database_url: str, graph: tuple[FakeGraph, TestServer]
) -> None:
    _, server = graph
    settings_for(tmp_path, database_url, server)  # writes settings.yaml and templates/
    env = {
        "BOT_SETTINGS": str(tmp_path / "settings.yaml"),
        "DATABASE_URL": database_url,
        "WHATSAPP_ACCESS_TOKEN": GRAPH_TOKEN,
        "WHATSAPP_APP_SECRET": "secret",
        "WHATSAPP_BUSINESS_ACCOUNT_ID": WABA,
        "WHATSAPP_API_BASE_URL": str(server.make_url(f"/{GRAPH_VERSION}")),
    }
    result = await asyncio.to_thread(run_bot, "templates", "sync", env=env)

    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:3] == ["repair_ready", "en", "ok"] for line in lines), result.stdout
    assert any(line.split()[:3] == ["appointment_reminder", "es", "missing"] for line in lines)
    assert any(line.startswith("black_friday") and "only at Meta" in line for line in lines)
    assert "3 template(s) in 5 language version(s) loaded into the database" in lines[-1]
    assert "1 ok, 1 missing, 1 pending, 1 rejected, 1 differs, 1 only at Meta" in lines[-1]


def test_the_command_in_sandbox_says_the_comparison_was_skipped(tmp_path: Path) -> None:
    write_templates(tmp_path / "templates", REPAIR_READY)
    (tmp_path / "settings.yaml").write_text(f"templates:\n  directory: {tmp_path / 'templates'}\n")
    env = {
        "BOT_SETTINGS": str(tmp_path / "settings.yaml"),
        "DATABASE_URL": migrated_sqlite(tmp_path / "b.db"),
    }
    env["WHATSAPP_ACCESS_TOKEN"] = ""
    result = run_bot("templates", "sync", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "repair_ready  en  not checked" in result.stdout
    assert "comparison with Meta skipped: sandbox" in result.stdout


def test_a_bad_template_file_exits_2_with_file_and_line_and_writes_nothing(tmp_path: Path) -> None:
    templates = write_templates(tmp_path / "templates", REPAIR_READY)
    bad = templates / "appointment_reminder.yaml"
    bad.write_text(APPOINTMENT_REMINDER.replace('{{2}}."\n  es', '{{3}}."\n  es'), encoding="utf-8")
    (tmp_path / "settings.yaml").write_text(f"templates:\n  directory: {templates}\n")
    database = tmp_path / "data" / "bot.db"
    env = {"BOT_SETTINGS": str(tmp_path / "settings.yaml"), "DATABASE_URL": f"sqlite://{database}"}

    result = run_bot("templates", "sync", env=env)

    assert result.returncode == 2, result.stdout + result.stderr
    assert re.search(rf"^{re.escape(str(bad))}:\d+:\d+: the en text skips a parameter", result.stdout, re.M)
    assert "nothing was loaded" in result.stderr
    assert not database.exists()
