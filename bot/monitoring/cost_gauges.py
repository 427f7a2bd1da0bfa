"""/metrics gauges of money and Meta's limits, read from the database at scrape time: the month's
cost so far, the budget's use, and the messaging limit's tier, use and headroom."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily

from bot.costs.service import CostWatch, messaging_limit, reached_in_24h
from bot.settings import Settings

INFINITE = float("inf")


def cost_gauges(
    settings: Settings, watch: CostWatch
) -> Callable[[datetime], Awaitable[list[GaugeMetricFamily]]]:
    async def read(now: datetime) -> list[GaugeMetricFamily]:
        state = await watch.state(now)
        cost = GaugeMetricFamily(
            "bot_cost_month",
            "What WhatsApp has cost this month so far (the shop's month)",
            labels=["currency"],
        )
        cost.add_metric([state.currency], float(state.spent))
        families = [cost]
        if state.limit is not None:
            families.append(
                GaugeMetricFamily(
                    "bot_budget_used_ratio",
                    "This month's cost / costs.monthly_budget (warnings at 0.8 and 1.0)",
                    value=float(state.used or 0),
                )
            )
        limit = await messaging_limit(settings.whatsapp.messaging_limit)
        used, _ = await reached_in_24h(now)
        families += [
            GaugeMetricFamily(
                "bot_messaging_limit",
                "Meta's messaging limit: unique customers templates the shop starts may reach in 24 h",
                value=INFINITE if limit is None else float(limit),
            ),
            GaugeMetricFamily(
                "bot_messaging_limit_used",
                "Unique customers reached that way in the last 24 hours",
                value=used,
            ),
            GaugeMetricFamily(
                "bot_messaging_limit_headroom",
                "How many more customers they may reach now",
                value=INFINITE if limit is None else float(max(0, limit - used)),
            ),
        ]
        return families

    return read
