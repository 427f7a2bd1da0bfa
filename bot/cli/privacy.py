"""The customer-data commands: `bot retention run [--dry-run]`, `bot erase PHONE`, `bot export PHONE`.

Exit codes of erase and export: 0 done, 1 no customer has that phone or BSUID, 2 it is neither.
"""

from __future__ import annotations

import getpass
import json
import sys

from bot.db import close_db, init_db
from bot.master_keys import load_key_ring
from bot.media.store import MediaStore
from bot.privacy.erasure import erase_customer
from bot.privacy.export import export_customer
from bot.privacy.retention import Retention
from bot.privacy.subject import BadAddress, UnknownCustomer, find_subject
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


def cli_user() -> str:
    """Who the audit row says erased from the command line: the operating system's user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for the uid (a container)
        return "cli"


async def erase(settings: Settings, phone: str) -> int:
    await init_db(settings.database_url)
    try:
        load_key_ring(settings)  # the data key is forgotten by this process's ring too
        customer = await find_subject(phone)
        report = await erase_customer(customer, MediaStore(settings.media_dir), cli_user())
    except (BadAddress, UnknownCustomer) as exc:
        print(f"bot erase: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, BadAddress) else 1
    finally:
        await close_db()
    print(report.summary())
    return 0


async def export(settings: Settings, phone: str) -> int:
    await init_db(settings.database_url)
    try:
        load_key_ring(settings)  # the export is decrypted
        customer = await find_subject(phone)
        document = await export_customer(customer, MediaStore(settings.media_dir))
    except (BadAddress, UnknownCustomer) as exc:
        print(f"bot export: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, BadAddress) else 1
    finally:
        await close_db()
    print(json.dumps(document, ensure_ascii=False, indent=2))
    return 0
