"""`shop.address` and `shop.opening_hours`, which the shipped status texts use: a missing one is named at
start-up and by `bot flows check`, with the text that needs it, instead of customers reading ": , at ."."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.app import create_app
from bot.settings import load_settings
from bot.shop_texts import ShopSettingsMissing, missing_shop_settings
from tests.helpers import REPO
from tests.test_commands import run_bot

TEXTS = REPO / "templates" / "texts" / "order_statuses.yaml"
APPOINTMENT_TEXTS = REPO / "templates" / "texts" / "appointment_changes.yaml"


def _settings_file(tmp_path: Path, shop: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(
        f"shop:\n  name: Test Repairs\n{shop}"
        f"flows:\n  directory: {REPO / 'flows'}\n"
        f"templates:\n  directory: {REPO / 'templates'}\n"
        f"database:\n  url: sqlite://{tmp_path / 'bot.db'}\n",
        encoding="utf-8",
    )
    return path


def _line_of(text: str, path: Path = TEXTS) -> int:
    """The line of the first text in a shipped texts file that uses `text`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(
        number for number, line in enumerate(lines, 1) if text in line and not line.lstrip().startswith("#")
    )


def test_each_missing_setting_is_named_at_the_first_text_that_uses_it(tmp_path: Path) -> None:
    settings = load_settings(_settings_file(tmp_path, ""), {})
    problems = missing_shop_settings(settings.shop, settings.templates_dir)
    assert [(Path(p.file), p.line) for p in problems] == [
        (APPOINTMENT_TEXTS, _line_of("{address}", APPOINTMENT_TEXTS)),  # files in name order
        (TEXTS, _line_of("{opening_hours}")),
    ]
    assert "uses {address}, but shop.address is not set in settings.yaml" in problems[0].reason
    assert "uses {opening_hours}, but shop.opening_hours is not set" in problems[1].reason
    assert problems[0].hint is not None and "under shop:" in problems[0].hint


def test_one_text_or_one_per_language_is_enough_and_blank_ones_are_not(tmp_path: Path) -> None:
    shop = '  address: "1 Main St"\n  opening_hours: {en: "", es: "  "}\n'
    settings = load_settings(_settings_file(tmp_path, shop), {})
    problems = missing_shop_settings(settings.shop, settings.templates_dir)
    assert [p.reason.split(",")[0] for p in problems] == ["this text uses {opening_hours}"]

    shop = '  address: "1 Main St"\n  opening_hours: {en: "9-5", es: ""}\n'
    settings = load_settings(_settings_file(tmp_path, shop), {})
    assert missing_shop_settings(settings.shop, settings.templates_dir) == []


def test_the_server_does_not_start_without_them(tmp_path: Path) -> None:
    settings = load_settings(_settings_file(tmp_path, '  opening_hours: "9-5"\n'), {})
    with pytest.raises(ShopSettingsMissing, match=r"shop\.address is not set"):
        create_app(settings)

    result = run_bot("serve", env={"BOT_SETTINGS": str(tmp_path / "settings.yaml")})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "the server did not start" in result.stderr
    assert f"{APPOINTMENT_TEXTS}:{_line_of('{address}', APPOINTMENT_TEXTS)}:" in result.stderr
    assert "shop.address is not set" in result.stderr and "opening_hours" not in result.stderr


def test_flows_check_names_them_too(tmp_path: Path) -> None:
    _settings_file(tmp_path, "")
    result = run_bot("flows", "check", env={"BOT_SETTINGS": str(tmp_path / "settings.yaml")})
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"{APPOINTMENT_TEXTS}:{_line_of('{address}', APPOINTMENT_TEXTS)}:9: this text uses {{address}}, "
        "but shop.address is not set in "
        'settings.yaml (hint: add `address: "123 Main Street, Springfield"` under shop: (one text, or one '
        "per language))",
        f"{TEXTS}:{_line_of('{opening_hours}')}:9: this text uses {{opening_hours}}, but shop.opening_hours "
        'is not set in settings.yaml (hint: add `opening_hours: "Mon-Sat 9am-7pm"` under shop: (one text, '
        "or one per language))",
    ]


def test_flows_check_reports_broken_status_texts_without_a_traceback(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    broken = TEXTS.read_text(encoding="utf-8").replace("\nreceived:", "\nrecieved:")
    (templates / "texts" / "order_statuses.yaml").write_text(broken, encoding="utf-8")
    settings = _settings_file(tmp_path, '  address: "1 Main St"\n  opening_hours: "9-5"\n')
    settings.write_text(settings.read_text().replace(str(REPO / "templates"), str(templates)))

    result = run_bot("flows", "check", env={"BOT_SETTINGS": str(settings)})

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    path = templates / "texts" / "order_statuses.yaml"
    line = broken[: broken.index("\nrecieved:")].count("\n") + 2  # the misspelt status, the first entry
    assert result.stdout.splitlines() == [
        f"{path}:{line}:1: no texts for the status 'received' (settings.yaml orders.statuses has it) "
        "(hint: add 'received:' with a label and a text)",
        f"{path}:{line}:1: 'recieved' is not a status in settings.yaml orders.statuses "
        "(hint: did you mean 'received'?)",
    ]


@pytest.mark.parametrize("command", [("serve",), ("chat",), ("flows", "test")])
def test_a_bad_texts_file_stops_start_up_with_its_line_not_a_traceback(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    texts = templates / "texts" / "appointment_changes.yaml"
    broken = APPOINTMENT_TEXTS.read_text(encoding="utf-8").replace(
        'label: {en: "cancelled"', "label: {en: 7", 1
    )
    texts.write_text(broken, encoding="utf-8")
    settings = _settings_file(tmp_path, '  address: "1 Main St"\n  opening_hours: "9-5"\n')
    settings.write_text(settings.read_text().replace(str(REPO / "templates"), str(templates)))

    result = run_bot(*command, env={"BOT_SETTINGS": str(settings)}, stdin="")

    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    line = next(n for n, text in enumerate(broken.splitlines(), 1) if "label: {en: 7" in text)
    assert f"{texts}:{line}:15: expected a text here" in output
