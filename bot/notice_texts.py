"""The shop's own texts files in templates/texts/ (read by the bot, never sent to Meta as templates):
per-language texts with `{placeholders}`, checked when the server starts.

Each file has its own model (bot/orders/texts.py, bot/appointments/notify.py); what they share is here:
language codes, placeholders from a known list, labels WhatsApp accepts as template parameters, and
reading a file into its model with every problem named by key path.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, Field, ValidationError

from bot.engine.schema import LANGUAGE

TEXTS_DIR = Path("texts")
Model = TypeVar("Model", bound=BaseModel)


class TextsError(Exception):
    """A texts file cannot be used; the message names the file, the key path and the reason."""


def _languages(value: dict[str, str]) -> dict[str, str]:
    for language, text in value.items():
        if not LANGUAGE.match(language):
            raise ValueError(f"'{language}' is not a language code (use codes like en, es, zh)")
        if not text.strip():
            raise ValueError(f"the {language} text is empty")
    return value


def placeholders(allowed: Sequence[str]) -> Callable[[dict[str, str]], dict[str, str]]:
    """A validator: each text's {placeholders} are among `allowed`, and its braces are well formed."""

    def check(value: dict[str, str]) -> dict[str, str]:
        for language, text in value.items():
            try:
                fields = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
            except ValueError as exc:
                raise ValueError(
                    f"the {language} text: {exc} (write a literal brace as {{{{ or }}}})"
                ) from None
            for name in fields:
                if name not in allowed:
                    raise ValueError(
                        f"the {language} text uses {{{name}}}; the placeholders are "
                        + ", ".join(f"{{{p}}}" for p in allowed)
                    )
        return value

    return check


def template_safe(value: dict[str, str]) -> dict[str, str]:
    """A label that goes out as a template parameter: WhatsApp refuses line breaks, tabs, 5 spaces."""
    for language, label in value.items():
        if any(ch in label for ch in "\n\t") or "     " in label:
            raise ValueError(f"the {language} label has a line break, tab or 5 spaces: WhatsApp refuses them")
    return value


Texts = Annotated[dict[str, str], Field(min_length=1), AfterValidator(_languages)]
"""Language code -> text."""


def read_texts(path: Path, model: type[Model], what: str) -> Model:
    """`path` read into `model`; TextsError naming every problem ("{what}" says what the file holds)."""
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return model.model_validate(document)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TextsError(f"{path}: cannot be read: {exc}") from None
    except ValidationError as exc:
        problems = [
            f"  {'.'.join(str(part) for part in error['loc']) or '(top level)'}: "
            + error["msg"].removeprefix("Value error, ")
            for error in exc.errors(include_url=False)
        ]
        raise TextsError("\n".join([f"{path}: invalid {what}", *problems])) from None


def format_text(text: str, names: Sequence[str], values: dict[str, str]) -> str:
    """`text` with its placeholders filled; a value not given is empty."""
    return text.format_map({name: values.get(name, "") for name in names})
