"""Webhook notification models: every real-shaped example parses; unknown input never crashes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.whatsapp.types import NotificationError, parse_notification
from tests.helpers import payload


def _raw(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("name", "kind", "text", "reply_id"),
    [
        ("inbound_text.json", "text", "Hi, is my order shipped?", None),
        ("inbound_text_reply_context.json", "text", "Yes, this one", None),
        ("inbound_image.json", "image", "Damaged box", None),
        ("inbound_document.json", "document", "Invoice", None),
        ("inbound_audio_voice.json", "audio", None, None),
        ("inbound_sticker.json", "sticker", None, None),
        ("inbound_location.json", "location", "Example Store", None),
        ("inbound_contacts.json", "contacts", "Sam Sample", None),
        ("inbound_interactive_button_reply.json", "interactive", "Reschedule", "reschedule"),
        ("inbound_interactive_list_reply.json", "interactive", "Priority Express", "priority_express"),
        ("inbound_button_template_quick_reply.json", "button", "Stop promotions", "STOP_PROMOS"),
        ("inbound_reaction.json", "reaction", "👍", None),
        ("inbound_reaction_removed.json", "reaction", None, None),
        ("inbound_order.json", "order", "Please deliver after 5pm", None),
        ("inbound_unsupported_131051.json", "unsupported", None, None),
    ],
)
def test_inbound_examples(name: str, kind: str, text: str | None, reply_id: str | None) -> None:
    notification = parse_notification(_raw(payload(name)))
    [item] = notification.inbound_messages()
    assert item.message.kind == kind
    assert item.message.text_content == text
    assert item.message.reply_id == reply_id
    assert item.profile_name == "Alex Example"
    assert item.phone_number_id == "100000000000001"
    assert item.raw == payload(name)["entry"][0]["changes"][0]["value"]["messages"][0]


def test_media_fields_and_timestamp() -> None:
    [item] = parse_notification(_raw(payload("inbound_document.json"))).inbound_messages()
    assert item.message.file_name == "invoice-123.pdf"
    assert item.message.media_id is not None
    assert item.message.media_mime_type == "application/pdf"
    [image] = parse_notification(_raw(payload("inbound_image.json"))).inbound_messages()
    assert image.message.timestamp == datetime.fromtimestamp(1750000100, tz=UTC)


def test_system_message_has_no_profile() -> None:
    [item] = parse_notification(_raw(payload("inbound_system_user_changed_number.json"))).inbound_messages()
    assert item.message.kind == "system"
    assert item.profile_name is None


@pytest.mark.parametrize(
    ("name", "status", "category", "error_code"),
    [
        ("status_sent.json", "sent", "service", None),
        ("status_sent_template_marketing.json", "sent", "marketing", None),
        ("status_delivered.json", "delivered", None, None),
        ("status_read.json", "read", None, None),
        ("status_failed_131026.json", "failed", None, 131026),
        ("status_failed_131047.json", "failed", None, 131047),
    ],
)
def test_status_examples(name: str, status: str, category: str | None, error_code: int | None) -> None:
    notification = parse_notification(_raw(payload(name)))
    assert notification.inbound_messages() == []
    [update] = notification.status_updates()
    assert update.status == status
    assert (update.pricing.category if update.pricing else None) == category
    assert (update.errors[0].code if update.errors else None) == error_code


def test_value_level_errors() -> None:
    notification = parse_notification(_raw(payload("inbound_value_errors_130429.json")))
    [error] = notification.errors()
    assert error.code == 130429
    assert error.summary == "130429 Rate limit hit: Cloud API message throughput has been reached."


def test_unknown_types_fields_and_broken_type_objects_parse_as_unsupported() -> None:
    data = payload("inbound_text.json")
    value = data["entry"][0]["changes"][0]["value"]
    value["future_field"] = [1, 2]
    base = {"from": "15550002222", "timestamp": "1750000000"}
    value["messages"] = [
        {**base, "id": "w1", "type": "poll", "poll": {"q": "?"}},
        {**base, "id": "w2", "type": "interactive", "interactive": {"type": "button"}},
        {**base, "id": "w3", "type": "image", "image": {"caption": "no id"}},
        {**base, "id": "w4", "type": "text", "text": {"body": "fine"}, "brand_new": True},
    ]
    kinds = [item.message.kind for item in parse_notification(_raw(data)).inbound_messages()]
    assert kinds == ["unsupported", "unsupported", "unsupported", "text"]


def test_batches_flatten_in_order_and_other_fields_are_ignored() -> None:
    first, second = payload("inbound_text.json"), payload("inbound_image.json")
    first["entry"].append(second["entry"][0])
    first["entry"][0]["changes"].append({"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}})
    first["entry"].append(payload("status_read.json")["entry"][0])
    notification = parse_notification(_raw(first))
    assert [i.message.id for i in notification.inbound_messages()] == [
        "wamid.IN_TEXT_0001",
        "wamid.IN_IMG_0001",
    ]
    assert [s.status for s in notification.status_updates()] == ["read"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{nope", "invalid JSON"),
        (b"\xff\xfe", "invalid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"object": "page", "entry": []}', "whatsapp_business_account"),
        (b'{"object": "whatsapp_business_account", "entry": {}}', "entry"),
        (
            b'{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":'
            b'{"metadata":{"phone_number_id":"1"},"messages":[{"id":"x","type":"text"}]}}]}]}',
            "from",
        ),
    ],
)
def test_malformed_notifications_are_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(NotificationError, match=reason):
        parse_notification(body)
