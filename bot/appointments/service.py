"""Booking, confirming, moving and cancelling appointments: one transaction per change.

Each change writes, together: the appointment, its seat (taken or freed), its reminders (planned anew,
or the pending ones skipped) and a history row. Overbooking is impossible because a seat is a row with a
unique (slot start, seat number): two bookings racing for the last seat insert the same pair and the
database commits only one; the loser retries once, finds the slot full and gets SlotTaken.

The chat methods act only on the caller's own appointments (an id that is someone else's is None) and
offer only bookable slots (open, on the slot grid, with the minimum notice, within `days_ahead`). The
staff methods (the API) may book any slot of the grid, at any distance, in the past too.

When staff move or cancel an appointment that still lies ahead, the customer is told (bot/appointments/
notify.py: a text inside the 24-hour window, the `appointment_update` template outside it), queued as
an outbox row in the same transaction as the change, unless the request says `"notify": false`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from bot.appointments import slots
from bot.appointments.notify import Change, build_appointment_notifier
from bot.clock import Clock, utc_now
from bot.db.models import (
    Appointment,
    AppointmentChange,
    AppointmentReminder,
    AppointmentSeat,
    AppointmentStatus,
    ChangeSource,
    Customer,
    Order,
    ReminderStatus,
)
from bot.db.transactions import atomic
from bot.engine.content import ContentSource
from bot.identity import customer_by_address, customer_for_phone
from bot.settings import Settings
from bot.spine.outbox import enqueue

ACTIVE = frozenset({AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED, AppointmentStatus.RESCHEDULED})
"""Appointments that still lie ahead as far as the customer is concerned: they get reminders."""
SEAT_RETRIES = 3


Who = int | str
"""A customer id (the chat's customer), or a phone (staff, tools)."""


class SlotTaken(Exception):
    """The slot has no seat left (someone else got the last one)."""


class NotBookable(SlotTaken):
    """Not a time that can be booked: closed, off the slot grid, too soon or too far ahead.

    A SlotTaken too, so the chat answers it the same way ("that time is not available")."""


@dataclass(frozen=True)
class StaffChange:
    """What staff change through the API; fields left None stay as they are (notes: `notes_given`)."""

    status: AppointmentStatus | None = None
    starts_at: datetime | None = None
    notes: str | None = None
    notes_given: bool = False
    notify: bool = True
    """Tell the customer when this moves or cancels the appointment (the API's `"notify": false`)."""


@dataclass(frozen=True)
class StaffResult:
    appointment: Appointment
    notification: str | None
    """The message type queued for the customer ("text", "template"), or None."""


class AppointmentService:
    def __init__(
        self,
        settings: Settings,
        content: ContentSource,
        on_queued: Callable[[], None] = lambda: None,
        clock: Clock = utc_now,
    ) -> None:
        """`content`: the templates and texts the notices of staff changes are made of (the served ones)."""
        self.rules = settings.appointments
        self.zone = ZoneInfo(settings.shop.timezone)
        self._notifier = build_appointment_notifier(settings, content)
        self._on_queued = on_queued  # staff changes queue the customer's notification; the chat speaks itself
        self._clock: Clock = lambda: clock().astimezone(UTC)  # stored and compared in UTC, always

    # -- what customers can pick ------------------------------------------------------------------

    async def bookable_days(self, now: datetime | None = None) -> list[date]:
        """Days with at least one free slot, in the shop's zone, today up to `days_ahead`."""
        now = now.astimezone(UTC) if now else self._clock()
        per_day = {
            day: slots.day_slots(day, self.rules, self.zone)
            for day in slots.days_ahead(now, self.rules, self.zone)
        }
        taken = await _taken(slot for day_slots in per_day.values() for slot in day_slots)
        earliest, _ = slots.bookable_window(now, self.rules, self.zone)
        return [
            day
            for day, candidates in per_day.items()
            if slots.free(candidates, taken, self.rules.capacity, earliest)
        ]

    async def free_slots(self, day: date, now: datetime | None = None) -> list[datetime]:
        """Slot starts of `day` with a seat left, aware in the shop's zone, respecting the notice."""
        now = now.astimezone(UTC) if now else self._clock()
        earliest, last_day = slots.bookable_window(now, self.rules, self.zone)
        if day > last_day:
            return []
        candidates = slots.day_slots(day, self.rules, self.zone)
        return slots.free(candidates, await _taken(candidates), self.rules.capacity, earliest)

    # -- the customer's own appointments (chat) -----------------------------------------------------

    async def book(
        self,
        *,
        customer: Who | None = None,
        phone: str | None = None,
        name: str | None,
        starts_at: datetime,
        device_model: str | None = None,
        order_number: str | None = None,
        notes: str | None = None,
        source: str = "chat",
    ) -> Appointment:
        """Book a bookable slot; raises SlotTaken (NotBookable when it is not a time customers can pick).

        Booking the very time one already holds returns that appointment: a repeated tap books once. The
        customer is theirs by id (the chat), or the one with `phone`."""
        now = self._clock()
        customer = await self._owner(customer if customer is not None else phone)
        starts_at = self._aware(starts_at)
        self._check_bookable(starts_at, now)
        existing = await Appointment.filter(
            customer_id=customer, starts_at=starts_at, status__in=list(ACTIVE)
        ).first()
        if existing is not None:
            return existing
        owner = await Customer.get(id=customer)
        return await self._create(
            customer=owner,
            phone=owner.wa_id,
            name=name,
            starts_at=starts_at,
            duration_minutes=self.rules.slot_minutes,
            device_model=device_model,
            order_number=order_number,
            notes=notes,
            status=AppointmentStatus.BOOKED,
            source=ChangeSource(source),
        )

    async def _owner(self, who: Who | None) -> int:
        """A customer id, or the customer of a phone (made when nobody has it yet)."""
        if isinstance(who, int):
            return who
        if not who:
            raise ValueError("an appointment needs its customer or a phone")
        return (await customer_for_phone(who, self._clock())).id

    async def upcoming(self, customer: Who, now: datetime | None = None) -> list[Appointment]:
        """The customer's own appointments still ahead and not cancelled, soonest first."""
        now = now.astimezone(UTC) if now else self._clock()
        return await Appointment.filter(
            customer_id=await self._owner(customer), status__in=list(ACTIVE), starts_at__gt=now
        ).order_by("starts_at", "id")

    async def get_own(self, appointment_id: int, customer: Who) -> Appointment | None:
        return await Appointment.get_or_none(id=appointment_id, customer_id=await self._owner(customer))

    async def confirm(self, appointment_id: int, customer: Who, source: str = "chat") -> Appointment | None:
        """Confirm an appointment still ahead; confirming twice changes nothing."""
        async with atomic():
            appointment = await self._own_for_update(appointment_id, customer)
            if appointment is None or not self._ahead(appointment):
                return None
            if appointment.status != AppointmentStatus.CONFIRMED:
                await self._apply(appointment, AppointmentStatus.CONFIRMED, None, ChangeSource(source))
        return appointment

    async def cancel(self, appointment_id: int, customer: Who, source: str = "chat") -> Appointment | None:
        """Cancel an appointment still ahead and free its seat; cancelling twice changes nothing."""
        async with atomic():
            appointment = await self._own_for_update(appointment_id, customer)
            if appointment is None:
                return None
            if appointment.status == AppointmentStatus.CANCELLED:
                return appointment
            if not self._ahead(appointment):
                return None
            await self._apply(appointment, AppointmentStatus.CANCELLED, None, ChangeSource(source))
        return appointment

    async def reschedule(
        self, appointment_id: int, customer: Who, starts_at: datetime, source: str = "chat"
    ) -> Appointment | None:
        """Move an appointment still ahead to another bookable slot; raises SlotTaken. Its seat moves
        and its reminders are planned anew for the new time, in one transaction."""
        now = self._clock()
        starts_at = self._aware(starts_at)
        self._check_bookable(starts_at, now)
        for _ in range(SEAT_RETRIES):
            try:
                async with atomic():
                    appointment = await self._own_for_update(appointment_id, customer)
                    if appointment is None or not self._ahead(appointment):
                        return None
                    if appointment.starts_at == starts_at:
                        return appointment
                    await self._apply(
                        appointment, AppointmentStatus.RESCHEDULED, starts_at, ChangeSource(source)
                    )
                return appointment
            except IntegrityError:
                continue  # another booking took the seat we chose between our read and our insert
        raise SlotTaken(starts_at.isoformat())

    # -- staff (the API) ------------------------------------------------------------------------------

    async def create(
        self,
        *,
        phone: str,
        name: str | None,
        starts_at: datetime,
        duration_minutes: int | None = None,
        device_model: str | None = None,
        order_number: str | None = None,
        notes: str | None = None,
        status: AppointmentStatus = AppointmentStatus.BOOKED,
    ) -> Appointment:
        """Staff book any slot of the grid (no notice or horizon rules); raises NotBookable, SlotTaken."""
        starts_at = self._aware(starts_at)
        if not slots.is_slot(starts_at, self.rules, self.zone):
            raise NotBookable("not the start of a slot on an open day")
        return await self._create(
            customer=None,
            phone=phone,
            name=name,
            starts_at=starts_at,
            duration_minutes=duration_minutes or self.rules.slot_minutes,
            device_model=device_model,
            order_number=order_number,
            notes=notes,
            status=status,
            source=ChangeSource.API,
        )

    async def change(self, appointment_id: int, change: StaffChange) -> StaffResult | None:
        """Staff set the status, time or notes; None for an unknown id. Raises NotBookable, SlotTaken.

        A new time without a status makes an active appointment `rescheduled`; cancelling frees the seat;
        setting a cancelled one active again needs a free seat. A move or a cancellation of an appointment
        still ahead tells the customer, in the same transaction, unless `change.notify` is False."""
        starts_at = self._aware(change.starts_at) if change.starts_at else None
        if starts_at is not None and not slots.is_slot(starts_at, self.rules, self.zone):
            raise NotBookable("not the start of a slot on an open day")
        for _ in range(SEAT_RETRIES):
            try:
                async with atomic():
                    appointment = await Appointment.filter(id=appointment_id).select_for_update().first()
                    if appointment is None:
                        return None
                    moved = (
                        starts_at if starts_at is not None and starts_at != appointment.starts_at else None
                    )
                    status = change.status
                    if status is None and moved is not None and appointment.status in ACTIVE:
                        status = AppointmentStatus.RESCHEDULED
                    if change.notes_given:
                        appointment.notes = change.notes
                    before = appointment.status, appointment.starts_at
                    if status not in (None, appointment.status) or moved is not None:
                        await self._apply(appointment, status or appointment.status, moved, ChangeSource.API)
                    else:
                        await appointment.save()
                    notice = _notice(appointment, *before, self._clock()) if change.notify else None
                    notification = await self._tell(appointment, notice) if notice else None
            except IntegrityError:
                continue
            if notification:
                self._on_queued()
            return StaffResult(appointment, notification)
        raise SlotTaken("no seat left")

    async def _tell(self, appointment: Appointment, change: Change) -> str:
        """Queue the customer's notification of `change`; inside the change's transaction."""
        now = self._clock()
        customer = await appointment_customer(appointment, now)
        message = self._notifier.message_for(appointment, change, customer, now)
        await enqueue(customer, message, now=now, order_id=appointment.order_id, initiated=True)
        return message.message_type

    async def get(self, appointment_id: int) -> Appointment | None:
        """The appointment with its reminders and history."""
        appointment = await Appointment.get_or_none(id=appointment_id)
        if appointment is not None:
            await appointment.fetch_related("reminders", "history")
        return appointment

    async def search(
        self, phone: str | None, start: datetime | None, end: datetime | None, limit: int = 500
    ) -> list[Appointment]:
        """Appointments by customer and/or start time (from inclusive, to exclusive), soonest first."""
        query = Appointment.all()
        if phone:
            owner = await customer_by_address(phone)
            mine = Q(customer_phone=phone)
            query = query.filter(mine | Q(customer_id=owner.id) if owner else mine)
        if start is not None:
            query = query.filter(starts_at__gte=start.astimezone(UTC))
        if end is not None:
            query = query.filter(starts_at__lt=end.astimezone(UTC))
        return await query.order_by("starts_at", "id").limit(limit).prefetch_related("reminders", "history")

    # -- inside the transactions ----------------------------------------------------------------------

    async def _create(self, *, source: ChangeSource, **values: Any) -> Appointment:
        phone, name, starts_at = values.pop("phone"), values.pop("name"), values["starts_at"]
        customer = values.pop("customer")
        order_number = values.get("order_number")
        for _ in range(SEAT_RETRIES):
            try:
                async with atomic():
                    order = await Order.get_or_none(order_number=order_number) if order_number else None
                    owner = customer or await customer_for_phone(phone, self._clock())
                    appointment = await Appointment.create(
                        customer=owner, customer_phone=phone, customer_name=name, order=order, **values
                    )
                    await _take_seat(appointment, starts_at, self.rules.capacity)
                    await self._plan(appointment)
                    await _record(appointment, None, None, source, self._clock())
                return appointment
            except IntegrityError:
                continue  # the seat we chose went to a booking that committed first: look again
        raise SlotTaken(starts_at.isoformat())

    async def _apply(
        self,
        appointment: Appointment,
        status: AppointmentStatus,
        starts_at: datetime | None,
        source: ChangeSource,
    ) -> None:
        """Move to `status` (and `starts_at` when given): seat, reminders, history. In a transaction."""
        before_status, before_start = appointment.status, appointment.starts_at
        held = before_status != AppointmentStatus.CANCELLED
        holds = status != AppointmentStatus.CANCELLED
        if held and (not holds or starts_at is not None):
            await AppointmentSeat.filter(appointment_id=appointment.id).delete()
        appointment.status = status
        if starts_at is not None:
            appointment.starts_at = starts_at
        if holds and (not held or starts_at is not None):
            await _take_seat(appointment, appointment.starts_at, self.rules.capacity)
        if status not in ACTIVE:
            await _unplan(appointment, f"appointment {status}")
        elif starts_at is not None or before_status not in ACTIVE:
            await _unplan(appointment, "appointment moved" if starts_at is not None else "replanned")
            appointment.plan += 1
            await self._plan(appointment)
        await appointment.save()
        await _record(appointment, before_status, before_start if starts_at else None, source, self._clock())

    async def _plan(self, appointment: Appointment) -> None:
        """This plan's reminders; one whose time has already passed at booking is not sent at all."""
        now = self._clock()
        rows = []
        for offset in self.rules.reminders:
            due = appointment.starts_at - offset
            late = due <= now
            rows.append(
                AppointmentReminder(
                    appointment_id=appointment.id,
                    plan=appointment.plan,
                    offset_minutes=int(offset.total_seconds() // 60),
                    due_at=due,
                    send_after=due,
                    status=ReminderStatus.SKIPPED if late else ReminderStatus.PENDING,
                    reason="booked after its time" if late else None,
                )
            )
        if rows:
            await AppointmentReminder.bulk_create(rows)

    async def _own_for_update(self, appointment_id: int, customer: Who) -> Appointment | None:
        owner = await self._owner(customer)
        return await Appointment.filter(id=appointment_id, customer_id=owner).select_for_update().first()

    def _ahead(self, appointment: Appointment) -> bool:
        return appointment.status in ACTIVE and appointment.starts_at > self._clock()

    def _aware(self, moment: datetime) -> datetime:
        """A naive time is the shop's wall time; stored and compared in UTC."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)
        return moment.astimezone(UTC)

    def _check_bookable(self, starts_at: datetime, now: datetime) -> None:
        earliest, last_day = slots.bookable_window(now, self.rules, self.zone)
        if starts_at < earliest:
            raise NotBookable("too soon")
        if starts_at.astimezone(self.zone).date() > last_day:
            raise NotBookable("too far ahead")
        if not slots.is_slot(starts_at, self.rules, self.zone):
            raise NotBookable("not the start of a slot on an open day")


def _notice(
    appointment: Appointment, before_status: AppointmentStatus, before_start: datetime, now: datetime
) -> Change | None:
    """What the customer must hear of a staff change: a cancellation, or a new time, of an appointment
    still ahead (an appointment in the past is record-keeping, not news)."""
    if appointment.status == AppointmentStatus.CANCELLED:
        cancelled = before_status != AppointmentStatus.CANCELLED
        return "cancelled" if cancelled and before_start > now else None
    if appointment.starts_at != before_start and appointment.status in ACTIVE and appointment.starts_at > now:
        return "moved"
    return None


async def _taken(candidates: Iterable[datetime]) -> dict[datetime, int]:
    """Seats held per slot start (UTC) among `candidates`."""
    instants = sorted({slot.astimezone(UTC) for slot in candidates})
    if not instants:
        return {}
    held: list[Any] = await AppointmentSeat.filter(
        slot_start__gte=instants[0], slot_start__lte=instants[-1]
    ).values_list("slot_start", flat=True)
    return dict(Counter(moment.astimezone(UTC) for moment in held))


async def _take_seat(appointment: Appointment, starts_at: datetime, capacity: int) -> None:
    """The lowest free seat of the slot; SlotTaken when none is left. A racing insert of the same seat
    raises IntegrityError (the unique pair), and the caller's transaction is retried."""
    seats: list[Any] = await AppointmentSeat.filter(slot_start=starts_at).values_list("seat", flat=True)
    held = set(seats)
    free = [seat for seat in range(1, capacity + 1) if seat not in held]
    if not free:
        raise SlotTaken(starts_at.isoformat())
    await AppointmentSeat.create(slot_start=starts_at, seat=free[0], appointment_id=appointment.id)


async def _unplan(appointment: Appointment, reason: str) -> None:
    await AppointmentReminder.filter(appointment_id=appointment.id, status=ReminderStatus.PENDING).update(
        status=ReminderStatus.SKIPPED, reason=reason
    )


async def _record(
    appointment: Appointment,
    from_status: AppointmentStatus | None,
    from_starts_at: datetime | None,
    source: ChangeSource,
    now: datetime,
) -> None:
    moved = from_starts_at is not None
    await AppointmentChange.create(
        appointment_id=appointment.id,
        from_status=from_status,
        to_status=appointment.status,
        from_starts_at=from_starts_at,
        to_starts_at=appointment.starts_at if moved or from_status is None else None,
        source=source,
        changed_at=now,
    )


def ends_at(appointment: Appointment) -> datetime:
    return appointment.starts_at + timedelta(minutes=appointment.duration_minutes)


async def appointment_customer(appointment: Appointment, now: datetime) -> Customer:
    """Who an appointment's messages go to: its customer (one made for its phone, for an appointment of
    a release before customers had ids and nobody wrote from that phone since)."""
    if appointment.customer_id is not None:
        customer = await Customer.get_or_none(id=appointment.customer_id)
        if customer is not None:
            return customer
    if appointment.customer_phone is None:
        raise ValueError(f"appointment {appointment.id} has neither a customer nor a phone")
    return await customer_for_phone(appointment.customer_phone, now)
