"""The reminder scheduler: due reminders → the `appointment_reminder` template, each exactly once.

It runs inside `bot serve` and looks every `appointments.check_seconds`. Exactly once, across restarts
and several processes, comes from the database, never from memory: a due reminder is claimed by locking
its row (bot/db/claims.py: PostgreSQL's `FOR UPDATE SKIP LOCKED`; SQLite serves one process and its
write transactions are exclusive), and in that SAME transaction it is marked sent (an update that only
succeeds on a row still pending) and its message is queued as an outbox row. A crash before the commit
leaves it pending, a commit leaves it sent with its message: there is no moment in which it is one
without the other.

What happens to a due reminder (decided at the moment it is handled, and shown by `bot reminders due`):
- the appointment was cancelled, completed or moved → skipped (moving plans new reminders);
- the appointment has started → skipped, however late the reminder is (the server may have been down);
- several reminders of one appointment are due at once (after downtime) → only the nearest one is sent;
- inside quiet hours → held until they end, unless they end at or after the appointment's start: then it
  is sent at once, because a reminder during quiet hours is better than none before the visit;
- otherwise → sent, late or not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from tortoise.transactions import in_transaction

from bot.appointments.dates import day_label, time_label
from bot.appointments.notify import device_text
from bot.appointments.service import ACTIVE, appointment_customer
from bot.appointments.slots import next_wall_time
from bot.clock import Clock, utc_now
from bot.db.claims import Claims, claims_for
from bot.db.models import Appointment, AppointmentReminder, Customer, Message, ReminderStatus
from bot.engine.content import ContentSource
from bot.engine.texts import TextCatalog, pick_language
from bot.loops import Loop
from bot.settings import Settings
from bot.spine.outbox import outbound_row
from bot.whatsapp.outbound import Template

log = logging.getLogger(__name__)

REMINDER_TEMPLATE = "appointment_reminder"
BATCH_SIZE = 100
BUTTONS = ("confirm", "reschedule", "cancel")

QuietHours = tuple[time, time] | None


@dataclass(frozen=True)
class Decision:
    action: Literal["send", "hold", "skip"]
    reason: str | None = None
    until: datetime | None = None
    """hold: when quiet hours end."""


def decide(
    reminder: AppointmentReminder,
    appointment: Appointment,
    now: datetime,
    quiet: QuietHours,
    zone: ZoneInfo,
    nearer_due: bool = False,
) -> Decision:
    """What to do with a reminder that is due at `now` (see the module's docstring)."""
    if reminder.plan != appointment.plan:
        return Decision("skip", "appointment moved")
    if appointment.status not in ACTIVE:
        return Decision("skip", f"appointment {appointment.status}")
    if appointment.starts_at <= now:
        return Decision("skip", "appointment has started")
    if nearer_due:
        return Decision("skip", "a nearer reminder is due")
    if quiet is not None and in_quiet_hours(now.astimezone(zone).time(), quiet):
        ends = next_wall_time(now, quiet[1], zone)
        if ends < appointment.starts_at:
            return Decision("hold", "quiet hours", until=ends)
        return Decision("send", "quiet hours end too late")
    return Decision("send")


def in_quiet_hours(wall: time, quiet: tuple[time, time]) -> bool:
    start, end = quiet
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end  # wraps midnight: 21:00-08:00


def reminder_message(
    appointment: Appointment, language: str, zone: ZoneInfo, texts: TextCatalog, default: str
) -> Template:
    """`appointment_reminder`: {{1}} the date, {{2}} the time (both in the customer's language and the
    shop's zone), {{3}} the device (else "your device": a template parameter may not be empty); quick
    replies Confirm, Reschedule, Cancel carry `appt:<verb>:<id>`."""
    local = appointment.starts_at.astimezone(zone)
    device = device_text(appointment.device_model, texts, language, default)
    return Template(
        name=REMINDER_TEMPLATE,
        language=language,
        body_params=(day_label(local.date(), language), time_label(local, language), device),
        button_payloads=tuple(f"appt:{verb}:{appointment.id}" for verb in BUTTONS),
    )


class ReminderScheduler:
    """Sends due reminders; `run_once()` handles everything due now, `start()`/`stop()` the loop."""

    def __init__(
        self,
        settings: Settings,
        content: ContentSource,
        claims: Claims | None = None,
        clock: Clock = utc_now,
        on_queued: Callable[[], None] = lambda: None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        """`content`: the reminder template's languages and the texts (the served ones). `claims`: the
        database's (bot/db/claims.py), else chosen by settings' database URL."""
        self.rules = settings.appointments
        self.zone = ZoneInfo(settings.shop.timezone)
        self._default_language = settings.shop.default_language
        self._content = content
        self._claims = claims if claims is not None else claims_for(settings.database_url)
        self._clock = clock
        self._on_queued = on_queued
        self._batch_size = batch_size
        self._loop = Loop("reminder-scheduler", self.run_once, self.rules.check_seconds)

    def start(self) -> None:
        self._loop.start()

    def wake(self) -> None:
        self._loop.wake()

    async def stop(self) -> None:
        """Finish the batch in hand (never cancel mid-transaction: see bot/loops.py), then end."""
        await self._loop.stop()

    async def run_once(self) -> int:
        """Handle every reminder due now, batch by batch; returns how many were queued for sending."""
        queued = 0
        while not self._loop.stopping:
            handled, sent = await self._batch()
            queued += sent
            if handled < self._batch_size:
                break
        if queued:
            self._on_queued()
        return queued

    async def _batch(self) -> tuple[int, int]:
        now = self._clock().astimezone(UTC)  # the database compares times as stored: in UTC
        sent = 0
        async with in_transaction():
            due = await self._claims.due_reminders(now, self._batch_size)
            if not due:
                return 0, 0
            appointments = await self._claims.reminder_appointments(sorted({r.appointment_id for r in due}))
            mine = [r for r in due if r.appointment_id in appointments]
            pending = await AppointmentReminder.filter(  # all of them, not just this batch's
                appointment_id__in=list(appointments), status=ReminderStatus.PENDING, due_at__lte=now
            )
            customers = {a.id: await appointment_customer(a, now) for a in appointments.values()}
            for reminder in mine:
                appointment = appointments[reminder.appointment_id]
                nearer = superseded(reminder, pending, now)
                decision = decide(reminder, appointment, now, self.rules.quiet_hours, self.zone, nearer)
                customer = customers[appointment.id]
                if await self._carry_out(reminder, appointment, decision, now, customer):
                    sent += 1
        return len(due), sent

    async def _carry_out(
        self,
        reminder: AppointmentReminder,
        appointment: Appointment,
        decision: Decision,
        now: datetime,
        customer: Customer,
    ) -> bool:
        """Inside the claiming transaction; the updates only touch a row that is still pending."""
        still_pending = AppointmentReminder.filter(id=reminder.id, status=ReminderStatus.PENDING)
        if decision.action == "hold":
            assert decision.until is not None
            await still_pending.update(send_after=decision.until, reason=decision.reason)
            return False
        if decision.action == "skip":
            await still_pending.update(status=ReminderStatus.SKIPPED, reason=decision.reason)
            log.info(
                "reminder %s of appointment %s skipped: %s", reminder.id, appointment.id, decision.reason
            )
            return False
        if not await still_pending.update(status=ReminderStatus.SENT, sent_at=now, reason=decision.reason):
            return False  # someone else sent it: nothing is queued twice
        row = self._message_row(appointment, customer, now)
        await row.save()
        await AppointmentReminder.filter(id=reminder.id).update(message_id=row.id)
        log.info(
            "reminder %s (%s min) of appointment %s queued",
            reminder.id,
            reminder.offset_minutes,
            appointment.id,
        )
        return True

    def _message_row(self, appointment: Appointment, customer: Customer, now: datetime) -> Message:
        default, content = self._default_language, self._content()
        language = customer.language or default
        template = content.templates.get(REMINDER_TEMPLATE)
        written = tuple(template.languages) if template else ()  # none: the file is not in templates/
        template_language = pick_language(written, language, default) or language
        message = reminder_message(appointment, template_language, self.zone, content.texts, default)
        return outbound_row(customer, message, now=now, order_id=appointment.order_id, initiated=True)


def superseded(reminder: AppointmentReminder, pending: Sequence[AppointmentReminder], at: datetime) -> bool:
    """Whether a nearer reminder of the same appointment and plan is also due at `at` (after downtime,
    or when quiet hours held both): then only the nearest is worth sending."""
    return any(
        other.appointment_id == reminder.appointment_id
        and other.plan == reminder.plan
        and other.offset_minutes < reminder.offset_minutes
        and other.due_at <= at
        for other in pending
    )
