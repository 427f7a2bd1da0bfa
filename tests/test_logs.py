"""Structured logs: JSON lines with the handled message's fields, and no customer text or number above
DEBUG in any line a conversation produces."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from bot.db.models import DeliveryStatus, Direction, Message
from bot.monitoring.logs import JsonFormatter, use_json, wants_json
from bot.settings import SettingsError, load_settings
from tests.helpers import BotFactory, eventually, post_webhook, text_notification

PHONE = "15550007788"
SECRET_TEXT = "my pin is 4242 and my address is 9 Elm"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_means_json_unless_a_terminal() -> None:
    assert wants_json("auto", io.StringIO())
    assert not wants_json("auto", _Tty())
    assert wants_json(True, _Tty())
    assert not wants_json(False, io.StringIO())


def test_the_setting_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("logging:\n  json: true\n")
    assert load_settings(path, {}).logging.json_ is True
    path.write_text("logging:\n  json: sometimes\n")
    with pytest.raises(SettingsError, match=r"logging\.json"):
        load_settings(path, {})


def test_use_json_formats_the_root_handlers() -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    try:
        use_json(True)
        assert isinstance(handler.formatter, JsonFormatter)
        use_json(False)
        assert not isinstance(handler.formatter, JsonFormatter)
    finally:
        root.removeHandler(handler)


async def test_a_handled_message_is_one_json_line_without_its_text(
    bot_client: BotFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await bot_client()
    notification = text_notification(PHONE, "wamid.LOG1", SECRET_TEXT)
    assert (await post_webhook(client, notification)).status == 200

    async def replied() -> bool:
        return await Message.filter(
            message_direction=Direction.OUTBOUND, delivery_status=DeliveryStatus.SENT
        ).exists()

    await eventually(replied)
    handled = [
        r for r in caplog.records if r.name == "bot.spine.inbox" and r.getMessage().startswith("handled")
    ]
    assert len(handled) == 1  # one line per handled message
    line = json.loads(JsonFormatter().format(handled[0]))
    conversation = (await Message.get(whatsapp_message_id="wamid.LOG1")).address
    assert conversation == PHONE
    assert line["level"] == "INFO"
    assert line["wamid"] == "wamid.LOG1"
    assert isinstance(line["conversation_id"], int)
    assert line["outcome"].startswith("main.")
    assert isinstance(line["ms"], float)
    for record in caplog.records:
        if record.levelno > logging.DEBUG:
            text = JsonFormatter().format(record)
            assert "4242" not in text and "Elm" not in text, text
            assert PHONE not in text, text
