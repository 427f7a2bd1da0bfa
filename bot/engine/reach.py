"""What the whole set of flows allows: which states can be reached at all, and how long after the
customer's last message each state can be entered.

The second matters because WhatsApp delivers free-form messages only within 24 hours of the customer's
last message; after that, only approved templates. A state entered by a timeout (or a chain of them)
can be that late, so it must send a template, or the flow is refused at load.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta

from bot.engine.actions import ActionRegistry
from bot.engine.checks import GraphIssue
from bot.engine.edges import FALLBACK, state_edges
from bot.engine.events import TIMEOUT
from bot.engine.schema import State, split_target

CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)
# Ways out of a state that run without the customer writing: the time since their last message carries
AUTOMATIC_PREFIXES = ("goto", "choose:", "call:", TIMEOUT)

Node = tuple[str, str]


def _edges(
    states: Mapping[str, Mapping[str, State]],
    fallbacks: Mapping[str, str | None],
    actions: ActionRegistry,
) -> Iterator[tuple[Node, str, Node, timedelta]]:
    """(from, trigger, to, delay) for every way out of every state, the flow-wide fallback included."""
    for flow, flow_states in states.items():
        for name, state in flow_states.items():
            edges = [(edge.trigger, edge.target) for edge in state_edges(state, actions)]
            flow_fallback = fallbacks.get(flow)
            if state.fallback is None and flow_fallback is not None:
                edges.append((FALLBACK, flow_fallback))
            for trigger, target in edges:
                delay = timedelta(0)
                if trigger == TIMEOUT and state.on is not None and state.on.timeout is not None:
                    delay = state.on.timeout.after
                yield (flow, name), trigger, split_target(flow, target), delay


def unreachable(
    states: Mapping[str, Mapping[str, State]],
    starts: Mapping[str, str],
    fallbacks: Mapping[str, str | None],
    actions: ActionRegistry,
    entries: Iterable[Node] = (),
) -> list[GraphIssue]:
    """States no transition leads to from any flow's start (or a flow's `replies`): a typo in a
    target, or a forgotten link."""
    following: dict[Node, list[Node]] = {}
    for source, _, target, _ in _edges(states, fallbacks, actions):
        following.setdefault(source, []).append(target)
    seen: set[Node] = {(flow, start) for flow, start in starts.items()} | set(entries)
    queue = deque(seen)
    while queue:
        for target in following.get(queue.popleft(), ()):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return [
        GraphIssue(
            flow,
            ("states", name),
            f"state '{name}' cannot be reached: nothing leads to it",
            "add a transition to it (on:, goto:, fallback:), or delete it",
            key=True,
        )
        for flow, flow_states in states.items()
        for name in flow_states
        if (flow, name) not in seen
    ]


def outside_window(
    states: Mapping[str, Mapping[str, State]],
    starts: Mapping[str, str],
    fallbacks: Mapping[str, str | None],
    actions: ActionRegistry,
) -> list[GraphIssue]:
    """States that can be entered more than 24 h after the customer's last message yet send free-form
    messages (text, buttons, list, media): WhatsApp would refuse them (error 131047)."""
    beyond = CUSTOMER_SERVICE_WINDOW + timedelta(seconds=1)  # "too late" is all we need to know
    latest: dict[Node, timedelta] = {}
    via: dict[Node, Node] = {}
    edges = list(_edges(states, fallbacks, actions))
    for _source, trigger, target, _ in edges:
        if not trigger.startswith(AUTOMATIC_PREFIXES):  # the customer just wrote: the window is fresh
            latest.setdefault(target, timedelta(0))
    for flow, start in starts.items():
        latest.setdefault((flow, start), timedelta(0))
    changed = True
    while changed:  # longest delay along automatic paths, capped, so cycles end
        changed = False
        for source, trigger, target, delay in edges:
            if source not in latest or not trigger.startswith(AUTOMATIC_PREFIXES):
                continue
            candidate = min(latest[source] + delay, beyond)
            if candidate > latest.get(target, timedelta(-1)):
                latest[target], via[target] = candidate, source
                changed = True
    issues = []
    for (flow, name), late in sorted(latest.items()):
        state = states.get(flow, {}).get(name)
        if state is None or late <= CUSTOMER_SERVICE_WINDOW:
            continue
        sends = [key for key in ("say", "buttons", "list", "media") if _sends(state, key)]
        if not sends:
            continue
        path = _path_to((flow, name), via)
        issues.append(
            GraphIssue(
                flow,
                ("states", name, sends[0]),
                f"this state can run more than 24 hours after the customer's last message ({path}); "
                "WhatsApp then delivers only approved templates",
                "send a 'template:' from templates/ instead, or make the timeouts shorter",
                key=True,
            )
        )
    return issues


def _sends(state: State, key: str) -> bool:
    return {
        "say": state.say,
        "buttons": state.buttons,
        "list": state.choices,
        "media": state.media,
    }[key] is not None


def _path_to(node: Node, via: Mapping[Node, Node]) -> str:
    chain = [node]
    while chain[-1] in via and via[chain[-1]] not in chain and len(chain) < 8:
        chain.append(via[chain[-1]])
    return " → ".join(f"{flow}.{state}" for flow, state in reversed(chain))
