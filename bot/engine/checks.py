"""References across states and flows, checked when flows load: targets that lead nowhere and `goto`
loops. What the whole set allows beyond that (states nothing reaches, the 24-hour window) is `reach.py`.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass

from bot.engine.actions import ActionRegistry
from bot.engine.edges import state_edges
from bot.engine.schema import State, split_target


@dataclass(frozen=True)
class GraphIssue:
    flow: str
    path: tuple[str | int, ...]
    reason: str
    hint: str | None = None
    key: bool = False


def suggest(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), 1, 0.6)
    return f"did you mean '{close[0]}'?" if close else None


def check_graph(
    flows: Mapping[str, Mapping[str, State]],
    flow_fallbacks: Mapping[str, str | None],
    known: Mapping[str, Collection[str]],
    unreadable: Collection[str],
    actions: ActionRegistry,
) -> Iterator[GraphIssue]:
    """Targets that lead nowhere, and goto loops, across all flows (`known`: every state name, even
    of states whose schema failed; flows in `unreadable` failed to parse, so targets into them pass)."""

    def check(flow: str, path: tuple[str | int, ...], target: str, key: bool) -> Iterator[GraphIssue]:
        other, state = split_target(flow, target)
        if other in unreadable:
            return
        if other not in known:
            yield GraphIssue(flow, path, f"there is no flow '{other}'", suggest(other, known), key)
        elif state not in known[other]:
            hint = suggest(state, known[other]) or f"flow '{other}' has: {', '.join(sorted(known[other]))}"
            yield GraphIssue(flow, path, f"there is no state '{state}' in flow '{other}'", hint, key)

    gotos: dict[tuple[str, str], tuple[str, str]] = {}
    for flow, states in flows.items():
        fallback = flow_fallbacks.get(flow)
        if fallback is not None:
            yield from check(flow, ("fallback", "goto"), fallback, False)
        for name, state in states.items():
            for edge in state_edges(state, actions):
                yield from check(flow, ("states", name, *edge.path), edge.target, edge.key)
            if state.goto is not None:
                gotos[(flow, name)] = split_target(flow, state.goto)
    # A cycle of states that all `goto` on would never wait for the customer.
    reported: set[tuple[str, str]] = set()
    for first in sorted(gotos):
        chain = [first]
        node = gotos[first]
        while node in gotos and node not in chain:
            chain.append(node)
            node = gotos[node]
        if node in chain and node not in reported:
            loop = chain[chain.index(node) :]
            reported.update(loop)
            names = " → ".join(f"{f}.{s}" for f, s in [*loop, node])
            reason = f"goto loop: {names} never waits for the customer"
            yield GraphIssue(
                node[0], ("states", node[1], "goto"), reason, "end the loop with a state without goto"
            )
