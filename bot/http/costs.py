"""`GET /api/costs?month=YYYY-MM`: the month's cost (bot/costs/report.py), the budget and Meta's
messaging limit in use, for admins (the admin token, or an admin technician's token or session)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.costs.service import BudgetState, messaging_limit, month_report, parse_month, reached_in_24h
from bot.http.errors import FieldError, invalid
from bot.http.stats import STATS_SETTINGS, require_admin


async def limit_state(default: int | None, now: datetime) -> dict[str, object]:
    """Meta's messaging limit: the tier, the unique customers reached in 24 hours, the headroom."""
    limit = await messaging_limit(default)
    used, frees_at = await reached_in_24h(now)
    return {
        "limit": limit,
        "used": used,
        "headroom": None if limit is None else max(0, limit - used),
        "next_free_at": frees_at.isoformat() if frees_at and limit is not None and used >= limit else None,
    }


async def costs(request: web.Request) -> web.Response:
    await require_admin(request)
    settings = request.app[STATS_SETTINGS]
    zone = ZoneInfo(settings.shop.timezone)
    now = datetime.now(UTC)
    text = request.query.get("month", f"{now.astimezone(zone):%Y-%m}")[:16]
    try:
        year, month = parse_month(text)
    except ValueError as exc:
        raise web.HTTPUnprocessableEntity(
            text=invalid("query", [FieldError(field="month", message=str(exc))]).text,
            content_type="application/json",
        ) from None
    report = await month_report(settings.costs, zone, year, month)
    budget = BudgetState(report.month, report.total, settings.costs.monthly_budget, report.currency)
    body = report.model_copy(
        update={
            "budget": budget.as_dict() if settings.costs.monthly_budget else None,
            "messaging_limit": await limit_state(settings.whatsapp.messaging_limit, now),
        }
    )
    return web.Response(text=body.model_dump_json(), content_type="application/json")


def add_routes(app: web.Application) -> None:
    """After bot.http.stats.add_routes (it holds the settings)."""
    app.router.add_get("/api/costs", costs)
