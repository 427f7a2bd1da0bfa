"""Reminders with a controllable clock: sent once when due, exactly once across a restart, a crash and two
schedulers at once; late ones sent while the appointment is ahead and skipped once it started; quiet
hours hold them; `bot reminders due` lists without sending."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.appointments.reminders import ReminderScheduler
from bot.appointments.service import AppointmentService
from bot.cli.appointments import due_report
from bot.cli.main import main
from bot.db.models import (
    Appointment,
    AppointmentReminder,
    Customer,
    DeliveryStatus,
    Message,
    ReminderStatus,
)
from bot.settings import Settings
from tests.appointments_helpers import OTHER, PHONE, appointment_settings, database, ny
from tests.helpers import Clock, outbound_rows, shop_content

MONDAY_NINE = ny(2026, 12, 7, 9, 0)


async def statuses(appointment: Appointment) -> dict[int, tuple[str, str | None]]:
    rows = await AppointmentReminder.filter(appointment_id=appointment.id, plan=appointment.plan)
    return {r.offset_minutes: (str(r.status), r.reason) for r in rows}


def setup(database_url: str, clock: Clock, **rules: object) -> tuple[Settings, AppointmentService]:
    settings = appointment_settings(database_url, **rules)
    return settings, AppointmentService(settings, shop_content(settings), clock=clock)


async def test_each_reminder_is_sent_once_when_due(database_url: str) -> None:
    clock = Clock(ny(2026, 12, 4, 12, 0))
    settings, appointments = setup(database_url, clock)
    wakes: list[int] = []
    async with database(database_url):
        booked = await appointments.book(
            phone=PHONE, name="Ana", starts_at=MONDAY_NINE, device_model="iPhone 13"
        )
        scheduler = ReminderScheduler(
            settings, shop_content(settings), clock=clock, on_queued=lambda: wakes.append(1)
        )
        assert await scheduler.run_once() == 0
        clock.now = ny(2026, 12, 6, 8, 59)
        assert await scheduler.run_once() == 0
        clock.now = ny(2026, 12, 6, 9, 0)
        assert await scheduler.run_once() == 1
        assert await scheduler.run_once() == 0
        [row] = await outbound_rows()
        assert row.message_type == "template" and row.delivery_status == DeliveryStatus.QUEUED
        assert row.payload == {
            "kind": "template",
            "name": "appointment_reminder",
            "language": "en",
            "body_params": ["Mon 7 Dec", "9:00 AM", "iPhone 13"],
            "button_payloads": [
                f"appt:confirm:{booked.id}",
                f"appt:reschedule:{booked.id}",
                f"appt:cancel:{booked.id}",
            ],
        }
        assert wakes == [1]
        assert (await statuses(booked))[1440] == ("sent", None)
        sent = await AppointmentReminder.get(appointment_id=booked.id, offset_minutes=1440)
        assert sent.message_id == row.id and sent.sent_at == ny(2026, 12, 6, 9, 0)
        clock.now = ny(2026, 12, 7, 7, 0)
        assert await scheduler.run_once() == 1
        assert len(await outbound_rows()) == 2


async def test_the_customers_language_and_a_missing_device(database_url: str) -> None:
    clock = Clock(ny(2026, 11, 27, 12, 0))
    settings, appointments = setup(database_url, clock)
    async with database(database_url):
        await Customer.create(wa_id=PHONE, language="es")
        await Customer.create(wa_id=OTHER, language="zh")
        await appointments.book(phone=PHONE, name=None, starts_at=ny(2026, 12, 1, 14, 30))
        await appointments.book(
            phone=OTHER, name=None, starts_at=ny(2026, 12, 1, 14, 30), device_model="Pixel 8"
        )
        clock.now = ny(2026, 11, 30, 14, 30)
        assert await ReminderScheduler(settings, shop_content(settings), clock=clock).run_once() == 2
        payloads = {row.address: row.payload for row in await outbound_rows()}
        assert payloads[PHONE] is not None and payloads[OTHER] is not None
        assert (payloads[PHONE]["language"], payloads[PHONE]["body_params"]) == (
            "es",
            ["mar 1 dic", "14:30", "tu dispositivo"],
        )
        assert payloads[OTHER]["body_params"] == ["12月1日 周二", "14:30", "Pixel 8"]


async def test_exactly_once_across_a_restart(database_url: str) -> None:
    clock = Clock(ny(2026, 12, 4, 12, 0))
    settings, appointments = setup(database_url, clock)
    async with database(database_url):
        await appointments.book(phone=PHONE, name=None, starts_at=MONDAY_NINE)
        clock.now = ny(2026, 12, 6, 9, 1)
        assert await ReminderScheduler(settings, shop_content(settings), clock=clock).run_once() == 1
    async with database(database_url):  # the server restarts: a new process, the same database
        clock.advance(minutes=5)
        assert await ReminderScheduler(settings, shop_content(settings), clock=clock).run_once() == 0
        assert len(await outbound_rows()) == 1


class CrashingScheduler(ReminderScheduler):
    """Dies after marking the reminder sent, before its message is written: the transaction rolls back."""

    def _message_row(self, *args: object, **kwargs: object) -> Message:
        raise RuntimeError("power cut")


async def test_a_crash_mid_send_leaves_it_pending_and_it_goes_out_once(database_url: str) -> None:
    clock = Clock(ny(2026, 12, 4, 12, 0))
    settings, appointments = setup(database_url, clock)
    async with database(database_url):
        booked = await appointments.book(phone=PHONE, name=None, starts_at=MONDAY_NINE)
        clock.now = ny(2026, 12, 6, 9, 0)
        with pytest.raises(RuntimeError):
            await CrashingScheduler(settings, shop_content(settings), clock=clock).run_once()
        assert (await statuses(booked))[1440] == ("pending", None)
        assert await outbound_rows() == []
    async with database(database_url):
        assert await ReminderScheduler(settings, shop_content(settings), clock=clock).run_once() == 1
        assert await ReminderScheduler(settings, shop_content(settings), clock=clock).run_once() == 0
        assert len(await outbound_rows()) == 1


async def test_two_schedulers_at_once_send_each_reminder_once(database_url: str) -> None:
    clock = Clock(ny(2026, 11, 30, 8, 0))
    settings, appointments = setup(database_url, clock, capacity=3)
    async with database(database_url):
        for day in (1, 2, 3):
            for hour in (9, 10, 11):
                for n in range(3):
                    await appointments.book(
                        phone=f"1555{day}{hour:02d}{n}000", name=None, starts_at=ny(2026, 12, day, hour, 0)
                    )
        clock.now = ny(2026, 12, 2, 8, 30)
        # day 1 has started (skipped); day 2: the 09:00 and 10:00 ones' 2h reminders are due (their 24h
        # ones too, superseded), the 11:00 ones' 24h reminder; day 3: not due yet. One each: 9.
        first = ReminderScheduler(settings, shop_content(settings), clock=clock, batch_size=4)
        second = ReminderScheduler(settings, shop_content(settings), clock=clock, batch_size=4)
        sent = await asyncio.gather(first.run_once(), second.run_once(), first.run_once(), second.run_once())
        rows = await outbound_rows()
        reminders = await AppointmentReminder.filter(status=ReminderStatus.SENT)
        assert sum(sent) == len(rows) == len(reminders) == 9
        assert len({r.message_id for r in reminders}) == len({r.appointment_id for r in reminders}) == 9
        assert sorted(r.id for r in rows) == sorted(r.message_id for r in reminders)
        assert await first.run_once() + await second.run_once() == 0
        clock.now = ny(2026, 12, 2, 11, 0)  # day 3's 24h reminders
        sent = await asyncio.gather(first.run_once(), second.run_once())
        assert sum(sent) == 9 and len(await outbound_rows()) == 18


async def test_late_reminders_are_sent_while_ahead_and_skipped_once_started(database_url: str) -> None:
    clock = Clock(ny(2026, 12, 1, 12, 0))
    settings, appointments = setup(database_url, clock)
    async with database(database_url):
        ahead = await appointments.book(phone=PHONE, name=None, starts_at=ny(2026, 12, 7, 11, 0))
        started = await appointments.book(phone=OTHER, name=None, starts_at=ny(2026, 12, 7, 9, 0))
        clock.now = ny(2026, 12, 7, 10, 0)  # the server was down from Friday to Monday 10:00
        assert await ReminderScheduler(settings, shop_content(settings), clock=clock).run_once() == 1
        [row] = await outbound_rows()
        assert row.address == PHONE
        assert await statuses(ahead) == {
            1440: ("skipped", "a nearer reminder is due"),
            120: ("sent", None),
        }
        assert await statuses(started) == {
            1440: ("skipped", "appointment has started"),
            120: ("skipped", "appointment has started"),
        }


async def test_cancelled_and_moved_appointments_get_no_old_reminders(database_url: str) -> None:
    clock = Clock(ny(2026, 12, 1, 12, 0))
    settings, appointments = setup(database_url, clock)
    async with database(database_url):
        cancelled = await appointments.book(phone=PHONE, name=None, starts_at=MONDAY_NINE)
        moved = await appointments.book(phone=OTHER, name=None, starts_at=MONDAY_NINE)
        await appointments.cancel(cancelled.id, PHONE)
        await appointments.reschedule(moved.id, OTHER, ny(2026, 12, 8, 9, 0))
        clock.now = ny(2026, 12, 6, 9, 30)
        scheduler = ReminderScheduler(settings, shop_content(settings), clock=clock)
        assert await scheduler.run_once() == 0
        clock.now = ny(2026, 12, 7, 9, 0)
        assert await scheduler.run_once() == 1  # the moved one's new 24h reminder
        [row] = await outbound_rows()
        assert row.address == OTHER and row.payload is not None
        assert row.payload["body_params"][:2] == ["Tue 8 Dec", "9:00 AM"]


async def test_quiet_hours_hold_reminders_until_they_end(database_url: str) -> None:
    clock = Clock(ny(2026, 12, 1, 12, 0))
    hours = {"mon": ["08:00-12:00"]}
    settings, appointments = setup(
        database_url, clock, quiet_hours="21:00-08:00", opening_hours=hours, reminders=["2h", "12h"]
    )
    async with database(database_url):
        nine = await appointments.book(phone=PHONE, name=None, starts_at=MONDAY_NINE)
        scheduler = ReminderScheduler(settings, shop_content(settings), clock=clock)
        clock.now = ny(2026, 12, 6, 21, 0)  # the 12h reminder is due in quiet hours
        assert await scheduler.run_once() == 0
        assert await statuses(nine) == {720: ("pending", "quiet hours"), 120: ("pending", None)}
        held = await AppointmentReminder.get(appointment_id=nine.id, offset_minutes=720)
        assert held.send_after == ny(2026, 12, 7, 8, 0) and held.due_at == ny(2026, 12, 6, 21, 0)
        clock.now = ny(2026, 12, 7, 7, 0)  # the 2h reminder: due, held too; the 12h one still held
        assert await scheduler.run_once() == 0
        clock.now = ny(2026, 12, 7, 8, 0)  # quiet hours end: only the nearer (2h) one goes out
        assert await scheduler.run_once() == 1
        assert await statuses(nine) == {720: ("skipped", "a nearer reminder is due"), 120: ("sent", None)}


async def test_a_reminder_in_quiet_hours_that_end_too_late_is_sent_at_once(database_url: str) -> None:
    clock = Clock(ny(2026, 12, 1, 12, 0))
    settings, appointments = setup(
        database_url, clock, quiet_hours="21:00-08:00", opening_hours={"mon": ["08:00-12:00"]}
    )
    async with database(database_url):
        eight = await appointments.book(phone=PHONE, name=None, starts_at=ny(2026, 12, 7, 8, 0))
        clock.now = ny(2026, 12, 7, 6, 0)  # quiet hours end at 08:00: the appointment's very start
        assert await ReminderScheduler(settings, shop_content(settings), clock=clock).run_once() == 1
        assert (await statuses(eight))[120] == ("sent", "quiet hours end too late")


async def test_reminders_due_lists_without_sending(database_url: str) -> None:
    clock = Clock(ny(2026, 12, 4, 12, 0))
    settings, appointments = setup(database_url, clock, quiet_hours="21:00-08:00")
    async with database(database_url):
        await appointments.book(phone=PHONE, name="Ana", starts_at=ny(2026, 12, 7, 9, 0))
        await appointments.book(phone=OTHER, name=None, starts_at=ny(2026, 12, 8, 14, 0))
        lines = await due_report(settings, 48, ny(2026, 12, 6, 9, 30))
        assert lines[0].split() == [
            "appointment",
            "customer",
            "reminder",
            "due",
            "(America/New_York)",
            "appointment",
            "at",
            "would",
            "be",
        ]
        body = "\n".join(lines[1:])
        assert "15550001234 Ana  24h" in body and "sent now" in body
        assert "2h" in body and "held for quiet hours until Mon 2026-12-07 08:00" in body  # due 07:00
        assert "15550005678" in body and "sent when due" in body  # Monday 14:00, 24h before Tuesday 14:00
        assert lines[-1] == "3 reminder(s) due in the next 48 hours; nothing was sent"
        assert await outbound_rows() == []
        assert await AppointmentReminder.filter(status=ReminderStatus.PENDING).count() == 4
        assert (await due_report(settings, 1, ny(2026, 12, 1, 9, 0))) == [
            "no reminders due in the next 1 hours (nothing was sent)"
        ]


def test_the_reminders_due_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(f"database:\n  url: sqlite://{tmp_path / 'bot.db'}\n")
    assert main(["--settings", str(settings_file), "db", "migrate"]) == 0
    assert main(["--settings", str(settings_file), "reminders", "due", "--hours", "48"]) == 0
    assert "no reminders due in the next 48 hours" in capsys.readouterr().out


async def test_the_scheduler_loop_starts_and_stops_between_runs(database_url: str) -> None:
    clock = Clock(ny(2026, 12, 4, 12, 0))
    settings, appointments = setup(database_url, clock, check_seconds=0.01)
    async with database(database_url):
        await appointments.book(phone=PHONE, name=None, starts_at=MONDAY_NINE)
        clock.now = ny(2026, 12, 6, 9, 0)
        scheduler = ReminderScheduler(settings, shop_content(settings), clock=clock)
        scheduler.start()
        for _ in range(200):
            if await outbound_rows():
                break
            await asyncio.sleep(0.01)
        await scheduler.stop()
        assert len(await outbound_rows()) == 1
