"""Webhook notification models: every real-shaped example parses; unknown input never crashes."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.whatsapp.notifications import (
    MAX_DEPTH,
    InboundMessage,
    InboundText,
    Notification,
    NotificationError,
    parse_notification,
)
from tests.helpers import INBOUND_KINDS, PAYLOADS, payload

USER = "15550002222"
PHONE_NUMBER_ID = "100000000000001"


def _files(prefix: str) -> list[str]:
    return sorted(path.name for path in PAYLOADS.glob(f"{prefix}*.json"))


def _raw(data: Any) -> bytes:
    return json.dumps(data).encode()


def _first_message(data: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = data["entry"][0]["changes"][0]["value"]["messages"][0]
    return message


def _with_messages(*messages: dict[str, Any], contacts: list[Any] | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
        "messages": list(messages),
    }
    if contacts is not None:
        value["contacts"] = contacts
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "200000000000001", "changes": [{"field": "messages", "value": value}]}],
    }


def _message(wamid: str, type_: str, **fields: Any) -> dict[str, Any]:
    return {"from": USER, "id": wamid, "timestamp": "1750000000", "type": type_, **fields}


def _only(data: dict[str, Any]) -> InboundMessage:
    [item] = parse_notification(_raw(data)).inbound_messages()
    return item.message


# ---- the real-shaped examples


@pytest.mark.parametrize(
    ("name", "kind", "text", "reply_id"),
    [
        ("inbound_text.json", "text", "Hi, is my order shipped?", None),
        ("inbound_text_reply_context.json", "text", "Yes, this one", None),
        ("inbound_text_forwarded.json", "text", "Forwarded text", None),
        ("inbound_text_frequently_forwarded.json", "text", "Forwarded many times", None),
        ("inbound_image.json", "image", "Damaged box", None),
        ("inbound_document.json", "document", "Invoice", None),
        ("inbound_audio_voice.json", "audio", None, None),
        ("inbound_audio_file.json", "audio", None, None),
        ("inbound_video.json", "video", "Unboxing", None),
        ("inbound_sticker.json", "sticker", None, None),
        ("inbound_location.json", "location", "Example Store", None),
        ("inbound_contacts.json", "contacts", "Sam Sample", None),
        ("inbound_interactive_button_reply.json", "interactive", "Reschedule", "reschedule"),
        ("inbound_interactive_list_reply.json", "interactive", "Priority Express", "priority_express"),
        ("inbound_interactive_nfm_reply.json", "interactive", None, None),
        ("inbound_button_template_quick_reply.json", "button", "Stop promotions", "STOP_PROMOS"),
        ("inbound_reaction.json", "reaction", "👍", None),
        ("inbound_reaction_removed.json", "reaction", None, None),
        ("inbound_order.json", "order", "Please deliver after 5pm", None),
        ("inbound_unsupported_131051.json", "unsupported", None, None),
    ],
)
def test_inbound_examples(name: str, kind: str, text: str | None, reply_id: str | None) -> None:
    data = payload(name)
    notification = parse_notification(_raw(data))
    [item] = notification.inbound_messages()
    assert item.message.kind == kind
    assert item.message.text_content == text
    assert item.message.reply_id == reply_id
    assert item.message.from_ == USER
    assert item.profile_name == "Alex Example"
    assert item.phone_number_id == PHONE_NUMBER_ID
    assert item.raw == _first_message(data)
    assert notification.status_updates() == []
    assert notification.errors() == []


@pytest.mark.parametrize("name", _files("inbound_"))
def test_every_inbound_file_parses(name: str) -> None:
    data = payload(name)
    notification = parse_notification(_raw(data))
    raw_messages = [
        message
        for entry in data["entry"]
        for change in entry["changes"]
        for message in change["value"].get("messages", [])
    ]
    items = notification.inbound_messages()
    assert [item.raw for item in items] == raw_messages
    for item in items:
        message = item.message
        assert message.kind in INBOUND_KINDS
        assert message.kind == message.type or message.kind == "unsupported"
        assert message.timestamp.tzinfo is UTC
        # the inbox rebuilds the message from the stored raw JSON: same reading
        again = InboundMessage.model_validate(item.raw)
        assert (again.kind, again.text_content, again.reply_id) == (
            message.kind,
            message.text_content,
            message.reply_id,
        )


def test_payload_folder_has_the_examples() -> None:
    assert len(_files("inbound_")) >= 20
    assert len(_files("status_")) >= 8


def test_raw_is_the_received_object_itself() -> None:
    data = payload("inbound_text.json")
    [item] = Notification.model_validate(data).inbound_messages()
    assert item.raw is _first_message(data)


def test_media_fields_and_timestamp() -> None:
    document = _only(payload("inbound_document.json"))
    assert document.file_name == "invoice-123.pdf"
    assert document.media_id == "300000000000002"
    assert document.media_mime_type == "application/pdf"

    image = _only(payload("inbound_image.json"))
    assert image.timestamp == datetime(2025, 6, 15, 15, 8, 20, tzinfo=UTC)
    assert image.timestamp == datetime.fromtimestamp(1750000100, tz=UTC)
    assert image.media_id == "300000000000001"
    assert image.media_mime_type == "image/jpeg"
    assert image.image is not None and image.image.url is not None
    assert image.file_name is None

    voice = _only(payload("inbound_audio_voice.json"))
    assert voice.audio is not None and voice.audio.voice is True
    assert voice.media_mime_type == "audio/ogg; codecs=opus"
    assert voice.media_id == "300000000000003"

    sticker = _only(payload("inbound_sticker.json"))
    assert sticker.sticker is not None and sticker.sticker.animated is False
    assert sticker.media_mime_type == "image/webp"

    video = _only(payload("inbound_video.json"))
    assert (video.media_id, video.media_mime_type) == ("300000000000005", "video/mp4")

    text = _only(payload("inbound_text.json"))
    assert (text.media_id, text.media_mime_type, text.file_name) == (None, None, None)


def test_context_reply_and_forwards() -> None:
    reply = _only(payload("inbound_text_reply_context.json"))
    assert reply.context is not None
    assert (reply.context.from_, reply.context.id) == ("15550001111", "wamid.OUT_0001")
    assert not reply.context.forwarded

    forwarded = _only(payload("inbound_text_forwarded.json"))
    assert forwarded.context is not None and forwarded.context.forwarded is True

    many = _only(payload("inbound_text_frequently_forwarded.json"))
    assert many.context is not None and many.context.frequently_forwarded is True

    button = _only(payload("inbound_interactive_button_reply.json"))
    assert button.context is not None and button.context.id == "wamid.OUT_BTN_0001"


def test_flow_completion() -> None:
    message = _only(payload("inbound_interactive_nfm_reply.json"))
    assert message.kind == "interactive"
    assert message.flow_response == {"flow_token": "FLOW_TOKEN_1", "rating": "5"}
    assert message.interactive is not None and message.interactive.nfm_reply is not None
    assert message.interactive.nfm_reply.body == "Sent"
    assert _only(payload("inbound_text.json")).flow_response is None


def test_list_reply_keeps_description_and_location_its_coordinates() -> None:
    listed = _only(payload("inbound_interactive_list_reply.json"))
    assert listed.interactive is not None and listed.interactive.list_reply is not None
    assert listed.interactive.list_reply.description == "Next day"

    place = _only(payload("inbound_location.json"))
    assert place.location is not None
    assert (place.location.latitude, place.location.longitude) == (37.4611978, -122.2164385)
    pin = _only(_with_messages(_message("w", "location", location={"latitude": 1.5, "longitude": -2.25})))
    assert (pin.kind, pin.text_content) == ("location", "1.5,-2.25")


def test_reaction_and_order_objects() -> None:
    reaction = _only(payload("inbound_reaction.json"))
    assert reaction.reaction is not None and reaction.reaction.message_id == "wamid.OUT_0001"
    removed = _only(payload("inbound_reaction_removed.json"))
    assert removed.reaction is not None and removed.reaction.emoji is None

    order = _only(payload("inbound_order.json"))
    assert order.order is not None
    [product] = order.order.product_items
    assert (product.product_retailer_id, product.quantity, product.item_price) == ("SKU-123", 2, 9.99)


def test_system_message_has_no_profile() -> None:
    notification = parse_notification(_raw(payload("inbound_system_user_changed_number.json")))
    [item] = notification.inbound_messages()
    assert item.message.kind == "system"
    assert item.profile_name is None
    assert item.message.text_content == "User Alex Example changed from 15550002222 to 15550004444"
    assert item.message.system is not None and item.message.system.wa_id == "15550004444"


def test_unsupported_131051_keeps_its_error() -> None:
    message = _only(payload("inbound_unsupported_131051.json"))
    assert message.kind == "unsupported"
    assert message.unsupported is not None and message.unsupported.type == "poll_creation"
    [error] = message.errors
    assert error.code == 131051
    assert error.details == "Message type is currently not supported."
    assert error.summary == "131051 Message type unknown: Message type is currently not supported."


@pytest.mark.parametrize(
    ("name", "status", "category", "error_code"),
    [
        ("status_sent.json", "sent", "service", None),
        ("status_sent_template_marketing.json", "sent", "marketing", None),
        ("status_sent_legacy_v23_conversation.json", "sent", "service", None),
        ("status_delivered.json", "delivered", None, None),
        ("status_read.json", "read", None, None),
        ("status_failed_131026.json", "failed", None, 131026),
        ("status_failed_131047.json", "failed", None, 131047),
        ("status_failed_131049.json", "failed", None, 131049),
    ],
)
def test_status_examples(name: str, status: str, category: str | None, error_code: int | None) -> None:
    data = payload(name)
    notification = parse_notification(_raw(data))
    assert notification.inbound_messages() == []
    assert notification.errors() == []
    [update] = notification.status_updates()
    raw = data["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert update.id == raw["id"]
    assert update.status == status
    assert update.recipient_id == USER
    assert update.timestamp == datetime.fromtimestamp(int(raw["timestamp"]), tz=UTC)
    assert (update.pricing.category if update.pricing else None) == category
    assert (update.errors[0].code if update.errors else None) == error_code


@pytest.mark.parametrize("name", _files("status_"))
def test_every_status_file_parses(name: str) -> None:
    notification = parse_notification(_raw(payload(name)))
    assert notification.status_updates()
    assert all(update.timestamp.tzinfo is UTC for update in notification.status_updates())


def test_status_details() -> None:
    [marketing] = parse_notification(_raw(payload("status_sent_template_marketing.json"))).status_updates()
    assert marketing.biz_opaque_callback_data == "order-123"
    assert marketing.pricing is not None
    assert (marketing.pricing.billable, marketing.pricing.pricing_model, marketing.pricing.type) == (
        True,
        "PMP",
        "regular",
    )
    assert marketing.pricing.model_dump(exclude_none=True) == {
        "billable": True,
        "pricing_model": "PMP",
        "type": "regular",
        "category": "marketing",
    }
    assert marketing.conversation is None

    [legacy] = parse_notification(_raw(payload("status_sent_legacy_v23_conversation.json"))).status_updates()
    assert legacy.conversation is not None and legacy.conversation["origin"] == {"type": "service"}

    [failed] = parse_notification(_raw(payload("status_failed_131047.json"))).status_updates()
    [error] = failed.errors
    assert error.title == "Re-engagement message"
    assert error.href == "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
    assert error.summary.startswith("131047 Re-engagement message: Message failed to send because more")
    assert "\n" not in error.summary


def test_unknown_status_value_and_broken_optional_parts_still_parse() -> None:
    status = {
        "id": "wamid.X",
        "status": "deleted_by_meta",
        "timestamp": "1750000000",
        "pricing": "not an object",
        "conversation": 7,
        "errors": [{"title": "no code"}, {"code": 131000, "title": "Something went wrong"}],
        "recipient_type": "group",
    }
    data = _with_messages()
    data["entry"][0]["changes"][0]["value"]["statuses"] = [status]
    [update] = parse_notification(_raw(data)).status_updates()
    assert update.status == "deleted_by_meta"
    assert update.pricing is None
    assert update.conversation is None
    assert update.recipient_id is None
    assert [error.code for error in update.errors] == [131000]
    assert update.model_extra == {"recipient_type": "group"}


def test_value_level_errors() -> None:
    notification = parse_notification(_raw(payload("inbound_value_errors_130429.json")))
    [error] = notification.errors()
    assert error.code == 130429
    assert error.details == "Cloud API message throughput has been reached."
    assert error.summary == "130429 Rate limit hit: Cloud API message throughput has been reached."
    assert notification.inbound_messages() == []
    assert notification.status_updates() == []


def test_error_summary_without_details_or_title() -> None:
    data = _with_messages()
    data["entry"][0]["changes"][0]["value"]["errors"] = [
        {"code": 1, "title": "Same", "message": "Same", "error_data": {"details": "Same"}},
        {"code": 2, "message": "Only a message"},
        {"code": 3},
    ]
    summaries = [error.summary for error in parse_notification(_raw(data)).errors()]
    assert summaries == ["1 Same", "2 Only a message", "3 error"]


# ---- tolerance: unknown types, unknown fields, broken type objects


def test_unknown_types_fields_and_broken_type_objects_parse_as_unsupported() -> None:
    data = payload("inbound_text.json")
    value = data["entry"][0]["changes"][0]["value"]
    value["future_field"] = [1, 2]
    value["messages"] = [
        _message("w1", "poll", poll={"question": "?"}),
        _message("w2", "interactive", interactive={"type": "button"}),
        _message("w3", "image", image={"caption": "no id"}),
        _message("w4", "text", text={"body": "fine"}, brand_new=True),
        _message("w5", "unknown", errors=[{"code": 131051, "title": "Message type unknown"}]),
        _message("w6", "edit", edit={"original_message_id": "wamid.1"}),
        _message("w7", "text"),
        _message("w8", "contacts", contacts=[]),
        _message(
            "w9", "interactive", interactive={"type": "button_reply", "button_reply": {"title": "no id"}}
        ),
        _message("w10", "reaction", reaction="👍"),
    ]
    items = parse_notification(_raw(data)).inbound_messages()
    assert [item.message.kind for item in items] == [
        "unsupported",
        "unsupported",
        "unsupported",
        "text",
        "unsupported",
        "unsupported",
        "unsupported",
        "unsupported",
        "unsupported",
        "unsupported",
    ]
    assert [item.message.text_content for item in items] == [None, None, None, "fine", *[None] * 6]
    assert all(item.message.reply_id is None for item in items)
    assert items[3].message.model_extra == {"brand_new": True}
    assert items[0].raw["poll"] == {"question": "?"}
    assert items[4].message.errors[0].code == 131051
    assert all(item.profile_name == "Alex Example" for item in items)


def test_a_list_keeps_the_items_that_fit_and_anything_else_becomes_empty() -> None:
    good = {"wa_id": USER, "profile": {"name": "Kept"}}
    contacts = [
        "not an object",
        {"phones": [{"wa_id": "15550004444"}, 7, {"wa_id": ""}, {"phone": "+1 555"}]},
        {"name": {"formatted_name": ["no"]}, "phones": "not a list"},
    ]
    order = {"product_items": [{"quantity": "many"}, {"product_retailer_id": "p1", "quantity": 2}, None]}
    data = _with_messages(
        _message("w1", "contacts", contacts=contacts),
        _message("w2", "order", order=order, errors=[{"code": "x"}, {"code": 131000}]),
        contacts=[None, good, {"wa_id": 5, "profile": "no"}],
    )
    first, second = parse_notification(_raw(data)).inbound_messages()
    assert first.message.kind == "contacts"
    phones = first.message.contacts[0].phones
    assert [(phone.wa_id, phone.phone) for phone in phones] == [
        ("15550004444", None),
        (None, None),
        (None, "+1 555"),
    ]
    assert first.message.contacts[1].name is None and first.message.contacts[1].phones == []
    assert first.profile_name == "Kept"  # the sender entry that does not fit is dropped beside it
    assert second.message.order is not None
    assert [item.product_retailer_id for item in second.message.order.product_items] == ["p1"]
    assert [error.code for error in second.message.errors] == [131000]
    assert second.raw["order"] == order  # the raw JSON keeps everything


def test_a_message_with_broken_type_objects_parses_beside_a_good_one() -> None:
    data = _with_messages(
        _message(
            "w1", "image", image={"caption": "no id"}, context=[1], referral="x", timestamp="1750000000"
        ),
        _message("w2", "text", text={"body": "fine"}),
    )
    broken, good = (item.message for item in parse_notification(_raw(data)).inbound_messages())
    assert (broken.kind, broken.image, broken.context, broken.referral) == ("unsupported", None, None, None)
    assert (good.kind, good.text_content) == ("text", "fine")


EMPTY = b'{"object": "whatsapp_business_account", "entry": []}'


@pytest.mark.parametrize(
    "body",
    [b" " + EMPTY + b"\r\n", b"\xef\xbb\xbf" + EMPTY, EMPTY.decode().encode("utf-16"), EMPTY],
)
def test_a_body_decodes_whatever_surrounds_or_encodes_it(body: bytes) -> None:
    assert parse_notification(body).entry == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (EMPTY + b" x", "Extra data: line 1 column 54"),
        (EMPTY + b"{}", "Extra data: line 1 column 53"),
        (EMPTY.replace(b"[]", b"[}"), "Expecting value: line 1 column 51"),
        (EMPTY.replace(b"[]", b"[1e400]"), "number out of range: 1e400"),
    ],
)
def test_a_body_that_is_not_one_json_object_is_refused_with_json_decodes_reason(
    body: bytes, reason: str
) -> None:
    with pytest.raises(NotificationError) as caught:
        parse_notification(body)
    assert str(caught.value).startswith("invalid JSON: ")
    assert reason in str(caught.value)


def test_interactive_without_a_reply_object_is_unsupported() -> None:
    message = _only(_with_messages(_message("w", "interactive", interactive={"type": "button_reply"})))
    assert message.kind == "unsupported"
    assert (message.text_content, message.reply_id, message.flow_response) == (None, None, None)


@pytest.mark.parametrize("type_", sorted(INBOUND_KINDS))
@pytest.mark.parametrize("body", [None, 1, "x", [], {}, [1, "a", None], {"id": 5, "body": ["no"]}])
def test_garbage_type_objects_never_raise(type_: str, body: Any) -> None:
    message = _only(_with_messages(_message("w", type_, **{type_: body}, context=body, referral=body)))
    assert message.kind in {type_, "unsupported"}
    # every reading is safe whatever came in
    _ = (message.text_content, message.reply_id, message.media_id, message.media_mime_type)
    _ = (message.file_name, message.flow_response, message.raw)


def test_new_fields_inside_type_objects_are_kept() -> None:
    message = _only(
        _with_messages(_message("w", "image", image={"id": "m1", "mime_type": "image/png", "blur": "LKO2"}))
    )
    assert message.kind == "image"
    assert message.image is not None and message.image.model_extra == {"blur": "LKO2"}


def test_other_fields_keep_their_own_shapes_and_are_ignored() -> None:
    data = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "200000000000001",
                "time": 1750000000,
                "changes": [
                    {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}},
                    {
                        "field": "message_template_status_update",
                        "value": {"event": "APPROVED", "message_template_id": 1},
                    },
                    {"field": "future_thing", "value": ["not", "an", "object"]},
                ],
            }
        ],
    }
    notification = parse_notification(_raw(data))
    assert notification.inbound_messages() == []
    assert notification.status_updates() == []
    assert notification.errors() == []
    assert notification.entry[0].changes[0].value == {"event": "VERIFIED_ACCOUNT"}


# ---- batches and senders


def test_batch_flattens_in_order() -> None:
    def value(*wamids: str, statuses: tuple[str, ...] = ()) -> dict[str, Any]:
        return {
            "metadata": {"phone_number_id": f"pn-{wamids[0] if wamids else statuses[0]}"},
            "contacts": [{"profile": {"name": f"name-{w}"}, "wa_id": f"u-{w}"} for w in wamids],
            "messages": [
                {**_message(w, "text", text={"body": f"body-{w}"}), "from": f"u-{w}"} for w in wamids
            ],
            "statuses": [{"id": s, "status": "read", "timestamp": "1750000000"} for s in statuses],
        }

    data = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "A",
                "changes": [
                    {"field": "messages", "value": value("a1", "a2", "a3")},
                    {"field": "account_update", "value": {"event": "X"}},
                    {"field": "messages", "value": value("b1", "b2", statuses=("s1", "s2"))},
                ],
            },
            {
                "id": "B",
                "changes": [
                    {"field": "messages", "value": value(statuses=("s3",))},
                    {"field": "messages", "value": value("c1", "c2")},
                    {"field": "messages", "value": value("d1", "d2", "d3", "d4")},
                ],
            },
        ],
    }
    items = parse_notification(_raw(data)).inbound_messages()
    wamids = ["a1", "a2", "a3", "b1", "b2", "c1", "c2", "d1", "d2", "d3", "d4"]
    assert [item.message.id for item in items] == wamids
    assert [item.message.text_content for item in items] == [f"body-{w}" for w in wamids]
    # each message gets its own sender's name and its own change's number
    assert [item.profile_name for item in items] == [f"name-{w}" for w in wamids]
    assert [item.phone_number_id for item in items] == [f"pn-{w[0]}1" for w in wamids]
    assert [s.id for s in parse_notification(_raw(data)).status_updates()] == ["s1", "s2", "s3"]


def test_profile_name_matching() -> None:
    alex = {"profile": {"name": "Alex"}, "wa_id": USER}
    sam = {"profile": {"name": "Sam"}, "wa_id": "15550003333"}
    message = _message("w", "text", text={"body": "hi"})

    def name(contacts: list[Any] | None) -> str | None:
        [item] = parse_notification(_raw(_with_messages(message, contacts=contacts))).inbound_messages()
        return item.profile_name

    assert name([sam, alex]) == "Alex"
    assert name([sam]) == "Sam"  # the only contact, even when wa_id and from differ
    assert name([sam, {"profile": {"name": "Kim"}, "wa_id": "1"}]) is None
    assert name(None) is None
    assert name([{"wa_id": USER}]) is None
    assert name([{"profile": {"name": ""}, "wa_id": USER}]) is None
    assert name([{"profile": "odd", "wa_id": USER}, "odd", alex]) == "Alex"


# ---- round trips and models built in code


def test_message_built_in_code_has_a_meta_shaped_raw() -> None:
    message = InboundMessage(
        from_=USER, id="w", timestamp=1750000000, type="text", text=InboundText(body="hi")
    )
    assert message.raw == {
        "from": USER,
        "id": "w",
        "timestamp": "1750000000",
        "type": "text",
        "text": {"body": "hi"},
    }
    assert InboundMessage.model_validate(message.raw).model_dump() == message.model_dump()


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("1750000000", datetime(2025, 6, 15, 15, 6, 40, tzinfo=UTC)),
        (1750000000, datetime(2025, 6, 15, 15, 6, 40, tzinfo=UTC)),
        ("2025-06-15T15:06:40Z", datetime(2025, 6, 15, 15, 6, 40, tzinfo=UTC)),
        ("2025-06-15T17:06:40+02:00", datetime(2025, 6, 15, 15, 6, 40, tzinfo=UTC)),
    ],
)
def test_timestamps_are_utc(timestamp: Any, expected: datetime) -> None:
    message = _only(_with_messages({**_message("w", "text", text={"body": "x"}), "timestamp": timestamp}))
    assert message.timestamp == expected
    assert message.timestamp.tzinfo is UTC


# ---- what is refused


MESSAGE_ENVELOPE = (
    b'{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":'
    b'{"metadata":{"phone_number_id":"1"},"messages":[%b]}}]}]}'
)
OVERFLOW = b"9" * 30  # digits, but no datetime can hold them


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{nope", "invalid JSON"),
        (b"", "invalid JSON"),
        (b"\xff\xfe", "invalid JSON"),
        (b"[" * 100_000, "invalid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"whatsapp_business_account"', "not a JSON object"),
        (b'{"entry": []}', "whatsapp_business_account"),
        (b'{"object": "page", "entry": []}', "whatsapp_business_account"),
        (b'{"object": "whatsapp_business_account"}', "entry is not a list"),
        (b'{"object": "whatsapp_business_account", "entry": {}}', "entry is not a list"),
        (b'{"object": "whatsapp_business_account", "entry": ["x"]}', "entry.0"),
        (b'{"object": "whatsapp_business_account", "entry": [{"changes": {}}]}', "changes"),
        (
            b'{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{}}]}]}',
            "metadata",
        ),
        (MESSAGE_ENVELOPE % b'{"id":"x","type":"text","timestamp":"1"}', "from"),
        (MESSAGE_ENVELOPE % b'{"from":"1","type":"text","timestamp":"1"}', "id"),
        (MESSAGE_ENVELOPE % b'{"from":"1","id":"x","timestamp":"1"}', "type"),
        (MESSAGE_ENVELOPE % b'{"from":"1","id":"x","type":"text"}', "timestamp"),
        (MESSAGE_ENVELOPE % b'{"from":"1","id":"x","type":"text","timestamp":"soon"}', "timestamp"),
        (
            MESSAGE_ENVELOPE % (b'{"from":"1","id":"x","type":"text","timestamp":"%b"}' % OVERFLOW),
            "timestamp",
        ),
        (MESSAGE_ENVELOPE % b'"a string"', "messages.0"),
    ],
)
def test_malformed_notifications_are_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(NotificationError, match=reason) as caught:
        parse_notification(body)
    assert isinstance(caught.value, ValueError)
    assert len(str(caught.value)) < 300


def test_a_status_without_its_envelope_fields_is_refused() -> None:
    data = _with_messages()
    data["entry"][0]["changes"][0]["value"]["statuses"] = [{"id": "w", "timestamp": "1750000000"}]
    with pytest.raises(NotificationError, match="status"):
        parse_notification(_raw(data))


def test_parsing_does_not_change_the_input() -> None:
    data = payload("inbound_interactive_button_reply.json")
    before = copy.deepcopy(data)
    Notification.model_validate(data).inbound_messages()
    assert data == before


# ---- limits: keys refused, display data clipped, what no database stores replaced (issue 10)


def _status(**fields: Any) -> dict[str, Any]:
    data = _with_messages()
    status = {"id": "wamid.OUT", "status": "sent", "timestamp": "1750000000", **fields}
    data["entry"][0]["changes"][0]["value"]["statuses"] = [status]
    return data


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", ""),
        ("id", "w" * 129),
        ("id", "wamid.\ud800"),
        ("id", "wamid.\x00"),
        ("from", ""),
        ("from", "1" * 33),
        ("from", "1555\udfff"),
    ],
)
def test_a_message_key_that_cannot_be_stored_or_deduplicated_is_refused(field: str, value: str) -> None:
    data = _with_messages({**_message("wamid.OK", "text", text={"body": "hi"}), field: value})
    with pytest.raises(NotificationError, match=rf"messages\.0\.{field}"):
        parse_notification(_raw(data))


@pytest.mark.parametrize("value", ["", "w" * 129, "\ud800"])
def test_a_status_id_that_cannot_be_stored_is_refused(value: str) -> None:
    with pytest.raises(NotificationError, match=r"statuses\.0\.id"):
        parse_notification(_raw(_status(id=value)))


def test_keys_at_their_column_sizes_are_kept() -> None:
    wamid, phone = "w" * 128, "1" * 32
    data = _with_messages({**_message(wamid, "text", text={"body": "hi"}), "from": phone})
    message = _only(data)
    assert (message.id, message.from_) == (wamid, phone)


def test_display_data_is_clipped_to_its_column_and_the_raw_json_keeps_it() -> None:
    name, filename, text = "N" * 300, "f" * 300, "t" * 5000
    data = _with_messages(
        _message("w1", "document", document={"id": "m1", "filename": filename, "caption": text}),
        _message("w2", "text", text={"body": text}),
        contacts=[{"profile": {"name": name}, "wa_id": USER}],
    )
    document, message = parse_notification(_raw(data)).inbound_messages()
    assert document.profile_name == name[:256]
    assert document.message.file_name == filename[:256]
    assert document.message.text_content == text[:4096]
    assert message.message.text_content == text[:4096]
    assert document.raw["document"]["filename"] == filename
    assert message.raw["text"]["body"] == text


def test_status_strings_error_codes_and_pricing_are_limited() -> None:
    data = _status(
        status="s" * 40,
        errors=[{"code": 2**31, "title": "no int column holds it"}, {"code": 131026, "title": "T" * 5000}],
        pricing={"category": "c" * 100, "type": "regular", "billable": True, "extra": {"any": [[1]]}},
    )
    [status] = parse_notification(_raw(data)).status_updates()
    assert status.status == "s" * 16
    [error] = status.errors  # the impossible code is dropped, as any entry that does not fit
    assert error.code == 131026 and len(error.summary) == 1024
    assert status.pricing is not None
    assert status.pricing.column() == {"billable": True, "type": "regular", "category": "c" * 64}


def test_nuls_and_lone_surrogates_become_replacement_characters_everywhere() -> None:
    data = _with_messages(
        _message(
            "w",
            "text",
            text={"body": "a\x00b\ud800c\udc00d 😀"},
            **{"odd\udbff": {"k\x00": ["\ud800\ud800"]}},
        ),
        contacts=[{"profile": {"name": "Al\udfffex"}, "wa_id": USER}],
    )
    raw = _raw(data)  # json.dumps escapes them: \u0000, \ud800 and the emoji's pair \ud83d\ude00
    assert b"\\ud83d\\ude00" in raw
    [item] = parse_notification(raw).inbound_messages()
    assert item.message.text_content == "a\ufffdb\ufffdc\ufffdd 😀"
    assert item.profile_name == "Al\ufffdex"
    assert item.raw["odd\ufffd"] == {"k\ufffd": ["\ufffd\ufffd"]}
    json.dumps(item.raw, ensure_ascii=False).encode()  # encodes: nothing left that UTF-8 refuses


def test_a_surrogate_sent_as_its_own_bytes_is_replaced() -> None:
    raw = _raw(_with_messages(_message("w", "text", text={"body": "SURROGATE"})))
    raw = raw.replace(b"SURROGATE", b"a\xed\xa0\x80b")  # U+D800 encoded as UTF-8 would encode it
    assert _first_message(json.loads(raw))["text"]["body"] == "a\ud800b"  # json alone lets it through
    [item] = parse_notification(raw).inbound_messages()
    assert item.message.text_content == "a\ufffdb"
    utf16 = json.dumps(_with_messages(_message("w", "text", text={"body": "a\ud800b"})), ensure_ascii=False)
    [item] = parse_notification(utf16.encode("utf-16-le", "surrogatepass")).inbound_messages()
    assert item.message.text_content == "a\ufffdb"


def test_strings_without_such_characters_are_left_alone() -> None:
    text = "hola 😀 ¿qué tal? 한국어 \\ud800 as text"
    [item] = parse_notification(
        _raw(_with_messages(_message("w", "text", text={"body": text})))
    ).inbound_messages()
    assert item.message.text_content == text


def test_flow_answers_are_checked_like_the_notification() -> None:
    def answers(response_json: str) -> dict[str, Any] | None:
        nfm = {"name": "flow", "response_json": response_json}
        message = _message("w", "interactive", interactive={"type": "nfm_reply", "nfm_reply": nfm})
        return _only(_with_messages(message)).flow_response

    assert answers(json.dumps({"device": "a\x00b\ud800", "flow_token": "t"})) == {
        "device": "a\ufffdb\ufffd",
        "flow_token": "t",
    }
    assert answers(json.dumps({"deep": json.loads("[" * 70 + "]" * 70)})) is None
    assert answers('{"price": NaN}') is None


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def test_json_nested_deeper_than_the_limit_is_refused() -> None:
    # the message object sits 7 deep (body, entry, list, change, value, messages, message)
    fine = _with_messages(_message("w", "text", text={"body": "x"}, extra=_nested(MAX_DEPTH - 8)))
    assert parse_notification(_raw(fine)).inbound_messages()
    deep = _with_messages(_message("w", "text", text={"body": "x"}, extra=_nested(MAX_DEPTH)))
    with pytest.raises(NotificationError, match="nested deeper"):
        parse_notification(_raw(deep))


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999"])
def test_numbers_no_float_holds_are_refused(number: bytes) -> None:
    raw = _raw(_with_messages(_message("w", "text", text={"body": "x"}, extra="NUMBER")))
    with pytest.raises(NotificationError, match="invalid JSON"):
        parse_notification(raw.replace(b'"NUMBER"', number))


@pytest.mark.parametrize(
    "timestamp",
    [
        -1,
        "-1",
        2**32,
        str(2**32),
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "1969-12-31T23:59:59Z",
    ],
)
def test_timestamps_outside_unix_seconds_are_refused(timestamp: Any) -> None:
    data = _with_messages({**_message("w", "text", text={"body": "x"}), "timestamp": timestamp})
    with pytest.raises(NotificationError, match="timestamp"):
        parse_notification(_raw(data))
    with pytest.raises(NotificationError, match="timestamp"):
        parse_notification(_raw(_status(timestamp=timestamp)))


# --- user_preferences (marketing stop / resume)


def test_user_preferences_parse_with_their_user_and_time() -> None:
    stop, resume, by_bsuid = (
        parse_notification(_raw(payload(f"user_preferences_marketing_{name}.json"))).user_preferences()
        for name in ("stop", "resume", "stop_bsuid")
    )
    assert [(i.phone, i.bsuid, i.marketing_stop, i.at) for i in (*stop, *resume, *by_bsuid)] == [
        ("15550003333", None, True, datetime.fromtimestamp(1750004000, UTC)),
        ("15550003333", None, False, datetime.fromtimestamp(1750004600, UTC)),
        (None, "US.13491208655302741918", True, datetime.fromtimestamp(1750004000, UTC)),
    ]


def test_user_preferences_are_limited_at_the_boundary_and_never_refused() -> None:
    data = copy.deepcopy(payload("user_preferences_marketing_stop.json"))
    value = data["entry"][0]["changes"][0]["value"]
    entry = value["user_preferences"][0]
    entry.update(detail="d" * 100_000, value="STOP" + "p" * 100_000, timestamp=2**40, category=None)
    del entry["wa_id"]  # the only contact names the user
    value["user_preferences"].append("not an entry")
    [item] = parse_notification(_raw(data)).user_preferences()
    assert item.phone == "15550003333" and item.at is None  # a bad time: the intake uses its own
    assert (
        item.detail is not None
        and len(item.detail) == 128
        and item.value is not None
        and len(item.value) == 64
    )
    assert item.marketing_stop is None  # no category: not a marketing stop

    data["entry"][0]["changes"][0]["value"] = "garbage"
    assert parse_notification(_raw(data)).user_preferences() == []
