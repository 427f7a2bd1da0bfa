"""Business-scoped user IDs at the Cloud API boundary: what the webhook parser reads from them, how a
message goes to one, and the error for a message that cannot."""

from __future__ import annotations

import json

import pytest

from bot.whatsapp.errors import BsuidRecipientNotSupported, error_class_for
from bot.whatsapp.notifications import NotificationError, parse_notification
from bot.whatsapp.outbound import ContactRequest, Text, to_request_body
from tests.helpers import payload

BSUID = "US.13491208655302741918"


def test_a_message_with_only_a_bsuid_names_its_sender_by_it() -> None:
    [item] = parse_notification(
        json.dumps(payload("inbound_text_bsuid_only.json")).encode()
    ).inbound_messages()
    assert item.message.from_ is None and item.message.address == BSUID
    assert (item.sender_ids.phone, item.sender_ids.bsuid, item.sender_ids.username) == (
        None,
        BSUID,
        "@robin.fixes",
    )
    assert item.profile_name == "Robin Example"
    assert item.raw["from_user_id"] == BSUID  # kept as Meta sent it


def test_a_phone_and_a_bsuid_on_one_message_are_both_read() -> None:
    [item] = parse_notification(
        json.dumps(payload("inbound_text_phone_and_bsuid.json")).encode()
    ).inbound_messages()
    assert (item.sender_ids.phone, item.sender_ids.bsuid) == ("15550002222", "US.20000000000000000002")
    assert item.message.address == "15550002222"


def test_a_message_without_from_or_from_user_id_is_refused_with_the_reason() -> None:
    body = payload("inbound_text_bsuid_only.json")
    del body["entry"][0]["changes"][0]["value"]["messages"][0]["from_user_id"]
    with pytest.raises(NotificationError, match="`from` \\(phone\\) or `from_user_id` \\(BSUID\\)"):
        parse_notification(json.dumps(body).encode())


def test_the_system_messages_carry_the_new_and_previous_ids() -> None:
    [changed_id] = parse_notification(
        json.dumps(payload("inbound_system_user_changed_user_id.json")).encode()
    ).inbound_messages()
    system = changed_id.message.system
    assert system is not None and system.type == "user_changed_user_id"
    assert (system.user_id, system.previous_user_id, system.wa_id) == ("US.13491208655302749999", BSUID, None)
    [changed_number] = parse_notification(
        json.dumps(payload("inbound_system_user_changed_number_bsuid.json")).encode()
    ).inbound_messages()
    system = changed_number.message.system
    assert system is not None and (system.wa_id, system.user_id) == ("15550004444", "US.20000000000000000044")


def test_only_a_contact_request_reply_is_the_senders_own_phone() -> None:
    [reply] = parse_notification(
        json.dumps(payload("inbound_contacts_contact_request.json")).encode()
    ).inbound_messages()
    assert reply.message.shared_phone == "15550007777"
    [card] = parse_notification(json.dumps(payload("inbound_contacts.json")).encode()).inbound_messages()
    assert card.message.kind == "contacts" and card.message.shared_phone is None


def test_statuses_to_a_bsuid_and_failed_ones_with_a_wa_id_only_contact_parse() -> None:
    [sent] = parse_notification(
        json.dumps(payload("status_sent_recipient_user_id.json")).encode()
    ).status_updates()
    assert (sent.recipient_id, sent.recipient_user_id) == (None, BSUID)
    [failed] = parse_notification(
        json.dumps(payload("status_failed_wa_id_only_contact.json")).encode()
    ).status_updates()
    assert failed.status == "failed" and failed.errors[0].code == 131026


def test_a_message_to_a_bsuid_goes_as_recipient_and_to_a_phone_as_to() -> None:
    to_bsuid = to_request_body(BSUID, Text(body="hi"))
    assert to_bsuid["recipient"] == BSUID and "to" not in to_bsuid
    to_phone = to_request_body("15550002222", Text(body="hi"))
    assert to_phone["to"] == "+15550002222" and "recipient" not in to_phone


def test_the_share_my_number_button_is_meta_s_request_contact_info_message() -> None:
    body = to_request_body(BSUID, ContactRequest(body="Share your number so we can find your repair."))
    sent = payload("send_interactive_request_contact_info.json")
    assert body == sent


def test_131062_is_a_permanent_error_of_its_own() -> None:
    cls = error_class_for(131062, 400)
    assert cls is BsuidRecipientNotSupported
    assert not cls.retryable
