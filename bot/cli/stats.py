"""`bot stats [--from --to] [--group]`: /api/stats's figures as tables on the terminal."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from bot.db import close_db, init_db
from bot.engine import FlowSet
from bot.http.stats import StatsQuery
from bot.periods import Group
from bot.settings import Settings
from bot.stats import Delivery, Percentiles, Stats, compute


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _delivery(label: str, d: Delivery) -> str:
    return (
        f"{label:<12} sent {d.sent:>7}  delivered {d.delivered:>7} ({_rate(d.delivery_rate)})"
        f"  read {d.read:>7} ({_rate(d.read_rate)})  failed {d.failed:>6}"
    )


def _percentiles(label: str, p: Percentiles, high: str) -> str:
    top = p.p90 if high == "p90" else p.p95
    return f"{label:<34} median {_seconds(p.median):>9}  {high} {_seconds(top):>9}  ({p.count} measured)"


def render(stats: Stats) -> str:
    lines = [
        f"Statistics {stats.from_} to {stats.to} (exclusive), by {stats.group}, {stats.timezone} days",
        "",
        f"{'period':<12} {'in':>7} {'out':>7} {'sent':>7} {'deliv.':>7} {'read':>7} {'failed':>7}",
    ]
    for period in stats.periods:
        d = period.delivery
        lines.append(
            f"{period.period:<12} {period.inbound:>7} {period.outbound:>7} {d.sent:>7} {d.delivered:>7}"
            f" {d.read:>7} {d.failed:>7}"
        )
    total, messages = stats.delivery, stats.messages
    lines.append(
        f"{'total':<12} {messages['inbound']:>7} {messages['outbound']:>7} {total.sent:>7}"
        f" {total.delivered:>7} {total.read:>7} {total.failed:>7}"
    )
    lines += ["", f"{'type':<14} {'in':>7} {'out':>7}"]
    lines += [f"{name:<14} {c['inbound']:>7} {c['outbound']:>7}" for name, c in stats.by_type.items()]
    lines += ["", _delivery("range", stats.delivery), _delivery("last 24 h", stats.last_24h), ""]
    lines.append("most frequent failures:" if stats.failures else "no failures")
    lines += [f"  {f.count:>6} × {f.code} {f.error}: {f.meaning}" for f in stats.failures]
    h = stats.handoffs
    lines += [
        "",
        f"handoffs {h.count}; of {h.conversations} customers who wrote, the bot alone served"
        f" {h.finished_by_bot}",
        _percentiles("wait for a person's first reply", h.first_reply_seconds, "p90"),
        _percentiles("the bot's reply time", stats.response_seconds, "p95"),
    ]
    for funnel in stats.funnels:
        steps = ", ".join(f"{step.state} {step.conversations}" for step in funnel.states)
        lines.append(f"flow {funnel.flow}: entered {funnel.entered}; {steps}")
    return "\n".join(lines) + "\n"


def _flows(settings: Settings) -> FlowSet | None:
    """The shop's flows, to order the funnels' states (None when they do not load: the counts alone)."""
    from bot.engine import FlowLoadError, load_flows
    from bot.wiring import checked_actions, load_shop_content

    try:
        return load_flows(settings.flows_dir, checked_actions(settings), load_shop_content(settings))
    except (FlowLoadError, ValueError):
        return None


async def print_stats(settings: Settings, first: date | None, end: date | None, group: Group) -> int:
    zone = ZoneInfo(settings.shop.timezone)
    now = datetime.now(UTC)
    query = StatsQuery.model_validate({"from": first, "to": end, "group": group})
    span = query.span(now.astimezone(zone).date(), zone)
    await init_db(settings.database_url)
    try:
        stats = await compute(span, group, now, _flows(settings))
    finally:
        await close_db()
    print(render(stats), end="")
    return 0
