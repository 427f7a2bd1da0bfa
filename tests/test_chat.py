"""`bot chat` scripted through a pipe: replies printed, numbers pick choices, state kept across runs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.cli.chat import default_chat_database
from bot.cli.main import main
from tests.helpers import make_settings, write_settings

pytestmark = pytest.mark.usefixtures("fresh_executor_cache")


def chat(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    lines: str,
    *args: str,
) -> str:
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    database = f"sqlite://{tmp_path / 'chat.db'}"
    settings = str(write_settings(tmp_path))
    assert main(["--settings", settings, "chat", "--database", database, *args]) == 0
    return capsys.readouterr().out


def test_a_scripted_chat_prints_the_greeting_and_numbered_choices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = chat(tmp_path, monkeypatch, capsys, "hi\n1\n", "--name", "Ana", "--phone", "15550004444")
    lines = out.splitlines()
    assert lines[0] == "bot: Hi Ana! 👋 What can we do for you?"
    assert lines[1:4] == ["       1) Repair status", "       2) Appointment", "       3) Technician"]
    # "1" tapped the first button: no open order, so the order lookup asks for its number
    assert lines[4] == "bot: What's your order number? It's on your repair receipt (for example 10452)."
    assert "Chatting as" not in out and "you:" not in out  # no banner or prompt when piped


def test_a_second_run_continues_where_the_first_left_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first = chat(tmp_path, monkeypatch, capsys, "hola\n", "--phone", "15550005555", "--lang", "es")
    assert "1) Estado" in first
    # the same customer: "3" picks the third button of the menu the first run ended on, in Spanish
    second = chat(tmp_path, monkeypatch, capsys, "2\nblah\n", "--phone", "15550005555")
    lines = second.splitlines()
    assert lines[0].startswith("bot: Vamos a reservar una visita")  # "2": the Spanish menu's Cita


def test_wait_reset_media_and_language_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = "hi\n/wait 25h\n/photo cracked screen\nlanguage\n2\n/reset\nhi\n/nonsense\n"
    out = chat(tmp_path, monkeypatch, capsys, script, "--name", "Ana")
    assert "(… 1d1h later)\n(no reply)" in out
    assert "bot: Thanks for the photo! 📷" in out
    assert "1) English" in out and "2) Español" in out
    assert "bot: Perfecto, a partir de ahora te escribo en español." in out
    assert "(conversation forgotten" in out
    assert out.count("bot: Hi Ana! 👋 What can we do for you?") == 3  # after /reset: English again
    assert "unknown command /nonsense" in out


def test_the_default_chat_database_is_beside_the_shops_but_never_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite://{tmp_path / 'data' / 'bot.db'}")
    assert default_chat_database(settings) == f"sqlite://{tmp_path / 'data' / 'chat.db'}"
    postgres = make_settings(tmp_path, "postgres://postgres@127.0.0.1:5432/shop")
    assert default_chat_database(postgres) == f"sqlite://{tmp_path / 'data' / 'chat.db'}"
