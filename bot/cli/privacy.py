"""The customer-data commands: `bot retention run [--dry-run]`."""

from __future__ import annotations

from bot.db import close_db, init_db
from bot.master_keys import load_key_ring
from bot.media.store import MediaStore
from bot.privacy.retention import Retention
from bot.settings import Settings


async def retention_run(settings: Settings, *, dry_run: bool) -> int:
    await init_db(settings.database_url)
    load_key_ring(settings)
    try:
        retention = Retention(settings.privacy.retention_days, MediaStore(settings.media_dir))
        report = await retention.run(dry_run=dry_run)
    finally:
        await close_db()
    print(report.summary())
    return 0
