"""Flows and engine built from the settings the same way everywhere: server, hot reload, `bot chat`,
`bot flows check|test|graph`. One place, so the terminal behaves exactly like the running bot."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.clock import Clock
from bot.engine import ActionRegistry, Engine, FlowProblem, FlowSet, check_flows, load_flows
from bot.engine.content import Content, ContentSource, load_content, served
from bot.engine.texts import TextsFile
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.db.claims import Claims
    from bot.handoff.events import EventHub


def registered_actions(
    settings: Settings,
    content: ContentSource,
    clock: Clock | None = None,
    events: EventHub | None = None,
    claims: Claims | None = None,
) -> ActionRegistry:
    """Every action flows may `call` (the order, appointment and handoff modules register theirs).

    `content`: the templates and texts served (an action reads the texts of its own run; the services
    behind the actions read the served ones).
    `clock`: what "now" is for actions that care (free appointment times); the simulator's, in tests.
    `events`: where the handoff action announces a new waiting chat (the server's live events).
    `claims`: the database's (bot/db/claims.py); else chosen by settings' database URL.
    """
    from bot.appointments.actions import AppointmentActions
    from bot.appointments.service import AppointmentService
    from bot.handoff.actions import HandoffActions
    from bot.handoff.service import HandoffDesk
    from bot.orders.actions import OrderActions
    from bot.orders.setup import build_status_notifier

    registry = ActionRegistry()
    OrderActions(build_status_notifier(settings, content)).register(registry)
    appointments = AppointmentService(settings, content, clock=clock or _utc_now)
    AppointmentActions(appointments, ZoneInfo(settings.shop.timezone)).register(registry)
    desk = HandoffDesk(settings, content, events, clock=clock or _utc_now, claims=claims)
    HandoffActions(desk, clock).register(registry)
    return registry


def checked_actions(settings: Settings) -> ActionRegistry:
    """The actions for checking flows only (`bot flows check`, `bot flows graph`): never run."""
    return registered_actions(settings, served(Content()))


def _utc_now() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)


def texts_files(settings: Settings) -> list[TextsFile[Any]]:
    """The texts files of templates/texts/ beside the bot's own: the order status texts (checked
    against settings.yaml's statuses) and the appointment change texts."""
    from bot.appointments.notify import CHANGE_TEXTS_FILE
    from bot.orders.setup import status_texts_file

    return [status_texts_file(settings), CHANGE_TEXTS_FILE]


def load_shop_content(settings: Settings) -> Content:
    """settings.templates_dir read once: the templates and every texts file, with their problems."""
    return load_content(settings.templates_dir, texts_files(settings))


def load_flow_set(settings: Settings, actions: ActionRegistry, content: Content | None = None) -> FlowSet:
    """The flows in settings.flows_dir checked against `content` (else settings.templates_dir read now);
    raises FlowLoadError with every problem of both."""
    return load_flows(
        settings.flows_dir, actions, content if content is not None else load_shop_content(settings)
    )


def flow_problems(settings: Settings, directory: Path | None = None) -> list[FlowProblem]:
    """`bot flows check`: every problem in `directory` (default: settings' flows), the templates and
    texts included, and the `shop:` settings the texts need."""
    from bot.shop_texts import missing_shop_settings

    flows_dir = directory if directory is not None else settings.flows_dir
    problems = check_flows(flows_dir, checked_actions(settings), load_shop_content(settings))
    return problems + missing_shop_settings(settings.shop, settings.templates_dir)


def build_engine(settings: Settings, flows: FlowSet) -> Engine:
    shop = settings.shop
    return Engine(
        flows,
        default_flow=settings.flows.default_flow,
        default_language=shop.default_language,
        languages=shop.languages,
        timezone=shop.timezone,
        date_order=shop.date_order,
    )
