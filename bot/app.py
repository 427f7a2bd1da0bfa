"""The application factory: the one place that knows every part and wires them together.

`create_app(settings)` is used by `bot serve` and by the tests alike; nothing runs at import. Resources
open and close in `cleanup_ctx` (database, HTTP session, workers), in that order and in reverse.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from bot import api, webhook
from bot.appointments import api as appointments_api
from bot.appointments.reminders import ReminderScheduler
from bot.appointments.service import AppointmentService
from bot.db import close_db, init_db, is_sqlite
from bot.db.claims import claims_for
from bot.db.models import Message
from bot.engine import Engine
from bot.engine.texts import TEXTS_DIR
from bot.handoff import api as handoff_api
from bot.handoff.events import EventHub, status_event
from bot.handoff.guards import HandoffGuards
from bot.handoff.policy import DeskPolicy
from bot.handoff.relay import Relay
from bot.handoff.service import HandoffDesk, history_item
from bot.http_headers import add_security_headers
from bot.inbox import InboxConfig, InboxWorker
from bot.intake import IntakeWriter
from bot.orders import api as orders_api
from bot.orders.setup import build_order_service
from bot.outbox import OutboxConfig, OutboxWorker
from bot.panel import add_routes as add_panel_routes
from bot.reload import FlowWatcher
from bot.settings import SANDBOX_APP_SECRET, Settings
from bot.statuses import StatusChange
from bot.whatsapp.client import HttpTransport, Transport, WhatsAppClient
from bot.whatsapp.pacing import Pacer
from bot.whatsapp.sandbox import SandboxTransport
from bot.wiring import build_engine, load_flow_set, registered_actions

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", Engine)
HTTP_SESSION = web.AppKey("http_session", aiohttp.ClientSession)
CLIENT = web.AppKey("whatsapp_client", WhatsAppClient)
INBOX = web.AppKey("inbox", InboxWorker)
OUTBOX = web.AppKey("outbox", OutboxWorker)
FLOW_WATCHER = web.AppKey("flow_watcher", FlowWatcher)
REMINDERS = web.AppKey("reminders", ReminderScheduler)
EVENTS = web.AppKey("events", EventHub)
HANDOFF_GUARDS = web.AppKey("handoff_guards", HandoffGuards)
MIGRATE_AT_START = web.AppKey("migrate_at_start", bool)


def create_app(settings: Settings, *, migrate: bool = False) -> web.Application:
    """Build the server. Flows are loaded here, so a bad flow stops start-up with its problems.

    At start-up the database schema must be current (else SchemaError stops it, naming the command);
    `migrate` applies the pending migrations first (`bot serve --migrate`).
    """
    app = web.Application(client_max_size=settings.server.max_body_bytes)
    app[SETTINGS] = settings
    app[MIGRATE_AT_START] = migrate
    app[EVENTS] = events = EventHub()
    app[ENGINE] = build_engine(settings, load_flow_set(settings, registered_actions(settings, events=events)))
    app[webhook.WEBHOOK_CONFIG] = webhook.WebhookConfig(
        app_secret=settings.app_secret,
        verify_token=(
            settings.secrets.webhook_verify_token.get_secret_value()
            if settings.secrets.webhook_verify_token
            else None
        ),
        max_body_bytes=settings.server.max_body_bytes,
    )
    app[api.ADMIN_TOKEN] = (
        settings.secrets.admin_token.get_secret_value() if settings.secrets.admin_token else ""
    )
    app.cleanup_ctx.extend([_database, _whatsapp_client, _workers, _flow_watcher])
    add_security_headers(app)
    webhook.add_routes(app)
    api.add_routes(app)
    orders_api.add_routes(app, build_order_service(settings, on_queued=lambda: app[OUTBOX].wake()))
    appointments_api.add_routes(app, AppointmentService(settings, on_queued=lambda: app[OUTBOX].wake()))
    desk = HandoffDesk(settings, events, app[ENGINE], on_queued=lambda: app[OUTBOX].wake())
    handoff_api.add_routes(app, desk, client=lambda: app[CLIENT])
    add_panel_routes(app)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    report = await init_db(app[SETTINGS].database_url, migrate_schema=app[MIGRATE_AT_START])
    for line in report.lines() if report else ():
        log.info("database: %s", line)
    yield
    await close_db()


async def _whatsapp_client(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=settings.whatsapp.request_timeout_seconds),
        connector=aiohttp.TCPConnector(limit=settings.outbox.concurrency * 2),
    )
    app[HTTP_SESSION] = session
    transport: Transport
    if settings.sandbox:
        _announce_sandbox(settings)
        transport = SandboxTransport()
    else:
        assert settings.secrets.access_token is not None
        transport = HttpTransport(
            session,
            settings.secrets.api_base_url,
            settings.secrets.access_token.get_secret_value(),
            timeout=settings.whatsapp.request_timeout_seconds,
        )
    pacer = Pacer(
        messages_per_second=settings.whatsapp.messages_per_second,
        pair_interval=settings.whatsapp.pair_interval_seconds,
        pair_burst=settings.whatsapp.pair_burst,
    )
    app[CLIENT] = WhatsAppClient(transport, settings.secrets.phone_number_id, pacer)
    yield
    await session.close()


async def _workers(app: web.Application) -> AsyncIterator[None]:
    settings, events = app[SETTINGS], app[EVENTS]
    claims = claims_for(settings.database_url)
    outbox = OutboxWorker(
        app[CLIENT],
        claims,
        OutboxConfig(
            concurrency=settings.outbox.concurrency,
            max_attempts=settings.outbox.max_attempts,
            retry_horizon=settings.outbox.retry_horizon,
            mark_read=settings.whatsapp.mark_read,
            quote_replies=settings.whatsapp.quote_replies,
        ),
        on_recorded=lambda rows: _publish_sent(events, rows),
    )
    desk = app[handoff_api.DESK]
    inbox = InboxWorker(
        app[ENGINE],
        claims,
        InboxConfig(default_language=settings.shop.default_language),
        on_queued=outbox.wake,
        on_handled=outbox.mark_read,
        on_human_messages=lambda rows: _publish_inbound(events, rows),
        handoff=DeskPolicy(
            desk,
            Relay(desk) if settings.handoff.relay_to_whatsapp else None,
            settings.handoff.after_misses,
        ),
        on_parked=lambda row: _publish_parked(events, row),
    )
    intake = IntakeWriter(
        on_committed=inbox.wake, on_statuses=lambda changes: _publish_statuses(events, changes)
    )
    engine = app[ENGINE]
    reminders = ReminderScheduler(settings, on_queued=outbox.wake, texts=lambda: engine.flows.texts)
    guards = HandoffGuards(settings, events, on_queued=outbox.wake, texts=lambda: engine.flows.texts)
    app[HANDOFF_GUARDS] = guards
    app[OUTBOX], app[INBOX], app[webhook.INTAKE], app[REMINDERS] = outbox, inbox, intake, reminders
    if is_sqlite(settings.database_url):
        await outbox.release_leases()  # one process per SQLite file: whatever was claimed is ours
    intake.start()
    inbox.start()
    outbox.start()
    reminders.start()
    guards.start()
    yield
    await intake.stop()
    await guards.stop()
    await reminders.stop()
    await inbox.stop()
    await outbox.stop()


async def _flow_watcher(app: web.Application) -> AsyncIterator[None]:
    """Hot reload: saved flow, template and text files go live within seconds; a bad edit is refused
    and logged."""
    settings, engine = app[SETTINGS], app[ENGINE]
    if settings.flows.reload_seconds <= 0:
        yield
        return
    watcher = FlowWatcher(
        [settings.flows_dir, settings.templates_dir, settings.templates_dir / TEXTS_DIR],
        load=lambda: load_flow_set(settings, engine.actions),
        on_loaded=engine.replace_flows,
        interval=settings.flows.reload_seconds,
    )
    app[FLOW_WATCHER] = watcher
    watcher.start()
    yield
    await watcher.stop()


def _publish_inbound(events: EventHub, rows: list[Message]) -> None:
    """Inbound messages of chats a person has, live to the panel."""
    for row in rows:
        events.publish(
            {
                "type": "message",
                "phone": row.customer_phone,
                "conversation_id": None,
                "message": history_item(row),
            }
        )


def _publish_parked(events: EventHub, row: Message) -> None:
    """An inbound message the inbox gave up on: admins see it in the panel's list at once."""
    events.publish(
        {"type": "failed", "phone": row.customer_phone, "conversation_id": None, "message": history_item(row)}
    )


def _publish_sent(events: EventHub, rows: list[Message]) -> None:
    if not events.listening:
        return
    for row in rows:
        events.publish(
            status_event(
                row.customer_phone, row.whatsapp_message_id, str(row.delivery_status), row.error_title, row.id
            )
        )


def _publish_statuses(events: EventHub, changes: list[StatusChange]) -> None:
    if not events.listening:
        return
    for change in changes:
        events.publish(status_event(change.phone, change.wamid, change.status, change.error_title))


def _announce_sandbox(settings: Settings) -> None:
    banner = "=" * 72
    secret_note = (
        f"webhook signatures are checked with the sandbox key {SANDBOX_APP_SECRET!r}"
        if settings.secrets.app_secret is None
        else "webhook signatures are checked with WHATSAPP_APP_SECRET"
    )
    log.warning(
        "\n%s\nSANDBOX MODE: WHATSAPP_ACCESS_TOKEN is not set.\n"
        "Nothing is sent to WhatsApp: outbound messages are recorded and printed here.\n%s.\n%s",
        banner,
        secret_note,
        banner,
    )
