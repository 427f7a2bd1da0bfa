"""The ways out of a state, as the flow file writes them: the trigger names that the machine, the
load-time checks and the diagrams all share, so a new kind of transition is added in one place."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bot.engine.actions import ActionRegistry
from bot.engine.events import TIMEOUT
from bot.engine.schema import State

# Keys of `on:` that are not reply ids. Each event type listed in KIND_TRIGGERS reacts to that type only.
KIND_TRIGGERS: tuple[str, ...] = (
    "text",
    "image",
    "document",
    "audio",
    "video",
    "sticker",
    "location",
    "contacts",
    "reaction",
)
ON_KEYS: tuple[str, ...] = ("keywords", "pattern", *KIND_TRIGGERS, "media", "other", TIMEOUT)
GOTO = "goto"
FALLBACK = "fallback"
ANSWERED = "answered"
"""The trigger of an `ask` whose answer fits."""


@dataclass(frozen=True)
class Edge:
    """One way out of a state, and where it is written (for error marks)."""

    trigger: str
    target: str
    path: tuple[str | int, ...]
    key: bool = False
    """The target is written as the key (`keywords: {menu: [...]}`), not as the value."""


def state_edges(state: State, actions: ActionRegistry | None) -> Iterator[Edge]:
    """Every way out of a state as written in the flow (the flow-wide fallback is added by the caller)."""
    on = state.on
    if on is not None:
        for reply_id, target in (on.model_extra or {}).items():
            yield Edge(f"reply:{reply_id}", target, ("on", reply_id))
        for target in on.keywords:
            yield Edge(f"keyword:{target}", target, ("on", "keywords", target), key=True)
        for regex, target in on.pattern.items():
            yield Edge(f"pattern:{regex}", target, ("on", "pattern", regex))
        for kind in (*KIND_TRIGGERS, "media", "other"):
            target = getattr(on, kind)
            if target is not None:
                yield Edge(kind, target, ("on", kind))
        if on.timeout is not None:
            yield Edge(TIMEOUT, on.timeout.goto, ("on", "timeout", "goto"))
    if state.ask is not None:
        yield Edge(ANSWERED, state.ask.then, ("ask", "then"))
    for index, branch in enumerate(state.choose or ()):
        yield Edge(f"choose:{index}", branch.goto, ("choose", index, "goto"))
    if state.fallback is not None and state.fallback.goto is not None:
        yield Edge(FALLBACK, state.fallback.goto, ("fallback", "goto"))
    if state.goto is not None:
        yield Edge(GOTO, state.goto, ("goto",))
    spec = actions.get(state.call) if actions is not None and state.call else None
    for name in spec.targets if spec is not None else ():
        target = state.args.get(name)
        if isinstance(target, str):
            yield Edge(f"call:{name}", target, ("args", name))
