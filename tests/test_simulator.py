"""The fake Cloud API refuses what Meta refuses, and the simulator drives the real pipeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.cli.simulator import ChoiceError, SimClock, Simulator
from bot.db.models import Customer, DeliveryStatus, Direction, Message
from bot.identity import customer_for_phone
from bot.spine.outbox import outbound_row
from bot.whatsapp.client import WhatsAppClient
from bot.whatsapp.errors import InvalidParameter, ReEngagement
from bot.whatsapp.fake_cloud_api import FakeCloudAPI, check_message
from bot.whatsapp.outbound import Buttons, ReplyButton, Template, Text
from tests.helpers import PAYLOADS, make_settings, message_with

PHONE = "15550002222"
START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


pytestmark = pytest.mark.usefixtures("fresh_executor_cache")


def api_and_client(clock: SimClock) -> tuple[FakeCloudAPI, WhatsAppClient]:
    api = FakeCloudAPI(clock)
    return api, WhatsAppClient(api, "100000000000001")


def unchecked_buttons(*titles: str) -> Buttons:
    """Buttons the outbound model would refuse to build: only Meta's check is left to catch them."""
    buttons = tuple(ReplyButton.model_construct(id=f"b{i}", title=t) for i, t in enumerate(titles))
    return Buttons.model_construct(body="Pick one", buttons=buttons, header=None, footer=None)


async def test_four_buttons_are_refused_with_invalid_parameter() -> None:
    clock = SimClock(START)
    api, client = api_and_client(clock)
    api.customer_wrote(PHONE, START)
    with pytest.raises(InvalidParameter) as caught:
        await client.send(PHONE, unchecked_buttons("One", "Two", "Three", "Four"))
    assert caught.value.code == 131009
    assert caught.value.details is not None and "between 1 and 3" in caught.value.details
    assert api.delivered(PHONE) == []


async def test_a_21_character_button_title_is_refused() -> None:
    clock = SimClock(START)
    api, client = api_and_client(clock)
    api.customer_wrote(PHONE, START)
    with pytest.raises(InvalidParameter) as caught:
        await client.send(PHONE, unchecked_buttons("x" * 21))
    assert caught.value.code == 131009
    await client.send(PHONE, unchecked_buttons("x" * 20))  # the limit itself is fine
    assert len(api.delivered(PHONE)) == 1


def test_the_shipped_send_examples_pass_the_checks() -> None:
    import json

    for name in ("send_text.json", "send_interactive_button.json", "send_interactive_list.json"):
        body: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
        assert check_message(body) == PHONE


async def test_free_form_after_24_hours_is_refused_but_a_template_is_allowed() -> None:
    clock = SimClock(START)
    api, client = api_and_client(clock)
    api.customer_wrote(PHONE, START)
    await client.send(PHONE, Text(body="Within the window"))
    clock.advance(timedelta(hours=24, minutes=1))
    with pytest.raises(ReEngagement) as caught:
        await client.send(PHONE, Text(body="Too late"))
    assert caught.value.code == 131047
    assert caught.value.title == "(#131047) Re-engagement message"  # Meta's own shape
    await client.send(PHONE, Template(name="follow_up", language="en", body_params=("Ana",)))
    assert [body["type"] for body in api.delivered(PHONE)] == ["text", "template"]


async def test_a_customer_who_never_wrote_gets_only_templates() -> None:
    _, client = api_and_client(SimClock(START))
    with pytest.raises(ReEngagement):
        await client.send(PHONE, Text(body="Hello"))


async def test_a_turn_takes_the_real_path_and_is_logged(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite://{tmp_path / 'unused.db'}")
    async with Simulator(settings, f"sqlite://{tmp_path / 'sim.db'}", clock=SimClock(START)) as simulator:
        ana = simulator.customer(PHONE, name="Ana", language="es")
        [menu] = await ana.says("hola")
        assert isinstance(menu.message, Buttons) and menu.delivered
        assert [choice.title for choice in menu.choices] == ["Estado", "Cita", "Técnico"]
        replies = await ana.taps("Técnico")
        assert "técnico" in replies[0].message.log_content()
        inbound = await Message.filter(message_direction=Direction.INBOUND).order_by("id")
        assert [row.message_type for row in inbound] == ["text", "interactive"]
        assert all(row.delivery_status == DeliveryStatus.HANDLED for row in inbound)
        customer = await Customer.get(wa_id=PHONE)
        assert (customer.profile_name, customer.language) == ("Ana", "es")
        assert customer.last_inbound_at == START
        assert len(simulator.api.delivered(PHONE)) == 2  # the menu, then the wait for a technician
        with pytest.raises(ChoiceError):
            await ana.taps("Nothing like this")


async def test_a_notification_queued_after_24_hours_is_refused_but_a_template_goes(tmp_path: Path) -> None:
    """Flows cannot send free-form text after 24 hours (they do not load), but order notifications and
    technicians' messages enter the outbox directly: the simulator refuses those as Meta would."""
    settings = make_settings(tmp_path, "sqlite://:memory:")
    async with Simulator(settings, "sqlite://:memory:", clock=SimClock(START)) as simulator:
        ana = simulator.customer(PHONE, name="Ana")
        await ana.says("hi")
        assert await ana.wait(timedelta(hours=25)) == []
        now = simulator.clock.now
        customer = await customer_for_phone(PHONE, now)
        await outbound_row(customer, Text(body="Your phone is ready!"), reply_to=None, now=now).save()
        template = Template(name="follow_up", language="en", body_params=("Ana",))
        await outbound_row(customer, template, reply_to=None, now=now).save()
        refused, sent = await ana.wait(timedelta(0))
        assert refused.refused and refused.error_code == 131047
        assert sent.delivered and isinstance(sent.message, Template)
        row = await message_with("Your phone is ready!")
        assert (row.delivery_status, row.error_code) == (DeliveryStatus.FAILED, 131047)
        [again] = await ana.says("hi")  # writing again reopens the window
        assert again.delivered
