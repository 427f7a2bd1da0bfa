"""docs/flows.md cannot drift from the schema: every YAML example in it is loaded here, and its
"Your first change" walk-through is applied to a copy of the shipped flows and must pass the check."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from bot.engine import Engine, check_flows, load_flows
from bot.engine.templates import load_templates
from tests.helpers import REPO, TEMPLATES, shop_actions

DOC = REPO / "docs" / "flows.md"
EXAMPLE = re.compile(r"<!-- example: ([\w-]+) -->\n```yaml\n(.*?)```", re.DOTALL)


def examples(kind: str) -> list[str]:
    return [
        body for found_kind, body in EXAMPLE.findall(DOC.read_text(encoding="utf-8")) if found_kind == kind
    ]


def test_every_yaml_example_is_marked_for_checking() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert text.count("```yaml") == len(EXAMPLE.findall(text))
    kinds = {kind for kind, _ in EXAMPLE.findall(text)}
    assert kinds <= {"flow", "template", "tests", "main-states", "main-keywords"}


@pytest.mark.parametrize("number", range(len(examples("flow"))))
def test_each_flow_example_loads(tmp_path: Path, number: int) -> None:
    (tmp_path / "main.yaml").write_text(examples("flow")[number], encoding="utf-8")
    actions = shop_actions()  # the actions the shop's flows can call, as the server registers them
    assert [str(p) for p in check_flows(tmp_path, actions, TEMPLATES)] == []
    Engine(load_flows(tmp_path, actions, TEMPLATES))


def test_the_template_example_is_a_valid_template(tmp_path: Path) -> None:
    [example] = examples("template")
    (tmp_path / "follow_up.yaml").write_text(example, encoding="utf-8")
    catalog, problems = load_templates(tmp_path)
    assert problems == []
    assert catalog.get("follow_up") == load_templates(TEMPLATES)[0].get("follow_up")


def first_change(flows: Path, *, with_keywords: bool = True) -> None:
    """Apply the walk-through's two edits to flows/main.yaml, the way a staff member would."""
    [state] = examples("main-states")
    [keywords] = examples("main-keywords")
    main = flows / "main.yaml"
    text = main.read_text(encoding="utf-8")
    if with_keywords:
        text = text.replace("      keywords:\n", "      keywords:\n" + keywords, 1)  # the menu's, first
    text = text.replace(
        "\n# When nothing in a state matches", "\n" + state + "\n# When nothing in a state matches", 1
    )
    main.write_text(text, encoding="utf-8")


def test_the_first_change_walkthrough_passes_the_check(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    shutil.copytree(REPO / "flows", flows)
    first_change(flows, with_keywords=False)
    problems = check_flows(flows, shop_actions(), TEMPLATES)
    assert [p.reason for p in problems] == ["state 'hours' cannot be reached: nothing leads to it"]  # step 2
    shutil.rmtree(flows)
    shutil.copytree(REPO / "flows", flows)
    first_change(flows)
    assert check_flows(flows, shop_actions(), TEMPLATES) == []
    hours = load_flows(flows, shop_actions(), TEMPLATES).flows["main"].states["hours"]
    assert hours.buttons is not None and len(hours.buttons) == 2
