"""Loading flows: the shipped flow is valid, and every mistake staff can make is named at its place."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from bot.engine import ActionRegistry, ActionResult, FlowLoadError, FlowProblem, check_flows, load_flows
from tests.helpers import FLOWS, at, shop_actions, where, write_flow

MINIMAL = """
    flow: main
    start: menu
    states:
      menu:
        say: Hi
"""


def test_shipped_flows_pass_the_check() -> None:
    assert check_flows(FLOWS, shop_actions()) == []
    flows = load_flows(FLOWS, shop_actions())
    assert flows.flows["main"].start == "menu"
    assert flows.flows["main"].file.name == "main.yaml"


def test_problem_reads_as_file_line_column() -> None:
    problem = FlowProblem("flows/main.yaml", 12, 5, "unknown key 'sayy'", "did you mean 'say'?")
    assert str(problem) == "flows/main.yaml:12:5: unknown key 'sayy' (hint: did you mean 'say'?)"
    assert (
        str(FlowProblem("flows/main.yaml", 1, 1, "the file is empty"))
        == "flows/main.yaml:1:1: the file is empty"
    )


def test_many_problems_in_one_file_are_all_reported_at_their_place(tmp_path: Path) -> None:
    write_flow(
        tmp_path, "orders.yaml", "flow: orders\nstart: ask_number\nstates:\n  ask_number:\n    say: Number?\n"
    )
    text = write_flow(
        tmp_path,
        "main.yaml",
        r"""
        flow: main
        start: menu
        colour: blue
        states:
          menu:
            say: Pick one
            buttons:
              - {id: a, title: A}
              - {id: b, title: B}
              - {id: a, title: C}
              - {id: d, title: D}
            on:
              a: nowhere
              b: menu
              d: orders.ask
              keywords:
                nowhere_either: [x]
              pattern:
                '^(\d+$': menu
            call: orders.lookup
          long_title:
            say: Hi
            buttons:
              - {id: x, title: "This title is far too long"}
            on: {x: menu}
          typo:
            sayy: Hello
          row_title:
            say: Choose
            list:
              button: Open
              sections:
                - rows:
                    - {id: r1, title: "A row title that is way too long"}
            on: {r1: menu}
          too_many_rows:
            say: Choose
            list:
              button: Open
              sections:
                - title: All
                  rows: [{id: r1, title: "1"}, {id: r2, title: "2"}, {id: r3, title: "3"},
                     {id: r4, title: "4"}, {id: r5, title: "5"}, {id: r6, title: "6"},
                     {id: r7, title: "7"}, {id: r8, title: "8"}, {id: r9, title: "9"},
                     {id: r10, title: "10"}, {id: r11, title: "11"}]
          unknown_flow:
            say: Bye
            goto: nowhere.menu
        """,
    )
    found = where(check_flows(tmp_path), "main.yaml")
    expected = {
        at(text, "colour"): "unknown key 'colour'",
        at(text, "buttons:"): "4 buttons; WhatsApp allows 3",
        at(text, "a, title: C"): "id 'a' is used twice in this state",
        at(text, "nowhere\n"): "there is no state 'nowhere' in flow 'main'",
        at(text, "orders.ask"): "there is no state 'ask' in flow 'orders'",
        at(text, "nowhere_either"): "there is no state 'nowhere_either' in flow 'main'",
        at(text, r"'^(\d+$'"): "invalid pattern: missing ), unterminated subpattern at position 1",
        at(text, "orders.lookup"): "unknown action 'orders.lookup'",
        at(
            text, '"This title'
        ): "button title 'This title is far too long' is 26 characters; WhatsApp allows 20",
        at(text, "sayy"): "unknown key 'sayy'",
        at(
            text, '"A row title'
        ): "list row title 'A row title that is way too long' is 32 characters; WhatsApp allows 24",
        at(text, "sections:", 2): "this list has 11 rows; WhatsApp allows 10 in all",
        at(text, "nowhere.menu"): "there is no flow 'nowhere'",
    }
    assert found == expected


def test_hints_say_what_to_do(tmp_path: Path) -> None:
    write_flow(
        tmp_path,
        "main.yaml",
        """
        flow: main
        start: menu
        states:
          menu:
            sayy: Hi
            buttons:
              - {id: a, title: "Twenty-one characters"}
            on: {a: menu}
        """,
    )
    problems = {p.reason.split(" '")[0]: p.hint for p in check_flows(tmp_path)}
    assert problems["unknown key"] == "did you mean 'say'?"
    assert problems["button title"] == "a reply-button title is at most 20 characters; shorten it"


def test_missing_flow_and_start_and_start_not_a_state(tmp_path: Path) -> None:
    write_flow(tmp_path, "main.yaml", "states:\n  menu:\n    say: Hi\n")
    text = write_flow(tmp_path, "other.yaml", "flow: other\nstart: begin\nstates:\n  menu:\n    say: Hi\n")
    found = where(check_flows(tmp_path), "main.yaml")
    assert found == {(1, 1): "'flow' is missing here'start' is missing here"}
    assert where(check_flows(tmp_path), "other.yaml") == {
        at(text, "begin"): "start state 'begin' is not among the states"
    }


def test_flow_name_must_be_the_file_name(tmp_path: Path) -> None:
    write_flow(tmp_path, "main.yaml", MINIMAL)
    text = write_flow(tmp_path, "booking.yaml", "flow: bookings\nstart: a\nstates:\n  a:\n    say: Hi\n")
    problems = check_flows(tmp_path)
    assert where(problems, "booking.yaml") == {at(text, "bookings"): "flow 'bookings' is in file 'booking'"}
    assert problems[0].hint == "the flow name must be the file name"


def test_yaml_syntax_error_has_its_mark_and_other_files_are_still_checked(tmp_path: Path) -> None:
    text = write_flow(tmp_path, "broken.yaml", "flow: broken\nstart: a\nstates:\n  a:\n    say: Hi: there\n")
    write_flow(tmp_path, "main.yaml", MINIMAL + "        sayy: typo\n")
    problems = check_flows(tmp_path)
    broken = [p for p in problems if p.file.endswith("broken.yaml")]
    assert [(p.line, p.column, p.reason) for p in broken] == [
        (*at(text, ": there"), "mapping values are not allowed here")
    ]
    assert broken[0].hint == 'put text that contains ": " in quotes'
    assert where(problems, "main.yaml") == {(6, 5): "unknown key 'sayy'"}


def test_targets_into_an_unparsable_flow_are_not_reported_twice(tmp_path: Path) -> None:
    write_flow(tmp_path, "broken.yaml", "flow: broken\n  bad indentation: [\n")
    write_flow(tmp_path, "main.yaml", MINIMAL + "        goto: broken.somewhere\n")
    assert where(check_flows(tmp_path), "main.yaml") == {}


def test_on_keys_that_yaml_11_would_turn_into_booleans_stay_text(tmp_path: Path) -> None:
    write_flow(
        tmp_path,
        "main.yaml",
        """
        flow: main
        start: menu
        states:
          menu:
            say: Continue?
            buttons: [{id: yes, title: Yes}, {id: no, title: No}]
            on: {yes: menu, no: menu}
        """,
    )
    flows = load_flows(tmp_path)
    on = flows.flows["main"].states["menu"].on
    assert on is not None and on.model_extra == {"yes": "menu", "no": "menu"}


def test_goto_cycles_are_refused_and_chains_accepted(tmp_path: Path) -> None:
    text = write_flow(
        tmp_path,
        "main.yaml",
        """
        flow: main
        start: a
        states:
          a: {say: A, goto: b}
          b: {say: B, goto: c}
          c: {say: C, goto: b}
          d: {say: D, goto: a}
        """,
    )
    problems = check_flows(tmp_path)
    assert len(problems) == 1
    assert (problems[0].line, problems[0].column) == at(text, "c}")
    assert problems[0].reason == "goto loop: main.b → main.c → main.b never waits for the customer"
    with pytest.raises(FlowLoadError) as raised:
        load_flows(tmp_path)
    assert raised.value.problems == problems
    assert str(problems[0]) in str(raised.value)


def test_buttons_need_transitions_and_a_body(tmp_path: Path) -> None:
    text = write_flow(
        tmp_path,
        "main.yaml",
        """
        flow: main
        start: menu
        states:
          menu:
            buttons: [{id: a, title: A}, {id: b, title: B}]
            on: {a: menu, keyword: menu}
        """,
    )
    assert where(check_flows(tmp_path), "main.yaml") == {
        at(text, "buttons"): "buttons need a 'say' text: it is the message body",
        at(text, "b, title"): "'b' has no transition",
        at(text, "keyword:"): "unknown key 'keyword'",
    }


def test_actions_are_checked_against_the_registry(tmp_path: Path) -> None:
    class LookupArgs(BaseModel):
        number: str

    registry = ActionRegistry()

    @registry.register("orders.lookup", args_model=LookupArgs, targets=("found",))
    async def lookup(context: object) -> ActionResult:
        return ActionResult()

    text = write_flow(
        tmp_path,
        "main.yaml",
        """
        flow: main
        start: menu
        states:
          menu:
            say: Hi
            call: orders.lookup
            args: {found: missing_state, numbr: "{order}"}
          other:
            say: Hi
            call: orders.lokup
        """,
    )
    problems = check_flows(tmp_path, registry)
    assert where(problems, "main.yaml") == {
        at(text, "missing_state"): "there is no state 'missing_state' in flow 'main'",
        at(text, "args"): "'number' is missing here",
        at(text, "orders.lokup"): "unknown action 'orders.lokup'",
    }
    assert [p.hint for p in problems if "lokup" in p.reason] == ["did you mean 'orders.lookup'?"]
    assert "unknown action 'orders.lookup'" in str(check_flows(tmp_path))  # no registry: nothing is known


def test_missing_directory_and_empty_file(tmp_path: Path) -> None:
    assert [p.reason for p in check_flows(tmp_path / "nope")] == ["this flows directory does not exist"]
    (tmp_path / "main.yaml").write_text("# nothing yet\n")
    assert [str(p) for p in check_flows(tmp_path)] == [f"{tmp_path / 'main.yaml'}:1:1: the file is empty"]
