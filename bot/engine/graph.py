"""Flows drawn as diagrams: Mermaid (`flowchart LR`) or Graphviz dot, for staff who read pictures.

Edges come only from `edges.state_edges` plus the flow-wide fallback, exactly as the machine builds
its table, so a new kind of transition shows up here without changes: its label is then the trigger
text. Parallel edges between two states are merged into one with the labels joined, and everything is
emitted in a fixed order, so the same flows always give the same text (diffable, cacheable).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bot.engine.edges import ANSWERED, FALLBACK, GOTO, Edge, state_edges
from bot.engine.events import TIMEOUT
from bot.engine.flows import FlowSet
from bot.engine.schema import (
    BranchSpec,
    ConditionSpec,
    FallbackSpec,
    Flow,
    State,
    format_duration,
    split_target,
)
from bot.engine.texts import pick_text

KEYWORDS_SHOWN = 3
"""How many of a target's keywords an edge label shows before '…'."""


@dataclass
class _Node:
    id: str
    label: str


@dataclass
class _Cluster:
    flow: str
    id: str
    entry: str
    """Id of the small 'start' node that points at the flow's start state."""
    start: str
    """Id of the start state's node."""
    nodes: list[_Node] = field(default_factory=list)


@dataclass
class _Graph:
    """What both formats draw: clusters (one per drawn flow), nodes outside them, merged edges."""

    clusters: list[_Cluster] = field(default_factory=list)
    outside: list[_Node] = field(default_factory=list)
    edges: dict[tuple[str, str], list[str]] = field(default_factory=dict)


class _Ids:
    """Readable ids made safe for both formats ([A-Za-z0-9_], not starting with a digit), unique."""

    def __init__(self) -> None:
        self._given: dict[tuple[str, ...], str] = {}
        self._used: set[str] = set()

    def get(self, key: tuple[str, ...], base: str) -> str:
        if key not in self._given:
            safe = re.sub(r"[^A-Za-z0-9_]", "_", base)
            safe = f"n{safe}" if safe[:1].isdigit() else safe
            unique, n = safe, 1
            while unique in self._used:
                n += 1
                unique = f"{safe}_{n}"
            self._used.add(unique)
            self._given[key] = unique
        return self._given[key]


def mermaid(flows: FlowSet, names: list[str] | None = None) -> str:
    """A Mermaid `flowchart LR`; several flows are drawn as one subgraph each."""
    graph = _build(flows, names)
    several = len(graph.clusters) > 1
    lines = ["flowchart LR"]
    for cluster in graph.clusters:
        indent = "    " if several else "  "
        if several:
            lines.append(f'  subgraph {cluster.id}["{_mermaid_text(cluster.flow)}"]')
        lines.append(f'{indent}{cluster.entry}(("start"))')
        lines.extend(f'{indent}{node.id}["{_mermaid_text(node.label)}"]' for node in cluster.nodes)
        if several:
            lines.append("  end")
    lines.extend(f'  {node.id}["{_mermaid_text(node.label)}"]' for node in graph.outside)
    lines.extend(f"  {cluster.entry} --> {cluster.start}" for cluster in graph.clusters)
    for (source, target), labels in graph.edges.items():
        text = ", ".join(labels)
        arrow = f'-->|"{_mermaid_text(text)}"|' if text else "-->"
        lines.append(f"  {source} {arrow} {target}")
    if graph.outside:
        lines.append("  classDef otherFlow stroke-dasharray: 5 5")
        lines.append(f"  class {','.join(node.id for node in graph.outside)} otherFlow")
    return "\n".join(lines) + "\n"


def dot(flows: FlowSet, names: list[str] | None = None) -> str:
    """A Graphviz `digraph`, one `cluster_<flow>` subgraph per drawn flow (`dot -Tsvg` renders it)."""
    graph = _build(flows, names)
    lines = ["digraph flows {", "  rankdir=LR;", '  node [shape=box, style=rounded, fontname="Helvetica"];']
    lines.append('  edge [fontname="Helvetica", fontsize=10];')
    for cluster in graph.clusters:
        lines.append(f'  subgraph "cluster_{cluster.id}" {{')
        lines.append(f"    label={_dot_text(cluster.flow)};")
        lines.append(f'    "{cluster.entry}" [label="start", shape=circle, style=filled, fontsize=10];')
        lines.extend(f'    "{node.id}" [label={_dot_text(node.label)}];' for node in cluster.nodes)
        lines.append("  }")
    lines.extend(
        f'  "{node.id}" [label={_dot_text(node.label)}, style="rounded,dashed"];' for node in graph.outside
    )
    lines.extend(f'  "{cluster.entry}" -> "{cluster.start}";' for cluster in graph.clusters)
    for (source, target), labels in graph.edges.items():
        text = ", ".join(labels)
        attributes = f" [label={_dot_text(text)}]" if text else ""
        lines.append(f'  "{source}" -> "{target}"{attributes};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def as_data(flows: FlowSet, names: list[str] | None = None) -> dict[str, Any]:
    """The same graph as plain data (`bot flows graph --format json`, the panel's dashboard, which
    draws it itself): per flow its states (`id`, `state`, `label`, `end`: a state that moves on to
    another flow by itself, or has no way out: where a funnel ends) and the merged edges with their labels."""
    graph = _build(flows, names)
    ends: dict[tuple[str, str], bool] = {}
    for flow in _selected(flows, names):
        for name, state in flow.states.items():
            edges = list(state_edges(state, flows.actions))
            leaves = [
                e for e in edges if e.trigger == GOTO and split_target(flow.name, e.target)[0] != flow.name
            ]
            ends[(flow.name, name)] = not edges or bool(leaves)
    return {
        "flows": [
            {
                "flow": cluster.flow,
                "entry": cluster.entry,
                "start": cluster.start,
                "states": [
                    {
                        "id": node.id,
                        "state": node.label,
                        "label": node.label,
                        "end": ends.get((cluster.flow, node.label), False),
                    }
                    for node in cluster.nodes
                ],
            }
            for cluster in graph.clusters
        ],
        "outside": [{"id": node.id, "label": node.label} for node in graph.outside],
        "edges": [
            {"source": source, "target": target, "label": ", ".join(labels)}
            for (source, target), labels in graph.edges.items()
        ],
    }


# --- the graph both formats draw -----------------------------------------------------------------


def _build(flows: FlowSet, names: list[str] | None) -> _Graph:
    drawn = _selected(flows, names)
    ids = _Ids()
    graph = _Graph()
    for flow in drawn:
        cluster_id = ids.get(("flow", flow.name), flow.name)
        entry = ids.get(("start", flow.name), f"{flow.name}_start")
        states = [_Node(_state_id(ids, flow.name, state), state) for state in flow.states]
        start = _state_id(ids, flow.name, flow.start)
        graph.clusters.append(_Cluster(flow.name, cluster_id, entry, start, states))
    clusters = {cluster.flow: cluster for cluster in graph.clusters}
    placed = {node.id for cluster in graph.clusters for node in cluster.nodes}
    for flow in drawn:
        for source, edge in _edges(flows, flow):
            other, state = split_target(flow.name, edge.target)
            target = _state_id(ids, other, state)
            if target not in placed:  # a state of a flow not drawn (or, unchecked, one that is missing)
                placed.add(target)
                node = _Node(target, state) if other in clusters else _Node(target, f"{other}.{state}")
                (clusters[other].nodes if other in clusters else graph.outside).append(node)
            labels = graph.edges.setdefault((_state_id(ids, flow.name, source), target), [])
            label = _label(edge.trigger, flow.states[source], flow)
            if label and label not in labels:
                labels.append(label)
    return graph


def _selected(flows: FlowSet, names: list[str] | None) -> list[Flow]:
    """The flows to draw, in the order asked (or by name); an unknown name is a ValueError."""
    chosen = sorted(flows.flows) if names is None else list(dict.fromkeys(names))
    unknown = [name for name in chosen if name not in flows.flows]
    if unknown:
        known = ", ".join(sorted(flows.flows))
        raise ValueError(f"no flow named {', '.join(unknown)}; the flows are: {known}")
    return [flows.flows[name] for name in chosen]


def _edges(flows: FlowSet, flow: Flow) -> Iterator[tuple[str, Edge]]:
    """(source state, edge) for every way out, the flow-wide fallback where a state has none of its own.

    A state with `goto` moves on at once and never waits, so the flow-wide fallback cannot fire there:
    drawing it would add an arrow from every such state that no customer can ever take.
    """
    flow_fallback = flow.fallback.goto if flow.fallback is not None else None
    for name, state in flow.states.items():
        for edge in state_edges(state, flows.actions):
            yield name, edge
        if state.fallback is None and state.goto is None and flow_fallback is not None:
            yield name, Edge(FALLBACK, flow_fallback, ("fallback", "goto"))


def _state_id(ids: _Ids, flow: str, state: str) -> str:
    return ids.get(("state", flow, state), f"{flow}__{state}")


# --- edge labels: what the customer does, in staff's words ----------------------------------------


def _label(trigger: str, state: State, flow: Flow) -> str:
    """`reply:order` -> the button title; `keyword:x` -> the first keywords; unknown -> the trigger."""
    kind, colon, rest = trigger.partition(":")
    if trigger == GOTO:
        return ""
    if trigger == FALLBACK:
        return _fallback_label(state.fallback or flow.fallback)
    if trigger == TIMEOUT and state.on is not None and state.on.timeout is not None:
        return f"{format_duration(state.on.timeout.after)} of silence"
    if trigger == ANSWERED and state.ask is not None:
        return f"answer → {state.ask.save_as}"
    if kind == "choose" and state.choose is not None and rest.isdigit() and int(rest) < len(state.choose):
        return _branch_label(state.choose[int(rest)])
    if not colon:
        return trigger
    if kind == "reply":
        return _reply_title(state, rest, _language(flow)) or rest
    if kind == "keyword":
        return _keywords_label(state, rest)
    if kind == "pattern":
        return "pattern"
    if kind == "call":
        return rest
    return trigger


def _branch_label(branch: BranchSpec) -> str:
    if not branch.when:
        return "otherwise"
    return "if " + " and ".join(f"{name} {_condition_text(test)}" for name, test in branch.when.items())


def _condition_text(test: ConditionSpec) -> str:
    parts = [f"= {test.equals}"] if test.equals is not None else []
    if test.one_of is not None:
        parts.append("in " + "/".join(str(v) for v in test.one_of))
    if test.set is not None:
        parts.append("is set" if test.set else "is not set")
    if test.above is not None:
        parts.append(f"> {test.above:g}")
    if test.below is not None:
        parts.append(f"< {test.below:g}")
    if test.matches is not None:
        parts.append(f"~ {test.matches}")
    return " ".join(parts)


def _fallback_label(spec: FallbackSpec | None) -> str:
    after = spec.after if spec is not None and spec.after is not None else 1
    return "not understood" if after == 1 else f"not understood ({after} in a row)"


def _keywords_label(state: State, target: str) -> str:
    words = state.on.keywords.get(target, []) if state.on is not None else []
    if not words:
        return target
    shown = ", ".join(words[:KEYWORDS_SHOWN])
    return f'"{shown}, …"' if len(words) > KEYWORDS_SHOWN else f'"{shown}"'


def _reply_title(state: State, reply_id: str, language: str | None) -> str | None:
    """The title of the button or list row the state offers with this id, if it offers one."""
    offered = [*(state.buttons or ())]
    if state.choices is not None:
        offered += [row for section in state.choices.sections for row in section.rows]
    for option in offered:
        if option.id == reply_id:
            return pick_text(option.title, language)
    return None


def _language(flow: Flow) -> str | None:
    """The flow's first language: the first one written in its first multi-language text."""
    for state in flow.states.values():
        texts = [state.say, *(button.title for button in state.buttons or ())]
        if state.choices is not None:
            texts += [row.title for section in state.choices.sections for row in section.rows]
        for text in texts:
            if isinstance(text, dict):
                return next(iter(text))
    return None


# --- escaping --------------------------------------------------------------------------------------

_MERMAID_ENTITIES = {"#": "#35;", '"': "#34;", "<": "#60;", ">": "#62;", "&": "#38;", "|": "#124;"}
_MERMAID_ENTITIES["`"] = "#96;"


def _mermaid_text(text: str) -> str:
    """Text for inside a quoted Mermaid label: entity codes for what the syntax or HTML would take."""
    return "".join(_MERMAID_ENTITIES.get(ch, ch) for ch in _one_line(text))


def _dot_text(text: str) -> str:
    """A quoted dot string: backslashes and quotes escaped (so `\\n`, `\\l` stay literal)."""
    return '"' + _one_line(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _one_line(text: str) -> str:
    return " ".join(text.split())
