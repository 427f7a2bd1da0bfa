"""`bot flows graph`: every state and transition drawn, readable labels, text Mermaid and dot accept."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from bot.cli.main import main
from bot.engine import ActionRegistry, ActionResult, FlowSet, load_flows
from bot.engine import graph as graph_module
from bot.engine.edges import Edge, state_edges
from bot.engine.graph import dot, mermaid
from bot.engine.schema import State, split_target
from tests.helpers import FLOWS, shop_actions, write_flow, write_settings

SAFE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MERMAID_NODE = re.compile(r'^\s*(\w+)\["(.*)"\]$')
MERMAID_EDGE = re.compile(r'^\s*(\w+) -->(?:\|"(.*)"\|)? (\w+)$')
DOT_NODE = re.compile(r'^\s*"(\w+)" \[label="((?:[^"\\]|\\.)*)"')
DOT_EDGE = re.compile(r'^\s*"(\w+)" -> "(\w+)"(?: \[label="((?:[^"\\]|\\.)*)"\])?;$')


def nodes(text: str) -> dict[str, str]:
    """Mermaid node id -> label."""
    return {m[1]: m[2] for line in text.splitlines() if (m := MERMAID_NODE.match(line))}


def edges(text: str) -> list[tuple[str, str, str]]:
    """Mermaid (source id, target id, label) in output order; unlabelled edges have label ''."""
    return [(m[1], m[3], m[2] or "") for line in text.splitlines() if (m := MERMAID_EDGE.match(line))]


def edge_map(text: str) -> dict[tuple[str, str], str]:
    found = edges(text)
    assert len(found) == len({(s, t) for s, t, _ in found}), "parallel edges must be merged"
    return {(s, t): label for s, t, label in found}


def node_id(text: str, label: str) -> str:
    """The node drawn with this label; a node id itself ("orders__start") is taken as it is."""
    if "__" in label:
        assert label in nodes(text), f"{label!r} is not drawn: {nodes(text)}"
        return label
    ids = [node for node, shown in nodes(text).items() if shown == label]
    assert len(ids) == 1, f"{label!r} should be drawn once: {nodes(text)}"
    return ids[0]


def label_between(text: str, source: str, target: str) -> str:
    return edge_map(text)[(node_id(text, source), node_id(text, target))]


TWO_FLOWS_MAIN = """
    flow: main
    start: menu
    states:
      menu:
        say: {en: "Pick one", es: "Elige"}
        buttons:
          - {id: order, title: {en: "My repair", es: "Mi reparación"}}
          - {id: next, title: {en: "Next", es: "Siguiente"}}
        on:
          order: orders.ask-number
          next: step-two
          keywords:
            step-two: [go, ahead, forward, onwards]
          pattern:
            '^\\d+$': step-two
      step-two:
        say: Done
        goto: menu
    fallback:
      say: Sorry?
      goto: menu
"""

TWO_FLOWS_ORDERS = """
    flow: orders
    start: ask-number
    states:
      ask-number:
        say: Your order number?
        on:
          text: main.menu
"""


@pytest.fixture
def two_flows(tmp_path: Path) -> Path:
    directory = tmp_path / "two"
    directory.mkdir()
    write_flow(directory, "main.yaml", TWO_FLOWS_MAIN)
    write_flow(directory, "orders.yaml", TWO_FLOWS_ORDERS)
    return directory


# --- the shipped flow ------------------------------------------------------------------------------


def test_every_state_of_the_shipped_main_flow_is_drawn(shipped: FlowSet) -> None:
    text = mermaid(shipped, ["main"])
    assert text.startswith("flowchart LR\n")
    assert set(shipped.flows["main"].states) <= set(nodes(text).values())
    assert all(SAFE_ID.match(node) for node in nodes(text))


def test_every_transition_of_the_shipped_flow_has_an_edge(shipped: FlowSet) -> None:
    text = mermaid(shipped)
    drawn = edge_map(text)
    flow = shipped.flows["main"]
    for name, state in flow.states.items():
        for edge in state_edges(state, shipped.actions):
            other, target = split_target("main", edge.target)
            assert (node_id(text, f"main__{name}"), node_id(text, f"{other}__{target}")) in drawn, (
                name,
                edge,
            )


def test_buttons_are_labelled_with_their_title_in_the_flows_first_language(shipped: FlowSet) -> None:
    text = mermaid(shipped)
    assert label_between(text, "menu", "orders__start").startswith("Repair status, ")
    assert label_between(text, "help", "menu").startswith("Main menu, ")  # a list row's title
    assert label_between(text, "menu", "technician").startswith("Technician")


def test_keywords_show_the_first_few_words(shipped: FlowSet) -> None:
    text = mermaid(shipped)
    assert label_between(text, "menu", "menu") == "#34;hi, hello, hey, …#34;"
    assert "#34;status, order, repair, …#34;" in label_between(text, "menu", "orders__start")


def test_the_start_state_is_marked(shipped: FlowSet) -> None:
    text = mermaid(shipped)
    assert 'main_start(("start"))' in text
    assert f"  main_start --> {node_id(text, 'menu')}" in text.splitlines()
    assert "main__start" not in nodes(text)  # the entry is a circle, not a state


def test_the_flow_wide_fallback_is_drawn_from_states_that_wait(shipped: FlowSet) -> None:
    text = mermaid(shipped)
    assert label_between(text, "menu", "help") == "not understood (2 in a row)"
    help_id, technician_id = node_id(text, "help"), node_id(text, "technician")
    assert (help_id, help_id) not in edge_map(text)  # help has a fallback of its own, without goto
    # technician waits (silent, with a person) and any text after the release leads to the menu
    assert (technician_id, node_id(text, "menu")) in edge_map(text)


def test_the_same_flows_always_give_the_same_text(shipped: FlowSet) -> None:
    again = load_flows(FLOWS, shop_actions())
    assert mermaid(shipped) == mermaid(again)
    assert dot(shipped) == dot(again)


# --- several flows, merged edges, labels ------------------------------------------------------------


def test_edges_into_another_flow_point_at_that_flows_state(two_flows: Path) -> None:
    flows = load_flows(two_flows)
    text = mermaid(flows)
    assert text.count("\n  subgraph ") == 2
    assert '  subgraph main["main"]' in text and '  subgraph orders["orders"]' in text
    menu, ask = node_id(text, "menu"), node_id(text, "ask-number")
    assert edge_map(text)[(menu, ask)] == "My repair"
    assert edge_map(text)[(ask, menu)] == "text"
    assert f"  orders_start --> {ask}" in text.splitlines()


def test_a_target_in_a_flow_not_drawn_still_appears(two_flows: Path) -> None:
    text = mermaid(load_flows(two_flows), ["main"])
    assert "subgraph" not in text
    outside = node_id(text, "orders.ask-number")
    assert edge_map(text)[(node_id(text, "menu"), outside)] == "My repair"
    assert f"class {outside} otherFlow" in text
    assert "ask-number" not in nodes(text).values()  # drawn once, by its full name


def test_parallel_edges_are_merged_with_their_labels_joined(two_flows: Path) -> None:
    text = mermaid(load_flows(two_flows))
    assert label_between(text, "menu", "step-two") == "Next, #34;go, ahead, forward, …#34;, pattern"
    assert label_between(text, "menu", "menu") == "not understood"


def test_state_names_with_dashes_get_safe_ids(two_flows: Path) -> None:
    flows = load_flows(two_flows)
    text = mermaid(flows)
    mermaid_ids = {*nodes(text), *(end for s, t, _ in edges(text) for end in (s, t))}
    dot_lines = dot(flows).splitlines()
    dot_ids = {m[1] for line in dot_lines if (m := DOT_NODE.match(line))}
    dot_ids |= {end for line in dot_lines if (m := DOT_EDGE.match(line)) for end in (m[1], m[2])}
    assert "ask-number" in nodes(text).values()
    assert node_id(text, "ask-number") in dot_ids
    assert all(SAFE_ID.match(node) for node in mermaid_ids | dot_ids)


def test_labels_are_escaped(tmp_path: Path) -> None:
    write_flow(
        tmp_path,
        "main.yaml",
        """
        flow: main
        start: menu
        states:
          menu:
            say: Pick
            buttons:
              - {id: a, title: 'Say "hi" <b>&|#1 📱'}
            on:
              a: menu
        """,
    )
    flows = load_flows(tmp_path)
    assert label_between(mermaid(flows), "menu", "menu") == "Say #34;hi#34; #60;b#62;#38;#124;#35;1 📱"
    assert '[label="Say \\"hi\\" <b>&|#1 📱"]' in dot(flows)


def test_actions_and_unknown_triggers_still_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Lookup(BaseModel):
        found: str
        missing: str

    actions = ActionRegistry()

    @actions.register("orders.lookup", args_model=Lookup, targets=("found", "missing"))
    async def lookup(context: object) -> ActionResult:
        raise NotImplementedError

    write_flow(
        tmp_path,
        "main.yaml",
        """
        flow: main
        start: look
        states:
          look:
            call: orders.lookup
            args: {found: done, missing: done}
          done:
            say: Bye
        """,
    )
    flows = load_flows(tmp_path, actions)

    def with_new_kinds(state: State, registry: ActionRegistry | None) -> Iterator[Edge]:
        yield from state_edges(state, registry)
        yield Edge("timeout", "done", ("on", "timeout"))
        yield Edge("choose:0", "look", ("choose", 0, "goto"))

    monkeypatch.setattr(graph_module, "state_edges", with_new_kinds)
    text = mermaid(flows)
    assert label_between(text, "look", "done") == "found, missing, timeout"
    assert label_between(text, "done", "look") == "choose:0"


def test_asking_for_an_unknown_flow_is_an_error(shipped: FlowSet) -> None:
    with pytest.raises(ValueError, match="nope"):
        mermaid(shipped, ["nope"])


# --- dot -------------------------------------------------------------------------------------------


def test_dot_has_a_cluster_per_flow_and_the_same_edges(two_flows: Path) -> None:
    flows = load_flows(two_flows)
    text = dot(flows)
    assert text.startswith("digraph flows {\n  rankdir=LR;\n") and text.endswith("}\n")
    assert 'subgraph "cluster_main" {' in text and 'subgraph "cluster_orders" {' in text
    assert text.count("{") == text.count("}")
    dot_edges = {(m[1], m[2]) for line in text.splitlines() if (m := DOT_EDGE.match(line))}
    mermaid_edges = {(s, t) for s, t, _ in edges(mermaid(flows))}
    assert dot_edges == mermaid_edges
    labels = {m[1]: m[2] for line in text.splitlines() if (m := DOT_NODE.match(line))}
    assert set(labels.values()) >= {"menu", "step-two", "ask-number", "start"}


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz (dot) is not installed")
@pytest.mark.parametrize("source", ["shipped", "two_flows", "escapes"])
def test_dot_output_renders_with_graphviz(source: str, tmp_path: Path) -> None:
    shown = "did_you_mean"
    if source == "shipped":
        flows = load_flows(FLOWS, shop_actions())
    else:
        title = "'My \"re\\pair\" <x>'" if source == "escapes" else '"My repair"'
        write_flow(tmp_path, "main.yaml", TWO_FLOWS_MAIN.replace('"My repair"', title))
        write_flow(tmp_path, "orders.yaml", TWO_FLOWS_ORDERS)
        flows, shown = load_flows(tmp_path), "ask&#45;number"
    rendered = subprocess.run(
        ["dot", "-Tsvg"], input=dot(flows), capture_output=True, text=True, timeout=60, check=False
    )
    assert rendered.returncode == 0, rendered.stderr
    assert "<svg" in rendered.stdout and shown in rendered.stdout
    if source == "escapes":
        assert "My &quot;re\\pair&quot; &lt;x&gt;" in rendered.stdout


# --- the command -----------------------------------------------------------------------------------


def run(tmp_path: Path, *args: str) -> int:
    return main(["--settings", str(write_settings(tmp_path)), "flows", "graph", *args])


def test_the_command_prints_the_shipped_flows_as_mermaid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path) == 0
    out = capsys.readouterr().out
    assert out == mermaid(load_flows(FLOWS, shop_actions()))
    assert run(tmp_path, "main", "--format", "dot") == 0
    assert capsys.readouterr().out == dot(load_flows(FLOWS, shop_actions()), ["main"])


def test_the_command_takes_a_directory_or_a_file(
    tmp_path: Path, two_flows: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flows = load_flows(two_flows)
    assert run(tmp_path, str(two_flows)) == 0
    assert capsys.readouterr().out == mermaid(flows)
    assert run(tmp_path, str(two_flows / "orders.yaml")) == 0
    assert capsys.readouterr().out == mermaid(flows, ["orders"])
    assert run(tmp_path, "orders", "--dir", str(two_flows)) == 0
    assert capsys.readouterr().out == mermaid(flows, ["orders"])


def test_an_unknown_flow_exits_2_naming_the_known_ones(
    tmp_path: Path, two_flows: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, "ordres", "--dir", str(two_flows)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "ordres" in captured.err and "main, orders" in captured.err


def test_flows_with_problems_exit_1_with_file_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    broken = flows / "main.yaml"
    write_flow(flows, broken.name, "flow: main\nstart: menu\nstates:\n  menu:\n    goto: nowhere\n")
    assert run(tmp_path, "--dir", str(flows)) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{broken}:5:") and "nowhere" in out
    assert "flowchart" not in out
