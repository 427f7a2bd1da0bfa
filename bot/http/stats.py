"""`GET /api/stats?from=&to=&group=day|week|month`: the shop's numbers (bot/stats.py), for admins.

`from` and `to` are shop days (YYYY-MM-DD, `to` exclusive, as in the appointments API); without them,
the last 30 days. The admin token (`BOT_ADMIN_TOKEN`) or an admin technician's token (the panel's
dashboard) is needed; a technician who is not an admin gets 403.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.engine import FlowSet
from bot.engine.graph import as_data
from bot.handoff.service import is_admin
from bot.handoff.sessions import technician_of
from bot.http.errors import FieldError, bearer_token, error_response, field_errors, invalid, unauthorized
from bot.http.messages import ADMIN_TOKEN, bearer_ok
from bot.periods import MAX_DAYS, Group, Range
from bot.settings import Settings
from bot.stats import compute, default_range

STATS_SETTINGS = web.AppKey("stats_settings", Settings)
FlowsNow = Callable[[], FlowSet]
FLOWS: web.AppKey[FlowsNow] = web.AppKey("stats_flows")
"""The flows the engine runs now (reloaded with them), for the dashboard's diagrams."""


class StatsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: date | None = Field(default=None, alias="from")
    to: date | None = None
    group: Group = "day"

    @model_validator(mode="after")
    def _ordered(self) -> StatsQuery:
        if self.from_ and self.to:
            if self.to <= self.from_:
                raise ValueError("to must be after from (to is exclusive)")
            if (self.to - self.from_).days > MAX_DAYS:
                raise ValueError(f"at most {MAX_DAYS} days")
        return self

    def span(self, today: date, zone: ZoneInfo) -> Range:
        if self.from_ is None and self.to is None:
            return default_range(today, zone)
        end = self.to or max(today + timedelta(days=1), (self.from_ or today) + timedelta(days=1))
        first = self.from_ or end - timedelta(days=30)
        return Range(first, end, zone)


async def require_admin(request: web.Request) -> None:
    """The admin token, or an active admin technician's token or panel session; 401 without either,
    403 for a technician who is not an admin."""
    if bearer_ok(request, request.app[ADMIN_TOKEN]):
        return
    technician = await technician_of(bearer_token(request))
    if technician is None:
        raise unauthorized("the admin token or an admin technician's token is needed", "stats")
    if not is_admin(technician):
        raise web.HTTPForbidden(text='{"error": "admins only"}', content_type="application/json")


def parse_query(request: web.Request) -> StatsQuery:
    allowed = {"from", "to", "group"}
    if unknown := sorted(set(request.query) - allowed):
        raise web.HTTPUnprocessableEntity(
            text=invalid("query", [_unknown(name) for name in unknown]).text, content_type="application/json"
        )
    try:
        return StatsQuery.model_validate({key: value[:32] for key, value in request.query.items()})
    except ValidationError as exc:
        raise web.HTTPUnprocessableEntity(
            text=invalid("query", field_errors(exc, ["from", "to", "group"])).text,
            content_type="application/json",
        ) from None


def _unknown(name: str) -> FieldError:
    return FieldError(field=name[:64], message="unknown parameter; the parameters are: from, to, group")


async def stats(request: web.Request) -> web.Response:
    await require_admin(request)
    query = parse_query(request)
    settings = request.app[STATS_SETTINGS]
    zone = ZoneInfo(settings.shop.timezone)
    now = datetime.now(UTC)
    try:
        span = query.span(now.astimezone(zone).date(), zone)
    except ValueError as exc:
        return error_response(422, str(exc))
    body = (await compute(span, query.group, now, request.app[FLOWS]())).dump()
    return web.json_response(body)


async def flow_graphs(request: web.Request) -> web.Response:
    """`GET /api/stats/flows`: every flow as `bot flows graph --format json` draws it."""
    await require_admin(request)
    return web.json_response(as_data(request.app[FLOWS]()))


def add_routes(app: web.Application, settings: Settings, flows: Callable[[], FlowSet]) -> None:
    app[STATS_SETTINGS] = settings
    app[FLOWS] = flows
    app.router.add_get("/api/stats", stats)
    app.router.add_get("/api/stats/flows", flow_graphs)
