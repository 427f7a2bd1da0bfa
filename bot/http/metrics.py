"""`GET /metrics`: Prometheus text format, written by prometheus-client (no hand-made exposition).

The counters are this process's, or every process's in multiprocess mode (bot/monitoring/metrics.py);
the gauges are read from the database at scrape time (bot/monitoring/gauges.py). It answers a bearer
token, the admin's or `BOT_METRICS_TOKEN`; with `server.metrics_port` set it also listens on
127.0.0.1 at that port, where it needs none (only the machine itself reaches it).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bot.http.messages import ADMIN_TOKEN, bearer_ok
from bot.monitoring import metrics
from bot.monitoring.gauges import DatabaseGauges, read_snapshot

log = logging.getLogger(__name__)

METRICS_TOKEN = web.AppKey("metrics_token", str)
GaugeSource = Callable[[datetime], Awaitable[list[GaugeMetricFamily]]]
GAUGE_SOURCES = web.AppKey("metrics_gauge_sources", list[GaugeSource])
"""More scrape-time gauges (cost, budget, send limits), each read from the database."""
LOCAL_HOST = "127.0.0.1"


class _Counters(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[object]:  # type: ignore[override]
        yield from self._registry.collect()


async def exposition(app: web.Application, now: datetime | None = None) -> bytes:
    """The whole text a scrape gets."""
    at = now or datetime.now(UTC)
    snapshot = await read_snapshot(at)
    for source in app.get(GAUGE_SOURCES, []):
        snapshot.extra.extend(await source(at))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Counters(metrics.counters_registry()))
    registry.register(DatabaseGauges(snapshot))
    return generate_latest(registry)


def _handler(app: web.Application, *, open_: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def scrape(request: web.Request) -> web.Response:
        if not open_ and not (
            bearer_ok(request, app[ADMIN_TOKEN]) or bearer_ok(request, app.get(METRICS_TOKEN, ""))
        ):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        body = await exposition(app)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return scrape


def add_routes(app: web.Application, metrics_port: int | None) -> None:
    app.router.add_get("/metrics", _handler(app, open_=False))
    if metrics_port is not None:
        app.cleanup_ctx.append(_local_listener(metrics_port))


def _local_listener(port: int) -> Callable[[web.Application], AsyncIterator[None]]:
    """A second, token-free listener for the machine's own Prometheus, on 127.0.0.1 only. Several
    worker processes share the port (SO_REUSEPORT); each answers for the whole server."""

    async def listen(app: web.Application) -> AsyncIterator[None]:
        local = web.Application()
        local.router.add_get("/metrics", _handler(app, open_=True))
        runner = web.AppRunner(local, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, LOCAL_HOST, port, reuse_port=True)
        await site.start()
        log.info("metrics on http://%s:%d/metrics", LOCAL_HOST, port)
        try:
            yield
        finally:
            await runner.cleanup()

    return listen
