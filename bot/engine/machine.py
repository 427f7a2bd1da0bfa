"""Flows compiled for the hot path: one `transitions` machine and one matcher per state, built at load.

The matcher turns an event into a trigger name (`reply:order`, `keyword:menu`, `media`, ...); the
machine holds the transition table and moves a throw-away cursor along it, so nothing is constructed
per message. A transition into another flow lands on a pseudo state named `flow.state`, which the
engine follows into that flow's machine.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from transitions import Machine

from bot.engine.actions import ActionRegistry
from bot.engine.edges import FALLBACK, KIND_TRIGGERS, state_edges
from bot.engine.events import QUIET_TYPES, TIMEOUT, Event
from bot.engine.schema import Flow, State, split_target
from bot.engine.words import keyword_regex, normalize, reply_regex


@dataclass(frozen=True)
class Match:
    trigger: str
    captures: Mapping[str, str] = field(default_factory=dict)
    """Named groups of the pattern that matched: they become conversation variables."""


@dataclass
class StateMatcher:
    """A state's `on:` compiled, tried in the documented order."""

    replies: dict[str, str] = field(default_factory=dict)
    keywords: list[tuple[re.Pattern[str], str]] = field(default_factory=list)
    patterns: list[tuple[re.Pattern[str], str]] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)
    media: str | None = None
    other: str | None = None
    timeout: str | None = None

    def match_reply(self, reply_id: str) -> Match | None:
        trigger = self.replies.get(reply_id)
        return Match(trigger) if trigger else None

    def match_keywords(self, event: Event) -> Match | None:
        """Only the keywords: what the start state's words mean anywhere in the flow."""
        if event.text and event.is_text_like:
            normalized = normalize(event.text)
            for regex, trigger in self.keywords:
                if regex.search(normalized):
                    return Match(trigger)
        return None

    def match(self, event: Event) -> Match | None:
        """Everything after the exact reply id: patterns, keywords, then the catch-alls."""
        if event.type == TIMEOUT:
            return Match(self.timeout) if self.timeout else None
        if event.text and event.is_text_like:
            # patterns first: they are the specific ones ("status 10452" is an order number, not just
            # the word "status")
            stripped = event.text.strip()
            for regex, trigger in self.patterns:
                found = regex.search(stripped)
                if found:
                    captures = {k: v for k, v in found.groupdict().items() if v is not None}
                    return Match(trigger, captures)
            normalized = normalize(event.text)
            for regex, trigger in self.keywords:
                if regex.search(normalized):
                    return Match(trigger)
        catch_all = self.kinds.get(event.type)
        if catch_all is None and event.is_media:
            catch_all = self.media
        if catch_all is None and not event.is_text_like and event.type not in QUIET_TYPES:
            catch_all = self.other
        return Match(catch_all) if catch_all else None


class _Cursor:
    """The machine's model for one step: created per fire, attached to nothing."""

    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


def _offered_ids(state: State | None) -> Iterator[str]:
    if state is None:
        return
    for button in state.buttons or ():
        yield button.id
    if state.choices is not None:
        for section in state.choices.sections:
            for row in section.rows:
                yield row.id


class FlowMachine:
    """One flow's transition table (a `transitions.Machine`) plus its per-state matchers."""

    def __init__(self, flow: Flow, actions: ActionRegistry | None = None) -> None:
        self.flow = flow
        self.matchers: dict[str, StateMatcher] = {}
        transitions: list[dict[str, str]] = []
        external: set[str] = set()
        for name, state in flow.states.items():
            self.matchers[name] = self._compile(state, name)
            edges = {edge.trigger: edge.target for edge in state_edges(state, actions)}
            if state.fallback is None and flow.fallback is not None and flow.fallback.goto is not None:
                edges[FALLBACK] = flow.fallback.goto
            for trigger, target in edges.items():
                dest = self._dest(target)
                if dest not in flow.states:
                    external.add(dest)
                transitions.append({"trigger": trigger, "source": name, "dest": dest})
        start = flow.states.get(flow.start)
        start_replies = self.matchers[flow.start].replies if start is not None else {}
        self.menu_ids: frozenset[str] = frozenset(
            reply_id for reply_id in _offered_ids(start) if reply_id in start_replies
        )
        """Reply ids of the start state's own buttons and list rows: still honoured from other states."""
        self.replies: tuple[tuple[re.Pattern[str], tuple[str, str]], ...] = tuple(
            (reply_regex(key), split_target(flow.name, target)) for key, target in flow.replies.items()
        )
        """The flow's `replies`: reply ids that lead into it from any state."""
        self.machine = Machine(
            model=None,
            states=[*flow.states, *sorted(external)],
            transitions=transitions,
            initial=None,
            auto_transitions=False,
        )

    def _dest(self, target: str) -> str:
        flow_name, state = split_target(self.flow.name, target)
        return state if flow_name == self.flow.name else f"{flow_name}.{state}"

    def _compile(self, state: State, name: str) -> StateMatcher:
        matcher = StateMatcher()
        on = state.on
        if on is None:
            return matcher
        matcher.replies = {reply_id: f"reply:{reply_id}" for reply_id in on.model_extra or {}}
        matcher.keywords = [(keyword_regex(words), f"keyword:{t}") for t, words in on.keywords.items()]
        matcher.patterns = [(re.compile(rx, re.IGNORECASE), f"pattern:{rx}") for rx in on.pattern]
        matcher.kinds = {kind: kind for kind in KIND_TRIGGERS if getattr(on, kind) is not None}
        matcher.media = "media" if on.media is not None else None
        matcher.other = "other" if on.other is not None else None
        matcher.timeout = TIMEOUT if on.timeout is not None else None
        return matcher

    def fire(self, state: str, trigger: str) -> tuple[str, str]:
        """Move from `state` by `trigger`; returns the (flow, state) reached."""
        cursor = _Cursor(state)
        self.machine.events[trigger].trigger(cursor)
        return split_target(self.flow.name, cursor.state)
