"""`bot technicians add NAME --role technician|admin [--phone P]` (prints only the token, once),
`bot technicians list` and `bot technicians revoke NAME`."""

from __future__ import annotations

import sys

from bot.db import close_db, init_db
from bot.db.models import Technician, TechnicianRole
from bot.handoff.tokens import TechnicianNameTaken, create_technician, revoke_technician
from bot.settings import Settings


async def technicians_add(settings: Settings, name: str, role: str, phone: str | None) -> int:
    """Stdout carries the token alone (`TOKEN=$(bot technicians add Ana)` works); 2 if the name is taken."""
    name = name.strip()
    if not name or len(name) > 128:
        print("give the technician a name of 1 to 128 characters", file=sys.stderr)
        return 2
    await init_db(settings.database_url)
    try:
        technician, token = await create_technician(name, TechnicianRole(role), phone)
    except TechnicianNameTaken:
        print(f"a technician named '{name}' exists already; choose another name", file=sys.stderr)
        return 2
    finally:
        await close_db()
    print(token)
    print(
        f"technician '{name}' ({role}, id {technician.id}) created; the token is shown only this once",
        file=sys.stderr,
    )
    return 0


async def technicians_list(settings: Settings) -> int:
    await init_db(settings.database_url)
    try:
        rows = await Technician.all().order_by("id")
    finally:
        await close_db()
    print(f"{'id':>4} {'name':<24} {'role':<10} {'active':<6} created")
    for row in rows:
        created = row.created_at.strftime("%Y-%m-%d %H:%M UTC")
        print(f"{row.id:>4} {row.name:<24} {row.role!s:<10} {'yes' if row.active else 'no':<6} {created}")
    return 0


async def technicians_revoke(settings: Settings, name: str) -> int:
    await init_db(settings.database_url)
    try:
        revoked = await revoke_technician(name)
    finally:
        await close_db()
    if not revoked:
        print(f"there is no active technician named '{name}'", file=sys.stderr)
        return 1
    print(f"technician '{name}' deactivated: their token and panel sessions no longer work")
    return 0
