"""Flows and engine built from the settings the same way everywhere: server, hot reload, `bot chat`,
`bot flows check|test|graph`. One place, so the terminal behaves exactly like the running bot."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.clock import Clock
from bot.engine import ActionRegistry, Engine, FlowProblem, FlowSet, check_flows, load_flows
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.db.claims import Claims
    from bot.handoff.events import EventHub


def registered_actions(
    settings: Settings,
    clock: Clock | None = None,
    events: EventHub | None = None,
    claims: Claims | None = None,
) -> ActionRegistry:
    """Every action flows may `call` (the order, appointment and handoff modules register theirs).

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
    OrderActions(build_status_notifier(settings)).register(registry)
    appointments = AppointmentService(settings, clock=clock) if clock else AppointmentService(settings)
    AppointmentActions(appointments, ZoneInfo(settings.shop.timezone)).register(registry)
    desk = HandoffDesk(settings, events, clock=clock or _utc_now, claims=claims)
    HandoffActions(desk, clock).register(registry)
    return registry


def _utc_now() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)


def load_flow_set(settings: Settings, actions: ActionRegistry | None = None) -> FlowSet:
    """The flows in settings.flows_dir checked against settings.templates_dir; raises FlowLoadError."""
    registry = actions if actions is not None else registered_actions(settings)
    return load_flows(settings.flows_dir, registry, settings.templates_dir)


def flow_problems(settings: Settings, directory: Path | None = None) -> list[FlowProblem]:
    """`bot flows check`: every problem in `directory` (default: settings' flows), templates included,
    and the `shop:` settings the texts need. Raises TextsError when a texts file is invalid."""
    from bot.shop_texts import missing_shop_settings

    flows_dir = directory if directory is not None else settings.flows_dir
    problems = check_flows(flows_dir, registered_actions(settings), settings.templates_dir)
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
