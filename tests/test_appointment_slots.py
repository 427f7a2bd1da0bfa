"""Slots from the settings (normal days, closing days, both daylight-saving changes in New York,
capacity, notice) and booking against the database: the race for the last seat, cancel and move."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time

import pytest

from bot.appointments import slots
from bot.appointments.service import AppointmentService, NotBookable, SlotTaken
from bot.db.models import (
    Appointment,
    AppointmentChange,
    AppointmentReminder,
    AppointmentSeat,
    AppointmentStatus,
    ReminderStatus,
)
from tests.appointments_helpers import (
    NEW_YORK,
    OTHER,
    PHONE,
    appointment_settings,
    database,
    ny,
    utc,
)
from tests.helpers import Clock, shop_content

MONDAY = date(2026, 12, 7)
SPRING_FORWARD = date(2026, 3, 8)  # a Sunday: 02:00 EST jumps to 03:00 EDT
FALL_BACK = date(2026, 11, 1)  # a Sunday: 02:00 EDT falls back to 01:00 EST
NIGHT = {"sun": ["01:00-03:00", "09:00-10:00"]}


def rules(**changes: object) -> slots.AppointmentSettings:
    return appointment_settings(**changes).appointments  # type: ignore[arg-type]


def walls(moments: list[datetime]) -> list[str]:
    return [f"{m:%H:%M}{m.tzname()}" for m in moments]


def test_a_normal_day_has_back_to_back_slots_in_each_range() -> None:
    found = slots.day_slots(MONDAY, rules(), NEW_YORK)
    assert walls(found) == [
        *(f"{h}EST" for h in ("09:00", "09:30", "10:00", "10:30", "11:00", "11:30")),
        "14:00EST",
        "14:30EST",
    ]
    assert all(m.tzinfo == NEW_YORK for m in found)


def test_closing_days_and_closed_weekdays_have_no_slots() -> None:
    assert slots.day_slots(MONDAY, rules(closed_days=["2026-12-07"]), NEW_YORK) == []
    assert slots.day_slots(date(2026, 12, 6), rules(), NEW_YORK) == []  # sunday: []
    partial = rules(opening_hours={"mon": ["10:00-11:00"]})  # a weekday left out is closed
    assert slots.day_slots(date(2026, 12, 8), partial, NEW_YORK) == []
    assert walls(slots.day_slots(MONDAY, partial, NEW_YORK)) == ["10:00EST", "10:30EST"]


def test_spring_forward_skips_the_wall_times_that_do_not_exist() -> None:
    found = slots.day_slots(SPRING_FORWARD, rules(opening_hours=NIGHT), NEW_YORK)
    assert walls(found) == ["01:00EST", "01:30EST", "09:00EDT", "09:30EDT"]  # 02:00 and 02:30 never happen
    assert [m.astimezone(UTC).hour for m in found] == [6, 6, 13, 13]


def test_fall_back_offers_the_repeated_hour_once() -> None:
    found = slots.day_slots(FALL_BACK, rules(opening_hours=NIGHT), NEW_YORK)
    assert walls(found) == ["01:00EDT", "01:30EDT", "02:00EST", "02:30EST", "09:00EST", "09:30EST"]
    instants = [m.astimezone(UTC) for m in found]
    assert len(set(instants)) == len(instants) and instants == sorted(instants)
    first_half_past_one = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    second_half_past_one = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST, an hour later
    assert slots.is_slot(first_half_past_one, rules(opening_hours=NIGHT), NEW_YORK)
    assert not slots.is_slot(second_half_past_one, rules(opening_hours=NIGHT), NEW_YORK)


def test_a_day_after_a_change_keeps_its_wall_times() -> None:
    before, after = date(2026, 3, 6), date(2026, 3, 9)
    assert walls(slots.day_slots(before, rules(), NEW_YORK))[0] == "09:00EST"
    assert walls(slots.day_slots(after, rules(), NEW_YORK))[0] == "09:00EDT"


def test_the_next_wall_time_across_a_change() -> None:
    eight = time(8)
    late_saturday = datetime(2026, 3, 7, 22, 0, tzinfo=NEW_YORK)
    assert slots.next_wall_time(late_saturday, eight, NEW_YORK) == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    assert slots.next_wall_time(late_saturday, time(2, 30), NEW_YORK).astimezone(UTC) == datetime(
        2026, 3, 8, 7, 30, tzinfo=UTC
    )  # 02:30 does not exist that night: shifted forward by the gap (03:30 EDT)


def test_opening_hours_are_validated() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        rules(opening_hours={"mon": ["12:00-09:00"]})
    with pytest.raises(ValueError, match="overlap"):
        rules(opening_hours={"mon": ["09:00-12:00", "11:00-13:00"]})
    with pytest.raises(ValueError, match="not a time range"):
        rules(opening_hours={"mon": ["nine to five"]})
    with pytest.raises(ValueError, match="not a duration"):
        rules(reminders=["soon"])
    assert rules(reminders=["2h", "1d"]).reminders[0].total_seconds() == 86400  # largest first


# -- against the database ----------------------------------------------------------------------------


def service(database_url: str, clock: Clock, **changes: object) -> AppointmentService:
    settings = appointment_settings(database_url, **changes)
    return AppointmentService(settings, shop_content(settings), clock=clock)


async def test_capacity_notice_and_horizon(database_url: str) -> None:
    clock = Clock(ny(2026, 12, 7, 9, 10))  # Monday morning
    appointments = service(database_url, clock, days_ahead=3)
    async with database(database_url):
        today = await appointments.free_slots(MONDAY)
        assert walls(today)[0] == "10:30EST"  # 09:30 and 10:00 are within the hour's notice
        tuesday = date(2026, 12, 8)
        for phone in (PHONE, OTHER):
            await appointments.book(phone=phone, name="Ana", starts_at=ny(2026, 12, 8, 9, 0))
        assert walls(await appointments.free_slots(tuesday))[0] == "09:30EST"  # 09:00 is full (2 seats)
        with pytest.raises(SlotTaken):
            await appointments.book(phone="15550009999", name=None, starts_at=ny(2026, 12, 8, 9, 0))
        assert await appointments.free_slots(date(2026, 12, 11)) == []  # beyond days_ahead
        with pytest.raises(NotBookable):
            await appointments.book(phone=PHONE, name=None, starts_at=ny(2026, 12, 11, 9, 0))
        with pytest.raises(NotBookable):
            await appointments.book(phone=PHONE, name=None, starts_at=ny(2026, 12, 8, 9, 10))  # off the grid
        assert await appointments.bookable_days() == [MONDAY, tuesday, date(2026, 12, 9), date(2026, 12, 10)]


async def test_a_full_day_and_a_closing_day_are_not_bookable(database_url: str) -> None:
    clock = Clock(ny(2026, 12, 4, 12, 0))  # Friday
    hours = {"mon": ["09:00-10:00"], "tue": ["09:00-10:00"]}
    appointments = service(database_url, clock, capacity=1, opening_hours=hours, closed_days=["2026-12-08"])
    async with database(database_url):
        assert await appointments.bookable_days() == [MONDAY, date(2026, 12, 14), date(2026, 12, 15)]
        await appointments.book(phone=PHONE, name=None, starts_at=ny(2026, 12, 7, 9, 0))
        await appointments.book(phone=OTHER, name=None, starts_at=ny(2026, 12, 7, 9, 30))
        assert await appointments.bookable_days() == [date(2026, 12, 14), date(2026, 12, 15)]


async def test_booking_on_the_daylight_saving_days(database_url: str) -> None:
    clock = Clock(ny(2026, 10, 30, 12, 0))
    appointments = service(database_url, clock, opening_hours=NIGHT, capacity=1)
    async with database(database_url):
        free = await appointments.free_slots(FALL_BACK)
        assert walls(free)[:4] == ["01:00EDT", "01:30EDT", "02:00EST", "02:30EST"]
        booked = await appointments.book(phone=PHONE, name=None, starts_at=free[1])
        assert booked.starts_at == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
        assert walls(await appointments.free_slots(FALL_BACK))[:3] == ["01:00EDT", "02:00EST", "02:30EST"]
        stored = await Appointment.get(id=booked.id)
        assert f"{stored.starts_at.astimezone(NEW_YORK):%H:%M%Z}" == "01:30EDT"


async def test_the_race_for_the_last_seat_has_one_winner(database_url: str) -> None:
    clock = Clock(ny(2026, 12, 4, 12, 0))
    appointments = service(database_url, clock, capacity=1)
    last = ny(2026, 12, 7, 9, 0)
    async with database(database_url):
        results = await asyncio.gather(
            appointments.book(phone=PHONE, name="Ana", starts_at=last),
            appointments.book(phone=OTHER, name="Bo", starts_at=last),
            return_exceptions=True,
        )
        won = [r for r in results if isinstance(r, Appointment)]
        lost = [r for r in results if isinstance(r, SlotTaken)]
        assert (len(won), len(lost)) == (1, 1), results
        assert await Appointment.filter(starts_at=utc(last)).count() == 1
        assert await AppointmentSeat.filter(slot_start=utc(last)).count() == 1


async def test_many_racers_never_overbook_a_slot(database_url: str) -> None:
    clock = Clock(ny(2026, 12, 4, 12, 0))
    appointments = service(database_url, clock, capacity=3)
    slot = ny(2026, 12, 7, 10, 0)
    async with database(database_url):
        results = await asyncio.gather(
            *(appointments.book(phone=f"1555000{n:04d}", name=None, starts_at=slot) for n in range(8)),
            return_exceptions=True,
        )
        assert sum(isinstance(r, Appointment) for r in results) == 3
        assert all(isinstance(r, Appointment | SlotTaken) for r in results), results
        assert sorted(await AppointmentSeat.filter(slot_start=utc(slot)).values_list("seat", flat=True)) == [
            1,
            2,
            3,
        ]


async def test_cancelling_frees_the_seat_and_only_the_owner_can(database_url: str) -> None:
    clock = Clock(ny(2026, 12, 4, 12, 0))
    appointments = service(database_url, clock, capacity=1)
    slot = ny(2026, 12, 7, 9, 0)
    async with database(database_url):
        mine = await appointments.book(phone=PHONE, name="Ana", starts_at=slot, device_model="iPhone 13")
        assert await appointments.book(phone=PHONE, name="Ana", starts_at=slot) == mine  # a repeated tap
        assert await appointments.get_own(mine.id, OTHER) is None
        assert await appointments.cancel(mine.id, OTHER) is None
        assert await appointments.confirm(mine.id, OTHER) is None
        confirmed = await appointments.confirm(mine.id, PHONE)
        assert confirmed is not None and confirmed.status == AppointmentStatus.CONFIRMED
        assert [a.id for a in await appointments.upcoming(PHONE)] == [mine.id]
        cancelled = await appointments.cancel(mine.id, PHONE)
        assert cancelled is not None and cancelled.status == AppointmentStatus.CANCELLED
        assert await appointments.cancel(mine.id, PHONE) is not None  # twice: nothing more happens
        assert await appointments.confirm(mine.id, PHONE) is None  # a cancelled one cannot be confirmed
        assert await appointments.upcoming(PHONE) == []
        assert await AppointmentSeat.all().count() == 0
        assert slot in await appointments.free_slots(MONDAY)
        theirs = await appointments.book(phone=OTHER, name="Bo", starts_at=slot)
        assert theirs.status == AppointmentStatus.BOOKED
        assert set(
            await AppointmentReminder.filter(appointment_id=mine.id).values_list("status", flat=True)
        ) == {ReminderStatus.SKIPPED}
        history = await AppointmentChange.filter(appointment_id=mine.id).order_by("id")
        assert [(h.from_status, h.to_status, h.source) for h in history] == [
            (None, "booked", "chat"),
            ("booked", "confirmed", "chat"),
            ("confirmed", "cancelled", "chat"),
        ]


async def test_rescheduling_moves_the_seat_and_replans_the_reminders(database_url: str) -> None:
    clock = Clock(ny(2026, 12, 4, 12, 0))
    appointments = service(database_url, clock, capacity=1)
    async with database(database_url):
        mine = await appointments.book(phone=PHONE, name=None, starts_at=ny(2026, 12, 7, 9, 0))
        theirs = await appointments.book(phone=OTHER, name=None, starts_at=ny(2026, 12, 7, 10, 0))
        with pytest.raises(SlotTaken):
            await appointments.reschedule(mine.id, PHONE, ny(2026, 12, 7, 10, 0))
        assert await AppointmentSeat.get(appointment_id=mine.id)  # the failed move kept the old seat
        assert await appointments.reschedule(theirs.id, PHONE, ny(2026, 12, 8, 9, 0)) is None  # not mine
        moved = await appointments.reschedule(mine.id, PHONE, ny(2026, 12, 8, 11, 0))
        assert moved is not None and moved.status == AppointmentStatus.RESCHEDULED and moved.plan == 2
        assert (await AppointmentSeat.get(appointment_id=mine.id)).slot_start == ny(2026, 12, 8, 11, 0)
        assert ny(2026, 12, 7, 9, 0) in await appointments.free_slots(MONDAY)
        reminders = await AppointmentReminder.filter(appointment_id=mine.id).order_by(
            "plan", "-offset_minutes"
        )
        assert [(r.plan, r.offset_minutes, r.status, r.due_at) for r in reminders] == [
            (1, 1440, ReminderStatus.SKIPPED, ny(2026, 12, 6, 9, 0)),
            (1, 120, ReminderStatus.SKIPPED, ny(2026, 12, 7, 7, 0)),
            (2, 1440, ReminderStatus.PENDING, ny(2026, 12, 7, 11, 0)),
            (2, 120, ReminderStatus.PENDING, ny(2026, 12, 8, 9, 0)),
        ]
        change = await AppointmentChange.filter(appointment_id=mine.id).order_by("-id").first()
        assert change is not None
        assert (change.from_starts_at, change.to_starts_at) == (ny(2026, 12, 7, 9, 0), ny(2026, 12, 8, 11, 0))


async def test_reminders_already_past_at_booking_are_not_planned_to_send(database_url: str) -> None:
    clock = Clock(ny(2026, 12, 7, 8, 0))
    appointments = service(database_url, clock)
    async with database(database_url):
        booked = await appointments.book(phone=PHONE, name=None, starts_at=ny(2026, 12, 7, 11, 0))
        reminders = await AppointmentReminder.filter(appointment_id=booked.id).order_by("-offset_minutes")
        assert [(r.offset_minutes, r.status) for r in reminders] == [
            (1440, ReminderStatus.SKIPPED),
            (120, ReminderStatus.PENDING),
        ]
