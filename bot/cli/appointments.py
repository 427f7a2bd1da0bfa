"""`bot reminders due --hours 48`: what the scheduler would do with the reminders due in the next hours.

It reads and prints only: nothing is claimed, marked or sent. Each pending reminder is judged as the
scheduler would judge it at its time (now, for one already due): sent, held for quiet hours, or skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.appointments.reminders import Decision, decide, superseded
from bot.clock import utc_now
from bot.db import close_db, init_db
from bot.db.models import Appointment, AppointmentReminder, ReminderStatus
from bot.engine.schema import format_duration
from bot.master_keys import load_key_ring
from bot.settings import Settings


async def reminders_due(
    settings: Settings, hours: float, out: Callable[[str], None] = print, now: datetime | None = None
) -> int:
    await init_db(settings.database_url)
    load_key_ring(settings)
    try:
        lines = await due_report(settings, hours, now or utc_now())
    finally:
        await close_db()
    for line in lines:
        out(line)
    return 0


async def due_report(settings: Settings, hours: float, now: datetime) -> list[str]:
    """The report's lines: a header, one line per pending reminder due within `hours`, a summary."""
    zone = ZoneInfo(settings.shop.timezone)
    now = now.astimezone(UTC)
    horizon = now + timedelta(hours=hours)
    reminders = await AppointmentReminder.filter(
        status=ReminderStatus.PENDING, send_after__lte=horizon
    ).order_by("send_after", "id")
    appointments = {
        a.id: a for a in await Appointment.filter(id__in=list({r.appointment_id for r in reminders}))
    }
    rows = []
    for reminder in reminders:
        appointment = appointments[reminder.appointment_id]
        at = max(now, reminder.send_after)
        nearer = superseded(reminder, reminders, at)
        decision = decide(reminder, appointment, at, settings.appointments.quiet_hours, zone, nearer)
        rows.append(
            (
                f"#{appointment.id}",
                _customer(appointment),
                _offset(reminder.offset_minutes),
                _local(reminder.send_after, zone),
                _local(appointment.starts_at, zone),
                _verdict(decision, reminder.send_after <= now, zone),
            )
        )
    header = ("appointment", "customer", "reminder", f"due ({zone.key})", "appointment at", "would be")
    if not rows:
        return [f"no reminders due in the next {hours:g} hours (nothing was sent)"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.append(f"{len(rows)} reminder(s) due in the next {hours:g} hours; nothing was sent")
    return lines


def _offset(minutes: int) -> str:
    """As settings.yaml writes them: 24h, 2h, 90m."""
    return f"{minutes // 60}h" if minutes % 60 == 0 else format_duration(timedelta(minutes=minutes))


def _customer(appointment: Appointment) -> str:
    name = f" {appointment.customer_name}" if appointment.customer_name else ""
    return f"{appointment.customer_phone}{name}"


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%a %Y-%m-%d %H:%M")


def _verdict(decision: Decision, due_now: bool, zone: ZoneInfo) -> str:
    if decision.action == "skip":
        return f"skipped: {decision.reason}"
    if decision.action == "hold":
        assert decision.until is not None
        return f"held for quiet hours until {_local(decision.until, zone)}"
    when = "sent now" if due_now else "sent when due"
    return f"{when} ({decision.reason})" if decision.reason else when
