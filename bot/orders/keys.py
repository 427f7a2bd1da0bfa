"""API keys for the orders API: created by `bot apikeys add NAME`, shown once, stored only hashed.

Keys are `rb_` + 256 random bits. Such keys cannot be guessed, so a plain SHA-256 (no slow password
hash) is enough, and a request finds its key with one indexed lookup of the hash. The prefix makes a
leaked key recognisable to secret scanners and lets a stray token be refused without a query.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from tortoise.exceptions import IntegrityError

from bot.db.models import ApiKey
from bot.http.errors import bearer_token, unauthorized

KEY_PREFIX = "rb_"


class KeyNameTaken(Exception):
    """A key with this name exists already (revoked ones too: names stay unique for the audit trail)."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def hash_matches(stored_hash: str, key: str) -> bool:
    """Constant-time: the row found by its hash is checked again without an early exit. (The indexed
    lookup itself compares hashes, whose timing tells nothing about the key: a hash has no prefix an
    attacker could grow byte by byte towards a valid key.)"""
    return hmac.compare_digest(stored_hash.encode(), hash_key(key).encode())


@dataclass(frozen=True)
class KeyInfo:
    """What `bot apikeys list` and the admin API show of a key: never the key or its hash."""

    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def as_json(self) -> dict[str, str | None]:
        return {
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


async def create_key(name: str) -> str:
    """A new key named `name`; the only time the key itself exists outside its holder's hands."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    if await ApiKey.exists(name=name):
        raise KeyNameTaken(name)
    try:
        await ApiKey.create(name=name, key_hash=hash_key(key))
    except IntegrityError:
        raise KeyNameTaken(name) from None
    return key


async def verify_key(key: str, now: datetime | None = None) -> ApiKey | None:
    """The live (not revoked) key this is, noting when it was used; None for anything else."""
    if not key.startswith(KEY_PREFIX):
        return None
    found = await ApiKey.get_or_none(key_hash=hash_key(key), revoked_at=None)
    if found is not None and not hash_matches(found.key_hash, key):
        return None
    if found is not None:
        found.last_used_at = now or datetime.now(UTC)
        await ApiKey.filter(id=found.id).update(last_used_at=found.last_used_at)
    return found


async def list_keys() -> list[KeyInfo]:
    """Every key, revoked ones too (names stay unique for the audit trail), oldest first."""
    rows = await ApiKey.all().order_by("id")
    return [KeyInfo(row.name, row.created_at, row.last_used_at, row.revoked_at) for row in rows]


async def revoke_key(name: str, now: datetime | None = None) -> bool:
    """Revoke the key named `name`; False when there is no such live key."""
    changed = await ApiKey.filter(name=name, revoked_at=None).update(revoked_at=now or datetime.now(UTC))
    return changed > 0


async def require_api_key(request: web.Request, realm: str) -> ApiKey:
    """The live API key of the request's `Authorization: Bearer` header; 401 otherwise."""
    found = await verify_key(bearer_token(request))
    if found is None:
        raise unauthorized("missing, unknown or revoked API key", realm)
    return found
