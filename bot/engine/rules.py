"""One state's rules that the schema cannot see field by field (the Cloud API's limits, choices that
must be answered, patterns that must compile, actions and their args)."""

from __future__ import annotations

import difflib
import re

from bot.engine.actions import ActionRegistry
from bot.engine.checks import suggest
from bot.engine.edges import ON_KEYS
from bot.engine.schema import State, variants
from bot.engine.templates import TemplateCatalog
from bot.engine.words import normalize
from bot.whatsapp import outbound as wa

YamlPath = tuple[str | int, ...]


class StateRules:
    """One state's rules that pydantic cannot see field by field; problems collect in `found`."""

    def __init__(
        self, state: State, actions: ActionRegistry, templates: TemplateCatalog | None = None
    ) -> None:
        self.state = state
        self.found: list[tuple[YamlPath, str, str | None, bool]] = []
        self.message(state)
        self.choices(state)
        self.transitions(state)
        self.asking(state)
        self.action(state, actions)
        if templates is not None:
            self.template(state, templates)

    def add(self, path: YamlPath, reason: str, hint: str | None = None, key: bool = False) -> None:
        self.found.append((path, reason, hint, key))

    def message(self, state: State) -> None:
        limit = wa.TEXT_MAX
        if state.buttons and state.choices:
            self.add(("list",), "a message has either buttons or a list, not both", "split the state", True)
        for what, present, most in (
            ("buttons", state.buttons, wa.BUTTON_BODY_MAX),
            ("list", state.choices, wa.LIST_BODY_MAX),
        ):
            if present:
                limit = min(limit, most)
                if state.say is None:
                    self.add(
                        (what,),
                        f"{what} need a 'say' text: it is the message body",
                        "add say: above them",
                        True,
                    )
        for language, text in variants(state.say):
            if len(text) > limit:
                reason = f"this text is {len(text)} characters; here WhatsApp allows {limit}"
                self.add(("say", language) if language else ("say",), reason, "shorten it")
        media = state.media
        if media is not None and media.caption is not None and media.type == "audio":
            self.add(
                ("media", "caption"),
                "audio takes no caption",
                "remove the caption, or send it in a say:",
                True,
            )
        if media is not None and media.filename is not None and media.type != "document":
            self.add(("media", "filename"), "only a document takes a filename", "remove filename", True)

    def choices(self, state: State) -> None:
        """Buttons and list rows: count, unique ids and titles, each answered in `on:`."""
        buttons = state.buttons or []
        if len(buttons) > wa.MAX_BUTTONS:
            reason = f"{len(buttons)} buttons; WhatsApp allows {wa.MAX_BUTTONS}"
            self.add(("buttons",), reason, "use a list for more choices (up to 10)", True)
        titles: set[tuple[str | None, str]] = set()
        for i, button in enumerate(buttons):
            for variant in variants(button.title):
                if variant in titles:
                    self.add(
                        ("buttons", i, "title"), f"two buttons are titled '{variant[1]}'", "make them differ"
                    )
                titles.add(variant)
        offered: list[tuple[YamlPath, str]] = [(("buttons", i, "id"), b.id) for i, b in enumerate(buttons)]
        for n, section in enumerate(state.choices.sections if state.choices else ()):
            offered += [
                (("list", "sections", n, "rows", r, "id"), row.id) for r, row in enumerate(section.rows)
            ]
        replies = (state.on.model_extra or {}) if state.on else {}
        seen: set[str] = set()
        for path, reply_id in offered:
            if reply_id in seen:
                self.add(path, f"id '{reply_id}' is used twice in this state", "give each choice its own id")
            seen.add(reply_id)
            if state.ask is not None and reply_id in (state.ask.choices or {}):
                continue  # a tap answers the question: it needs no line under `on:`
            if reply_id in ON_KEYS:
                self.add(path, f"'{reply_id}' is a reserved word in 'on:' and cannot be an id", "rename it")
            elif reply_id not in replies:
                hint = f"add '{reply_id}: <state>' under 'on:'"
                if state.goto is not None:
                    hint = "this state moves on at once (goto); put the choices in the state it goes to"
                self.add(path, f"'{reply_id}' has no transition", hint)
        for reply_id in replies:
            close = difflib.get_close_matches(reply_id, ON_KEYS, 1, 0.75)
            if reply_id not in seen and close:
                self.add(("on", reply_id), f"unknown key '{reply_id}'", f"did you mean '{close[0]}'?", True)

    def transitions(self, state: State) -> None:
        on = state.on
        for regex in on.pattern if on else ():
            try:
                re.compile(regex)
            except re.error as exc:
                hint = "patterns are regular expressions; a literal ( [ { . ? * + \\ needs a \\ before it"
                self.add(
                    ("on", "pattern", regex), f"invalid pattern: {exc.msg} at position {exc.pos}", hint, True
                )
        owner: dict[str, str] = {}
        for target, words in on.keywords.items() if on else ():
            for i, word in enumerate(words):
                other = owner.setdefault(normalize(word), target)
                if other != target:
                    self.add(
                        ("on", "keywords", target, i), f"keyword '{word}' also leads to '{other}'", "keep one"
                    )
        if state.goto is not None:
            for key, used in (("on", on is not None), ("fallback", state.fallback is not None)):
                if used:
                    reason = f"'{key}' is never used: this state moves on at once (goto)"
                    self.add((key,), reason, "remove goto or this", True)
        if state.fallback is not None and state.fallback.after is not None and state.fallback.goto is None:
            self.add(
                ("fallback", "after"),
                "'after' needs a 'goto': where to go after that many misses",
                "add goto: with a state",
                True,
            )

    def asking(self, state: State) -> None:
        ask, on = state.ask, state.on
        if state.choose is not None:
            for index, branch in enumerate(state.choose[:-1]):
                if branch.when is None:
                    self.add(
                        ("choose", index), "only the last branch may leave out 'if'", "move it last", True
                    )
            if state.goto is not None or ask is not None:
                what = "goto" if state.goto is not None else "ask"
                self.add(("choose",), f"a state has either 'choose' or '{what}'", "split the state", True)
        if ask is None:
            return
        if state.goto is not None:
            self.add(
                ("ask",),
                "a state that asks waits for the answer",
                "remove 'goto'; 'then:' says where to go",
                True,
            )
        if on is not None and on.text is not None:
            self.add(
                ("on", "text"), "'on: text' would take every answer before 'ask' sees it", "remove one", True
            )
        if ask.choices is not None and (ask.pattern is not None or ask.expect != "text"):
            self.add(
                ("ask", "choices"),
                "'choices' cannot be combined with 'expect' or 'pattern'",
                "keep one",
                True,
            )
        if (ask.min is not None or ask.max is not None) and ask.expect != "number":
            self.add(
                ("ask", "min" if ask.min is not None else "max"),
                "'min' and 'max' need 'expect: number'",
                "add expect: number, or remove them",
            )
        if ask.min is not None and ask.max is not None and ask.min > ask.max:
            self.add(("ask", "min"), f"min {ask.min:g} is more than max {ask.max:g}", "swap them")

    def template(self, state: State, templates: TemplateCatalog) -> None:
        spec = state.template
        if spec is None:
            return
        found = templates.get(spec.name)
        if found is None:
            known = ", ".join(templates) or "none yet"
            hint = suggest(spec.name, templates) or f"templates/ has: {known}"
            self.add(("template", "name"), f"there is no template '{spec.name}' in templates/", hint)
            return
        if found.status != "approved":
            self.add(
                ("template", "name"),
                f"template '{spec.name}' is {found.status}, not approved",
                "wait for Meta's approval, then set status: approved in templates/",
            )
        if len(spec.params) != found.parameters:
            self.add(
                ("template", "params"),
                f"template '{spec.name}' takes {found.parameters} parameter(s); {len(spec.params)} given",
                "give one value per {{n}} in the template's text, in order",
                True,
            )
        if spec.language is not None and spec.language not in found.languages:
            languages = ", ".join(found.languages)
            self.add(
                ("template", "language"),
                f"template '{spec.name}' has no '{spec.language}' text",
                f"it has: {languages}",
            )

    def action(self, state: State, actions: ActionRegistry) -> None:
        if state.args and not state.call:
            self.add(("args",), "'args' without 'call'", "add the action to call, or remove args", True)
        if not state.call:
            return
        if state.call not in actions:
            known = f"known actions: {', '.join(actions)}" if len(actions) else "no actions are available yet"
            self.add(("call",), f"unknown action '{state.call}'", suggest(state.call, actions) or known)
        for issue in actions.check_args(state.call, state.args):
            self.add(("args", *issue.loc), issue.reason, issue.hint)
