"""Flows compiled for the hot path: one `transitions` machine and one matcher per state, built at load.

The matcher turns an event into a trigger name (`reply:order`, `keyword:menu`, `media`, ...); the
machine holds the transition table and moves a throw-away cursor along it, so nothing is constructed
per message. A transition into another flow lands on a pseudo state named `flow.state`, which the
engine follows into that flow's machine.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from transitions import Machine

from bot.engine.events import Event

if TYPE_CHECKING:
    from bot.engine.actions import ActionRegistry
    from bot.engine.flows import Flow
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
ON_KEYS: tuple[str, ...] = ("keywords", "pattern", *KIND_TRIGGERS, "media", "other", "timeout")
GOTO = "goto"
FALLBACK = "fallback"
TIMEOUT = "timeout"
"""The event type and trigger of a conversation's silence timer (the customer never sends it)."""
ANSWERED = "answered"
"""The trigger of an `ask` whose answer fits."""
# Events a flow ignores unless it names them: answering a reaction or a system notice is noise.
QUIET_TYPES: frozenset[str] = frozenset({"reaction", "system", TIMEOUT})

_UNSPACED = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Case- and accent-insensitive form: 'TÉCNICO ' -> 'tecnico'. Keywords and messages both pass here."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", stripped.casefold()).strip()


def keyword_regex(words: list[str]) -> re.Pattern[str]:
    """One regex for a target's keywords: whole words, or anywhere for scripts written without spaces."""
    parts = []
    for word in words:
        escaped = re.escape(normalize(word))
        parts.append(escaped if _UNSPACED.search(word) else rf"(?<!\w){escaped}(?!\w)")
    return re.compile("|".join(parts))


REPLY_PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9_]*)\}")


def reply_regex(key: str) -> re.Pattern[str]:
    """'appt:confirm:{appointment}' -> a regex whose named groups become conversation variables."""
    parts, last = [], 0
    for found in REPLY_PLACEHOLDER.finditer(key):
        parts.append(re.escape(key[last : found.start()]))
        parts.append(f"(?P<{found.group(1)}>[^:\\s]+)")
        last = found.end()
    parts.append(re.escape(key[last:]))
    return re.compile("".join(parts))


def split_target(flow_name: str, target: str) -> tuple[str, str]:
    """'menu' -> (this flow, 'menu'); 'orders.ask_number' -> ('orders', 'ask_number')."""
    other, dot, state = target.partition(".")
    return (other, state) if dot else (flow_name, target)


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

    def can_fire(self, state: str, trigger: str) -> bool:
        event = self.machine.events.get(trigger)
        return event is not None and state in event.transitions
