"""`bot templates sync`: load templates/ into the database and compare it with Meta's templates.

WhatsApp sends a template only when Meta approved that name in that language (error 132001 otherwise),
and the parameters must fit the approved text. This command finds the gap before a customer does: a
template never submitted, still pending, rejected or paused, or approved with a different text.
Without credentials (sandbox) it only loads the database: there is no business account to ask.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from typing import Any, TextIO

from pydantic import BaseModel, ValidationError
from tortoise.transactions import in_transaction
from yarl import URL

from bot.db import close_db, init_db
from bot.db.models import Template, TemplateText
from bot.engine.marked_yaml import FlowProblem
from bot.engine.templates import TemplateCatalog, TemplateFile, load_templates
from bot.settings import Settings
from bot.whatsapp.account import graph_transport
from bot.whatsapp.client import Transport
from bot.whatsapp.errors import (
    AccessTokenExpired,
    AuthError,
    GraphError,
    InvalidParameter,
    PermissionDenied,
    TransportError,
    UnexpectedResponse,
)

GRAPH_FIELDS = "name,language,status,category,components"
PAGE_SIZE = "100"
MAX_PAGES = 500  # 6,000 templates per account at most: far fewer pages of 100; stops a looping `next`


class SyncState(StrEnum):
    OK = "ok"
    MISSING = "missing"
    PENDING = "pending"
    REJECTED = "rejected"
    PAUSED = "paused"
    DISABLED = "disabled"
    NOT_APPROVED = "not approved"  # a status Meta added later (in_appeal, limit_exceeded ...)
    DIFFERS = "differs"
    ONLY_AT_META = "only at Meta"
    NOT_CHECKED = "not checked"


PROBLEMS = frozenset(
    {
        SyncState.MISSING,
        SyncState.PENDING,
        SyncState.REJECTED,
        SyncState.PAUSED,
        SyncState.DISABLED,
        SyncState.NOT_APPROVED,
        SyncState.DIFFERS,
    }
)
_BY_STATUS = {
    "PENDING": SyncState.PENDING,
    "REJECTED": SyncState.REJECTED,
    "PAUSED": SyncState.PAUSED,
    "DISABLED": SyncState.DISABLED,
}


# --- Meta's answer: GET /{waba-id}/message_templates ---------------------------------------------------


class MetaButton(BaseModel):
    type: str
    text: str | None = None


class MetaComponent(BaseModel):
    type: str
    text: str | None = None  # BODY, HEADER (text) and FOOTER carry one; buttons do not
    buttons: list[MetaButton] = []
    """A BUTTONS component's buttons, in order."""


class MetaTemplate(BaseModel):
    """One template in one language, as the business account holds it."""

    name: str
    language: str
    status: str
    category: str | None = None
    components: list[MetaComponent] = []
    id: str | None = None

    @property
    def body(self) -> str | None:
        return next((c.text for c in self.components if c.type.upper() == "BODY"), None)

    @property
    def quick_replies(self) -> list[str]:
        """The quick-reply buttons' titles, in order (the payloads the bot sends go by position)."""
        return [
            button.text or ""
            for component in self.components
            if component.type.upper() == "BUTTONS"
            for button in component.buttons
            if button.type.upper() == "QUICK_REPLY"
        ]


class MetaPaging(BaseModel):
    next: str | None = None  # absent on the last page


class MetaTemplatePage(BaseModel):
    data: list[MetaTemplate]
    paging: MetaPaging | None = None


Fetch = Callable[[], Awaitable[list[MetaTemplate]]]


async def fetch_meta_templates(settings: Settings) -> list[MetaTemplate]:
    """Every template in the business account, following `paging.next` to the last page."""
    secrets = settings.secrets
    if secrets.access_token is None or not secrets.business_account_id:
        raise ValueError("fetching templates needs an access token and a business account id")
    async with graph_transport(settings) as transport:
        return await list_meta_templates(transport, settings)


async def list_meta_templates(transport: Transport, settings: Settings) -> list[MetaTemplate]:
    """`GET /{waba-id}/message_templates` over `transport`, page after page."""
    base_url = settings.secrets.api_base_url
    first = await transport.get_json(
        f"{settings.secrets.business_account_id}/message_templates",
        {"fields": GRAPH_FIELDS, "limit": PAGE_SIZE},
    )
    page = _page(first)
    templates = list(page.data)
    for _ in range(MAX_PAGES):
        next_url = page.paging.next if page.paging else None
        if not next_url:
            return templates
        _check_origin(next_url, base_url)
        page = _page(await transport.get_bytes(next_url))
        templates.extend(page.data)
    raise UnexpectedResponse.about(f"more than {MAX_PAGES} pages of templates (paging.next loops?)", {})


def _page(body: dict[str, Any] | bytes) -> MetaTemplatePage:
    try:
        if isinstance(body, bytes):
            return MetaTemplatePage.model_validate_json(body)
        return MetaTemplatePage.model_validate(body)
    except ValidationError as exc:
        raw = body if isinstance(body, dict) else body[:1000]
        raise UnexpectedResponse.about(
            f"not a page of message templates: {exc.errors()[0]['msg']}", raw
        ) from None


def _check_origin(next_url: str, base_url: str) -> None:
    """The bearer token goes with the request: never to a host other than the configured Graph API."""
    if URL(next_url).origin() != URL(base_url).origin():
        raise UnexpectedResponse.about(f"paging.next points to another host: {URL(next_url).host}", {})


# --- the comparison -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateCheck:
    name: str
    language: str
    state: SyncState
    detail: str | None = None


def compare(catalog: TemplateCatalog, meta: Iterable[MetaTemplate]) -> list[TemplateCheck]:
    """One check per (name, language) in templates/, then Meta's templates that templates/ lacks."""
    at_meta = {(t.name, t.language): t for t in meta}
    checks: list[TemplateCheck] = []
    for name in catalog:
        template = catalog.templates[name]
        for language, body in sorted(template.languages.items()):
            checks.append(_check(template, language, body, at_meta.get((name, language))))
    for (name, language), found in sorted(at_meta.items()):
        known = catalog.get(name)
        if known is None or language not in known.languages:
            checks.append(TemplateCheck(name, language, SyncState.ONLY_AT_META, found.status.lower()))
    return checks


def _check(template: TemplateFile, language: str, body: str, found: MetaTemplate | None) -> TemplateCheck:
    def check(state: SyncState, detail: str | None = None) -> TemplateCheck:
        return TemplateCheck(template.name, language, state, detail)

    if found is None:
        return check(SyncState.MISSING, "not at Meta in this language: submit it in WhatsApp Manager")
    status = found.status.upper()
    if status != "APPROVED":
        state = _BY_STATUS.get(status, SyncState.NOT_APPROVED)
        return check(state, f"Meta's status is {status}" if state is SyncState.NOT_APPROVED else None)
    if _normal(found.body) != _normal(body):
        return check(SyncState.DIFFERS, f"Meta's text: {_short(found.body or '(no body)')}")
    titles = template.buttons.get(language, [])
    if [_normal(title) for title in found.quick_replies] != [_normal(title) for title in titles]:
        return check(
            SyncState.DIFFERS,
            f"Meta's quick replies are {_titles(found.quick_replies)}, templates/ says {_titles(titles)}",
        )
    if found.category and found.category.lower() != template.category:
        return check(
            SyncState.DIFFERS, f"Meta's category is {found.category}, templates/ says {template.category}"
        )
    if template.status != "approved":
        return check(SyncState.OK, f"approved at Meta; templates/ still says {template.status}")
    return check(SyncState.OK)


def _normal(text: str | None) -> str:
    return " ".join((text or "").split())


def _titles(titles: list[str]) -> str:
    return "[" + ", ".join(titles) + "]" if titles else "none"


def _short(text: str, limit: int = 120) -> str:
    text = _normal(text)
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


# --- the database ---------------------------------------------------------------------------------------


async def store(catalog: TemplateCatalog, default_language: str) -> None:
    """Upsert one `template` row per name and one `template_text` row per language; rows whose file or
    language is gone stay (messages may refer to them) but are marked inactive."""
    async with in_transaction():
        await _store_templates(catalog, default_language)
        await _store_texts(catalog)


async def _store_templates(catalog: TemplateCatalog, default_language: str) -> None:
    rows = {row.template_name: row for row in await Template.all()}
    for name in catalog:
        template = catalog.templates[name]
        language = (
            default_language if default_language in template.languages else next(iter(template.languages))
        )
        row = rows.pop(name, None) or Template(template_name=name)
        row.template_content = template.languages[language]
        row.language_code = language
        row.category = template.category
        row.variables = list(template.examples)
        row.is_active = True
        await row.save()
    for row in rows.values():
        if row.is_active:
            row.is_active = False
            await row.save(update_fields=["is_active", "updated_at"])


async def _store_texts(catalog: TemplateCatalog) -> None:
    rows = {(row.template_name, row.language_code): row for row in await TemplateText.all()}
    for name in catalog:
        template = catalog.templates[name]
        for language, body in template.languages.items():
            row = rows.pop((name, language), None) or TemplateText(template_name=name, language_code=language)
            if row.body != body:  # a new text: the last comparison with Meta no longer applies
                row.sync_state, row.checked_at = None, None
            row.body, row.status, row.is_active = body, template.status, True
            await row.save()
    for row in rows.values():
        if row.is_active:
            row.is_active = False
            await row.save(update_fields=["is_active", "updated_at"])


async def record(checks: Iterable[TemplateCheck]) -> None:
    """Keep each text's state at Meta, so the last sync can be read without asking Meta again."""
    now = datetime.now(UTC)
    async with in_transaction():
        for check in checks:
            if check.state is not SyncState.ONLY_AT_META:
                await TemplateText.filter(template_name=check.name, language_code=check.language).update(
                    sync_state=check.state.value, checked_at=now
                )


# --- the command ----------------------------------------------------------------------------------------


@dataclass
class SyncReport:
    templates: int = 0
    problems: list[FlowProblem] = field(default_factory=list)
    """Invalid template files: nothing was written."""
    checks: list[TemplateCheck] = field(default_factory=list)
    skipped: str | None = None
    """Why Meta was not asked (sandbox, no business account id)."""
    error: str | None = None
    """Meta was asked and answered with an error."""

    @property
    def exit_code(self) -> int:
        """2: bad template files; 1: Meta could not be asked, or something sent is not approved as is."""
        if self.problems:
            return 2
        if self.error or any(check.state in PROBLEMS for check in self.checks):
            return 1
        return 0


async def sync_templates(settings: Settings, fetch: Fetch | None = None) -> SyncReport:
    """Load templates/ into the database, then compare with Meta when there is an account to ask.

    `fetch` replaces the Graph API call (None: ask Meta when the credentials are set, else skip).
    """
    catalog, problems = load_templates(settings.templates_dir)
    if problems:
        return SyncReport(problems=problems)
    report = SyncReport(templates=len(catalog.templates))
    if fetch is None:
        report.skipped = skip_reason(settings)
        fetch = None if report.skipped else partial(fetch_meta_templates, settings)
    await init_db(settings.database_url)
    try:
        await store(catalog, settings.shop.default_language)
        if fetch is None:
            report.checks = _unchecked(catalog)
        else:
            await _compare_with_meta(report, catalog, fetch, settings)
    finally:
        await close_db()
    return report


async def _compare_with_meta(
    report: SyncReport, catalog: TemplateCatalog, fetch: Fetch, settings: Settings
) -> None:
    """Fill in the checks and record them; a Graph error leaves every text unchecked and is explained."""
    try:
        meta = await fetch()
    except GraphError as exc:
        report.error = explain(exc, settings)
        report.checks = _unchecked(catalog)
        return
    report.checks = compare(catalog, meta)
    await record(report.checks)


def skip_reason(settings: Settings) -> str | None:
    if settings.sandbox:
        return "sandbox (no WHATSAPP_ACCESS_TOKEN)"
    if not settings.secrets.business_account_id:
        return "WHATSAPP_BUSINESS_ACCOUNT_ID is not set"
    return None


def _unchecked(catalog: TemplateCatalog) -> list[TemplateCheck]:
    return [
        TemplateCheck(name, language, SyncState.NOT_CHECKED)
        for name in catalog
        for language in sorted(catalog.templates[name].languages)
    ]


def explain(exc: GraphError, settings: Settings) -> str:
    """What to do about a failed listing: the Graph error alone rarely says which setting is wrong."""
    if isinstance(exc, AccessTokenExpired):
        advice = "the access token expired or is invalid: replace WHATSAPP_ACCESS_TOKEN"
    elif isinstance(exc, PermissionDenied | AuthError):
        advice = "the access token may not read templates: it needs whatsapp_business_management"
    elif isinstance(exc, InvalidParameter):
        account = settings.secrets.business_account_id
        advice = (
            f"check WHATSAPP_BUSINESS_ACCOUNT_ID ({account}): it must be the WhatsApp Business Account id"
        )
    elif isinstance(exc, TransportError):
        advice = f"the Graph API at {settings.secrets.api_base_url} did not answer"
    else:
        advice = "Meta did not list the templates"
    return f"cannot compare with Meta: {advice}. {exc}"


def print_report(report: SyncReport, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
    """One line per template and language, then a summary (problems and errors on `err`)."""
    for problem in report.problems:
        print(problem, file=out)
    if report.problems:
        print(f"{len(report.problems)} problem(s) in the template files; nothing was loaded", file=err)
        return
    print_checks(report.checks, out)
    if report.error:
        print(report.error, file=err)
    print(summary(report), file=out)


def print_checks(checks: list[TemplateCheck], out: TextIO) -> None:
    name_width = max((len(check.name) for check in checks), default=0)
    language_width = max((len(check.language) for check in checks), default=0)
    for check in checks:
        line = f"{check.name:<{name_width}}  {check.language:<{language_width}}  {check.state}"
        print(
            f"{line:<{name_width + language_width + 16}}  {check.detail}" if check.detail else line, file=out
        )


def summary(report: SyncReport) -> str:
    texts = sum(1 for check in report.checks if check.state is not SyncState.ONLY_AT_META)
    loaded = f"{report.templates} template(s) in {texts} language version(s) loaded into the database"
    if report.skipped:
        return f"{loaded}; comparison with Meta skipped: {report.skipped}"
    if report.error:
        return f"{loaded}; not compared with Meta"
    counts: dict[SyncState, int] = {}
    for check in report.checks:
        counts[check.state] = counts.get(check.state, 0) + 1
    states = ", ".join(f"{counts[state]} {state}" for state in SyncState if state in counts)
    return f"{loaded}; compared with Meta: {states}"
