"""What customers are told about their order's status: templates/texts/order_statuses.yaml.

Staff edit these texts, not code. The file is checked when the server starts, so a status without a text,
a misspelt {placeholder} or a label WhatsApp would refuse as a template parameter stops start-up with
the key path and the reason instead of failing on a customer's order later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, RootModel

from bot.engine.texts import pick_text
from bot.notice_texts import (
    TEXTS_DIR,
    Texts,
    TextsError,
    format_text,
    placeholders,
    read_texts,
    template_safe,
)

TEXTS_FILE = TEXTS_DIR / "order_statuses.yaml"
PLACEHOLDERS = ("order_number", "device_model", "customer_name", "address", "opening_hours")


class OrderTextsError(TextsError):
    """The status texts cannot be used; the message names the file, the key path and the reason."""


class StatusTexts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: Annotated[Texts, AfterValidator(template_safe)]
    """The status as customers read it; the order_status_update template's second parameter."""
    text: Annotated[Texts, AfterValidator(placeholders(PLACEHOLDERS))]
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
        return format_text(pick_text(texts.text, language, self._default), PLACEHOLDERS, dict(values))


def load_order_texts(
    templates_dir: Path, statuses: Sequence[str], default_language: str
) -> OrderTexts | None:
    """The texts for `statuses`, or None when the file is missing (status messages then go out as the
    order_status_update template only). Raises OrderTextsError when the file cannot be used."""
    path = templates_dir / TEXTS_FILE
    if not path.exists():
        return None
    try:
        parsed = read_texts(path, OrderTextsFile, "status texts").root
    except TextsError as exc:
        raise OrderTextsError(str(exc)) from None
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
