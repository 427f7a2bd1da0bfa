"""The webhook through the real server: verification, signatures, limits, storage and deduplication."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from bot.db.models import Customer, DeliveryStatus, Direction, EarlyStatus, Message
from bot.whatsapp import signature
from bot.whatsapp.signature import sign
from tests.helpers import (
    ADMIN_TOKEN,
    APP_SECRET,
    VERIFY_TOKEN,
    AppFactory,
    BotFactory,
    eventually,
    graph_sends,
    payload,
    post_webhook,
    text_notification,
)

INBOUND_FILES = {
    "inbound_text.json": "text",
    "inbound_text_reply_context.json": "text",
    "inbound_text_forwarded.json": "text",
    "inbound_image.json": "image",
    "inbound_document.json": "document",
    "inbound_audio_voice.json": "audio",
    "inbound_audio_file.json": "audio",
    "inbound_video.json": "video",
    "inbound_sticker.json": "sticker",
    "inbound_location.json": "location",
    "inbound_contacts.json": "contacts",
    "inbound_interactive_button_reply.json": "interactive",
    "inbound_interactive_list_reply.json": "interactive",
    "inbound_button_template_quick_reply.json": "button",
    "inbound_reaction.json": "reaction",
    "inbound_order.json": "order",
    "inbound_system_user_changed_number.json": "system",
    "inbound_unsupported_131051.json": "unsupported",
}


async def test_verification_echoes_the_challenge(bot_client: BotFactory) -> None:
    client = await bot_client()
    ok = await client.get(
        "/webhook",
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"},
    )
    assert ok.status == 200
    assert ok.content_type == "text/plain"
    assert await ok.text() == "1158201444"
    for params in (
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.challenge": "1"},
    ):
        refused = await client.get("/webhook", params=params)
        assert refused.status == 403


async def test_missing_or_wrong_signature_is_401_and_stores_nothing(bot_client: BotFactory) -> None:
    client = await bot_client()
    body = json.dumps(payload("inbound_text.json")).encode()
    missing = await client.post("/webhook", data=body, headers={"Content-Type": "application/json"})
    assert missing.status == 401
    wrong = await post_webhook(client, body, secret="not-the-app-secret")
    assert wrong.status == 401
    tampered = await post_webhook(client, body, signature="sha256=" + "0" * 64)
    assert tampered.status == 401
    assert await Message.all().count() == 0


async def test_malformed_bodies_are_400(bot_client: BotFactory) -> None:
    client = await bot_client()
    for raw in (
        b"{not json",
        b"[]",
        b'{"object": "page", "entry": []}',
        b'{"object":"whatsapp_business_account"}',
    ):
        response = await post_webhook(client, raw)
        assert response.status == 400, raw
        assert "bad notification" in await response.text()
    assert await Message.all().count() == 0


async def test_body_over_the_cap_is_413(bot_client: BotFactory) -> None:
    client = await bot_client(extra="server:\n  max_body_bytes: 2048\n")
    notification = text_notification("15550002222", "wamid.BIG", "x" * 4000)
    response = await post_webhook(client, notification)
    assert response.status == 413
    assert await Message.all().count() == 0


async def test_every_message_type_is_stored_and_answered(
    bot_client: BotFactory, fake_graph: TestServer
) -> None:
    client = await bot_client()
    for name, kind in INBOUND_FILES.items():
        response = await post_webhook(client, payload(name))
        assert response.status == 200, name
        wamid = payload(name)["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
        row = await Message.get(whatsapp_message_id=wamid)
        assert row.message_direction == Direction.INBOUND
        assert row.message_type == kind, name
        assert row.payload is not None and row.payload["message"]["id"] == wamid  # raw JSON kept
    unsupported = await Message.get(whatsapp_message_id="wamid.IN_UNS_0001")
    assert unsupported.payload is not None
    assert unsupported.payload["message"]["unsupported"] == {"type": "poll_creation"}

    async def all_handled() -> bool:
        return not await Message.filter(delivery_status=DeliveryStatus.PENDING).exists()

    await eventually(all_handled)
    # every customer message got an answer, the unsupported one included; a reaction or a system
    # notice is logged and handled but not answered (a 👍 should not make the bot talk)
    silent = {"reaction", "system"}
    for row in await Message.filter(message_direction=Direction.INBOUND):
        assert row.delivery_status == DeliveryStatus.HANDLED
        answered = await Message.filter(reply_to=row.whatsapp_message_id).exists()
        assert answered == (row.message_type not in silent), row.message_type


async def test_unknown_type_and_extra_fields_never_crash(bot_client: BotFactory) -> None:
    client = await bot_client()
    notification: dict[str, Any] = payload("inbound_text.json")
    value = notification["entry"][0]["changes"][0]["value"]
    value["brand_new_field"] = {"x": 1}
    value["messages"][0] = {
        "from": "15550002222",
        "id": "wamid.POLL_1",
        "timestamp": "1750000000",
        "type": "poll",
        "poll": {"question": "Which colour?"},
        "surprise": True,
    }
    response = await post_webhook(client, notification)
    assert response.status == 200
    row = await Message.get(whatsapp_message_id="wamid.POLL_1")
    assert row.message_type == "unsupported"
    assert row.payload is not None and row.payload["message"]["poll"] == {"question": "Which colour?"}

    async def answered() -> bool:
        return await Message.filter(reply_to="wamid.POLL_1", message_direction=Direction.OUTBOUND).exists()

    await eventually(answered)


async def test_redeliveries_are_stored_and_answered_once(
    bot_client: BotFactory, fake_graph: TestServer
) -> None:
    client = await bot_client()
    notification = text_notification("15550003333", "wamid.DUP_1", "hello")
    for _ in range(3):
        assert (await post_webhook(client, notification)).status == 200
    assert await Message.filter(whatsapp_message_id="wamid.DUP_1").count() == 1

    async def sent() -> bool:
        return await Message.filter(reply_to="wamid.DUP_1", delivery_status=DeliveryStatus.SENT).exists()

    await eventually(sent)
    assert await Message.filter(reply_to="wamid.DUP_1").count() == 1
    sends = [s for s in await graph_sends(fake_graph) if s[1] == "+15550003333"]
    assert len(sends) == 1


async def test_a_batch_of_messages_and_statuses_in_one_post(bot_client: BotFactory) -> None:
    client = await bot_client()
    first = text_notification("15550004444", "wamid.B1", "hi")
    second = text_notification("15550005555", "wamid.B2", "hola", name="Ana")
    first["entry"].append(second["entry"][0])
    status = payload("status_delivered.json")["entry"][0]
    first["entry"].append(status)
    response = await post_webhook(client, first)
    assert response.status == 200
    assert await Message.filter(whatsapp_message_id__in=["wamid.B1", "wamid.B2"]).count() == 2
    # the status names a wamid nobody sent yet: it is parked, not lost
    wamid = status["changes"][0]["value"]["statuses"][0]["id"]
    assert await EarlyStatus.filter(whatsapp_message_id=wamid).exists()


async def test_value_level_errors_are_acknowledged(bot_client: BotFactory) -> None:
    client = await bot_client()
    response = await post_webhook(client, payload("inbound_value_errors_130429.json"))
    assert response.status == 200
    assert await Message.all().count() == 0


async def test_conversation_log_api_needs_the_admin_token(bot_client: BotFactory) -> None:
    client = await bot_client()
    await post_webhook(client, text_notification("15550006666", "wamid.LOG_1", "hi"))

    async def replied() -> bool:
        return await Message.filter(reply_to="wamid.LOG_1", delivery_status=DeliveryStatus.SENT).exists()

    await eventually(replied)
    url = "/api/conversations/+1 555 000 6666/messages"
    assert (await client.get(url)).status == 401
    assert (await client.get(url, headers={"Authorization": "Bearer nope"})).status == 401
    response = await client.get(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status == 200
    log = await response.json()
    assert log["customer_phone"] == "15550006666"
    directions = [m["message_direction"] for m in log["messages"]]
    assert directions == ["inbound", "outbound"]
    assert log["messages"][0]["message_content"] == "hi"
    assert log["messages"][1]["delivery_status"] == "sent"
    assert log["messages"][1]["whatsapp_message_id"].startswith("wamid.FAKE")


async def test_healthz(bot_client: BotFactory) -> None:
    client = await bot_client()
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json()) == {"status": "ok"}


async def test_sandbox_mode_records_and_never_calls_out(
    serve_app: AppFactory, tmp_path: Path, database_url: str, fake_graph: TestServer
) -> None:
    from bot.app import CLIENT, create_app
    from bot.whatsapp.sandbox import SandboxTransport
    from tests.helpers import make_settings

    settings = make_settings(tmp_path, database_url)  # no access token: sandbox
    assert settings.sandbox
    client = await serve_app(create_app(settings))
    assert (await post_webhook(client, text_notification("15550002222", "wamid.SB_1", "hi"))).status == 200

    async def sent() -> bool:
        return await Message.filter(
            message_direction=Direction.OUTBOUND, delivery_status=DeliveryStatus.SENT
        ).exists()

    await eventually(sent)
    transport = client.app[CLIENT].transport
    assert isinstance(transport, SandboxTransport)
    sends = [body for body in transport.requests if "to" in body]
    assert [body["to"] for body in sends] == ["+15550002222"]
    marked = [body for body in transport.requests if body.get("status") == "read"]
    assert [body["message_id"] for body in marked] == ["wamid.SB_1"]  # blue ticks for the customer
    assert await graph_sends(fake_graph) == []


async def test_free_form_reply_outside_the_window_is_refused_before_any_call(
    bot_client: BotFactory, fake_graph: TestServer
) -> None:
    """The example payload was written in June 2025: far outside the 24-hour window by now."""
    client = await bot_client()
    assert (await post_webhook(client, payload("inbound_text.json"))).status == 200

    async def settled() -> bool:
        return await Message.filter(
            reply_to="wamid.IN_TEXT_0001", delivery_status=DeliveryStatus.FAILED
        ).exists()

    await eventually(settled)
    replies = await Message.filter(reply_to="wamid.IN_TEXT_0001")
    assert replies
    for reply in replies:
        assert reply.error_code == 131047
        assert reply.error_title is not None and "24-hour" in reply.error_title
        assert reply.attempts == 0
    assert await graph_sends(fake_graph, every_attempt=True) == []


# ---- one request's input never fails another's, and nothing a customer sends fails the commit


def _first_message(notification: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = notification["entry"][0]["changes"][0]["value"]["messages"][0]
    return message


def _innocents(count: int) -> list[dict[str, Any]]:
    return [text_notification(f"1555009{i:04d}", f"wamid.INNOCENT_{i}", "hi") for i in range(count)]


async def _replied_to(fake_graph: TestServer, phone: str) -> bool:
    return any(send[1] == f"+{phone}" for send in await graph_sends(fake_graph))


async def test_a_long_file_name_is_clipped_and_fails_no_request(bot_client: BotFactory) -> None:
    """Issue 10.1: a filename over Message.file_name's 256 characters made every request of its batch 500."""
    client = await bot_client()
    document = payload("inbound_document.json")
    filename = "f" * 300 + ".pdf"
    _first_message(document)["document"]["filename"] = filename
    responses = await asyncio.gather(*(post_webhook(client, body) for body in [document, *_innocents(10)]))
    assert [response.status for response in responses] == [200] * 11
    row = await Message.get(whatsapp_message_id="wamid.IN_DOC_0001")
    assert row.file_name == filename[:256]
    assert row.payload is not None and row.payload["message"]["document"]["filename"] == filename
    assert await Message.filter(whatsapp_message_id__startswith="wamid.INNOCENT_").count() == 10


async def test_a_long_profile_name_is_clipped_and_the_bot_keeps_answering(
    bot_client: BotFactory, fake_graph: TestServer
) -> None:
    """Issue 10.5: a profile name over Customer.profile_name's 256 characters stalled the inbox for good."""
    client = await bot_client()
    name = "N" * 300
    long_name = text_notification("15550007001", "wamid.LONG_NAME", "hi", name=name)
    assert (await post_webhook(client, long_name)).status == 200
    assert (await post_webhook(client, text_notification("15550007002", "wamid.AFTER", "hi"))).status == 200
    await eventually(lambda: _replied_to(fake_graph, "15550007001"))
    await eventually(lambda: _replied_to(fake_graph, "15550007002"))
    customer = await Customer.get(wa_id="15550007001")
    assert customer.profile_name == name[:256]


@pytest.mark.parametrize("field", ["from", "id"])
async def test_an_id_or_sender_over_its_column_is_refused_alone(bot_client: BotFactory, field: str) -> None:
    """Issue 10.6: a 100 KB `from` or `id` failed the whole batch; it cannot be deduplicated: 400."""
    client = await bot_client()
    bad = text_notification("15550007003", "wamid.HUGE", "hi")
    _first_message(bad)[field] = "9" * 100_000
    responses = await asyncio.gather(*(post_webhook(client, body) for body in [bad, *_innocents(10)]))
    assert [response.status for response in responses] == [400] + [200] * 10
    assert field in await responses[0].text()
    assert await Message.filter(message_direction=Direction.INBOUND).count() == 10


async def test_lone_surrogates_and_nuls_are_replaced_and_answered(
    bot_client: BotFactory, fake_graph: TestServer
) -> None:
    """Issue 10.6: a lone surrogate (and, on PostgreSQL, a NUL) anywhere failed the whole batch."""
    client = await bot_client()
    bad = text_notification("15550007004", "wamid.SURROGATE", "hi \ud800 there\x00", name="Al\udfffex")
    value = bad["entry"][0]["changes"][0]["value"]
    value["messages"][0]["surprise\ud83d"] = {"nul\x00": ["\udc00\ud800"]}
    raw = json.dumps(bad).encode()  # escaped as \ud800, \u0000: what a JSON encoder sends
    assert b"\\ud800" in raw and b"\\u0000" in raw
    responses = await asyncio.gather(
        post_webhook(client, raw), *(post_webhook(client, b) for b in _innocents(5))
    )
    assert [response.status for response in responses] == [200] * 6
    row = await Message.get(whatsapp_message_id="wamid.SURROGATE")
    assert row.message_content == "hi \ufffd there\ufffd"
    assert row.payload is not None
    assert row.payload["profile_name"] == "Al\ufffdex"
    assert row.payload["message"]["surprise\ufffd"] == {"nul\ufffd": ["\ufffd\ufffd"]}
    await eventually(lambda: _replied_to(fake_graph, "15550007004"))
    customer = await Customer.get(wa_id="15550007004")
    assert customer.profile_name == "Al\ufffdex"


@pytest.mark.parametrize("field", ["from", "id"])
async def test_an_empty_id_or_sender_is_refused(bot_client: BotFactory, field: str) -> None:
    """Issue 10.7: an empty id was stored, and every later empty id dropped as its duplicate."""
    client = await bot_client()
    for phone in ("15550007005", "15550007006"):
        empty = text_notification(phone, f"wamid.{phone}", "hi")
        _first_message(empty)[field] = ""
        response = await post_webhook(client, empty)
        assert response.status == 400
        assert field in await response.text()
    assert await Message.all().count() == 0


async def test_more_than_one_signature_header_is_401(bot_client: BotFactory) -> None:
    """Issue 10.8: only the first X-Hub-Signature-256 was checked, so a valid one could carry a bogus one."""
    client = await bot_client()
    raw = json.dumps(text_notification("15550007007", "wamid.TWO_SIGS", "hi")).encode()
    good, bogus = sign(APP_SECRET, raw), "sha256=" + "0" * 64
    for values in ([good, bogus], [bogus, good], [good, good]):
        headers = CIMultiDict([("Content-Type", "application/json")])
        for value in values:
            headers.add(signature.HEADER, value)
        response = await client.post("/webhook", data=raw, headers=headers)
        assert response.status == 401, values
    assert await Message.all().count() == 0
    assert (await post_webhook(client, raw)).status == 200


async def test_status_fields_are_clipped_and_impossible_numbers_dropped(bot_client: BotFactory) -> None:
    """A status string over EarlyStatus.status's 16, an error code no integer column holds (PostgreSQL
    refused it), a huge error title and pricing with extras: the status is parked, within its columns."""
    client = await bot_client()
    failed = payload("status_failed_131026.json")
    status = failed["entry"][0]["changes"][0]["value"]["statuses"][0]
    status["errors"] = [{"code": 2**40, "title": "too big"}, {"code": 131026, "title": "T" * 100_000}]
    status["pricing"] = {"category": "c" * 100_000, "surprise": {"deep": [[[[1]]]]}}
    unknown = payload("status_delivered.json")
    unknown["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] = "s" * 100
    for body in (failed, unknown):
        assert (await post_webhook(client, body)).status == 200
    parked = await EarlyStatus.get(whatsapp_message_id="wamid.OUT_0003")
    assert parked.error_code == 131026
    assert parked.error_title is not None and parked.error_title.startswith("131026 TTT")
    assert len(parked.error_title) <= 1024
    assert parked.pricing is not None and len(parked.pricing["category"]) <= 64
    assert "surprise" not in parked.pricing
    [long_status] = await EarlyStatus.exclude(whatsapp_message_id="wamid.OUT_0003")
    assert long_status.status == "s" * 16


async def test_a_status_id_over_its_column_is_refused(bot_client: BotFactory) -> None:
    client = await bot_client()
    delivered = payload("status_delivered.json")
    delivered["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = "w" * 129
    response = await post_webhook(client, delivered)
    assert response.status == 400
    assert "id" in await response.text()
    assert await EarlyStatus.all().count() == 0
