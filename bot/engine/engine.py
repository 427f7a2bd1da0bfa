"""The engine: (conversation, customer, event) -> where the conversation goes and what to send.

It is a pure function of its inputs apart from the actions it calls: the caller loads the conversation,
stores the outcome and queues the messages in one transaction (the outbox). Matching order in a state:
the exact reply id, then an old menu button (below), patterns, keywords, the catch-alls (`text`, the
media types, `media`, `other`) and last the fallback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from bot.engine.actions import ActionContext, ActionRegistry
from bot.engine.answers import DateOrder, read_answer
from bot.engine.conditions import branch_holds
from bot.engine.edges import ANSWERED, FALLBACK, GOTO
from bot.engine.events import QUIET_TYPES, TIMEOUT, Customer, Event
from bot.engine.flows import FlowSet
from bot.engine.languages import LanguageMenu
from bot.engine.machine import Match
from bot.engine.schema import PLACEHOLDER, AskSpec, State
from bot.engine.texts import pick_language, pick_text
from bot.whatsapp import outbound as wa

__all__ = ["ActionError", "Conversation", "Customer", "Engine", "Outcome"]

log = logging.getLogger(__name__)

MAX_HOPS = 10
"""States entered for one event at most; actions could route in a circle that loading cannot see."""
MISSES = "_misses"

_DATE_EXAMPLES: dict[str, str] = {"DMY": "25/12", "MDY": "12/25", "YMD": "2026-12-25"}
# {name} with the space before it, so that "Hi {customer.name}!" becomes "Hi!" when the name is unknown.
_RENDER = re.compile(r"( ?)" + PLACEHOLDER.pattern)


@dataclass
class Conversation:
    flow: str | None
    """None: a new conversation, which starts at the default flow's start state."""
    state: str | None
    variables: dict[str, Any] = field(default_factory=dict)
    """JSON-serializable; keys starting with '_' are the engine's bookkeeping."""


@dataclass
class Outcome:
    flow: str
    state: str
    variables: dict[str, Any]
    outbound: list[wa.OutboundMessage]
    wait: timedelta | None = None
    """The state reached has `on: timeout`: the caller sets a timer for this long from now."""
    language: str | None = None
    """The customer chose this language: the caller remembers it on the customer."""
    missed: bool = False
    """The event was not understood (a fallback answered it): the inbox counts these in a row."""
    hand_off: bool = False
    """An action handed the chat to a person (ActionResult.hand_off): from now on the engine is silent."""
    entered: list[tuple[str, str]] = field(default_factory=list)
    """Every (flow, state) entered for this event, in order, those passed through by `goto` too: the
    conversation's steps (its funnel in bot/stats.py)."""
    sent_from: list[str] = field(default_factory=list)
    """The flow each of `outbound` was sent from (same order): the cost ledger's flow."""


class ActionError(Exception):
    """An action failed. The inbox records the error on the inbound row, keeps the conversation's state,
    and sends the customer an apology (`bot replay` re-runs such messages once the cause is fixed)."""


class Engine:
    def __init__(
        self,
        flows: FlowSet,
        actions: ActionRegistry | None = None,
        default_flow: str = "main",
        default_language: str = "en",
        languages: Sequence[str] = ("en", "es", "zh"),
        timezone: str = "UTC",
        date_order: DateOrder = "DMY",
    ) -> None:
        self.actions = actions if actions is not None else flows.actions
        self.default_flow = default_flow
        self.default_language = default_language
        self.language_menu = LanguageMenu(languages)
        self.timezone = ZoneInfo(timezone)
        self.date_order: DateOrder = date_order
        self._flows = self._checked(flows)

    def _checked(self, flows: FlowSet) -> FlowSet:
        if self.default_flow not in flows.flows:
            raise ValueError(f"there is no default flow '{self.default_flow}' among {sorted(flows.flows)}")
        return flows

    @property
    def flows(self) -> FlowSet:
        return self._flows

    def replace_flows(self, flows: FlowSet) -> None:
        """Hot reload: one reference swap; a handle() already running finishes on the set it started with."""
        self._flows = self._checked(flows)

    async def handle(
        self, conversation: Conversation, customer: Customer, event: Event, now: datetime | None = None
    ) -> Outcome:
        """`now` is when the event happened (the inbox's clock), for dates like "tomorrow"."""
        today = (now or datetime.now(UTC)).astimezone(self.timezone).date()
        run = _Run(self, self._flows, customer, dict(conversation.variables), today)
        flows = run.flows
        menu = self.language_menu
        waiting = flows.has_state(conversation.flow, conversation.state)
        language = menu.chosen(event)
        if language is not None:
            run.set_language(language)
            run.send_text(menu.confirmation(language, flows.texts, self.default_language))
            if waiting:  # ask what the conversation waits on again, now in the chosen language
                assert conversation.flow is not None and conversation.state is not None
                run.send_state(flows.flows[conversation.flow].states[conversation.state])
                return run.outcome(conversation.flow, conversation.state)
        elif menu.asked(event):
            run.outbound.append(menu.message(flows.texts, self.default_language))
            if waiting:
                assert conversation.flow is not None and conversation.state is not None
                return run.outcome(conversation.flow, conversation.state)
            return run.outcome(self.default_flow, flows.flows[self.default_flow].start)
        if conversation.flow is None:
            flow, state = await run.first(event)
        elif not flows.has_state(conversation.flow, conversation.state):
            # The flows were edited under this conversation: apologise and begin again.
            restart = conversation.flow if conversation.flow in flows.flows else self.default_flow
            run.say_system("restart")
            run.variables.pop(MISSES, None)
            flow, state = await run.enter(restart, flows.flows[restart].start)
        else:
            assert conversation.state is not None
            flow, state = await run.react(conversation.flow, conversation.state, event)
        return run.outcome(flow, state)


class _Run:
    """The working state of one handle() call."""

    def __init__(
        self,
        engine: Engine,
        flows: FlowSet,
        customer: Customer,
        variables: dict[str, Any],
        today: date,
    ) -> None:
        self.engine = engine
        self.flows = flows
        self.customer = customer
        self.variables = variables
        self.today = today
        self.outbound: list[wa.OutboundMessage] = []
        self.new_language: str | None = None
        self.silent = False
        """A silent timeout: the states it enters say nothing."""
        self.missed = False
        """A fallback answered: the event was not understood."""
        self.hand_off = False
        self.entered: list[tuple[str, str]] = []
        self.sent_from: list[str] = []
        """An action handed the chat to a person."""
        self.language = ""
        self.set_language(customer.language, chosen=False)

    def set_language(self, language: str | None, *, chosen: bool = True) -> None:
        """Texts from here on are in this language; `chosen`: the customer picked it, remember it."""
        self.language = (language or "").strip()
        if chosen:
            self.new_language = self.language
            self.customer = replace(self.customer, language=self.language)

    def outcome(self, flow: str, state: str) -> Outcome:
        timeout = self.flows.flows[flow].states[state].on
        wait = timeout.timeout.after if timeout is not None and timeout.timeout is not None else None
        return Outcome(
            flow,
            state,
            self.variables,
            self.outbound,
            wait,
            self.new_language,
            self.missed,
            self.hand_off,
            self.entered,
            self.mark_sent(flow),
        )

    def mark_sent(self, flow: str) -> list[str]:
        """The messages queued since the last mark were sent from `flow`."""
        self.sent_from.extend([flow] * (len(self.outbound) - len(self.sent_from)))
        return self.sent_from

    async def first(self, event: Event) -> tuple[str, str]:
        """A new customer's first message: answered when the start state understands it ("what are
        your opening hours?", a photo), else greeted with the start state. A catch-all `text` does
        not count: it expects an answer to the start state's question, which nobody has asked yet."""
        if event.reply_id is not None and (entered := await self.flow_reply(event.reply_id)) is not None:
            return entered
        flow = self.engine.default_flow
        start = self.flows.flows[flow].start
        matcher = self.flows.machines[flow].matchers[start]
        found = matcher.match_reply(event.reply_id) if event.reply_id is not None else None
        found = found or matcher.match(event)
        if found is not None and found.trigger not in (
            TIMEOUT,
            "text",
        ):  # "any text" is an answer, not a first message
            return await self.follow(flow, start, found)
        return await self.enter(flow, start)

    async def react(self, flow: str, state: str, event: Event) -> tuple[str, str]:
        machine = self.flows.machines[flow]
        matcher = machine.matchers[state]
        if event.reply_id is not None:
            found = matcher.match_reply(event.reply_id)
            if found:
                return await self.follow(flow, state, found)
            entered = await self.flow_reply(event.reply_id)
            if entered is not None:
                return entered
            # An old menu button (the customer scrolled up and tapped it): honour it as if the
            # conversation were at the menu, first this flow's start state, then the default flow's.
            for menu_flow in dict.fromkeys((flow, self.engine.default_flow)):
                menu = self.flows.machines[menu_flow]
                if event.reply_id in menu.menu_ids:
                    return await self.follow(menu_flow, menu.flow.start, Match(f"reply:{event.reply_id}"))
        found = matcher.match(event)
        if found:
            return await self.follow(flow, state, found)
        if event.type in QUIET_TYPES:
            return flow, state
        ask = self.flows.flows[flow].states[state].ask
        if ask is not None:
            answer = read_answer(ask, event, self.today, self.engine.date_order)
            if answer is not None:
                self.variables[ask.save_as] = answer.value
                return await self.follow(flow, state, Match(ANSWERED, answer.captures))
        # The menu's words work everywhere: "menu" or "technician" typed in any state is understood.
        for menu_flow in dict.fromkeys((flow, self.engine.default_flow)):
            menu = self.flows.machines[menu_flow]
            found = menu.matchers[menu.flow.start].match_keywords(event)
            if found:
                return await self.follow(menu_flow, menu.flow.start, found)
        return await self.fallback(flow, state, retry=ask)

    async def flow_reply(self, reply_id: str) -> tuple[str, str] | None:
        """A button of a template the shop sent (a reminder's "Confirm"), tapped whenever, wherever the
        conversation is: a flow's `replies` lead straight into it, with the id's parts as variables."""
        for machine in self.flows.machines.values():
            for regex, (flow, state) in machine.replies:
                found = regex.fullmatch(reply_id)
                if found:
                    self.variables.pop(MISSES, None)
                    self.variables.update(found.groupdict())
                    return await self.enter(flow, state)
        return None

    async def follow(self, flow: str, state: str, found: Match) -> tuple[str, str]:
        timeout = self.flows.flows[flow].states[state].on
        if found.trigger == TIMEOUT and timeout is not None and timeout.timeout is not None:
            self.silent = timeout.timeout.silent
        self.variables.pop(MISSES, None)
        self.variables.update(found.captures)
        return await self.enter(*self.flows.machines[flow].fire(state, found.trigger))

    async def fallback(self, flow: str, state: str, retry: AskSpec | None = None) -> tuple[str, str]:
        """Not understood: answer politely, and after enough misses in a row go to the fallback's goto.

        An `ask` whose answer does not fit says its `retry` text (or a hint for its kind of answer) and
        waits for another answer: misses count the same way.
        """
        states = self.flows.flows[flow].states
        spec = states[state].fallback or self.flows.flows[flow].fallback
        misses = self.variables.get(MISSES, 0)
        misses = (misses if isinstance(misses, int) else 0) + 1
        self.missed = True
        if spec is not None and spec.goto is not None and misses >= (spec.after or 1):
            self.variables.pop(MISSES, None)
            return await self.enter(*self.flows.machines[flow].fire(state, FALLBACK))
        self.variables[MISSES] = misses
        if retry is not None:
            self.send_text(self.retry_text(retry))
        elif spec is not None and spec.say is not None:
            self.send_text(self.render(spec.say))
        else:
            self.say_system("not_understood")
        return flow, state

    def retry_text(self, ask: AskSpec) -> str:
        if ask.retry is not None:
            return self.render(ask.retry)
        hints: dict[str, str] = {}
        if ask.choices is not None:
            key, hints["choices"] = "ask_choice", ", ".join(ask.choices)
        elif ask.expect == "number" and ask.min is not None and ask.max is not None:
            key, hints["min"], hints["max"] = "ask_number_range", f"{ask.min:g}", f"{ask.max:g}"
        elif ask.expect == "date":
            key, hints["example"] = "ask_date", _DATE_EXAMPLES[self.engine.date_order]
        else:
            key = f"ask_{ask.expect}"
        return self.system_text(key, **hints)

    async def enter(self, flow: str, state: str) -> tuple[str, str]:
        """Send each entered state's messages and follow `goto`s until a state waits for the customer."""
        for _ in range(MAX_HOPS):
            spec = self.flows.flows[flow].states[state]
            self.entered.append((flow, state))
            trigger = await self.call(flow, state, spec) if spec.call else None
            if not self.silent:
                self.send_state(spec)
            if trigger is None and spec.goto is not None:
                trigger = GOTO
            if trigger is None and spec.choose is not None:
                trigger = next(
                    (f"choose:{i}" for i, b in enumerate(spec.choose) if branch_holds(b, self.variables)),
                    None,
                )
            self.mark_sent(flow)
            if trigger is None:
                return flow, state
            flow, state = self.flows.machines[flow].fire(state, trigger)
        log.warning("stopped after %d states in a row at %s.%s", MAX_HOPS, flow, state)
        return flow, state

    async def call(self, flow: str, state: str, spec: State) -> str | None:
        assert spec.call is not None
        action = self.engine.actions.get(spec.call)
        if action is None:
            raise ActionError(f"flow {flow}.{state} calls unknown action '{spec.call}'")
        context = ActionContext(
            self.customer,
            flow,
            state,
            MappingProxyType(dict(self.variables)),
            self.render_args(spec.args),
            self.flows.texts,
        )
        try:
            result = await action.func(context)
        except Exception as exc:
            raise ActionError(f"action '{spec.call}' failed in {flow}.{state}: {exc}") from exc
        if result is None:
            return None
        self.outbound.extend(result.outbound)
        self.variables.update(result.variables)
        self.hand_off = self.hand_off or result.hand_off
        if result.next is None:
            return None
        if result.next not in action.targets:
            raise ActionError(f"action '{spec.call}' chose '{result.next}', not one of {action.targets}")
        return f"call:{result.next}"

    # --- messages ---------------------------------------------------------------------------------

    def send_state(self, spec: State) -> None:
        """say (with its buttons or list), then media, then template."""
        body = self.render(spec.say)
        if spec.buttons:
            buttons = tuple(
                wa.ReplyButton(id=b.id, title=wa.clip(self.render(b.title) or "…", wa.BUTTON_TITLE_MAX))
                for b in spec.buttons
            )
            self.outbound.append(wa.Buttons(body=wa.clip(body or "…", wa.BUTTON_BODY_MAX), buttons=buttons))
        elif spec.choices is not None:
            sections = tuple(
                wa.ListSection(
                    title=wa.clip(self.render(section.title), wa.LIST_SECTION_TITLE_MAX) or None,
                    rows=tuple(
                        wa.ListRow(
                            id=row.id,
                            title=wa.clip(self.render(row.title) or "…", wa.LIST_ROW_TITLE_MAX),
                            description=wa.clip(self.render(row.description), wa.LIST_ROW_DESCRIPTION_MAX)
                            or None,
                        )
                        for row in section.rows
                    ),
                )
                for section in spec.choices.sections
            )
            label = wa.clip(self.render(spec.choices.button) or "…", wa.LIST_BUTTON_MAX)
            self.outbound.append(
                wa.ListMessage(body=wa.clip(body or "…", wa.LIST_BODY_MAX), button=label, sections=sections)
            )
        elif body:
            self.send_text(body)
        if spec.media is not None:
            media = spec.media
            caption = wa.clip(self.render(media.caption), wa.CAPTION_MAX) or None
            self.outbound.append(
                wa.Media(media_type=media.type, link=media.link, caption=caption, filename=media.filename)
            )
        if spec.template is not None:
            template = spec.template
            self.outbound.append(
                wa.Template(
                    name=template.name,
                    language=template.language or self.template_language(template.name),
                    body_params=tuple(self.fill(p) for p in template.params),
                    button_payloads=tuple(template.payloads),
                )
            )

    def send_text(self, text: str) -> None:
        if text:
            self.outbound.append(wa.Text(body=wa.clip(text, wa.TEXT_MAX)))

    def template_language(self, name: str) -> str:
        """The customer's language when the template is approved in it, else as `pick_language` says."""
        found = self.flows.templates.get(name) if self.flows.templates is not None else None
        written = found.languages if found is not None else ()
        return pick_language(written, self.language, self.engine.default_language) or (
            self.language or self.engine.default_language
        )

    def system_text(self, key: str, **hints: str) -> str:
        """One of the engine's own texts (templates/texts/engine.yaml) in the customer's language."""
        return self.flows.texts.say(f"engine.{key}", self.language, self.engine.default_language, **hints)

    def say_system(self, key: str) -> None:
        self.send_text(self.system_text(key))

    def render(self, text: str | dict[str, str] | None) -> str:
        """A flow's text in the customer's language (see `pick_language`), its variables filled in."""
        if text is None:
            return ""
        return self.fill(pick_text(text, self.language, self.engine.default_language))

    def fill(self, text: str) -> str:
        """Put variables into {placeholders}.

        A missing or empty value renders as nothing (taking one space before it along), unless the
        text gives a fallback: "Hi {customer.name|there}!" -> "Hi there!" when the profile name is
        unknown. Nothing here ever raises on a missing variable.
        """
        if "{" not in text:
            return text
        return _RENDER.sub(self._placeholder, text).strip()

    def _placeholder(self, found: re.Match[str]) -> str:
        space, name, fallback = found.group(1), found.group(2), found.group(3)
        value = self.lookup(name)
        if not value:
            value = fallback or ""
        return space + value if value else ""

    def lookup(self, name: str) -> str:
        scope, _, rest = name.partition(".")
        if scope == "customer" and rest:
            customer = self.customer
            if rest == "phone":
                return "+" + customer.wa_id.lstrip("+") if customer.wa_id else ""
            return {"name": customer.name, "wa_id": customer.wa_id, "language": customer.language}.get(
                rest
            ) or ""
        value: Any = self.variables
        for part in name.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return ""
            value = value[part]
        return "" if value is None or isinstance(value, Mapping | list) else str(value)

    def render_args(self, args: Any) -> Any:
        """An action's args with {variables} filled into their texts, at any depth."""
        if isinstance(args, str):
            return self.fill(args)
        if isinstance(args, Mapping):
            return {k: self.render_args(v) for k, v in args.items()}
        if isinstance(args, list):
            return [self.render_args(v) for v in args]
        return args
