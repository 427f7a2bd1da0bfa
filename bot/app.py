"""The application factory: the server around the pipeline (bot/pipeline.py), which wires the parts.

`create_app(settings)` is used by `bot serve` and by the tests alike; nothing runs at import. It adds
what only a server has: the HTTP routes, the real Cloud API client with its pacing (or the sandbox's),
and hot reload. Resources open and close in `cleanup_ctx` (database, HTTP session, workers, reload), in
that order and in reverse.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from bot.appointments.service import AppointmentService
from bot.db import close_db, init_db, share_file
from bot.db.checkpoints import Checkpointer, sqlite_file, turn_off_auto_checkpoints
from bot.engine import Engine
from bot.engine.texts import TEXTS_DIR
from bot.http import admin as admin_api
from bot.http import appointments as appointments_api
from bot.http import costs as costs_api
from bot.http import customers as customers_api
from bot.http import messages as api
from bot.http import metrics as metrics_api
from bot.http import orders as orders_api
from bot.http import stats as stats_api
from bot.http import technicians as handoff_api
from bot.http.headers import add_security_headers
from bot.master_keys import check_master_keys, load_key_ring
from bot.media.fetch import MediaFetcher
from bot.media.store import MediaStore
from bot.monitoring.cost_gauges import cost_gauges
from bot.orders.setup import build_order_service
from bot.panel import add_routes as add_panel_routes
from bot.peer_events import PeerLink
from bot.pipeline import Pipeline, Workers
from bot.privacy.retention import Retention, RetentionJob
from bot.processes import ProcessRole, duty_of
from bot.reload import FlowWatcher
from bot.settings import SANDBOX_APP_SECRET, Settings
from bot.shop_texts import require_shop_settings
from bot.spine import webhook
from bot.whatsapp.client import HttpTransport, Transport, WhatsAppClient
from bot.whatsapp.pacing import Pacer, SharedPacer
from bot.whatsapp.sandbox import SandboxTransport
from bot.wiring import load_flow_set

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
PIPELINE = web.AppKey("pipeline", Pipeline)
ENGINE = web.AppKey("engine", Engine)
CLIENT = web.AppKey("whatsapp_client", WhatsAppClient)
WORKERS = web.AppKey("workers", Workers)
FLOW_WATCHER = web.AppKey("flow_watcher", FlowWatcher)
MIGRATE_AT_START = web.AppKey("migrate_at_start", bool)
ROLE = web.AppKey("process_role", ProcessRole)
"""Set only when this is one of `bot serve --workers N`'s processes on a SQLite file."""
PEERS = web.AppKey("peer_events", PeerLink)
"""Set only when this is one of `bot serve --workers N`'s processes: its link to the others' events."""


def create_app(
    settings: Settings,
    *,
    migrate: bool = False,
    role: ProcessRole | None = None,
    peers: PeerLink | None = None,
) -> web.Application:
    """Build the server. Flows are loaded here, so a bad flow stops start-up with its problems, and so
    does a `shop:` setting the texts need (ShopSettingsMissing).

    At start-up the database schema must be current (else SchemaError stops it, naming the command);
    `migrate` applies the pending migrations first (`bot serve --migrate`). The encryption keys are
    loaded here too: with WhatsApp credentials and no BOT_ENCRYPTION_KEYS it does not start
    (EncryptionKeysRequired). `role`: this process's part of `bot serve --workers N` on SQLite
    (bot/processes.py); without it the process does everything. `peers`: the panel's live events to
    and from `bot serve --workers N`'s other processes (bot/peer_events.py).
    """
    require_shop_settings(settings.shop, settings.templates_dir)
    check_master_keys(settings)
    app = web.Application(client_max_size=settings.server.max_body_bytes)
    app[SETTINGS] = settings
    app[MIGRATE_AT_START] = migrate
    if role is not None:
        app[ROLE] = role
    if peers is not None:
        app[PEERS] = peers
    app[PIPELINE] = pipeline = Pipeline(settings, shared_file=role is not None)
    app[ENGINE] = pipeline.engine
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
    app[metrics_api.METRICS_TOKEN] = (
        settings.secrets.metrics_token.get_secret_value() if settings.secrets.metrics_token else ""
    )
    app.cleanup_ctx.extend(
        [_database, _whatsapp_client, _workers, _peer_events, _media_fetcher, _retention, _flow_watcher]
    )
    add_security_headers(app)
    webhook.add_routes(app)
    api.add_routes(app)
    admin_api.add_routes(app)
    metrics_api.add_routes(app, settings.server.metrics_port)
    stats_api.add_routes(app, settings, lambda: pipeline.engine.flows)
    costs_api.add_routes(app)
    app[metrics_api.GAUGE_SOURCES] = [cost_gauges(settings, pipeline.limits.costs)]
    orders_api.add_routes(
        app, build_order_service(settings, pipeline.content, on_queued=pipeline.wake_outbox)
    )
    appointments = AppointmentService(settings, pipeline.content, on_queued=pipeline.wake_outbox)
    appointments_api.add_routes(app, appointments)
    handoff_api.add_routes(
        app,
        pipeline.desk,
        client=lambda: app[CLIENT],
        session_hours=settings.handoff.session_hours,
        media_store=MediaStore(settings.media_dir),
    )
    customers_api.add_routes(app, MediaStore(settings.media_dir))
    add_panel_routes(app)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    report = await init_db(app[SETTINGS].database_url, migrate_schema=app[MIGRATE_AT_START])
    for line in report.lines() if report else ():
        log.info("database: %s", line)  # init_db closes what it opened when it fails
    if (role := app.get(ROLE)) is not None:
        share_file(role.turn)
    load_key_ring(app[SETTINGS])
    checkpointer = None
    if role is not None and (path := sqlite_file()) is not None:  # --workers N on one SQLite file
        await turn_off_auto_checkpoints()  # bot/db/checkpoints.py: the HTTP processes copy
        if role.duty.serves_http:  # not worker 0, which moves the messages: it has no time to spare
            checkpointer = Checkpointer(path)
            checkpointer.start()
    yield
    if checkpointer is not None:
        await checkpointer.stop()
    await close_db()


async def _whatsapp_client(app: web.Application) -> AsyncIterator[None]:
    """The Graph API client over one shared session, closed on the way out whatever happens before."""
    settings = app[SETTINGS]
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=settings.whatsapp.request_timeout_seconds),
        connector=aiohttp.TCPConnector(limit=settings.sends_in_flight * 2),
    ) as session:
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
        limits = (
            settings.whatsapp.messages_per_second,
            settings.whatsapp.pair_interval_seconds,
            settings.whatsapp.pair_burst,
        )
        buckets = app[PIPELINE].claims.buckets  # shared by every process on the database, if several
        pacer = (
            SharedPacer(buckets, settings.secrets.phone_number_id, *limits)
            if buckets is not None
            else Pacer(*limits)
        )
        app[CLIENT] = WhatsAppClient(transport, settings.secrets.phone_number_id, pacer)
        yield


async def _workers(app: web.Application) -> AsyncIterator[None]:
    role = app.get(ROLE)
    app[WORKERS] = workers = app[PIPELINE].workers(app[CLIENT], role)
    app[webhook.INTAKE] = workers.intake
    await workers.start()
    deaf = (
        role.wakes.listen(workers.inbox.wake, workers.outbox.wake)
        if role is not None and not role.duty.serves_http
        else None
    )
    yield
    if deaf is not None:
        deaf()
    await workers.stop()


async def _peer_events(app: web.Application) -> AsyncIterator[None]:
    """The other processes' live events to this one's panel listeners, and this one's to theirs."""
    peers = app.get(PEERS)
    if peers is None:
        yield
        return
    events = app[PIPELINE].events
    events.connect(peers)
    deaf = peers.listen(events.receive)
    yield
    deaf()


def _moves_messages(app: web.Application) -> bool:
    """Whether this process runs the loops after the intake (not an HTTP process of several)."""
    return duty_of(app.get(ROLE)).moves_messages


async def _media_fetcher(app: web.Application) -> AsyncIterator[None]:
    """Inbound media fetched and kept encrypted (bot/media/); not in sandbox mode, which has no Meta."""
    settings = app[SETTINGS]
    if settings.sandbox or not settings.media.fetch or not _moves_messages(app):
        yield
        return
    fetcher = MediaFetcher(
        app[CLIENT],
        app[handoff_api.MEDIA_STORE],
        settings.media.max_mb * 1024 * 1024,
        clock=app[PIPELINE].clock,
    )
    fetcher.start()
    yield
    await fetcher.stop()


async def _retention(app: web.Application) -> AsyncIterator[None]:
    """The daily deletion of what is older than privacy.retention_days (bot/privacy/retention.py)."""
    settings = app[SETTINGS]
    if not _moves_messages(app):
        yield
        return
    retention = Retention(
        settings.privacy.retention_days, app[handoff_api.MEDIA_STORE], clock=app[PIPELINE].clock
    )
    job = RetentionJob(retention)
    job.start()
    yield
    await job.stop()


async def _flow_watcher(app: web.Application) -> AsyncIterator[None]:
    """Hot reload: saved flow, template and text files go live within seconds, together (the content is
    read once per load, with the flows); a bad edit is refused and logged."""
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
