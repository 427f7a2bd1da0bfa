"""Structured logs: one JSON object per line when stderr is not a terminal (`logging.json: auto`), so a
journal or a log shipper can filter on fields; plain text on a terminal, for people.

A line's fields are what its call passed in `extra` (the inbox's line per handled message carries
`wamid`, `conversation_id`, `outcome` and `ms`), beside time, level, logger and message. Phone numbers
and message texts are only ever logged at DEBUG, in either format.
"""

from __future__ import annotations

import json
import logging
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
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


def wants_json(setting: bool | Literal["auto"], stream: TextIO | None = None) -> bool:
    if setting != "auto":
        return bool(setting)
    target = stream if stream is not None else sys.stderr
    isatty = getattr(target, "isatty", None)
    return not (isatty and isatty())


def use_json(enabled: bool) -> None:
    """Switch the root logger's handlers to JSON lines (or back to text)."""
    formatter = JsonFormatter() if enabled else logging.Formatter(TEXT_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
