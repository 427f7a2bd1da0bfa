"""Technicians and their login tokens: created by `bot technicians add NAME`, shown once, stored hashed.

Tokens are `rt_` + 256 random bits, so a plain SHA-256 (found by an indexed lookup) is enough, as for
the orders API's keys (bot/orders/keys.py).
"""

from __future__ import annotations

import secrets

from tortoise.exceptions import IntegrityError

from bot.db.models import Technician, TechnicianRole
from bot.orders.keys import hash_key

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
    return await Technician.get_or_none(token_hash=hash_key(token), active=True)
