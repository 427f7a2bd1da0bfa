"""The outbox's retry policy on its own: how long a row is worth trying, and what follows a failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.outbox.retries import LAST_TRY_MARGIN, TEMPLATE_HORIZON, GiveUp, Horizon, Retry, RetryPolicy
from bot.whatsapp import errors as e

QUEUED = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
WROTE = QUEUED - timedelta(hours=20)  # the customer's window closes 4 h after queueing


def test_free_form_is_worth_trying_until_the_window_closes_templates_for_24_hours() -> None:
    policy = RetryPolicy(horizon=None, max_attempts=8)
    free_form = policy.horizon(QUEUED, free_form=True, last_inbound_at=WROTE)
    assert free_form == Horizon(WROTE + timedelta(hours=24), "the customer's 24-hour window closes")
    template = policy.horizon(QUEUED, free_form=False, last_inbound_at=WROTE)
    assert template.ends_at == QUEUED + TEMPLATE_HORIZON == QUEUED + timedelta(hours=24)


def test_a_configured_horizon_shortens_both_but_never_outlasts_the_window() -> None:
    short = RetryPolicy(horizon=timedelta(hours=1), max_attempts=8)
    assert short.horizon(QUEUED, True, WROTE).ends_at == QUEUED + timedelta(hours=1)
    assert short.horizon(QUEUED, False, WROTE).ends_at == QUEUED + timedelta(hours=1)
    assert "retry horizon (1 h after queueing)" in short.horizon(QUEUED, False, WROTE).what
    long = RetryPolicy(horizon=timedelta(hours=48), max_attempts=8)
    assert long.horizon(QUEUED, True, WROTE).ends_at == WROTE + timedelta(hours=24)
    assert long.horizon(QUEUED, False, WROTE).ends_at == QUEUED + timedelta(hours=48)


HORIZON = Horizon(QUEUED + timedelta(hours=4), "the customer's 24-hour window closes")


def test_a_transient_error_is_retried_after_its_backoff_whatever_the_attempt_count() -> None:
    policy = RetryPolicy(horizon=None, max_attempts=8)
    error = e.error_from_response(500, {"error": {"code": 131000, "message": "m"}})
    decision = policy.after(error, attempts=40, now=QUEUED, horizon=HORIZON)
    assert isinstance(decision, Retry)
    assert QUEUED + timedelta(seconds=error.max_delay) <= decision.at
    assert decision.at <= QUEUED + timedelta(seconds=error.max_delay * (1 + error.jitter))


def test_the_last_try_comes_just_before_the_horizon_and_then_it_stops() -> None:
    policy = RetryPolicy(horizon=None, max_attempts=8)
    error = e.error_from_response(503, b"<html>")
    near = HORIZON.ends_at - timedelta(minutes=2)
    last = policy.after(error, attempts=30, now=near, horizon=HORIZON)
    assert last == Retry(HORIZON.ends_at - LAST_TRY_MARGIN)
    stop = policy.after(error, attempts=31, now=HORIZON.ends_at - LAST_TRY_MARGIN, horizon=HORIZON)
    assert isinstance(stop, GiveUp)
    assert (
        stop.reason == "the customer's 24-hour window closes at 2026-03-02 14:00:00 UTC, before another try"
    )


@pytest.mark.parametrize(
    ("error", "attempts", "reason"),
    [
        (e.Undeliverable(131026, "undeliverable"), 1, "a permanent error, not retried"),
        (e.PossibleServerError(1, "m", http_status=400), 2, "at most 2 tries for this error"),
        (e.UnexpectedResponse(-2, "m"), 3, "at most 3 tries for this error"),
    ],
)
def test_permanent_and_few_times_errors_stop_with_their_reason(
    error: e.GraphError, attempts: int, reason: str
) -> None:
    decision = RetryPolicy(horizon=None, max_attempts=8).after(error, attempts, QUEUED, HORIZON)
    assert decision == GiveUp(reason)


def test_outbox_max_attempts_caps_the_few_times_errors() -> None:
    decision = RetryPolicy(horizon=None, max_attempts=1).after(
        e.UnexpectedResponse(-2, "m"), 1, QUEUED, HORIZON
    )
    assert decision == GiveUp("at most 1 try for this error")


def test_an_account_wide_pause_overrides_the_class_but_not_the_horizon() -> None:
    policy = RetryPolicy(horizon=None, max_attempts=8)
    expired = e.AccessTokenExpired(190, "expired")  # permanent by class: retried only as a pause
    paused_until = QUEUED + timedelta(minutes=5)
    assert policy.after(expired, 1, QUEUED, HORIZON, paused_until) == Retry(paused_until)
    too_late = HORIZON.ends_at + timedelta(minutes=5)
    assert isinstance(policy.after(expired, 9, HORIZON.ends_at, HORIZON, too_late), GiveUp)
