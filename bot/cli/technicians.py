"""`bot technicians add NAME --role technician|admin [--phone P]`: prints only the token, once."""

from __future__ import annotations

import sys

from bot.db import close_db, init_db
from bot.db.models import TechnicianRole
from bot.handoff.tokens import TechnicianNameTaken, create_technician
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
