"""The shop's own texts files in templates/texts/ (read by the bot, never sent to Meta as templates):
per-language texts with `{placeholders}`, read and checked with the flows at every (re)load.

Each file has its own model (bot/orders/texts.py, bot/appointments/notify.py) and its `TextsFile`
(bot/engine/texts.py); what they share is here: language codes, placeholders from a known list, labels
WhatsApp accepts as template parameters, and reading a file into its model with every problem named by
file:line:column, as the flows' are.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, Field, ValidationError

from bot.engine.marked_yaml import MarkedSource
from bot.engine.schema import LANGUAGE, flow_error

Model = TypeVar("Model", bound=BaseModel)


def _language(code: str) -> str:
    if not LANGUAGE.match(code):
        raise flow_error(f"'{code}' is not a language code", "use codes like en, es, zh")
    return code


def _not_blank(text: str) -> str:
    if not text.strip():
        raise flow_error("this text is empty", 'write the text in quotes: "like this"')
    return text


def placeholders(allowed: Sequence[str]) -> Callable[[str], str]:
    """A validator: a text's {placeholders} are among `allowed`, and its braces are well formed."""
    names = ", ".join(f"{{{p}}}" for p in allowed)

    def check(text: str) -> str:
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
        except ValueError as exc:
            raise flow_error(f"{exc}", "write a literal brace as {{ or }}") from None
        for name in fields:
            if name not in allowed:
                raise flow_error(f"this text cannot use {{{name}}}", f"the placeholders are {names}")
        return text

    return check


def template_safe(label: str) -> str:
    """A label that goes out as a template parameter: WhatsApp refuses line breaks, tabs, 5 spaces."""
    if any(ch in label for ch in "\n\t") or "     " in label:
        raise flow_error(
            "this label has a line break, tab or 5 spaces in a row: WhatsApp refuses them in a template",
            "write it on one line",
        )
    return label


Language = Annotated[str, AfterValidator(_language)]
"""A language code as a key: en, es, zh_CN."""
Text = Annotated[str, AfterValidator(_not_blank)]
"""A text that is not blank; a model adds its own checks (placeholders, template_safe) after this."""
NOT_EMPTY = Field(min_length=1)
"""On a `dict[Language, ...]`: at least one language."""


def read_model(source: MarkedSource, document: Any, model: type[Model]) -> Model | None:
    """`document` (the file's YAML, read with its marks) as `model`; None with every problem added to
    `source` at its file:line:column."""
    try:
        return model.model_validate(document if document is not None else {})
    except ValidationError as exc:
        source.add_validation((), exc)
        return None


def format_text(text: str, names: Sequence[str], values: dict[str, str]) -> str:
    """`text` with its placeholders filled; a value not given is empty."""
    return text.format_map({name: values.get(name, "") for name in names})
