"""`bot keys rotate` and `bot keys encrypt-existing`: batched, resumable, with progress on stderr."""

from __future__ import annotations

import sys

from bot import crypto
from bot.db import close_db, init_db
from bot.db.rekey import BATCH_SIZE, encrypt_existing, rotate
from bot.master_keys import load_key_ring
from bot.settings import Settings


def _progress(what: str, done: int, of: int) -> None:
    print(f"{what}: {done} of {of}", file=sys.stderr, flush=True)


async def keys_rotate(settings: Settings, batch_size: int = BATCH_SIZE) -> int:
    """Re-wrap every customer's data key under the first key of BOT_ENCRYPTION_KEYS."""
    await init_db(settings.database_url)
    try:
        ring = load_key_ring(settings)
        report = await rotate(batch_size, _progress)
    except crypto.KeyConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    finally:
        await close_db()
    print(
        f"{report.rewrapped} data key(s) re-wrapped under encryption key {ring.primary.id}, "
        f"{report.already} already were, of {report.total}"
    )
    for customer_id, reason in sorted(report.failed.items()):
        print(f"customer {customer_id}: not re-wrapped: {reason}", file=sys.stderr)
    if report.failed:
        print(
            f"{len(report.failed)} key(s) left as they were: add their master key to BOT_ENCRYPTION_KEYS "
            "(after the first) and run again",
            file=sys.stderr,
        )
        return 1
    return 0


async def keys_encrypt_existing(settings: Settings, batch_size: int = BATCH_SIZE) -> int:
    """Seal every plaintext value of the encrypted columns (a database from before encryption)."""
    await init_db(settings.database_url)
    try:
        load_key_ring(settings)
        report = await encrypt_existing(batch_size, _progress)
    except crypto.KeyConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    finally:
        await close_db()
    for place, count in sorted(report.sealed.items()):
        print(f"{place}: {count} value(s) encrypted")
    print(f"{report.total} value(s) encrypted; the rest already were")
    return 0
