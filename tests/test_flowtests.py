"""`bot flows test`: the shipped tests pass; a failure shows the conversation; a bad file names its line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.cli.main import main
from tests.helpers import REPO, write_settings

pytestmark = pytest.mark.usefixtures("fresh_executor_cache")


def flows_test(tmp_path: Path, capsys: pytest.CaptureFixture[str], *directory: Path) -> tuple[int, str]:
    settings = write_settings(tmp_path, f"templates:\n  directory: {REPO / 'templates'}\n")
    code = main(["--settings", str(settings), "flows", "test", *map(str, directory)])
    return code, capsys.readouterr().out


def shop_copy(tmp_path: Path, tests: str) -> tuple[Path, Path]:
    """A flows folder with the shipped main flow and one test file."""
    directory = tmp_path / "flows"
    (directory / "tests").mkdir(parents=True)
    for flow in (REPO / "flows").glob("*.yaml"):
        shutil.copy(flow, directory / flow.name)
    test_file = directory / "tests" / "mine.yaml"
    test_file.write_text(tests)
    return directory, test_file


def test_the_shipped_flow_tests_pass(capsys: pytest.CaptureFixture[str]) -> None:
    # as `make test` runs them: the shop's own settings (its address and opening hours are in the texts)
    code = main(["--settings", str(REPO / "settings.yaml"), "flows", "test"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "✗" not in out
    assert out.count("✓") >= 15
    assert " failed" not in out


FAILING = """\
tests:
  - name: greets in Spanish
    customer: {name: Ana}
    turns:
      - send: hi
        expect:
          - buttons: [Repair status, Appointment, Technician]
      - tap: Technician
        expect:
          - contains: "technician will answer"
          - contains: "Hola Ana"
  - name: this one passes
    turns:
      - send: hi
"""


def test_a_failing_test_prints_the_conversation_with_the_difference_marked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, test_file = shop_copy(tmp_path, FAILING)
    code, out = flows_test(tmp_path, capsys, directory)
    assert code == 1
    lines = [line.strip() for line in out.splitlines()]
    assert "✗ greets in Spanish" in lines
    assert "✓ this one passes" in lines
    assert f"at {test_file}:8 (turn 2)" in lines
    marked = lines.index('>>> expected: contains "Hola Ana" — got: no reply')
    # the conversation up to the difference: both turns and every reply before it
    assert lines[marked - 2 : marked] == [
        "you: [tap] Technician",
        "bot: Thanks! A technician will answer you here in about 5 minutes.",
    ]
    assert "you: hi" in lines[: marked - 2]
    assert "2 test(s): 1 passed, 1 failed" in out


def test_missing_and_extra_replies_are_differences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = """\
tests:
  - name: too many expected
    turns:
      - send: hi
        expect: ["What can we do", "Something else"]
  - name: too few expected
    turns:
      - send: hi
      - wait: 25h
        expect: []
      - send: I want to book
        expect: ["Let's book a visit"]
"""
    directory, _ = shop_copy(tmp_path, tests)
    code, out = flows_test(tmp_path, capsys, directory)
    assert code == 1
    assert '>>> expected: contains "Something else" — got: no reply' in out
    assert '>>> expected: no more replies — got: "Which day suits you?"' in out


def test_a_malformed_test_file_exits_2_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = """\
tests:
  - name: typo
    turns:
      - send: hi
        expcet: ["Hi"]
      - send: hi
        tap: Appointment
      - wait: soon
"""
    directory, test_file = shop_copy(tmp_path, bad)
    code, out = flows_test(tmp_path, capsys, directory)
    assert code == 2
    assert f"{test_file}:5:9: unknown key 'expcet' (hint: did you mean 'expect'?)" in out
    assert f"{test_file}:6:" in out and "exactly one of send, tap, media or wait" in out
    assert f"{test_file}:8:" in out and "'soon' is not a duration" in out
    assert "✓" not in out and "✗" not in out  # nothing ran


def test_flows_that_do_not_load_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory, _ = shop_copy(tmp_path, FAILING)
    (directory / "main.yaml").write_text("flow: main\nstart: menu\nstates:\n  menu:\n    goto: nowhere\n")
    code, out = flows_test(tmp_path, capsys, directory)
    assert code == 2
    assert f"{directory / 'main.yaml'}:5:" in out and "nowhere" in out


TIMEOUT_FLOW = """\
flow: main
start: menu
states:
  menu:
    say: "Hi! Type help."
    on:
      keywords:
        helping: [help]
  helping:
    say: "What's wrong with the phone?"
    on:
      text: menu
      timeout: {after: 30m, goto: gave_up}
  gave_up:
    say: "No rush: type help whenever you're ready."
    goto: menu
"""
TIMEOUT_TESTS = """\
tests:
  - name: a silent customer is let go after 30 minutes
    turns:
      - send: hi
        expect: [{text: "Hi! Type help."}]
      - send: help
        expect: ["What's wrong"]
      - wait: 29m
        expect: []
      - wait: 2m
        expect:
          - text: "No rush: type help whenever you're ready."
          - text: "Hi! Type help."
  - name: the timeout fires after wait 31m
    turns:
      - send: hi
      - send: help
      - wait: 31m
        expect: ["No rush", "Hi! Type help."]
      - wait: 2h
        expect: []
  - name: answering in time stops the timeout
    turns:
      - send: hi
      - send: help
      - wait: 20m
      - send: the screen is broken
        expect: ["Hi! Type help."]
      - wait: 31m
        expect: []
"""


def test_a_timeout_fires_in_a_flow_test(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "shop"
    (directory / "tests").mkdir(parents=True)
    (directory / "main.yaml").write_text(TIMEOUT_FLOW)
    (directory / "tests" / "timeouts.yaml").write_text(TIMEOUT_TESTS)
    code, out = flows_test(tmp_path, capsys, directory)
    assert code == 0, out
    assert "3 test(s): 3 passed" in out


def test_no_tests_folder_is_not_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "empty"
    directory.mkdir()
    for flow in (REPO / "flows").glob("*.yaml"):
        shutil.copy(flow, directory / flow.name)
    code, out = flows_test(tmp_path, capsys, directory)
    assert code == 0
    assert "no flow tests" in out
