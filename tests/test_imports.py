"""No import circle in bot/: every import (those under TYPE_CHECKING and inside functions too, and a
package's __init__ re-exports) goes one way, so each module can be read, tested and moved on its own.
In particular bot/handoff implements the policy bot/inbox.py declares, and the inbox imports nothing
from bot/handoff."""

from __future__ import annotations

from collections.abc import Mapping, Set

import grimp


def import_graph() -> dict[str, set[str]]:
    """bot's modules -> the bot modules each one imports."""
    graph = grimp.build_graph("bot", exclude_type_checking_imports=False, cache_dir=None)
    return {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}


def cycles(graph: Mapping[str, Set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, following = work[-1]
            step = next(following, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph.get(step, ())))))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def shortest_circle(start: str, component: Set[str], graph: Mapping[str, Set[str]]) -> list[str]:
    """start -> ... -> start by the fewest imports, inside the component."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for other in sorted(graph[module] & component):
                if other == start:
                    path = [module]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if other not in came_from:
                    came_from[other] = module
                    following.append(other)
        frontier = following
    return [start]


def describe(component: frozenset[str], graph: Mapping[str, Set[str]]) -> str:
    circle = " -> ".join(shortest_circle(min(component), component, graph))
    return f"  {len(component)} modules: {', '.join(sorted(component))}\n    for example {circle}"


def test_bot_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "bot.engine.machine" in graph and "bot.inbox" in graph  # the walk saw the whole package
    found = cycles(graph)
    assert not found, "import cycles in bot/ (make the imports go one way):\n" + "\n".join(
        describe(component, graph) for component in found
    )


def test_the_inbox_imports_nothing_from_the_handoff_package() -> None:
    assert not {module for module in import_graph()["bot.inbox"] if module.startswith("bot.handoff")}


def test_a_cycle_is_a_strongly_connected_component() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]
    assert cycles({"a": {"b"}, "b": set(), "c": {"c"}}) == []
    graph = {"a": {"b", "c"}, "b": {"a"}, "c": {"b"}}
    assert shortest_circle("a", frozenset(graph), graph) == ["a", "b", "a"]
