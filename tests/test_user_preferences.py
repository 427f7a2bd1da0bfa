"""Meta's user_preferences webhook through the real server, on SQLite and PostgreSQL: a user who stops
marketing messages inside WhatsApp is recorded as a marketing opt-out (the ledger, with Meta's time), for
the customer their phone or BSUID belongs to, and back in when they resume; a redelivery is kept once;
a value the bot does not know is logged and acknowledged. Then the outbox refuses marketing to them
while utility templates still go."""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from bot.db.models import ConsentAction, ConsentScope, ConsentSource, Customer, DeliveryStatus, SendAdmission
from bot.privacy.consent import consent_history, record
from bot.whatsapp.errors import CODE_MARKETING_OPTED_OUT, CODE_OPTED_OUT
from bot.whatsapp.outbound import Template, Text
from tests.helpers import BotFactory, payload, post_webhook
from tests.test_metrics import scrape, value
from tests.test_send_limits import customer, offer, queue, sent_to, settled, templates_with_offer

SAM = "15550003333"  # tests/payloads/user_preferences_marketing_*.json
ROBIN = "US.13491208655302741918"  # tests/payloads/user_preferences_marketing_stop_bsuid.json
STOPPED_AT = datetime.fromtimestamp(1750004000, UTC)
RESUMED_AT = datetime.fromtimestamp(1750004600, UTC)


def history_of(entries: list[dict[str, Any]]) -> list[tuple[str, str, str, datetime]]:
    return [(h["scope"], h["action"], h["source"], datetime.fromisoformat(h["at"])) for h in entries]


async def test_stop_and_resume_are_recorded_for_the_phones_customer_once_each(bot_client: BotFactory) -> None:
    client = await bot_client()
    known = await Customer.create(wa_id=SAM, language="en")
    stop = payload("user_preferences_marketing_stop.json")
    for _ in range(2):  # Meta delivers again what it thinks was not acknowledged
        assert (await post_webhook(client, stop)).status == 200
    sam = await Customer.get(id=known.id)
    assert sam.marketing_opted_out_at == STOPPED_AT and sam.opted_out_at is None
    [entry] = await consent_history(sam.id)
    assert entry["detail"] == "User requested to stop marketing messages"

    assert (await post_webhook(client, payload("user_preferences_marketing_resume.json"))).status == 200
    assert (await Customer.get(id=known.id)).marketing_opted_out_at is None
    assert history_of(await consent_history(sam.id)) == [
        ("marketing", "opt_out", "user_preferences", STOPPED_AT),
        ("marketing", "opt_in", "user_preferences", RESUMED_AT),
    ]
    assert await Customer.filter(wa_id=SAM).count() == 1


async def test_a_late_stop_is_kept_but_does_not_undo_a_later_resume(bot_client: BotFactory) -> None:
    client = await bot_client()
    assert (await post_webhook(client, payload("user_preferences_marketing_resume.json"))).status == 200
    assert (await post_webhook(client, payload("user_preferences_marketing_stop.json"))).status == 200
    sam = await Customer.get(wa_id=SAM)  # made by the first webhook: nobody had written from it yet
    assert sam.marketing_opted_out_at is None  # the resume came after the stop, whatever the order
    assert [(a, t) for _, a, _, t in history_of(await consent_history(sam.id))] == [
        ("opt_out", STOPPED_AT),
        ("opt_in", RESUMED_AT),
    ]


async def test_a_bsuid_only_stop_finds_the_customer_of_that_bsuid(bot_client: BotFactory) -> None:
    client = await bot_client()
    assert (await post_webhook(client, payload("inbound_text_bsuid_only.json"))).status == 200
    assert (await post_webhook(client, payload("user_preferences_marketing_stop_bsuid.json"))).status == 200
    [robin] = await Customer.filter(bsuid=ROBIN)
    assert robin.marketing_opted_out_at == STOPPED_AT
    assert len(await consent_history(robin.id)) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"category": "marketing_messages", "value": "snooze"},
        {"category": "offers_and_announcements", "value": "stop"},
        {"value": None, "category": 7, "timestamp": "soon"},
        {"wa_id": None},  # names nobody once the only contact is gone too
    ],
)
async def test_an_unknown_preference_is_logged_and_acknowledged(
    bot_client: BotFactory, caplog: pytest.LogCaptureFixture, change: dict[str, Any]
) -> None:
    client = await bot_client()
    body = copy.deepcopy(payload("user_preferences_marketing_stop.json"))
    value = body["entry"][0]["changes"][0]["value"]
    value["user_preferences"][0].update(change)
    if change == {"wa_id": None}:
        del value["contacts"]
    with caplog.at_level(logging.WARNING, logger="bot.privacy.preferences"):
        response = await post_webhook(client, body)
    assert response.status == 200
    sam = await Customer.get_or_none(wa_id=SAM)
    assert sam is None or (sam.marketing_opted_out_at is None and await consent_history(sam.id) == [])
    if change != {"wa_id": None}:
        [line] = [r.getMessage() for r in caplog.records if r.name == "bot.privacy.preferences"]
        assert "user_preferences ignored" in line and SAM not in line  # the phone is masked


async def test_the_outbox_refuses_marketing_after_a_stop_and_any_template_after_stop_words(
    bot_client: BotFactory, fake_graph: TestServer, tmp_path: Path
) -> None:
    client = await bot_client(f"templates:\n  directory: {templates_with_offer(tmp_path)}\n")
    sam = await customer(SAM, window_open=False)
    assert (await post_webhook(client, payload("user_preferences_marketing_stop.json"))).status == 200
    stopped = await customer("34600000011", window_open=False)
    talking = await customer("34600000012", window_open=True)
    for who in (stopped, talking):
        await record(who, ConsentScope.ALL, ConsentAction.OPT_OUT, ConsentSource.KEYWORD, datetime.now(UTC))
    follow_up = Template(name="follow_up", language="en", body_params=("Sam",))  # utility
    held_before = value(await scrape(client), "bot_sends_held_total", reason="opted_out")

    rows = [
        await queue(sam, offer()),
        await queue(sam, follow_up),
        await queue(stopped, follow_up),
        await queue(talking, Text(body="Your phone is ready")),
    ]
    marketing, utility, started, reply = await settled(*rows)
    assert (marketing.delivery_status, marketing.error_code) == (
        DeliveryStatus.FAILED,
        CODE_MARKETING_OPTED_OUT,
    )
    assert (started.delivery_status, started.error_code) == (DeliveryStatus.FAILED, CODE_OPTED_OUT)
    assert marketing.error_title and "stopped marketing messages" in marketing.error_title
    assert (utility.delivery_status, reply.delivery_status) == (DeliveryStatus.SENT, DeliveryStatus.SENT)
    assert await sent_to(fake_graph, SAM) == 1 and await sent_to(fake_graph, "34600000011") == 0
    # refused before the send limits: they count against no cap nor Meta's messaging limit
    assert not await SendAdmission.filter(message_id__in=[marketing.id, started.id]).exists()
    assert value(await scrape(client), "bot_sends_held_total", reason="opted_out") == held_before + 2
