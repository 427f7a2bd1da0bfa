"""Panel sessions: the login token (`rt_…`, for ever until revoked) is exchanged for a session that ends.

The browser keeps only the session, so a token left in a shared computer's storage or a proxy's log of
the WebSocket URL stops working after `handoff.session_hours`. A session is signed, not stored:
`rs_<technician id>.<issued>.<expires>.<signature>`, the signature (bot/crypto.py's signing key) over
those numbers and the technician's token hash. So a session ends when it expires, when the technician is
deactivated or given a new login token, or when the master key that signed it leaves
BOT_ENCRYPTION_KEYS; nothing has to be cleaned up.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot import crypto
from bot.db.models import Technician
from bot.handoff.tokens import verify_token

SESSION_PREFIX = "rs_"
MAX_SESSION_LENGTH = 200


@dataclass(frozen=True)
class Session:
    token: str
    expires_at: datetime


def _message(technician_id: int, issued: int, expires: int, token_hash: str) -> bytes:
    return f"panel session|{technician_id}|{issued}|{expires}|{token_hash}".encode()


def issue_session(technician: Technician, lifetime: timedelta, now: datetime | None = None) -> Session:
    at = now or datetime.now(UTC)
    issued, expires = int(at.timestamp()), int((at + lifetime).timestamp())
    signature = crypto.current().sign(_message(technician.id, issued, expires, technician.token_hash))
    mac = base64.urlsafe_b64encode(signature).decode().rstrip("=")
    token = f"{SESSION_PREFIX}{technician.id}.{issued}.{expires}.{mac}"
    return Session(token, datetime.fromtimestamp(expires, UTC))


async def verify_session(token: str, now: datetime | None = None) -> Technician | None:
    """The active technician of a session that has not expired; None for anything else."""
    if not token.startswith(SESSION_PREFIX) or len(token) > MAX_SESSION_LENGTH:
        return None
    try:
        id_text, issued_text, expires_text, mac = token.removeprefix(SESSION_PREFIX).split(".")
        technician_id, issued, expires = int(id_text), int(issued_text), int(expires_text)
        signature = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
    except (ValueError, binascii.Error):
        return None
    if expires <= (now or datetime.now(UTC)).timestamp() or not 0 < technician_id < 2**31:
        return None
    technician = await Technician.get_or_none(id=technician_id, active=True)
    if technician is None:
        return None
    message = _message(technician_id, issued, expires, technician.token_hash)
    return technician if crypto.current().verify(message, signature) else None


async def technician_of(token: str) -> Technician | None:
    """The active technician of a login token (`rt_`) or an unexpired panel session (`rs_`)."""
    if token.startswith(SESSION_PREFIX):
        return await verify_session(token)
    return await verify_token(token)
