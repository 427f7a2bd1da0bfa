"""Erasure (bot/privacy/erasure.py), on SQLite and PostgreSQL: the customer's data key first, then their
rows in batches; appointments and orders stay without personal details; an audit row says who erased
and when, never what; a real conversation through the server leaves no byte of the customer in the
SQLite file, its WAL or the media folder; `DELETE /api/customers/{phone}` and `bot erase PHONE`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from tortoise import connections

from bot import crypto
from bot.db import close_db, config, init_db
from bot.db.config import sqlite_file
from bot.db.encrypted import Unreadable
from bot.db.models import (
    Appointment,
    AppointmentChange,
    AppointmentReminder,
    AppointmentSeat,
    AuditEvent,
    AuditKind,
    ConsentChange,
    Conversation,
    ConversationStep,
    ConversationTimer,
    CostEntry,
    Customer,
    CustomerIdentity,
    DataKey,
    Direction,
    Handoff,
    HandoffNote,
    Message,
    Order,
    OrderStatusChange,
    PaceBucket,
    RelayPointer,
    SendAdmission,
    TechnicianRole,
)
from bot.db.sql import scalar
from bot.handoff.tokens import create_technician
from bot.media.store import MediaStore
from bot.orders.keys import create_key
from bot.privacy import erasure
from bot.privacy.erasure import erase_customer
from bot.privacy.export import export_customer
from bot.privacy.subject import UnknownCustomer, find_subject
from tests.helpers import (
    ADMIN_TOKEN,
    ENCRYPTION_KEY,
    BotFactory,
    bearer,
    create_schema,
    eventually,
    handled,
    install_test_keys,
    post_webhook,
    text_notification,
    write_settings,
)
from tests.privacy_helpers import MEDIA_BYTES, Seeded, seed_customer
from tests.test_appointments_api import RULES, TEN
from tests.test_commands import run_bot
from tests.test_media import PNG, media_notification, offer

PHONE = "15550987123"
OTHER = "15550987999"


def without_time(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != "exported_at"}


async def test_erasure_forgets_the_customer_and_keeps_the_books(
    keyed_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    media = MediaStore(tmp_path / "media")
    gone = await seed_customer(PHONE, "Zebulon Quartermaine", media)
    kept = await seed_customer(OTHER, "Philomena Brightwater", media)
    other_before = without_time(await export_customer(kept.customer, media))
    seen_at_shredding: list[int] = []
    real_destroy = erasure.destroy_data_key

    async def destroy_data_key(customer_id: int) -> None:
        assert customer_id == gone.customer.id
        seen_at_shredding.append(await Message.filter(customer_id=customer_id).count())
        await real_destroy(customer_id)

    monkeypatch.setattr(erasure, "destroy_data_key", destroy_data_key)
    sealed = await scalar("SELECT message_content FROM message WHERE id = ?", [gone.message_ids[0]])
    assert str(sealed).startswith(crypto.PREFIX)  # as a backup holds it
    assert await DataKey.exists(customer_id=gone.customer.id)
    report = await erase_customer(await find_subject(f"+{PHONE}"), media, "cli:tester", batch=1)

    assert seen_at_shredding == [2]  # the data key went first, before any row
    assert not await DataKey.exists(customer_id=gone.customer.id)
    with pytest.raises(crypto.MissingKey):  # a copy of their ciphertext (a backup) opens no more
        crypto.current().decrypt(str(sealed), "message.message_content", str(gone.customer.id))
    assert await DataKey.exists(customer_id=kept.customer.id)
    assert (report.messages, report.media_files, report.conversations) == (3, 1, 1)
    assert (report.appointments, report.orders) == (1, 1)
    assert not await Customer.filter(id=gone.customer.id).exists()
    assert not await CustomerIdentity.filter(customer_id=gone.customer.id).exists()
    assert not await Message.filter(id__in=gone.message_ids).exists()  # the one by BSUID only too
    assert not (media.directory / gone.file_url.removeprefix("media:")).exists()
    assert await media.get(kept.file_url, str(kept.customer.id)) == MEDIA_BYTES
    for model in (ConversationTimer, ConversationStep, Handoff, HandoffNote, AuditEvent):
        assert not await model.filter(conversation_id=gone.conversation_id).exists(), model
    assert not await Conversation.filter(id=gone.conversation_id).exists()
    assert not await ConsentChange.filter(customer_id=gone.customer.id).exists()
    assert not await AppointmentReminder.filter(appointment_id=gone.appointment_id).exists()
    assert not await PaceBucket.filter(key__contains=PHONE).exists()

    appointment = await Appointment.get(id=gone.appointment_id)  # the calendar keeps the slot
    assert (appointment.customer_id, appointment.customer_phone) == (None, None)
    assert (appointment.customer_name, appointment.notes) == (None, None)
    assert appointment.device_model == "Fairphone 4" and await AppointmentSeat.exists(
        appointment_id=appointment.id
    )
    assert await AppointmentChange.exists(appointment_id=appointment.id)
    order = await Order.get(id=gone.order_id)  # the books keep the order, belonging to nobody
    assert (order.customer_id, order.customer_phone, order.customer_name) == (None, "", "")
    assert (order.order_number, str(order.quoted_price)) == (f"R-{PHONE[-4:]}", "89.50")
    assert await OrderStatusChange.exists(order_id=order.id)
    [cost] = await CostEntry.filter(message_id=gone.message_ids[2])
    assert cost.customer_id is None and cost.category == "service"
    assert await SendAdmission.exists(message_id=gone.message_ids[2])
    pointer = await RelayPointer.get(technician__name=f"Tech {PHONE[-4:]}")
    assert (pointer.current_customer_id, pointer.offered_customer_id) == (None, None)

    [audit] = await AuditEvent.filter(kind=AuditKind.ERASURE)
    assert audit.conversation_id is None and audit.technician_id is None
    assert audit.details == {"customer_id": gone.customer.id, "by": "cli:tester"}
    assert audit.at == report.at
    written = json.dumps(audit.details)
    assert PHONE not in written and gone.bsuid not in written and "Zebulon" not in written

    assert without_time(await export_customer(kept.customer, media)) == other_before  # untouched
    with pytest.raises(UnknownCustomer, match="no customer with this phone number"):
        await find_subject(PHONE)
    with pytest.raises(UnknownCustomer, match="no customer with this WhatsApp user ID"):
        await find_subject(gone.bsuid)


async def test_an_erasure_stopped_half_way_is_finished_by_running_it_again(
    keyed_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    media = MediaStore(tmp_path / "media")
    seeded = await seed_customer(PHONE, "Zebulon Quartermaine", media)
    real_set_in_batches = erasure.set_in_batches

    async def crash(*args: Any, **kwargs: Any) -> int:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(erasure, "set_in_batches", crash)
    with pytest.raises(ConnectionError):
        await erase_customer(seeded.customer, media, "cli:tester")
    assert not await Message.filter(id__in=seeded.message_ids).exists()  # what went before stays gone
    half = await Order.get(id=seeded.order_id)  # not unlinked yet, but shredded already
    assert half.customer_id == seeded.customer.id and isinstance(half.customer_name, Unreadable)
    assert not await AuditEvent.filter(kind=AuditKind.ERASURE).exists()  # no erasure recorded yet

    monkeypatch.setattr(erasure, "set_in_batches", real_set_in_batches)
    again = await find_subject(PHONE)  # still found by the phone: identities go last
    report = await erase_customer(again, media, "cli:tester")
    assert (report.messages, report.orders) == (0, 1)
    assert (await Order.get(id=seeded.order_id)).customer_name == ""
    assert not await Customer.filter(id=seeded.customer.id).exists()
    assert await AuditEvent.filter(kind=AuditKind.ERASURE).count() == 1


def traces(paths: list[Path], needles: list[str]) -> dict[str, list[str]]:
    """Which of `needles` (as UTF-8 bytes) each file holds; files without any are left out."""
    found: dict[str, list[str]] = {}
    for path in paths:
        data = path.read_bytes()
        hits = [needle for needle in needles if needle.encode() in data]
        if hits:
            found[path.name] = hits
    return found


async def test_a_real_conversation_erased_leaves_no_trace(
    bot_client: BotFactory, fake_graph: TestServer, tmp_path: Path, database_url: str
) -> None:
    name, text = "Zebulon Quartermaine", "my Fairphone fell into the Guadalquivir"
    booked_name, note = "Philomena Brightwater", "passcode 4812 under the battery"
    client = await bot_client(RULES)
    assert (
        await post_webhook(client, text_notification(PHONE, "wamid.ERASE.1", text, name=name))
    ).status == 200
    await eventually(lambda: handled("wamid.ERASE.1"))
    await eventually(lambda: Message.filter(address=PHONE, message_direction=Direction.OUTBOUND).exists())
    await offer(fake_graph, "900000000000777", PNG + name.encode(), "image/png")
    photo = media_notification("image", "wamid.ERASE.2", "900000000000777", mime_type="image/png")
    value = photo["entry"][0]["changes"][0]["value"]
    value["contacts"][0].update({"wa_id": PHONE, "profile": {"name": name}})
    value["messages"][0]["from"] = PHONE
    assert (await post_webhook(client, photo)).status == 200

    async def photo_kept() -> bool:
        row = await Message.get_or_none(whatsapp_message_id="wamid.ERASE.2")
        return row is not None and row.file_url is not None and row.file_url.startswith("media:")

    await eventually(photo_kept, within=15)
    key = bearer(await create_key("shop-pos"))
    appointment = {
        "customer_phone": f"+{PHONE}",
        "customer_name": booked_name,
        "starts_at": TEN,
        "notes": note,
    }
    assert (await client.post("/api/appointments", json=appointment, headers=key)).status == 201
    order = {
        "order_number": "R-777",
        "customer_phone": PHONE,
        "customer_name": booked_name,
        "device_model": "Fairphone 4",
        "problem": "water damage",
        "status": "received",
    }
    assert (await client.post("/api/orders", json=order, headers=key)).status == 201
    _, token = await create_technician("Ana", TechnicianRole.ADMIN)
    assert (await client.post(f"/api/tech/chats/{PHONE}/claim", headers=bearer(token))).status == 200
    response = await client.post(f"/api/tech/chats/{PHONE}/notes", json={"text": note}, headers=bearer(token))
    assert response.status == 200, await response.text()
    customer = await find_subject(PHONE)
    media_dir = tmp_path / "data" / "media"
    assert len(list(media_dir.iterdir())) == 1

    response = await client.delete(f"/api/customers/{PHONE}", headers=bearer(ADMIN_TOKEN))
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["erased"] is True and body["customer_id"] == customer.id and body["media_files"] == 1

    assert list(media_dir.iterdir()) == []
    assert not await Message.filter(address=PHONE).exists()
    assert not await Customer.filter(wa_id=PHONE).exists()
    [kept_order] = await Order.filter(order_number="R-777")
    assert (kept_order.customer_name, kept_order.customer_phone, kept_order.customer_id) == ("", "", None)
    [kept_appointment] = await Appointment.all()
    assert (kept_appointment.customer_name, kept_appointment.notes) == (None, None)
    [audit] = await AuditEvent.filter(kind=AuditKind.ERASURE)
    assert audit.details == {"customer_id": customer.id, "by": "admin token"}

    database = sqlite_file(database_url)
    if database is not None:  # the raw bytes: SQLite only (PostgreSQL's files are the server's)
        await connections.get("default").execute_query("SELECT 1")
        files = [path for path in database.parent.iterdir() if path.name.startswith(database.name)]
        needles = [PHONE, name, text, booked_name, note]
        assert traces(files, needles) == {}
        assert database.with_name(database.name + "-wal").stat().st_size == 0  # checkpointed, truncated

    again = text_notification(PHONE, "wamid.ERASE.3", "hello again", name=name)
    assert (await post_webhook(client, again)).status == 200  # they may come back: a new customer
    await eventually(lambda: handled("wamid.ERASE.3"))
    assert (await find_subject(PHONE)).id != customer.id


async def test_the_search_would_find_a_customer_that_is_still_there(
    bot_client: BotFactory, database_url: str
) -> None:
    """The raw-bytes search above can fail: before an erasure the phone (in clear, the key of
    everything) is in the files."""
    database = sqlite_file(database_url)
    if database is None:
        pytest.skip("raw bytes: SQLite only")
    client = await bot_client()
    note = text_notification(PHONE, "wamid.TRACE.1", "hello", name="Zebulon Quartermaine")
    assert (await post_webhook(client, note)).status == 200
    await eventually(lambda: handled("wamid.TRACE.1"))
    files = [path for path in database.parent.iterdir() if path.name.startswith(database.name)]
    assert PHONE in {needle for hits in traces(files, [PHONE]).values() for needle in hits}


@pytest.mark.parametrize("secure_delete", ["ON", "OFF"])
async def test_secure_delete_is_what_leaves_no_deleted_bytes_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secure_delete: str
) -> None:
    """With secure_delete OFF the erased rows' bytes stay in the file's free space (so the search
    above would see them: the phone is in clear); the bot's connections have it ON (some SQLite builds
    default to it)."""
    pragmas = config._SQLITE_PRAGMAS.replace("secure_delete=ON", f"secure_delete={secure_delete}")
    monkeypatch.setattr(config, "_SQLITE_PRAGMAS", pragmas)
    url = f"sqlite://{tmp_path / 'bot.db'}"
    await create_schema(url)
    install_test_keys()
    await init_db(url)
    try:
        [row] = await connections.get("default").execute_query_dict("PRAGMA secure_delete")
        assert row["secure_delete"] == (secure_delete == "ON")
        media = MediaStore(tmp_path / "media")
        seeded = await seed_customer(PHONE, "Zebulon Quartermaine", media)
        await seed_customer(OTHER, "Philomena Brightwater", media)  # live rows share the pages
        await erase_customer(seeded.customer, media, "cli:tester")
    finally:
        await close_db()
    found = traces([tmp_path / "bot.db"], [PHONE, seeded.name, seeded.text, seeded.note])
    if secure_delete == "ON":
        assert found == {}
    else:
        assert PHONE in found["bot.db"]  # the deleted rows' bytes, phone in clear, still there


async def test_the_api_wants_the_admin_token_and_a_known_phone(bot_client: BotFactory) -> None:
    client = await bot_client()
    assert (await post_webhook(client, text_notification(PHONE, "wamid.API.1", "hi"))).status == 200
    await eventually(lambda: handled("wamid.API.1"))
    path = f"/api/customers/{PHONE}"
    assert (await client.delete(path)).status == 401
    assert (await client.delete(path, headers=bearer("wrong"))).status == 401
    _, technician = await create_technician("Ana", TechnicianRole.ADMIN)
    assert (await client.delete(path, headers=bearer(technician))).status == 401  # staff are not admins
    admin = bearer(ADMIN_TOKEN)
    for bad in ("not-a-phone", "12", "1" * 16, "US.", "%E2%80%8B"):
        response = await client.delete(f"/api/customers/{bad}", headers=admin)
        assert response.status == 400, bad
        assert "not a phone number" in (await response.json())["error"]
    response = await client.delete(f"/api/customers/{OTHER}", headers=admin)
    assert response.status == 404
    assert await response.json() == {"error": "no customer with this phone number"}
    response = await client.delete("/api/customers/US.13491208655302741918", headers=admin)
    assert (response.status, (await response.json())["error"]) == (
        404,
        "no customer with this WhatsApp user ID",
    )
    assert await Customer.filter(wa_id=PHONE).exists()  # nothing was erased on the way
    assert (await client.delete(f"/api/customers/+{PHONE[0]} {PHONE[1:]}", headers=admin)).status == 200
    assert (await client.delete(path, headers=admin)).status == 404  # gone


async def test_bot_erase_exits_0_1_2_and_records_the_user(tmp_path: Path, database_url: str) -> None:
    install_test_keys()
    await init_db(database_url)
    try:
        seeded: Seeded = await seed_customer(
            PHONE, "Zebulon Quartermaine", MediaStore(tmp_path / "data" / "media")
        )
    finally:
        await close_db()
    env = {"BOT_SETTINGS": str(write_settings(tmp_path)), "DATABASE_URL": database_url}
    env["BOT_ENCRYPTION_KEYS"] = ENCRYPTION_KEY

    bad = await asyncio.to_thread(run_bot, "erase", "nonsense", env=env)
    assert bad.returncode == 2 and "bot erase: not a phone number" in bad.stderr
    unknown = await asyncio.to_thread(run_bot, "erase", OTHER, env=env)
    assert unknown.returncode == 1 and "bot erase: no customer with this phone number" in unknown.stderr
    done = await asyncio.to_thread(run_bot, "erase", seeded.bsuid, env=env)  # a BSUID names them too
    assert done.returncode == 0, done.stderr
    assert f"erased customer {seeded.customer.id}: 3 message(s), 1 media file(s)" in done.stdout
    assert "1 appointment(s) and 1 order(s) kept without personal details" in done.stdout
    assert PHONE not in done.stdout + done.stderr

    await init_db(database_url)
    try:
        [audit] = await AuditEvent.filter(kind=AuditKind.ERASURE)
        assert str(audit.details["by"]).startswith("cli")
        assert not await Customer.filter(id=seeded.customer.id).exists()
    finally:
        await close_db()
