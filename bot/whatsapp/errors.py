"""Graph API errors as one class hierarchy, so "retry or not" is a property of the class.

Meta says to build error handling on `error.code` (and `error_data.details`), never on the HTTP status,
title or subcode (its error codes reference:
https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes): throttling arrives as
HTTP 400 as well as 429. So `error_from_response` picks the class by code; the HTTP status only decides
what an *unknown* code means (and which of code 1's two meanings applies).
The outbox reads `retryable`, `max_attempts`, `account_wide` and `retry_delay()`, the client reads
`per_recipient`; neither matches numbers itself. Transient classes have `max_attempts = None`: they are
retried for as long as the outbox's horizon allows, not a number of times.
"""

from __future__ import annotations

import json
import random
from typing import Any, ClassVar

_MAX_EXPONENT = 32  # keeps factor ** attempt finite; the delay is capped long before this
# Codes of our own, for failures that carry no Graph code (Graph's own codes are >= 0).
CODE_TRANSPORT = -1  # no HTTP answer
CODE_UNEXPECTED = -2  # a 2xx answer without what it must hold
CODE_MISSING = -3  # a non-2xx answer without a Graph error code in it
CODE_UNSENDABLE = -4  # a queued row whose stored payload is not a message that can be sent
CODE_OPTED_OUT = -5  # a message the shop starts, to a customer who opted out (STOP): never sent
CODE_MARKETING_OPTED_OUT = -6  # a marketing template, to a customer who stopped marketing: never sent


class GraphError(Exception):
    """An error answered by (or on the way to) the Graph API. This base class is permanent."""

    codes: ClassVar[tuple[int, ...]] = ()
    retryable: ClassVar[bool] = False
    max_attempts: ClassVar[int | None] = 1
    """Total attempts for the message, the first one included; None: transient, retried until the
    outbox's horizon (the customer's window, or outbox.retry_horizon_hours) runs out."""
    per_recipient: ClassVar[bool] = False  # only this recipient must wait: the pacer holds it
    account_wide: ClassVar[bool] = False  # about the number/app/token, not this message: pause, alert
    base_delay: ClassVar[float] = 2.0
    backoff_factor: ClassVar[float] = 2.0
    max_delay: ClassVar[float] = 300.0
    jitter: ClassVar[float] = 0.5  # the delay is drawn from [d, d * (1 + jitter)]

    def __init__(
        self,
        code: int,
        title: str,
        details: str | None = None,
        *,
        http_status: int | None = None,
        fbtrace_id: str | None = None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.title = title
        self.details = details
        self.http_status = http_status
        self.fbtrace_id = fbtrace_id
        self.raw: dict[str, Any] = raw if raw is not None else {}
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"Graph error {self.code}: {self.title}"
        if self.details and self.details != self.title:
            text += f" ({self.details})"
        if self.http_status is not None:
            text += f" [HTTP {self.http_status}]"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code}, title={self.title!r}, details={self.details!r}, "
            f"http_status={self.http_status}, fbtrace_id={self.fbtrace_id!r})"
        )

    def retry_delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0 = the first retry): exponential, jittered up.

        Jitter only lengthens the wait, so Meta's suggested minimum (4**X s for 131056) is kept while
        many rows failing together do not all come back in the same instant.
        """
        exponent = min(max(attempt, 0), _MAX_EXPONENT)
        delay = min(self.max_delay, self.base_delay * self.backoff_factor**exponent)
        draw = (rng or random).random()
        return delay * (1.0 + self.jitter * draw)


# --- retryable: throttling ------------------------------------------------------------------------------


class ThrottlingError(GraphError):
    """Sending too fast; back off. Also used for an HTTP 429 whose body carries no known code."""

    retryable = True
    max_attempts: ClassVar[int | None] = None
    account_wide = True


class RateLimitHit(ThrottlingError):
    """130429: the business number's throughput (80 mps by default) was exceeded."""

    codes = (130429,)


class PairRateLimit(ThrottlingError):
    """131056: too many messages to this one recipient; others can be sent to at once. Wait 4**X s."""

    codes = (131056,)
    per_recipient = True
    account_wide = False
    base_delay = 1.0
    backoff_factor = 4.0
    jitter = 0.25


class AppRateLimit(ThrottlingError):
    """4: the app's API call rate limit (counted per hour, so wait longer)."""

    codes = (4,)
    base_delay = 10.0
    max_delay = 600.0


class WabaRateLimit(ThrottlingError):
    """80007: the WhatsApp Business Account's rate limit."""

    codes = (80007,)
    base_delay = 10.0
    max_delay = 600.0


class MaintenanceMode(ThrottlingError):
    """131057: account in maintenance mode, e.g. during a throughput upgrade (about a minute)."""

    codes = (131057,)
    base_delay = 10.0


# --- retryable: temporary failures ----------------------------------------------------------------------


class TemporaryError(GraphError):
    """The service failed for now; the same request may succeed later."""

    retryable = True
    max_attempts: ClassVar[int | None] = None


class ServiceUnavailable(TemporaryError):
    """131016 / 2 / 133004: service temporarily unavailable or in downtime."""

    codes = (131016, 2, 133004)
    account_wide = True


class ServerError(TemporaryError):
    """An HTTP 5xx without a known error code (or with no parseable body at all)."""


class PossibleServerError(TemporaryError):
    """1: "invalid request or possible server error" on a 4xx; worth exactly one more try. With a 5xx
    it is the server's error, a ServerError (the status is what tells Meta's two meanings apart)."""

    codes = (1,)
    max_attempts = 2


class UnknownError(TemporaryError):
    """131000: "failed due to an unknown error"; Meta says try again: transient, within the horizon."""

    codes = (131000,)


class TransportError(TemporaryError):
    """No HTTP answer at all (connection refused, reset, timeout). code -1: code 0 belongs to auth.

    A timeout after the request was written may mean Meta accepted it; a retry can then duplicate,
    which beats losing the message.
    """

    @classmethod
    def from_exception(cls, exc: BaseException) -> TransportError:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return cls(CODE_TRANSPORT, f"transport error: {reason}", raw={"exception": repr(exc)})


class UnexpectedResponse(TemporaryError):
    """A 2xx whose body is not what the API promises (e.g. no messages[0].id). code -2.

    Retried a few times: the message may then go out twice, which beats losing it.
    """

    max_attempts = 3

    @classmethod
    def about(cls, what: str, body: Any, http_status: int | None = None) -> UnexpectedResponse:
        raw = body if isinstance(body, dict) else {"body": str(body)[:1000]}
        return cls(CODE_UNEXPECTED, f"unexpected response: {what}", http_status=http_status, raw=raw)


# --- permanent ------------------------------------------------------------------------------------------


class ReEngagement(GraphError):
    """131047: more than 24 h since the customer last wrote; only a template can be sent now."""

    codes = (131047,)


class Undeliverable(GraphError):
    """131026: not a WhatsApp user, terms not accepted, or an outdated app."""

    codes = (131026,)


class BsuidRecipientNotSupported(GraphError):
    """131062: this message cannot go to a business-scoped user ID (an authentication template needs a
    phone number). Permanent: the customer has no phone on file until they share it."""

    codes = (131062,)


class UnsupportedMessageType(GraphError):
    """131051: the message type is not supported."""

    codes = (131051,)


class TemplateError(GraphError):
    """A template problem that only a change of config or payload fixes."""


class TemplateParamCountMismatch(TemplateError):
    codes = (132000,)


class TemplateMissing(TemplateError):
    """132001: no approved template with this name in this language."""

    codes = (132001,)


class TemplateParamFormatMismatch(TemplateError):
    codes = (132012,)


class TemplatePaused(TemplateError):
    codes = (132015,)


class TemplateDisabled(TemplateError):
    codes = (132016,)


class AuthError(GraphError):
    """0 / 3 / 131005: authentication or capability problems; every request will fail the same way."""

    codes: ClassVar[tuple[int, ...]] = (0, 3, 131005)
    account_wide = True


class AccessTokenExpired(AuthError):
    """190: the access token expired or is invalid; nothing is sent until it is replaced."""

    codes = (190,)


class PermissionDenied(AuthError):
    """10 and 200-299: the token lacks a permission."""

    codes = (10, *range(200, 300))


class SpamRateLimit(GraphError):
    """131048: too many earlier messages were blocked or flagged as spam; stop the campaign."""

    codes = (131048,)


class EcosystemEngagement(GraphError):
    """131049: per-user marketing cap; do not resend within 24 h."""

    codes = (131049,)


class MarketingOptOut(GraphError):
    """131050: the user stopped marketing messages; do not retry."""

    codes = (131050,)


class MediaError(GraphError):
    """131052 / 131053: media download or upload failed (check the MIME type)."""

    codes = (131052, 131053)


class InvalidParameter(GraphError):
    """131009 / 131008 / 100: invalid, missing or unsupported parameter."""

    codes = (131009, 131008, 100)


class PaymentError(GraphError):
    """131042: a problem with the payment method."""

    codes = (131042,)
    account_wide = True


class PolicyRestriction(GraphError):
    """368 / 131031: the account is restricted for a policy violation, or locked."""

    codes: ClassVar[tuple[int, ...]] = (368, 131031)
    account_wide = True


class CountryRestriction(PolicyRestriction):
    """130497: the business may not message users in this recipient's country: about this message."""

    codes = (130497,)
    account_wide = False


_ERROR_CLASSES: tuple[type[GraphError], ...] = (
    RateLimitHit,
    PairRateLimit,
    AppRateLimit,
    WabaRateLimit,
    MaintenanceMode,
    ServiceUnavailable,
    PossibleServerError,
    UnknownError,
    ReEngagement,
    Undeliverable,
    BsuidRecipientNotSupported,
    UnsupportedMessageType,
    TemplateParamCountMismatch,
    TemplateMissing,
    TemplateParamFormatMismatch,
    TemplatePaused,
    TemplateDisabled,
    AuthError,
    AccessTokenExpired,
    PermissionDenied,
    SpamRateLimit,
    EcosystemEngagement,
    MarketingOptOut,
    MediaError,
    InvalidParameter,
    PaymentError,
    PolicyRestriction,
    CountryRestriction,
)
_BY_CODE: dict[int, type[GraphError]] = {code: cls for cls in _ERROR_CLASSES for code in cls.codes}


def error_class_for(code: int, http_status: int | None = None) -> type[GraphError]:
    """The class for a Graph error code (also for webhook `errors[]`); unknown codes fall back on status,
    and code 1 ("invalid request or possible server error") with a 5xx is the server's error."""
    known = _BY_CODE.get(code)
    if known is PossibleServerError and http_status is not None and http_status >= 500:
        return ServerError
    if known is not None:
        return known
    if http_status is not None and http_status >= 500:
        return ServerError
    if http_status == 429:
        return ThrottlingError
    return GraphError


def error_from_response(http_status: int, body: Any) -> GraphError:
    """Turn a non-2xx answer into its error; `body` is the parsed JSON, or text/bytes when it was not JSON."""
    if isinstance(body, bytes | str):
        body = _loads_or_text(body)
    error = body.get("error") if isinstance(body, dict) else None
    raw: dict[str, Any] = body if isinstance(body, dict) else {"body": str(body)[:1000]}
    if not isinstance(error, dict):
        cls = error_class_for(CODE_MISSING, http_status)
        return cls(CODE_MISSING, f"HTTP {http_status}", http_status=http_status, raw=raw)
    code = _as_int(error.get("code"))
    if code is None:
        code = CODE_MISSING
    message = error.get("message")
    title = message if isinstance(message, str) and message else f"HTTP {http_status}"
    error_data = error.get("error_data")
    details: str | None = None
    if isinstance(error_data, dict) and isinstance(error_data.get("details"), str):
        details = error_data["details"]
    elif isinstance(error_data, str) and error_data:
        details = error_data
    trace = error.get("fbtrace_id")
    return error_class_for(code, http_status)(
        code,
        title,
        details,
        http_status=http_status,
        fbtrace_id=trace if isinstance(trace, str) else None,
        raw=raw,
    )


def _loads_or_text(body: bytes | str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body.decode("utf-8", "replace") if isinstance(body, bytes) else body


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None
