"""Graph errors: every payload file maps to its class, and retry policy follows the code, not the status."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest

from bot.whatsapp import errors as e
from tests.helpers import PAYLOADS, payload

# file code -> (class, retryable, per_recipient, max_attempts); None: transient, bounded by the horizon
EXPECTED: dict[int, tuple[type[e.GraphError], bool, bool, int | None]] = {
    130429: (e.RateLimitHit, True, False, None),
    131056: (e.PairRateLimit, True, True, None),
    4: (e.AppRateLimit, True, False, None),
    80007: (e.WabaRateLimit, True, False, None),
    131000: (e.UnknownError, True, False, None),
    131026: (e.Undeliverable, False, False, 1),
    131047: (e.ReEngagement, False, False, 1),
    131050: (e.MarketingOptOut, False, False, 1),
    132000: (e.TemplateParamCountMismatch, False, False, 1),
    132001: (e.TemplateMissing, False, False, 1),
    190: (e.AccessTokenExpired, False, False, 1),
}


def test_every_error_payload_file_is_expected() -> None:
    codes = {int(p.stem.removeprefix("error_")) for p in PAYLOADS.glob("error_*.json")}
    assert codes == set(EXPECTED)


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_error_payload_maps_to_class(code: int) -> None:
    body = payload(f"error_{code}.json")
    cls, retryable, per_recipient, max_attempts = EXPECTED[code]
    err = e.error_from_response(400, body)
    assert type(err) is cls
    assert err.code == code
    assert err.retryable is retryable
    assert err.per_recipient is per_recipient
    assert err.max_attempts == max_attempts
    assert err.http_status == 400
    assert err.fbtrace_id == body["error"]["fbtrace_id"]
    assert err.title == body["error"]["message"]
    assert err.details == body["error"].get("error_data", {}).get("details")
    assert err.raw == body
    assert str(code) in str(err)


def test_throttling_is_retryable_whatever_the_status() -> None:
    body = payload("error_130429.json")
    for status in (400, 429, 200, 503):
        assert isinstance(e.error_from_response(status, body), e.RateLimitHit)
    assert e.error_from_response(400, body).retryable


def test_permanent_code_stays_permanent_on_5xx() -> None:
    err = e.error_from_response(500, payload("error_131047.json"))
    assert isinstance(err, e.ReEngagement)
    assert not err.retryable


@pytest.mark.parametrize("body", [b"<html>Bad gateway</html>", "", None, [1, 2], {"nope": 1}, {"error": "x"}])
def test_garbage_5xx_is_retryable_server_error(body: Any) -> None:
    err = e.error_from_response(502, body)
    assert type(err) is e.ServerError
    assert err.retryable
    assert err.code == e.CODE_MISSING
    assert err.http_status == 502


def test_garbage_4xx_is_permanent_but_429_throttles() -> None:
    err = e.error_from_response(404, b"not found")
    assert type(err) is e.GraphError and not err.retryable
    assert err.raw == {"body": "not found"}
    assert type(e.error_from_response(429, b"slow down")) is e.ThrottlingError


def test_unknown_code_uses_status() -> None:
    body = {"error": {"message": "new", "code": 999999}}
    assert type(e.error_from_response(500, body)) is e.ServerError
    assert type(e.error_from_response(400, body)) is e.GraphError


def test_json_text_body_is_parsed() -> None:
    err = e.error_from_response(400, json.dumps(payload("error_131056.json")).encode())
    assert isinstance(err, e.PairRateLimit)


def test_string_code_and_string_error_data() -> None:
    err = e.error_from_response(400, {"error": {"code": "131026", "error_data": "text details"}})
    assert isinstance(err, e.Undeliverable)
    assert err.details == "text details"
    assert err.title == "HTTP 400"


@pytest.mark.parametrize(
    ("code", "cls", "retryable", "max_attempts"),
    [
        (131057, e.MaintenanceMode, True, None),
        (131016, e.ServiceUnavailable, True, None),
        (2, e.ServiceUnavailable, True, None),
        (133004, e.ServiceUnavailable, True, None),
        (1, e.PossibleServerError, True, 2),
        (132012, e.TemplateParamFormatMismatch, False, 1),
        (132015, e.TemplatePaused, False, 1),
        (132016, e.TemplateDisabled, False, 1),
        (0, e.AuthError, False, 1),
        (3, e.AuthError, False, 1),
        (10, e.PermissionDenied, False, 1),
        (200, e.PermissionDenied, False, 1),
        (299, e.PermissionDenied, False, 1),
        (131048, e.SpamRateLimit, False, 1),
        (131049, e.EcosystemEngagement, False, 1),
        (131050, e.MarketingOptOut, False, 1),
        (131051, e.UnsupportedMessageType, False, 1),
        (131052, e.MediaError, False, 1),
        (131053, e.MediaError, False, 1),
        (131009, e.InvalidParameter, False, 1),
        (131008, e.InvalidParameter, False, 1),
        (100, e.InvalidParameter, False, 1),
        (368, e.PolicyRestriction, False, 1),
        (131031, e.PolicyRestriction, False, 1),
        (130497, e.CountryRestriction, False, 1),
    ],
)
def test_code_table(code: int, cls: type[e.GraphError], retryable: bool, max_attempts: int | None) -> None:
    err = e.error_from_response(400, {"error": {"code": code, "message": "m"}})
    assert type(err) is cls
    assert err.retryable is retryable
    assert err.max_attempts == max_attempts
    assert e.error_class_for(code) is cls


def test_account_wide_flags() -> None:
    assert e.AccessTokenExpired.account_wide and e.RateLimitHit.account_wide
    assert not e.PairRateLimit.account_wide and not e.Undeliverable.account_wide
    for cls in (e.PermissionDenied, e.PaymentError, e.PolicyRestriction, e.ServiceUnavailable):
        assert cls.account_wide, cls  # the outbox pauses everything on these
    # about one message, so failing it must not pause the others
    assert not e.CountryRestriction.account_wide and not e.ServerError.account_wide


def test_code_1_with_a_5xx_is_a_transient_server_error() -> None:
    body = {"error": {"message": "An unknown error has occurred.", "type": "OAuthException", "code": 1}}
    server = e.error_from_response(500, body)
    assert type(server) is e.ServerError and server.code == 1 and server.max_attempts is None
    request = e.error_from_response(400, body)
    assert type(request) is e.PossibleServerError and request.max_attempts == 2


def test_transient_classes_have_no_attempt_limit() -> None:
    transport = e.TransportError.from_exception(TimeoutError())
    assert transport.max_attempts is None and transport.retryable
    assert e.error_from_response(502, b"<html>").max_attempts is None
    assert e.UnexpectedResponse.max_attempts == 3  # Meta may have accepted it: a few tries only


def test_pair_rate_limit_backoff_is_four_to_the_x() -> None:
    err = e.error_from_response(400, payload("error_131056.json"))
    rng = random.Random(1)
    for attempt, base in enumerate([1, 4, 16, 64, 256]):
        delay = err.retry_delay(attempt, rng)
        assert base <= delay <= base * 1.25
    assert err.retry_delay(50, rng) <= err.max_delay * 1.25


def test_backoff_grows_is_capped_and_jittered() -> None:
    err = e.error_from_response(400, payload("error_130429.json"))
    delays = [err.retry_delay(a, random.Random(7)) for a in range(12)]
    assert delays[0] >= err.base_delay
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert max(delays) <= err.max_delay * (1 + err.jitter)
    spread = {err.retry_delay(3, random.Random(seed)) for seed in range(20)}
    assert len(spread) > 10
    assert err.retry_delay(10**9) <= err.max_delay * (1 + err.jitter)  # no overflow


def test_transport_error() -> None:
    err = e.TransportError.from_exception(ConnectionRefusedError("refused"))
    assert isinstance(err, e.GraphError) and err.retryable
    assert err.code == -1
    assert err.title == "transport error: ConnectionRefusedError: refused"
    assert e.TransportError.from_exception(TimeoutError()).title == "transport error: TimeoutError"


def test_errors_are_raisable_and_repr_is_readable() -> None:
    with pytest.raises(e.ThrottlingError) as info:
        raise e.error_from_response(429, payload("error_130429.json"))
    assert "RateLimitHit(code=130429" in repr(info.value)
