"""What customers are told about their order's status: templates/texts/order_statuses.yaml.

Staff edit these texts, not code. The file is read and checked with the flows, when the server starts
and at every reload: a status without a text, a misspelt {placeholder} or a label WhatsApp would refuse
as a template parameter is refused with its file:line:column (the last good texts keep serving), instead
of failing on a customer's order later.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, RootModel

from bot.engine.marked_yaml import MarkedSource
from bot.engine.texts import TextCatalog, TextsFile, pick_text
from bot.notice_texts import NOT_EMPTY, Language, Text, format_text, placeholders, read_model, template_safe

TEXTS_NAME = "order_statuses"
"""templates/texts/order_statuses.yaml"""
PLACEHOLDERS = ("order_number", "device_model", "customer_name", "address", "opening_hours")

Label = Annotated[Text, AfterValidator(template_safe)]
StatusText = Annotated[Text, AfterValidator(placeholders(PLACEHOLDERS))]


class StatusTexts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: Annotated[dict[Language, Label], NOT_EMPTY]
    """The status as customers read it; the order_status_update template's second parameter."""
    text: Annotated[dict[Language, StatusText], NOT_EMPTY]
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


def order_texts_file(statuses: Sequence[str], default_language: str) -> TextsFile[OrderTexts]:
    """The file as the loader reads it: every status in settings.yaml's `orders.statuses` needs a label
    and a text in the shop's language, and every entry is one of them (a misspelt status would never be
    read). Missing, status messages go out as the order_status_update template only."""

    def read(source: MarkedSource, document: Any) -> OrderTexts | None:
        parsed = read_model(source, document, OrderTextsFile)
        if parsed is None:
            return None
        for status in statuses:
            texts = parsed.root.get(status)
            if texts is None:
                source.add(
                    (),
                    f"no texts for the status '{status}' (settings.yaml orders.statuses has it)",
                    f"add '{status}:' with a label and a text",
                )
            elif default_language not in texts.text or default_language not in texts.label:
                source.add(
                    (status,),
                    f"'{status}' needs a label and a text in the shop's language ({default_language})",
                    key=True,
                )
        for written in parsed.root:
            if written not in statuses:
                close = difflib.get_close_matches(written, list(statuses), 1)
                hint = (
                    f"did you mean '{close[0]}'?" if close else "add it to orders.statuses, or remove it here"
                )
                source.add(
                    (written,),
                    f"'{written}' is not a status in settings.yaml orders.statuses",
                    hint,
                    key=True,
                )
        return OrderTexts(parsed.root, default_language)

    return TextsFile(TEXTS_NAME, read)


def order_texts(texts: TextCatalog) -> OrderTexts | None:
    """The status texts among the loaded texts; None when the file is missing."""
    return texts.file(TEXTS_NAME, OrderTexts)
