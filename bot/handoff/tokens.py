"""Technicians and their login tokens: created by `bot technicians add NAME`, shown once, stored hashed.

Tokens are `rt_` + 256 random bits, so a plain SHA-256 (found by an indexed lookup) is enough, as for
the orders API's keys (bot/orders/keys.py).
"""

from __future__ import annotations

import secrets

from tortoise.exceptions import IntegrityError

from bot.db.models import Technician, TechnicianRole
from bot.orders.keys import hash_key, hash_matches

TOKEN_PREFIX = "rt_"


class TechnicianNameTaken(Exception):
    """A technician with this name exists already."""


async def create_technician(
    name: str, role: TechnicianRole = TechnicianRole.TECHNICIAN, phone: str | None = None
) -> tuple[Technician, str]:
    """A new technician and their token; the only time the token exists outside their hands."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    if await Technician.exists(name=name):
        raise TechnicianNameTaken(name)
    try:
        technician = await Technician.create(name=name, role=role, phone=phone, token_hash=hash_key(token))
    except IntegrityError:
        raise TechnicianNameTaken(name) from None
    return technician, token


async def verify_token(token: str) -> Technician | None:
    """The active technician this token belongs to; None for anything else."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    found = await Technician.get_or_none(token_hash=hash_key(token), active=True)
    if found is None or not hash_matches(found.token_hash, token):
        return None
    return found


async def revoke_technician(name: str) -> bool:
    """Deactivate the technician named `name`: their token stops working at once (their chats and notes
    stay, with their name). False when there is no such active technician."""
    return await Technician.filter(name=name, active=True).update(active=False) > 0
