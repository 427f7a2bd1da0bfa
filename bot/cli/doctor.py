"""`bot doctor`: is this installation ready to answer real customers? One line per check, in order, each
saying what to do when it fails; exit 0 only when every check passed.

The checks are small functions in `CHECKS`, run in that order; a check whose `needs` did not pass is
skipped with the reason (no access token: nothing at Meta can be asked). Adding a check is one function
and one line in `CHECKS`. Nothing here changes anything: no table is created, no migration applied, nothing
written, nothing sent.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TextIO

from tortoise import Tortoise, connections
from yarl import URL

from bot.crypto import KeyConfigError
from bot.db import close_db
from bot.db.config import sqlite_file, tortoise_config
from bot.db.schema import MIGRATE_HINT, SchemaError, check
from bot.master_keys import check_master_keys, sandbox_key_path
from bot.settings import Settings, SettingsError, load_settings, settings_file
from bot.whatsapp.account import BusinessAccount, graph_transport
from bot.whatsapp.client import HttpTransport
from bot.whatsapp.errors import (
    AccessTokenExpired,
    AuthError,
    GraphError,
    InvalidParameter,
    PermissionDenied,
    TransportError,
)

DATABASE_TIMEOUT = 10.0
"""Seconds to wait for the database's first answer."""
Status = Literal["ok", "fail", "skip"]
MARKS: dict[Status, str] = {"ok": "ok", "fail": "FAIL", "skip": "skip"}


@dataclass(frozen=True)
class Outcome:
    status: Status
    summary: str
    fix: str | None = None
    """What to do about it (a failed or skipped check)."""

    @classmethod
    def ok(cls, summary: str) -> Outcome:
        return cls("ok", summary)

    @classmethod
    def fail(cls, summary: str, fix: str) -> Outcome:
        return cls("fail", summary, fix)

    @classmethod
    def skip(cls, summary: str, fix: str) -> Outcome:
        return cls("skip", summary, fix)


@dataclass
class DoctorRun:
    """What the checks share: the settings once read, the open database, one Graph session. What is
    opened goes on `exits` and is closed when the run ends."""

    settings_path: Path | str | None
    environ: dict[str, str] | None
    exits: AsyncExitStack
    settings: Settings | None = None
    database_open: bool = False
    results: dict[str, Outcome] = field(default_factory=dict)
    _transport: HttpTransport | None = None

    @property
    def ready_settings(self) -> Settings:
        assert self.settings is not None, "a check that reads settings must need 'settings'"
        return self.settings

    async def open_database(self) -> None:
        """Connected, schema unchecked (the migrations check reads it); closed at the end, failed too."""
        self.exits.push_async_callback(close_db)
        await Tortoise.init(
            config=tortoise_config(self.ready_settings.database_url), _enable_global_fallback=True
        )
        self.database_open = True

    async def transport(self) -> HttpTransport:
        """The Graph API with the access token (ValueError in sandbox mode)."""
        if self._transport is None:
            self._transport = await self.exits.enter_async_context(graph_transport(self.ready_settings))
        return self._transport

    async def account(self) -> BusinessAccount:
        secrets = self.ready_settings.secrets
        return BusinessAccount(await self.transport(), secrets.phone_number_id, secrets.business_account_id)


CheckFunction = Callable[[DoctorRun], Awaitable[Outcome]]


@dataclass(frozen=True)
class Check:
    name: str
    run: CheckFunction
    needs: tuple[str, ...] = ()
    """Checks that must have passed first; otherwise this one is skipped."""


# --- the checks -----------------------------------------------------------------------------------------


async def settings_valid(run: DoctorRun) -> Outcome:
    try:
        run.settings = load_settings(run.settings_path, run.environ)
    except SettingsError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return Outcome.fail("; ".join(lines), "correct the key or environment variable named above")
    mode = "sandbox mode (no WHATSAPP_ACCESS_TOKEN)" if run.settings.sandbox else "WhatsApp credentials set"
    return Outcome.ok(f"{settings_file(run.settings_path, run.environ).resolve()} is valid; {mode}")


async def database_reachable(run: DoctorRun) -> Outcome:
    settings = run.ready_settings
    url = settings.database_url
    shown = _without_password(url)
    path = sqlite_file(url)
    if path is not None and not await asyncio.to_thread(path.exists):
        return Outcome.fail(f"no database at {path}", "run `bot db init` (make run does it too)")
    try:
        await run.open_database()
        await asyncio.wait_for(connections.get("default").execute_query("SELECT 1"), DATABASE_TIMEOUT)
    except TimeoutError:
        return Outcome.fail(f"{shown} does not answer", "start the database, or correct DATABASE_URL")
    except Exception as exc:  # the driver's own errors: connection refused, unknown database ...
        return Outcome.fail(f"{shown}: {exc}", "start the database, or correct DATABASE_URL / database.url")
    return Outcome.ok(f"{shown} answers")


async def database_migrated(run: DoctorRun) -> Outcome:
    """Every migration of this version applied, and none it does not know (`bot db migrate`)."""
    try:
        status = await check(connections.get("default"))
    except SchemaError as exc:  # its message ends with what to run
        summary, _, fix = str(exc).partition(": run ")
        return Outcome.fail(summary, f"run {fix}" if fix else MIGRATE_HINT)
    return Outcome.ok(f"the schema is current ({status.applied[-1] if status.applied else 'no migrations'})")


async def flows_and_templates_valid(run: DoctorRun) -> Outcome:
    from bot.wiring import flow_problems, load_shop_content

    settings = run.ready_settings
    problems = flow_problems(settings)
    if problems:
        return Outcome.fail(
            f"{len(problems)} problem(s), the first: {problems[0]}",
            "run `bot flows check` and fix each file:line:column it prints",
        )
    templates = load_shop_content(settings).templates
    return Outcome.ok(
        f"the flows in {settings.flows_dir}, {len(templates.templates)} template(s) in "
        f"{settings.templates_dir} and the texts' shop settings are valid"
    )


async def phone_number_reachable(run: DoctorRun) -> Outcome:
    """The token works and reaches the business number: `GET /{phone-number-id}`."""
    settings = run.ready_settings
    if settings.sandbox:
        return Outcome.skip(
            "sandbox mode: no WHATSAPP_ACCESS_TOKEN, nothing can be asked at Meta",
            "set WHATSAPP_ACCESS_TOKEN (a system-user token), WHATSAPP_APP_SECRET, WHATSAPP_PHONE_NUMBER_ID "
            "and WHATSAPP_BUSINESS_ACCOUNT_ID (README: Going live)",
        )
    try:
        number = await (await run.account()).phone_number()
    except GraphError as exc:
        return Outcome.fail(str(exc), _advice(exc, settings, "WHATSAPP_PHONE_NUMBER_ID"))
    throughput = number.throughput.level if number.throughput else None
    parts = [
        number.display_phone_number,
        number.verified_name or "no verified name",
        f"quality {number.quality_rating or 'unknown'}",
        f"throughput {throughput or 'unknown'}",
        f"messaging limit {number.messaging_limit or 'unknown'}",
    ]
    return Outcome.ok(" · ".join(parts))


async def webhooks_subscribed(run: DoctorRun) -> Outcome:
    """The app gets the WABA's webhooks (`GET /{waba-id}/subscribed_apps`): else no message arrives."""
    settings = run.ready_settings
    if not settings.secrets.business_account_id:
        return Outcome.fail(
            "WHATSAPP_BUSINESS_ACCOUNT_ID is not set",
            "set it to the WhatsApp Business Account id (WhatsApp Manager, or the app's API Setup page)",
        )
    try:
        apps = await (await run.account()).subscribed_apps()
    except GraphError as exc:
        return Outcome.fail(str(exc), _advice(exc, settings, "WHATSAPP_BUSINESS_ACCOUNT_ID"))
    if not apps:
        return Outcome.fail(
            f"no app is subscribed to the webhooks of WABA {settings.secrets.business_account_id}: "
            "customers' messages will not reach the bot",
            "run `bot whatsapp subscribe`",
        )
    described = [
        app.name + (f" (webhooks to {app.override_callback_uri})" if app.override_callback_uri else "")
        for app in apps
    ]
    return Outcome.ok("subscribed: " + ", ".join(described))


async def templates_approved(run: DoctorRun) -> Outcome:
    """Every template in templates/, in every language, approved at Meta as written (the sync's report)."""
    from bot.cli.template_sync import PROBLEMS, compare, explain, list_meta_templates
    from bot.engine.templates import load_templates

    settings = run.ready_settings
    if not settings.secrets.business_account_id:
        return Outcome.fail("WHATSAPP_BUSINESS_ACCOUNT_ID is not set", "set it (see the webhooks check)")
    catalog, problems = load_templates(settings.templates_dir)
    if problems:
        return Outcome.fail(f"{len(problems)} problem(s) in templates/", "run `bot flows check`")
    try:
        checks = compare(catalog, await list_meta_templates(await run.transport(), settings))
    except GraphError as exc:
        return Outcome.fail(explain(exc, settings), "run `bot templates sync` once this is fixed")
    mine = [check for check in checks if check.name in catalog.templates]
    not_ready = [check for check in mine if check.state in PROBLEMS]
    if not_ready:
        named = ", ".join(f"{c.name} ({c.language}) {c.state}" for c in not_ready)
        return Outcome.fail(
            f"{len(not_ready)} of {len(mine)} not ready: {named}",
            "run `bot templates sync` for the details; submit or correct them in WhatsApp Manager",
        )
    return Outcome.ok(f"{len(mine)} language version(s) of {len(catalog.templates)} template(s) approved")


async def encryption_key_present(run: DoctorRun) -> Outcome:
    """The master keys the server would encrypt with (bot/master_keys.py). The sandbox's own key file is
    made by the server at its first start, never by the doctor."""
    settings = run.ready_settings
    try:
        check_master_keys(settings)
    except KeyConfigError as exc:
        return Outcome.fail(
            str(exc).split(". ")[0], "set BOT_ENCRYPTION_KEYS (`bot keys generate` makes a key)"
        )
    if settings.secrets.encryption_keys is not None:
        count = len(settings.secrets.encryption_keys.get_secret_value().split(","))
        return Outcome.ok(f"{count} master key(s) from BOT_ENCRYPTION_KEYS; the first encrypts")
    path = sandbox_key_path(settings)
    where = f"{path}" if path.exists() else f"{path}, made by `bot serve` at its first start"
    return Outcome.ok(f"sandbox mode: the key file {where} (set BOT_ENCRYPTION_KEYS before going live)")


CHECKS: tuple[Check, ...] = (
    Check("settings", settings_valid),
    Check("database", database_reachable, needs=("settings",)),
    Check("migrations", database_migrated, needs=("database",)),
    Check("flows and templates", flows_and_templates_valid, needs=("settings",)),
    Check("encryption key", encryption_key_present, needs=("settings",)),
    Check("phone number", phone_number_reachable, needs=("settings",)),
    Check("webhooks", webhooks_subscribed, needs=("phone number",)),
    Check("templates at Meta", templates_approved, needs=("phone number",)),
)


# --- running them ---------------------------------------------------------------------------------------


async def run_doctor(
    settings_path: Path | str | None,
    environ: dict[str, str] | None = None,
    out: TextIO = sys.stdout,
    checks: Sequence[Check] = CHECKS,
) -> int:
    """Run `checks` in order, print one line each; 0 when all passed, else 1."""
    async with AsyncExitStack() as exits:
        run = DoctorRun(settings_path, environ, exits)
        for check in checks:
            outcome = await _outcome(check, run)
            run.results[check.name] = outcome
            print(_line(check.name, outcome), file=out, flush=True)
    failed = [name for name, outcome in run.results.items() if outcome.status != "ok"]
    if failed:
        print(f"not ready: {', '.join(failed)}", file=out)
        return 1
    print("ready: every check passed", file=out)
    return 0


async def _outcome(check: Check, run: DoctorRun) -> Outcome:
    missing = [need for need in check.needs if run.results.get(need, Outcome("skip", "")).status != "ok"]
    if missing:
        return Outcome.skip(f"needs {' and '.join(missing)} first", f"fix {missing[0]} above")
    return await check.run(run)


def _line(name: str, outcome: Outcome) -> str:
    line = f"{MARKS[outcome.status]:<5} {name}: {outcome.summary}"
    return f"{line} → {outcome.fix}" if outcome.fix and outcome.status != "ok" else line


def _advice(exc: GraphError, settings: Settings, id_variable: str) -> str:
    if isinstance(exc, AccessTokenExpired):
        return "the token expired or is invalid: set WHATSAPP_ACCESS_TOKEN to a system user's permanent token"
    if isinstance(exc, PermissionDenied | AuthError):
        return (
            "give the system user the whatsapp_business_messaging and whatsapp_business_management "
            "permissions and assign it the WhatsApp account, then generate the token again"
        )
    if isinstance(exc, InvalidParameter):
        return f"check {id_variable}: the id as WhatsApp Manager and the app's API Setup page show it"
    if isinstance(exc, TransportError):
        return f"the Graph API at {settings.secrets.api_base_url} did not answer: check WHATSAPP_API_BASE_URL"
    return "see the Graph error above"


def _without_password(url: str) -> str:
    parsed = URL(url)
    return str(parsed.with_password(None)) if parsed.password else url
