"""The appointment actions flows call: the days and times a customer can pick, booking, and seeing,
confirming, moving and cancelling their own appointments.

Days and times are offered as list messages the action builds (they change by the minute); their row
ids are what the next `ask` saves: an ISO date ("2026-12-02") and an ISO local time ("14:30"). Every
action acts only on the sender's own appointments: an id from someone else is "missing".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from bot.appointments.dates import day_label, time_label, when_label
from bot.engine import ActionContext, ActionError, ActionRegistry, ActionResult
from bot.engine.actions import ListArgs
from bot.engine.answers import read_time
from bot.whatsapp import outbound as wa

if TYPE_CHECKING:
    from bot.appointments.service import AppointmentService
    from bot.db.models import Appointment

Localized = str | dict[str, str]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DaysArgs(ListArgs):
    some: str
    none: str


class SlotsArgs(ListArgs):
    day: str
    some: str
    none: str


class CheckArgs(_Args):
    day: str
    slot: str
    free: str
    taken: str


class BookArgs(_Args):
    day: str
    slot: str
    device: str = ""
    booked: str
    taken: str


class MineArgs(ListArgs):
    none: str
    one: str
    several: str


class OwnArgs(_Args):
    appointment: str
    done: str
    missing: str


class RescheduleArgs(OwnArgs):
    day: str
    slot: str
    taken: str


@dataclass(frozen=True)
class AppointmentActions:
    service: AppointmentService
    timezone: ZoneInfo

    def register(self, registry: ActionRegistry) -> None:
        registry.add("appointments.days", self.days, args_model=DaysArgs, targets=("some", "none"))
        registry.add("appointments.slots", self.slots, args_model=SlotsArgs, targets=("some", "none"))
        registry.add("appointments.check", self.check, args_model=CheckArgs, targets=("free", "taken"))
        registry.add("appointments.book", self.book, args_model=BookArgs, targets=("booked", "taken"))
        registry.add("appointments.mine", self.mine, args_model=MineArgs, targets=("none", "one", "several"))
        for name, func in (("get", self.get), ("confirm", self.confirm), ("cancel", self.cancel)):
            registry.add(f"appointments.{name}", func, args_model=OwnArgs, targets=("done", "missing"))
        registry.add(
            "appointments.reschedule",
            self.reschedule,
            args_model=RescheduleArgs,
            targets=("done", "taken", "missing"),
        )

    async def days(self, context: ActionContext) -> ActionResult:
        args = DaysArgs.model_validate(dict(context.args))
        days = (await self.service.bookable_days())[: wa.LIST_MAX_ROWS]
        if not days:
            return ActionResult(next="none")
        language = context.customer.language
        rows = [(day.isoformat(), day_label(day, language), None) for day in days]
        return ActionResult(outbound=[args.message(language, rows)], next="some")

    async def slots(self, context: ActionContext) -> ActionResult:
        args = SlotsArgs.model_validate(dict(context.args))
        day = _day(args.day)
        slots = (await self.service.free_slots(day))[: wa.LIST_MAX_ROWS] if day else []
        if day is None or not slots:
            return ActionResult(next="none")
        language = context.customer.language
        rows = [(slot.strftime("%H:%M"), time_label(slot, language), None) for slot in slots]
        return ActionResult(
            outbound=[args.message(language, rows)],
            variables={"day_label": day_label(day, language)},
            next="some",
        )

    async def check(self, context: ActionContext) -> ActionResult:
        """Is the chosen day and time still free? Sets {when} to show it before booking."""
        args = CheckArgs.model_validate(dict(context.args))
        starts_at = self._moment(args.day, args.slot)
        day = _day(args.day)
        if starts_at is None or day is None or starts_at not in await self.service.free_slots(day):
            return ActionResult(next="taken")
        return ActionResult(variables={"when": when_label(starts_at, context.customer.language)}, next="free")

    async def book(self, context: ActionContext) -> ActionResult:
        from bot.appointments.service import SlotTaken

        args = BookArgs.model_validate(dict(context.args))
        starts_at = self._moment(args.day, args.slot)
        if starts_at is None:
            return ActionResult(next="taken")
        try:
            appointment = await self.service.book(
                customer=_customer(context),
                name=context.customer.name,
                starts_at=starts_at,
                device_model=args.device or None,
            )
        except SlotTaken:
            return ActionResult(next="taken")
        return ActionResult(variables=self.described(appointment, context.customer.language), next="booked")

    async def mine(self, context: ActionContext) -> ActionResult:
        args = MineArgs.model_validate(dict(context.args))
        upcoming = await self.service.upcoming(_customer(context))
        language = context.customer.language
        if not upcoming:
            return ActionResult(next="none")
        if len(upcoming) == 1:
            return ActionResult(variables=self.described(upcoming[0], language), next="one")
        rows = [
            (str(appointment.id), when_label(appointment.starts_at.astimezone(self.timezone), language), None)
            for appointment in upcoming
        ]
        return ActionResult(outbound=[args.message(language, rows)], next="several")

    async def get(self, context: ActionContext) -> ActionResult:
        args = OwnArgs.model_validate(dict(context.args))
        found = await self.service.get_own(_id(args.appointment), _customer(context))
        return self._done(found, context)

    async def confirm(self, context: ActionContext) -> ActionResult:
        args = OwnArgs.model_validate(dict(context.args))
        return self._done(await self.service.confirm(_id(args.appointment), _customer(context)), context)

    async def cancel(self, context: ActionContext) -> ActionResult:
        args = OwnArgs.model_validate(dict(context.args))
        return self._done(await self.service.cancel(_id(args.appointment), _customer(context)), context)

    async def reschedule(self, context: ActionContext) -> ActionResult:
        from bot.appointments.service import SlotTaken

        args = RescheduleArgs.model_validate(dict(context.args))
        starts_at = self._moment(args.day, args.slot)
        if starts_at is None:
            return ActionResult(next="taken")
        try:
            moved = await self.service.reschedule(_id(args.appointment), _customer(context), starts_at)
        except SlotTaken:
            return ActionResult(next="taken")
        return self._done(moved, context)

    def _done(self, appointment: Appointment | None, context: ActionContext) -> ActionResult:
        if appointment is None:
            return ActionResult(next="missing")
        return ActionResult(variables=self.described(appointment, context.customer.language), next="done")

    def described(self, appointment: Appointment, language: str) -> dict[str, Any]:
        """The variables a flow shows an appointment with."""
        local = appointment.starts_at.astimezone(self.timezone)
        return {
            "appointment": str(appointment.id),
            "when": when_label(local, language),
            "appointment_device": appointment.device_model or "",
            "appointment_status": str(appointment.status),
        }

    def _moment(self, day_text: str, slot_text: str) -> datetime | None:
        """The chosen day and time (a tapped row's ids, or what the customer typed) in the shop's zone."""
        day = _day(day_text)
        hour = _time(slot_text)
        if day is None or hour is None:
            return None
        return datetime.combine(day, hour, tzinfo=self.timezone)


def _day(text: str) -> date | None:
    """An ask with `expect: date` saved it as 2026-12-02."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def _time(text: str) -> time | None:
    """An ask with `expect: time` saved it as 14:30."""
    read = read_time(text.strip())
    return time.fromisoformat(read) if read else None


def _id(text: str) -> int:
    return int(text) if text.strip().isdigit() else -1


def _customer(context: ActionContext) -> int | str:
    """The sender: their customer id, or (a customer the engine was given without one) their phone."""
    if context.customer.id is not None:
        return context.customer.id
    if context.customer.wa_id:
        return context.customer.wa_id
    raise ActionError("appointments need a stored customer or a phone")
