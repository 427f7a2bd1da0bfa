"""Named async actions a flow may `call` (order lookup, booking, handoff ... registered by their modules).

Flows name actions as text, so a typo must be caught when flows load, not when a customer reaches the
state: the registry knows every name and can check a state's `args` against the action's own model.
Actions read the world and return messages and variables; they never send anything themselves.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.engine.events import Customer
from bot.engine.texts import TextCatalog, pick_text
from bot.whatsapp.outbound import (
    LIST_BUTTON_MAX,
    LIST_MAX_ROWS,
    LIST_ROW_DESCRIPTION_MAX,
    LIST_ROW_ID_MAX,
    LIST_ROW_TITLE_MAX,
    ListMessage,
    ListRow,
    ListSection,
    OutboundMessage,
    clip,
)

ACTION_NAME = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*$")


@dataclass(frozen=True)
class ActionContext:
    """What an action may look at: read-only; changes go back through `ActionResult`."""

    customer: Customer
    flow: str
    state: str
    variables: Mapping[str, Any]
    args: Mapping[str, Any]
    """The state's `args`, with `{variables}` in their text already filled in."""
    texts: TextCatalog
    """The bot's own texts (templates/texts/), loaded with the flows this run uses."""


@dataclass
class ActionResult:
    outbound: list[OutboundMessage] = field(default_factory=list)
    """Messages to send, before the state's own `say`."""
    variables: dict[str, Any] = field(default_factory=dict)
    """Conversation variables to set (JSON-serializable); the state's texts can use them."""
    next: str | None = None
    """Name of one of the action's target args: the conversation goes to that arg's state."""
    hand_off: bool = False
    """The action handed the chat to a person (the `handoff` action): the engine's Outcome says so."""


Action = Callable[[ActionContext], Awaitable[ActionResult | None]]


class ListArgs(BaseModel):
    """Args of an action that sends a list it builds (orders, days, times): the text above the list
    and the label of the button that opens it, each one text or one per language."""

    model_config = ConfigDict(extra="forbid")

    list_text: str | dict[str, str] = "Choose one:"
    list_button: str | dict[str, str] = "Choose"

    def message(self, language: str, rows: Sequence[tuple[str, str, str | None]]) -> ListMessage:
        """(id, title, description) rows as one untitled section, cut to WhatsApp's limits."""
        return ListMessage(
            body=pick_text(self.list_text, language),
            button=clip(pick_text(self.list_button, language), LIST_BUTTON_MAX),
            sections=(
                ListSection(
                    title=None,
                    rows=tuple(
                        ListRow(
                            id=row_id[:LIST_ROW_ID_MAX],
                            title=clip(title, LIST_ROW_TITLE_MAX),
                            description=clip(description, LIST_ROW_DESCRIPTION_MAX) if description else None,
                        )
                        for row_id, title, description in rows[:LIST_MAX_ROWS]
                    ),
                ),
            ),
        )


@dataclass(frozen=True)
class ArgsIssue:
    """A problem with a state's `args`, at `loc` inside them (keys and list indices)."""

    loc: tuple[str | int, ...]
    reason: str
    hint: str | None = None


@dataclass(frozen=True)
class ActionSpec:
    name: str
    func: Action
    args_model: type[BaseModel] | None = None
    """Validates `args` when flows load (its fields may use `{variables}` only where they are str)."""
    targets: tuple[str, ...] = ()
    """Names of args whose values are states (`found: show_order`); they are checked like any target."""


class ActionRegistry:
    """Action name -> spec. Register once at start-up, before flows load."""

    def __init__(self) -> None:
        self._specs: dict[str, ActionSpec] = {}

    def add(
        self,
        name: str,
        func: Action,
        *,
        args_model: type[BaseModel] | None = None,
        targets: tuple[str, ...] = (),
    ) -> None:
        if not ACTION_NAME.match(name):
            raise ValueError(f"action name {name!r} must look like 'orders.lookup' (lower case, dots)")
        if name in self._specs:
            raise ValueError(f"action {name!r} is already registered")
        self._specs[name] = ActionSpec(name, func, args_model, tuple(targets))

    def register(
        self, name: str, *, args_model: type[BaseModel] | None = None, targets: tuple[str, ...] = ()
    ) -> Callable[[Action], Action]:
        """Decorator form of `add`."""

        def decorate(func: Action) -> Action:
            self.add(name, func, args_model=args_model, targets=targets)
            return func

        return decorate

    def get(self, name: str) -> ActionSpec | None:
        return self._specs.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._specs))

    def __len__(self) -> int:
        return len(self._specs)

    def check_args(self, name: str, args: Mapping[str, Any]) -> list[ArgsIssue]:
        """The load-time hook: what is wrong with `args` for action `name` ([] when fine)."""
        spec = self._specs.get(name)
        if spec is None:
            return []
        issues = [
            ArgsIssue((target,), f"action '{name}' needs '{target}': the state to go to")
            for target in spec.targets
            if not isinstance(args.get(target), str)
        ]
        if spec.args_model is not None:
            try:
                spec.args_model.model_validate(dict(args))
            except ValidationError as exc:
                for error in exc.errors(include_url=False):
                    loc = tuple(error["loc"])
                    if loc and loc[0] in spec.targets:
                        continue
                    missing = error["type"] == "missing" and loc
                    issues.append(ArgsIssue(loc, f"'{loc[-1]}' is missing here" if missing else error["msg"]))
        return issues
