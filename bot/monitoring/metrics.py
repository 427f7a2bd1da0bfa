"""The counters and the histogram the spine bumps as things happen, with prometheus-client.

Counters live in this process, or, when `PROMETHEUS_MULTIPROC_DIR` is set before prometheus-client is
first imported (`bot serve --workers N`), in that folder's memory-mapped files, one per process, which
`exposition()` adds up for the whole server. What the database already knows (outbox depth, queues,
conversations, cost) is not counted here: bot/monitoring/gauges.py reads it at scrape time, so it is
right whichever process answers the scrape.

Each `record_*` call is a dictionary lookup and an addition: cheap enough for the hot path. Call them
after the commit that made the event true, never inside a transaction that may still roll back.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REGISTRY = CollectorRegistry(auto_describe=True)
"""This module's own registry (not prometheus-client's global one: nothing else registers into it)."""

WEBHOOK_OUTCOMES = ("ok", "unauthorized", "bad_request", "too_large", "not_stored", "aborted")
HELD_REASONS = ("window", "cap", "messaging_limit", "pacing", "budget", "opted_out")
"""Why a send was held back (or, for the window, refused) before any call to Meta."""

WEBHOOK_REQUESTS = Counter(
    "bot_webhook_requests",
    "POST /webhook requests by outcome (ok: stored and answered 200)",
    ["outcome"],
    registry=REGISTRY,
)
WEBHOOK_SECONDS = Histogram(
    "bot_webhook_request_duration_seconds",
    "POST /webhook from the first byte read to the answer, stored rows committed",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
INBOUND = Counter(
    "bot_inbound_messages",
    "Inbound messages the inbox finished with, by type and status (handled, or failed: parked)",
    ["type", "status"],
    registry=REGISTRY,
)
OUTBOUND = Counter(
    "bot_outbound_messages",
    "Outbound messages entering a status (sent, failed by the outbox; delivered, read, failed by Meta)",
    ["type", "status"],
    registry=REGISTRY,
)
GRAPH_ERRORS = Counter(
    "bot_graph_api_errors",
    "Errors answered by (or on the way to) the Graph API, by code",
    ["code"],
    registry=REGISTRY,
)
RETRIES = Counter("bot_send_retries", "Sends put back for another attempt after an error", registry=REGISTRY)
HELD = Counter(
    "bot_sends_held",
    "Sends held back before calling Meta: window (refused: the 24-hour window is closed), cap (the daily "
    "per-customer limit), messaging_limit (Meta's tier), pacing, budget, opted_out (refused: the customer "
    "opted out)",
    ["reason"],
    registry=REGISTRY,
)

_WEBHOOK_BY_OUTCOME = {outcome: WEBHOOK_REQUESTS.labels(outcome=outcome) for outcome in WEBHOOK_OUTCOMES}
"""Every series from the start, so rate() sees the first one; kept, since `labels()` (a lock, the label
checks) on every POST costs more than the increment."""
for _reason in HELD_REASONS:
    HELD.labels(reason=_reason)


def multiprocess_dir() -> str | None:
    """The folder the processes share their counters in, when multiprocess mode is on."""
    return os.environ.get(MULTIPROC_ENV) or None


def webhook_request(outcome: str, seconds: float) -> None:
    _WEBHOOK_BY_OUTCOME[outcome].inc()
    WEBHOOK_SECONDS.observe(seconds)


def inbound(types: Iterable[str], status: str) -> None:
    """A batch's rows, counted by type first: one child lookup and increment per type, not per row
    (a lookup takes the metric's lock; 1.5% of the bot's GIL samples when it was per row)."""
    for message_type, count in collections.Counter(types).items():
        INBOUND.labels(type=message_type, status=status).inc(count)


def outbound(transitions: Iterable[tuple[str, str]]) -> None:
    """(message type, new status) pairs; a row still queued (put back) is not a transition. Counted by
    pair first, as `inbound` is."""
    for (message_type, status), count in collections.Counter(transitions).items():
        OUTBOUND.labels(type=message_type, status=status).inc(count)


def graph_error(code: int) -> None:
    GRAPH_ERRORS.labels(code=str(code)).inc()


def retry() -> None:
    RETRIES.inc()


def held(reason: str) -> None:
    HELD.labels(reason=reason).inc()


def counters_registry() -> CollectorRegistry:
    """What a scrape reports of the counters: this process's, or every process's in multiprocess mode."""
    if multiprocess_dir() is None:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def process_exited(pid: int) -> None:
    """Multiprocess mode: a worker process ended; its live gauges go (its counters stay summed)."""
    if multiprocess_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
