"""Load-time checks across a whole flow set: templates, the 24-hour window, unreachable states, asks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.engine.templates import load_templates
from tests.helpers import TEMPLATES, reasons
from tests.helpers import check_flow as check

NUDGE = """
    flow: main
    start: menu
    states:
      menu:
        say: Hi
        on:
          text: waiting
      waiting:
        say: Still there?
        on:
          text: menu
          timeout: {after: 20h, goto: later}
      later:
        say: Still with us?
        on:
          text: menu
          timeout: {after: 20h, goto: nudge}
      nudge:
        {body}
        on:
          text: menu
"""


def test_shipped_templates_load() -> None:
    catalog, problems = load_templates(TEMPLATES)
    assert problems == []
    follow_up = catalog.get("follow_up")
    assert follow_up is not None and follow_up.parameters == 1
    assert set(follow_up.languages) == {"en", "es", "zh"}


def test_a_free_form_message_that_can_run_after_24_hours_is_refused(tmp_path: Path) -> None:
    problems = check(tmp_path, NUDGE.replace("{body}", "say: We miss you!"))
    assert [p.line for p in problems] == [19]  # `later` runs 20 h after, `nudge` 40 h after
    assert "more than 24 hours after the customer's last message" in problems[0].reason
    assert "(main.waiting → main.later → main.nudge)" in problems[0].reason
    assert problems[0].hint is not None and "template" in problems[0].hint


def test_sending_a_template_there_is_accepted(tmp_path: Path) -> None:
    template = 'template: {name: follow_up, params: ["{customer.name|there}"]}'
    assert check(tmp_path, NUDGE.replace("{body}", template)) == []


def test_timeouts_within_the_window_are_fine(tmp_path: Path) -> None:
    assert check(tmp_path, NUDGE.replace("20h", "30m").replace("{body}", "say: Bye for now")) == []


def test_a_timeout_that_comes_round_again_has_no_end_and_is_refused(tmp_path: Path) -> None:
    flow = """
        flow: main
        start: menu
        states:
          menu:
            say: Anything else?
            on:
              text: menu
              timeout: {after: 30m, goto: menu}
    """
    problems = check(tmp_path, flow)
    assert [(p.line, "more than 24 hours" in p.reason) for p in problems] == [(5, True)]


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{name: folow_up, params: [x]}", "there is no template 'folow_up' in templates/"),
        ("{name: follow_up, params: []}", "template 'follow_up' takes 1 parameter(s); 0 given"),
        ("{name: follow_up, language: fr, params: [x]}", "template 'follow_up' has no 'fr' text"),
    ],
)
def test_template_names_parameters_and_languages_are_checked(
    tmp_path: Path, template: str, reason: str
) -> None:
    flow = f"""
        flow: main
        start: menu
        states:
          menu:
            template: {template}
            on:
              text: menu
    """
    problems = check(tmp_path, flow)
    assert [p.reason for p in problems] == [reason]
    assert problems[0].line == 5


def test_a_state_nothing_leads_to_is_reported(tmp_path: Path) -> None:
    flow = """
        flow: main
        start: menu
        states:
          menu:
            say: Hi
            on:
              text: menu
          forgotten:
            say: Nobody gets here
            goto: menu
    """
    assert reasons(check(tmp_path, flow)) == ["8: state 'forgotten' cannot be reached: nothing leads to it"]


def test_ask_mistakes_are_named(tmp_path: Path) -> None:
    flow = """
        flow: main
        start: menu
        states:
          menu:
            say: How many?
            ask: {save_as: 2many, expect: numbr, pattern: "(", min: 3, then: nowhere}
    """
    found = reasons(check(tmp_path, flow))
    assert any("'2many' is not a variable name" in r for r in found)
    assert any("expected 'text', 'number', 'date' or 'time'" in r for r in found)
    assert any("invalid pattern" in r for r in found)
    assert all(r.startswith("6: ") for r in found)


def test_ask_rules_beyond_the_schema(tmp_path: Path) -> None:
    flow = """
        flow: main
        start: menu
        states:
          menu:
            ask: {save_as: count, expect: date, min: 3, then: menu}
            goto: menu
    """
    found = reasons(check(tmp_path, flow))
    assert "5: a state that asks waits for the answer" in found
    assert "5: 'min' and 'max' need 'expect: number'" in found


def test_a_bad_duration_and_a_misplaced_otherwise_are_named(tmp_path: Path) -> None:
    flow = """
        flow: main
        start: menu
        states:
          menu:
            say: Hi
            on:
              text: route
              timeout: {after: soon, goto: menu}
          route:
            choose:
              - goto: menu
              - if: {x: 1}
                goto: menu
    """
    found = reasons(check(tmp_path, flow))
    assert "8: 'soon' is not a duration" in found
    assert "11: only the last branch may leave out 'if'" in found


def test_a_broken_template_file_is_reported_with_its_place(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES / "texts", templates / "texts")
    (templates / "order_ready.yaml").write_text(
        "name: order_ready\nlanguages:\n  en: 'Hi {{1}}, your {{3}} is ready'\n", encoding="utf-8"
    )
    flow = "flow: main\nstart: menu\nstates:\n  menu:\n    say: Hi\n    on: {text: menu}\n"
    problems = check(tmp_path, flow, templates)
    assert [(Path(p.file).name, p.line, p.reason) for p in problems] == [
        ("order_ready.yaml", 2, "the en text skips a parameter")
    ]


def test_a_state_with_a_typo_is_still_checked_for_everything_else(tmp_path: Path) -> None:
    flow = """
        flow: main
        start: menu
        states:
          menu:
            sayy: Hi
            on:
              text: nowhere
              pattern:
                "(": menu
    """
    problems = check(tmp_path, flow)
    assert [(p.line, p.reason.split(":")[0]) for p in problems] == [
        (5, "unknown key 'sayy'"),
        (7, "there is no state 'nowhere' in flow 'main'"),
        (9, "invalid pattern"),
    ]
    assert all(p.hint for p in problems)
