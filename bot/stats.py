"""The shop's numbers: messages per period, delivery and read rates, failures, handoffs and waits, how
fast the bot answers, and (with the conversation steps) each flow's funnel.

Everything is computed in the database by a fixed number of grouped queries, whatever the row count
(the test runs 200,000 messages): Python only sees one row per (shop day, direction, type), per error
code, or per percentile asked. Periods are the shop's days in its time zone (bot/periods.py), rolled up
into weeks (from Monday) or months in Python, where there are at most a few thousand of them.

Definitions, for outbound messages created in the range: sent = accepted by Meta (a sent time);
delivered and read = a delivered / read time; failed = the status failed (refused before sending too).
Delivery rate = delivered / sent; read rate = read / delivered. Percentiles are nearest-rank.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from bot.db.sql import fetch, local_day, seconds_between
from bot.engine import FlowSet
from bot.engine.graph import as_data
from bot.periods import Group, Range, period_key
from bot.spine.outbox.window import WINDOW_ERROR_CODE
from bot.whatsapp import errors

TOP_FAILURES = 10
_OWN_CODES = {
    errors.CODE_TRANSPORT: (
        "TransportError",
        "no answer from the Graph API (connection refused, reset, timeout)",
    ),
    errors.CODE_UNEXPECTED: ("UnexpectedResponse", "an answer without what the API promises"),
    errors.CODE_MISSING: ("GraphError", "an error answer without a Graph error code"),
    errors.CODE_UNSENDABLE: ("Unsendable", "the queued message could not be built (bad stored payload)"),
    errors.CODE_OPTED_OUT: ("OptedOut", "a message the shop starts, to a customer who opted out (STOP)"),
    errors.CODE_MARKETING_OPTED_OUT: (
        "MarketingOptedOut",
        "a marketing template, to a customer who stopped marketing messages (WhatsApp, error 131050)",
    ),
}


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Delivery(_Out):
    sent: int
    delivered: int
    read: int
    failed: int
    delivery_rate: float | None
    read_rate: float | None


class Period(_Out):
    period: str
    inbound: int
    outbound: int
    by_type: dict[str, dict[str, int]]
    """type -> {"inbound": n, "outbound": n}"""
    delivery: Delivery


class Failure(_Out):
    code: int | None
    count: int
    error: str
    meaning: str


class Percentiles(_Out):
    count: int
    median: float | None
    p90: float | None = None
    p95: float | None = None


class Handoffs(_Out):
    count: int
    first_reply_seconds: Percentiles
    """From the handoff's request to the first message a person sent in the chat."""
    conversations: int
    """Customers who wrote in the range."""
    finished_by_bot: int
    """Of those, how many never asked for (or were handed to) a person in the range."""


class FunnelStep(_Out):
    state: str
    conversations: int


class Funnel(_Out):
    flow: str
    entered: int
    states: list[FunnelStep]
    end_states: list[str]


class Stats(_Out):
    timezone: str
    from_: str
    to: str
    group: str
    generated_at: datetime
    messages: dict[str, int]
    by_type: dict[str, dict[str, int]]
    periods: list[Period]
    delivery: Delivery
    last_24h: Delivery
    failures: list[Failure]
    handoffs: Handoffs
    response_seconds: Percentiles
    """From an inbound message's arrival to the bot's first reply to it being sent."""
    funnels: list[Funnel]

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["from"] = data.pop("from_")
        return data


def describe(code: int | None) -> tuple[str, str]:
    """An error code's class and what it means (bot/whatsapp/errors.py's hierarchy)."""
    if code is None:
        return "unknown", "failed without an error code"
    if code in _OWN_CODES:
        return _OWN_CODES[code]
    cls = errors.error_class_for(code)
    meaning = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
    if code == WINDOW_ERROR_CODE and cls is errors.GraphError:
        meaning = "outside the 24-hour window"
    return cls.__name__, meaning.split(": ", 1)[1] if meaning.startswith(f"{code}:") else meaning


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass
class _Tally:
    inbound: int = 0
    outbound: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0

    def delivery(self) -> Delivery:
        return Delivery(
            sent=self.sent,
            delivered=self.delivered,
            read=self.read,
            failed=self.failed,
            delivery_rate=_rate(self.delivered, self.sent),
            read_rate=_rate(self.read, self.delivered),
        )


_OUT = "message_direction = 'outbound'"
_OUTBOUND_SUMS = (
    f"SUM(CASE WHEN {_OUT} AND sent_at IS NOT NULL THEN 1 ELSE 0 END) AS sent,"
    f" SUM(CASE WHEN {_OUT} AND delivered_at IS NOT NULL THEN 1 ELSE 0 END) AS delivered,"
    f" SUM(CASE WHEN {_OUT} AND read_at IS NOT NULL THEN 1 ELSE 0 END) AS read_n,"
    f" SUM(CASE WHEN {_OUT} AND delivery_status = 'failed' THEN 1 ELSE 0 END) AS failed"
)


def _add(tally: _Tally, row: dict[str, Any]) -> None:
    n = int(row["n"])
    if row["direction"] == "inbound":
        tally.inbound += n
    else:
        tally.outbound += n
    tally.sent += int(row["sent"] or 0)
    tally.delivered += int(row["delivered"] or 0)
    tally.read += int(row["read_n"] or 0)
    tally.failed += int(row["failed"] or 0)


async def _messages(span: Range, group: Group) -> tuple[list[Period], _Tally, dict[str, dict[str, int]]]:
    start, end = span.start_utc, span.end_utc
    day_sql, day_params = local_day("created_at", span.zone, start, end)
    rows = await fetch(
        f"SELECT {day_sql} AS day, message_direction AS direction, message_type AS type, COUNT(*) AS n,"
        f" {_OUTBOUND_SUMS} FROM message WHERE created_at >= ? AND created_at < ? GROUP BY 1, 2, 3",
        [*day_params, start, end],
    )
    keys = span.periods(group)
    tallies = {key: _Tally() for key in keys}
    types: dict[str, dict[str, dict[str, int]]] = {
        key: defaultdict(lambda: {"inbound": 0, "outbound": 0}) for key in keys
    }
    total = _Tally()
    total_types: dict[str, dict[str, int]] = defaultdict(lambda: {"inbound": 0, "outbound": 0})
    for row in rows:
        key = period_key(date.fromisoformat(str(row["day"])), group)
        if key not in tallies:  # at the range's edge, a zone change the cuts did not foresee
            continue
        _add(tallies[key], row)
        _add(total, row)
        direction = "inbound" if row["direction"] == "inbound" else "outbound"
        types[key][str(row["type"])][direction] += int(row["n"])
        total_types[str(row["type"])][direction] += int(row["n"])
    periods = [
        Period(
            period=key,
            inbound=tallies[key].inbound,
            outbound=tallies[key].outbound,
            by_type={name: dict(counts) for name, counts in sorted(types[key].items())},
            delivery=tallies[key].delivery(),
        )
        for key in keys
    ]
    return periods, total, {name: dict(counts) for name, counts in sorted(total_types.items())}


async def _delivery_since(since: datetime, until: datetime) -> Delivery:
    rows = await fetch(
        f"SELECT message_direction AS direction, COUNT(*) AS n, {_OUTBOUND_SUMS} FROM message"
        " WHERE created_at >= ? AND created_at < ? AND message_direction = 'outbound' GROUP BY 1",
        [since, until],
    )
    tally = _Tally()
    for row in rows:
        _add(tally, row)
    return tally.delivery()


async def _failures(start: datetime, end: datetime) -> list[Failure]:
    rows = await fetch(
        "SELECT error_code AS code, COUNT(*) AS n FROM message WHERE message_direction = 'outbound'"
        " AND delivery_status = 'failed' AND created_at >= ? AND created_at < ?"
        f" GROUP BY error_code ORDER BY COUNT(*) DESC, error_code LIMIT {TOP_FAILURES}",
        [start, end],
    )
    found = []
    for row in rows:
        code = None if row["code"] is None else int(row["code"])
        name, meaning = describe(code)
        found.append(Failure(code=code, count=int(row["n"]), error=name, meaning=meaning))
    return found


async def percentiles(
    values_sql: str, params: list[Any], wanted: tuple[int, ...]
) -> tuple[int, dict[int, float]]:
    """Nearest-rank percentiles of the `value` column of a subquery, ranked in the database (window
    functions): only the rows at the wanted ranks come back. Returns (count, {percent: value})."""
    ranks = " OR ".join(f"rn = (n * {p} + 99) / 100" for p in wanted)
    rows = await fetch(
        "SELECT value, rn, n FROM (SELECT value, ROW_NUMBER() OVER (ORDER BY value) AS rn,"
        f" COUNT(*) OVER () AS n FROM ({values_sql}) AS v WHERE value IS NOT NULL) AS ranked"
        f" WHERE {ranks} OR rn = 1",
        params,
    )
    if not rows:
        return 0, {}
    count = int(rows[0]["n"])
    by_rank = {int(row["rn"]): float(row["value"]) for row in rows}
    return count, {p: round(by_rank[max(1, (count * p + 99) // 100)], 3) for p in wanted}


async def _handoffs(start: datetime, end: datetime) -> Handoffs:
    wait = seconds_between(
        "(SELECT MIN(m.created_at) FROM message m JOIN conversation c ON c.customer_id = m.customer_id"
        " WHERE c.id = h.conversation_id"
        " AND m.message_direction = 'outbound' AND m.technician_id IS NOT NULL"
        " AND m.created_at >= h.requested_at)",
        "h.requested_at",
    )
    count, found = await percentiles(
        f"SELECT {wait} AS value FROM handoff h WHERE h.requested_at >= ? AND h.requested_at < ?",
        [start, end],
        (50, 90),
    )
    totals = await fetch(
        "SELECT COUNT(*) AS handoffs,"
        " (SELECT COUNT(DISTINCT customer_id) FROM message WHERE message_direction = 'inbound'"
        "  AND created_at >= ? AND created_at < ?) AS conversations,"
        " (SELECT COUNT(DISTINCT customer_id) FROM message WHERE message_direction = 'inbound'"
        "  AND created_at >= ? AND created_at < ? AND customer_id NOT IN"
        "  (SELECT c.customer_id FROM handoff hh JOIN conversation c ON c.id = hh.conversation_id"
        "   WHERE hh.requested_at >= ? AND hh.requested_at < ?)) AS by_bot"
        " FROM handoff WHERE requested_at >= ? AND requested_at < ?",
        [start, end, start, end, start, end, start, end],
    )
    row = totals[0]
    return Handoffs(
        count=int(row["handoffs"]),
        first_reply_seconds=Percentiles(count=count, median=found.get(50), p90=found.get(90)),
        conversations=int(row["conversations"] or 0),
        finished_by_bot=int(row["by_bot"] or 0),
    )


async def _response_times(start: datetime, end: datetime) -> Percentiles:
    first_reply = seconds_between("MIN(o.sent_at)", "i.received_at")
    count, found = await percentiles(
        f"SELECT {first_reply} AS value FROM message o JOIN message i ON i.whatsapp_message_id = o.reply_to"
        " WHERE o.message_direction = 'outbound' AND o.technician_id IS NULL AND o.sent_at IS NOT NULL"
        " AND o.created_at >= ? AND o.created_at < ? AND i.message_direction = 'inbound'"
        " GROUP BY i.id, i.received_at",
        [start, end],
        (50, 95),
    )
    return Percentiles(count=count, median=found.get(50), p95=found.get(95))


async def _funnels(start: datetime, end: datetime, flows: FlowSet | None) -> list[Funnel]:
    """Per flow: the conversations that entered it in the range and those that reached each of its
    states (conversation_step, every goto hop included), in the flow's own order of states."""
    by_state = await fetch(
        "SELECT flow, state, COUNT(DISTINCT conversation_id) AS n FROM conversation_step"
        " WHERE at >= ? AND at < ? GROUP BY flow, state",
        [start, end],
    )
    by_flow = await fetch(
        "SELECT flow, COUNT(DISTINCT conversation_id) AS n FROM conversation_step"
        " WHERE at >= ? AND at < ? GROUP BY flow",
        [start, end],
    )
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for row in by_state:
        counts[str(row["flow"])][str(row["state"])] = int(row["n"])
    entered = {str(row["flow"]): int(row["n"]) for row in by_flow}
    graph = {flow["flow"]: flow for flow in as_data(flows)["flows"]} if flows is not None else {}
    names = sorted(set(graph) | set(entered))
    funnels = []
    for name in names:
        declared = [state["state"] for state in graph.get(name, {}).get("states", [])]
        states = declared + sorted(set(counts.get(name, {})) - set(declared))  # removed since: kept last
        funnels.append(
            Funnel(
                flow=name,
                entered=entered.get(name, 0),
                states=[FunnelStep(state=s, conversations=counts.get(name, {}).get(s, 0)) for s in states],
                end_states=[
                    state["state"] for state in graph.get(name, {}).get("states", []) if state["end"]
                ],
            )
        )
    return funnels


async def compute(span: Range, group: Group, now: datetime, flows: FlowSet | None = None) -> Stats:
    """Every figure for the shop days of `span`, grouped by `group`; `now` anchors the last 24 hours.
    `flows` (the engine's) orders each funnel's states and names its end states."""
    start, end = span.start_utc, span.end_utc
    periods, total, by_type = await _messages(span, group)
    return Stats(
        timezone=span.zone.key,
        from_=span.first.isoformat(),
        to=span.end.isoformat(),
        group=group,
        generated_at=now,
        messages={"inbound": total.inbound, "outbound": total.outbound},
        by_type=by_type,
        periods=periods,
        delivery=total.delivery(),
        last_24h=await _delivery_since(now - timedelta(hours=24), now),
        failures=await _failures(start, end),
        handoffs=await _handoffs(start, end),
        response_seconds=await _response_times(start, end),
        funnels=await _funnels(start, end, flows),
    )


def default_range(today: date, zone: ZoneInfo, days: int = 30) -> Range:
    """The last `days` shop days, today included."""
    return Range(today - timedelta(days=days - 1), today + timedelta(days=1), zone)
