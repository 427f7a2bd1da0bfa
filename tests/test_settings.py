"""Settings: the file, the environment's secrets and overrides, and clear errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.settings import DEFAULT_GRAPH_BASE_URL, SANDBOX_APP_SECRET, SettingsError, load_settings

REPO = Path(__file__).resolve().parents[1]


def test_shipped_settings_file_loads_in_sandbox_mode() -> None:
    settings = load_settings(REPO / "settings.yaml", environ={})
    assert settings.sandbox
    assert settings.app_secret == SANDBOX_APP_SECRET
    assert settings.server.max_body_bytes == 4 * 1024 * 1024
    assert settings.whatsapp.messages_per_second == 80
    assert settings.secrets.api_base_url == DEFAULT_GRAPH_BASE_URL
    # the relative SQLite path is made absolute against the settings file's folder
    assert settings.database_url == f"sqlite://{REPO / 'data' / 'bot.db'}"
    assert settings.flows_dir == REPO / "flows"


def test_secrets_and_overrides_come_from_the_environment(tmp_path: Path) -> None:
    environ = {
        "WHATSAPP_ACCESS_TOKEN": "token-1",
        "WHATSAPP_APP_SECRET": "secret-1",
        "WHATSAPP_WEBHOOK_VERIFY_TOKEN": "verify-1",
        "WHATSAPP_PHONE_NUMBER_ID": "123",
        "WHATSAPP_BUSINESS_ACCOUNT_ID": "456",
        "WHATSAPP_API_BASE_URL": "http://127.0.0.1:9999/v21.0",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
        "BOT_FLOWS_DIR": str(tmp_path),
        "BOT_ADMIN_TOKEN": "admin-1",
    }
    settings = load_settings(REPO / "settings.yaml", environ=environ)
    assert not settings.sandbox
    assert settings.app_secret == "secret-1"
    assert settings.secrets.access_token is not None
    assert settings.secrets.access_token.get_secret_value() == "token-1"
    assert settings.secrets.phone_number_id == "123"
    assert settings.secrets.business_account_id == "456"
    assert settings.secrets.api_base_url == "http://127.0.0.1:9999/v21.0"
    assert settings.database_url == "postgres://postgres@127.0.0.1:5432/test"
    assert settings.flows_dir == tmp_path
    assert "token-1" not in repr(settings)  # secrets never show in logs


def test_bot_settings_names_another_file(tmp_path: Path) -> None:
    other = tmp_path / "shop.yaml"
    other.write_text("shop:\n  name: Other Shop\n")
    settings = load_settings(environ={"BOT_SETTINGS": str(other)})
    assert settings.shop.name == "Other Shop"


def test_invalid_file_names_the_key_path_and_reason(tmp_path: Path) -> None:
    bad = tmp_path / "settings.yaml"
    bad.write_text("whatsapp:\n  messages_per_second: lots\nserver:\n  port: 99999\nshop:\n  colour: red\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(bad, environ={})
    message = str(caught.value)
    assert "whatsapp.messages_per_second" in message
    assert "server.port" in message
    assert "shop.colour" in message and "Extra inputs are not permitted" in message


def test_unknown_time_zone_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "settings.yaml"
    bad.write_text("shop:\n  timezone: Mars/Olympus\n")
    with pytest.raises(SettingsError, match=r"shop\.timezone.*Mars/Olympus"):
        load_settings(bad, environ={})


def test_the_outbox_retry_horizon_is_optional_and_bounded(tmp_path: Path) -> None:
    assert load_settings(REPO / "settings.yaml", environ={}).outbox.retry_horizon is None  # the window's
    custom = tmp_path / "settings.yaml"
    custom.write_text("outbox:\n  retry_horizon_hours: 1.5\n")
    assert load_settings(custom, environ={}).outbox.retry_horizon == timedelta(minutes=90)
    for bad in ("0", "-1", "721", "soon"):
        custom.write_text(f"outbox:\n  retry_horizon_hours: {bad}\n")
        with pytest.raises(SettingsError, match=r"outbox\.retry_horizon_hours"):
            load_settings(custom, environ={})


def test_sends_in_flight_follow_the_numbers_throughput_unless_set(tmp_path: Path) -> None:
    """Each send waits for its answer: at 1,000 messages/s and a quarter second a send, 64 in flight
    would cap the replies at about 256/s. An explicit outbox.concurrency is kept as it is."""
    assert load_settings(REPO / "settings.yaml", environ={}).sends_in_flight == 64  # 80/s, the default
    custom = tmp_path / "settings.yaml"
    for written, expected in [
        ("whatsapp:\n  messages_per_second: 1000\n", 250),
        ("whatsapp:\n  messages_per_second: 20\n", 64),
        ("whatsapp:\n  messages_per_second: 100000\n", 1024),
        ("whatsapp:\n  messages_per_second: 1000\noutbox:\n  concurrency: 16\n", 16),
    ]:
        custom.write_text(written)
        assert load_settings(custom, environ={}).sends_in_flight == expected, written
    custom.write_text("outbox:\n  concurrency: 0\n")
    with pytest.raises(SettingsError, match=r"outbox\.concurrency"):
        load_settings(custom, environ={})


def test_token_without_app_secret_refuses_to_start() -> None:
    with pytest.raises(SettingsError, match="WHATSAPP_APP_SECRET"):
        load_settings(REPO / "settings.yaml", environ={"WHATSAPP_ACCESS_TOKEN": "t"})


def test_missing_file_and_bad_yaml_are_clear(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.yaml", environ={})
    broken = tmp_path / "broken.yaml"
    broken.write_text("shop: [unclosed\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(broken, environ={})
