"""What customers are told about their order's status: templates/texts/order_statuses.yaml.

Staff edit these texts, not code. The file is checked when the server starts, so a status without a text,
a misspelt {placeholder} or a label WhatsApp would refuse as a template parameter stops start-up with
the key path and the reason instead of failing on a customer's order later.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, ValidationError

from bot.engine.schema import LANGUAGE
from bot.engine.texts import pick_text

TEXTS_FILE = Path("texts") / "order_statuses.yaml"
PLACEHOLDERS = ("order_number", "device_model", "customer_name", "address", "opening_hours")


class OrderTextsError(Exception):
    """The status texts cannot be used; the message names the file, the key path and the reason."""


def _languages(value: dict[str, str]) -> dict[str, str]:
    for language, text in value.items():
        if not LANGUAGE.match(language):
            raise ValueError(f"'{language}' is not a language code (use codes like en, es, zh)")
        if not text.strip():
            raise ValueError(f"the {language} text is empty")
    return value


def _placeholders(value: dict[str, str]) -> dict[str, str]:
    for language, text in value.items():
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
        except ValueError as exc:
            raise ValueError(f"the {language} text: {exc} (write a literal brace as {{{{ or }}}})") from None
        for name in fields:
            if name not in PLACEHOLDERS:
                raise ValueError(
                    f"the {language} text uses {{{name}}}; the placeholders are "
                    + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
                )
    return value


def _template_safe(value: dict[str, str]) -> dict[str, str]:
    for language, label in value.items():
        if any(ch in label for ch in "\n\t") or "     " in label:
            raise ValueError(f"the {language} label has a line break, tab or 5 spaces: WhatsApp refuses them")
    return value


Texts = Annotated[dict[str, str], Field(min_length=1), AfterValidator(_languages)]


class StatusTexts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: Annotated[Texts, AfterValidator(_template_safe)]
    """The status as customers read it; the order_status_update template's second parameter."""
    text: Annotated[Texts, AfterValidator(_placeholders)]
    """The message sent inside the 24-hour window."""


class OrderTextsFile(RootModel[dict[str, StatusTexts]]):
    pass


class OrderTexts:
    """The loaded texts, with the fallback to the shop's default language."""

    def __init__(self, statuses: Mapping[str, StatusTexts], default_language: str) -> None:
        self._statuses = dict(statuses)
        self._default = default_language

    def label(self, status: str, language: str) -> str:
        texts = self._statuses.get(status)
        if texts is None:
            return status.replace("_", " ").capitalize()
        return pick_text(texts.label, language, self._default)

    def text(self, status: str, language: str, values: Mapping[str, str]) -> str | None:
        texts = self._statuses.get(status)
        if texts is None:
            return None
        return pick_text(texts.text, language, self._default).format_map(
            {name: values.get(name, "") for name in PLACEHOLDERS}
        )


def load_order_texts(
    templates_dir: Path, statuses: Sequence[str], default_language: str
) -> OrderTexts | None:
    """The texts for `statuses`, or None when the file is missing (status messages then go out as the
    order_status_update template only). Raises OrderTextsError when the file cannot be used."""
    path = templates_dir / TEXTS_FILE
    if not path.exists():
        return None
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        parsed = OrderTextsFile.model_validate(document).root
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise OrderTextsError(f"{path}: cannot be read: {exc}") from None
    except ValidationError as exc:
        problems = [
            f"  {'.'.join(str(part) for part in error['loc']) or '(top level)'}: "
            + error["msg"].removeprefix("Value error, ")
            for error in exc.errors(include_url=False)
        ]
        raise OrderTextsError("\n".join([f"{path}: invalid status texts", *problems])) from None
    problems = []
    for status in statuses:
        texts = parsed.get(status)
        if texts is None:
            problems.append(f"  {status}: no texts for this status (it is in settings.yaml orders.statuses)")
        elif default_language not in texts.text or default_language not in texts.label:
            problems.append(
                f"  {status}: give a label and a text in the shop's language ({default_language})"
            )
    if problems:
        raise OrderTextsError("\n".join([f"{path}: invalid status texts", *problems]))
    return OrderTexts(parsed, default_language)
