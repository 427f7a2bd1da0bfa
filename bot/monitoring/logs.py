"""Structured logs: one JSON object per line when stderr is not a terminal (`logging.json: auto`), so a
journal or a log shipper can filter on fields; plain text on a terminal, for people.

A line's fields are what its call passed in `extra` (the inbox's line per handled message carries
`wamid`, `conversation_id`, `outcome` and `ms`), beside time, level, logger and message. Phone numbers
and message texts are only ever logged at DEBUG, in either format; at INFO and above the PhoneMasker
leaves only a number's last four digits, whoever logged it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", ...extra fields, "exception"?}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                line[key] = value
        if record.exc_info:
            line["exception"] = record.exc_text or self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


def wants_json(setting: bool | Literal["auto"], stream: TextIO | None = None) -> bool:
    if setting != "auto":
        return bool(setting)
    target = stream if stream is not None else sys.stderr
    isatty = getattr(target, "isatty", None)
    return not (isatty and isatty())


# An encryption key's id (8 hex digits, bot/crypto.key_id) is sometimes all digits; named as
# "encryption key <id>" it is an operator's clue, not a customer's number, so it is left whole.
_PHONE = re.compile(r"(?<![\w+])(?<!encryption key )(?:\+\d[\d \-().]{6,18}\d|\d{8,15})(?!\w)")


def _mask(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return match.group() if len(digits) < 8 else f"***{digits[-4:]}"


def mask_phones(text: str) -> str:
    """Every phone-like number (8 to 15 digits, or `+` and digits with separators) as its last four."""
    return _PHONE.sub(_mask, text)


class PhoneMasker(logging.Filter):
    """A handler filter, the safety net under the rule that lines at INFO and above name a customer by
    the last four digits only: whatever logs a whole number (a library's error, an exception's text)
    is masked on its way out. DEBUG lines stay whole (`bot -v`, for a developer's own machine)."""

    def __init__(self, formatter: logging.Formatter | None = None) -> None:
        super().__init__()
        self._formatter = formatter or logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return True
        record.msg, record.args = mask_phones(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_phones(record.exc_text)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, mask_phones(value))
        return True


def mask_handlers() -> None:
    """Put the PhoneMasker on the root logger's handlers (once each)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(existing, PhoneMasker) for existing in handler.filters):
            handler.addFilter(PhoneMasker())


def use_json(enabled: bool) -> None:
    """Switch the root logger's handlers to JSON lines (or back to text)."""
    formatter = JsonFormatter() if enabled else logging.Formatter(TEXT_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
