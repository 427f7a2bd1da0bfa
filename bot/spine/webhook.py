"""The Cloud API webhook: GET verification and POST intake. Thin on purpose: verify, store, answer.

Nothing slow happens here. A POST is acknowledged with 200 only after what it carried is committed;
the engine runs later, from the inbox. Every handled POST gets one log line with its outcome and time.
"""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass

from aiohttp import web

from bot.monitoring import metrics
from bot.spine.intake import IntakeWriter, NotStored
from bot.whatsapp import signature
from bot.whatsapp.notifications import NotificationError, parse_notification

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookConfig:
    app_secret: str
    verify_token: str | None
    max_body_bytes: int


WEBHOOK_CONFIG = web.AppKey("webhook_config", WebhookConfig)
INTAKE = web.AppKey("intake", IntakeWriter)


async def verify(request: web.Request) -> web.Response:
    """Meta's subscription handshake: echo hub.challenge byte for byte when the token matches."""
    config = request.app[WEBHOOK_CONFIG]
    query = request.query
    token = query.get("hub.verify_token")
    if (
        config.verify_token
        and query.get("hub.mode") == "subscribe"
        and token is not None
        and hmac.compare_digest(token.encode(), config.verify_token.encode())
    ):
        return web.Response(text=query.get("hub.challenge", ""), content_type="text/plain")
    log.warning("webhook verification refused (mode=%s)", query.get("hub.mode"))
    return web.Response(status=403, text="verification failed")


async def receive(request: web.Request) -> web.Response:
    """The POST, timed and counted by outcome for /metrics."""
    started = time.perf_counter()
    outcome = "aborted"  # the client went away, or the server is stopping
    try:
        response = await _receive(request, started)
        outcome = _OUTCOMES.get(response.status, "ok")
        return response
    except web.HTTPException as exc:  # aiohttp's own 413 for a chunked body over the cap
        outcome = _OUTCOMES.get(exc.status, "bad_request")
        raise
    finally:
        metrics.webhook_request(outcome, time.perf_counter() - started)


_OUTCOMES = {401: "unauthorized", 400: "bad_request", 413: "too_large", 500: "not_stored"}


async def _receive(request: web.Request, started: float) -> web.Response:
    config = request.app[WEBHOOK_CONFIG]
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        log.warning("webhook refused: body of %d bytes over the cap", request.content_length)
        raise web.HTTPRequestEntityTooLarge(
            max_size=config.max_body_bytes, actual_size=request.content_length
        )
    raw = await request.read()  # aiohttp enforces client_max_size (413) for chunked bodies too
    signatures = request.headers.getall(signature.HEADER, [])
    if not signature.is_valid(config.app_secret, raw, signatures):
        log.warning(
            "webhook refused: %d %s header(s), missing, repeated or wrong (%d bytes)",
            len(signatures),
            signature.HEADER,
            len(raw),
        )
        return web.Response(status=401, text="invalid signature")
    try:
        notification = parse_notification(raw)
    except NotificationError as exc:
        log.warning("webhook refused: %s (%d bytes)", exc, len(raw))
        return web.Response(status=400, text=f"bad notification: {exc}")
    try:
        stored = await request.app[INTAKE].write(notification)
    except NotStored:  # logged with its reason by the intake
        return web.Response(status=500, text="not stored")
    for error in notification.errors():
        log.error("Cloud API reported an error: %s", error.summary)
    if log.isEnabledFor(logging.DEBUG):  # its arguments cost more than the call: only when it is shown
        log.debug(
            "webhook ok: %d message(s) stored, %d status(es) in %.1f ms",
            stored,
            len(notification.status_updates()),
            (time.perf_counter() - started) * 1000,
        )
    return web.Response(text="ok")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/webhook", verify)
    app.router.add_post("/webhook", receive)
