"""A strict fake of Meta's Cloud API: the transport of the simulator (bot/cli/simulator.py: `bot chat`, flow
tests), which answers like the Cloud API and refuses what Meta refuses.

The sandbox (sandbox.py: `bot serve` without an access token) accepts anything; this one checks each
/messages body against the real limits (those of outbound.py) and the 24-hour customer service
window, and answers a violation with Meta's own error JSON through `error_from_response`, exactly as
`HttpTransport` does on a non-2xx. So a flow that only works because nothing checks it fails here,
before a customer sees it.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from bot.whatsapp import outbound as limits
from bot.whatsapp.errors import error_from_response
from bot.whatsapp.sandbox import media_info

WINDOW = timedelta(hours=24)
HTTP_BAD_REQUEST = 400
_TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
_BSUID = re.compile(r"^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$")
_CAPTIONED = frozenset({"image", "video", "document"})
_MEDIA = frozenset({"image", "document", "audio", "video", "sticker"})
_TITLES = {
    100: "Invalid parameter",
    131008: "Required parameter is missing",
    131009: "Parameter value is not valid",
    131047: "Re-engagement message",
}
_WINDOW_DETAILS = (
    "Message failed to send because more than 24 hours have passed since the customer last replied to "
    "this number."
)


class Refusal(Exception):
    """What Meta would answer instead of accepting the message: a Graph error code and its details."""

    def __init__(self, code: int, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def graph_error_body(code: int, details: str) -> dict[str, Any]:
    """The synchronous Graph error shape (as in tests/payloads/error_131047.json)."""
    return {
        "error": {
            "message": f"(#{code}) {_TITLES.get(code, 'Error')}",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": f"SIM{secrets.token_hex(8)}",
        }
    }


class FakeCloudAPI:
    """Implements the client's Transport protocol; `delivered(phone)` is what that customer received."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._last_inbound: dict[str, datetime] = {}
        self._delivered: dict[str, list[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._run = secrets.token_hex(4)

    def customer_wrote(self, phone: str, at: datetime) -> None:
        """The simulator tells us when a customer wrote: that opens (or renews) their 24-hour window."""
        phone = phone.lstrip("+")
        if phone not in self._last_inbound or at > self._last_inbound[phone]:
            self._last_inbound[phone] = at

    def reset(self) -> None:
        """Forget every customer (a flow test starts from an empty world)."""
        self._last_inbound.clear()
        self._delivered.clear()

    def forget(self, phone: str) -> None:
        phone = phone.lstrip("+")
        self._last_inbound.pop(phone, None)
        self._delivered.pop(phone, None)

    def delivered(self, phone: str) -> list[dict[str, Any]]:
        """The /messages bodies accepted for this customer, in order."""
        return list(self._delivered.get(phone.lstrip("+"), []))

    async def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("status") == "read":
            if not body.get("message_id"):
                raise _error(131008, "message_id is required")
            return {"success": True}
        try:
            to = check_message(body)
            if body.get("type") != "template":
                self._check_window(to)
        except Refusal as refusal:
            raise _error(refusal.code, refusal.details) from None
        self._delivered.setdefault(to, []).append(body)
        contact = {"input": f"+{to}", "wa_id": to} if "to" in body else {"input": to, "user_id": to}
        return {
            "messaging_product": "whatsapp",
            "contacts": [contact],
            "messages": [{"id": f"wamid.SIM.{self._run}.{next(self._ids)}"}],
        }

    def _check_window(self, to: str) -> None:
        last = self._last_inbound.get(to)
        if last is None or self._clock() - last > WINDOW:
            raise Refusal(131047, _WINDOW_DETAILS)

    async def post_multipart(
        self, path: str, fields: Mapping[str, str], files: Mapping[str, tuple[str, bytes, str]]
    ) -> dict[str, Any]:
        return {"id": f"sim-media-{next(self._ids)}"}

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return media_info(path, "sim")

    async def get_bytes(self, url: str, limit: int | None = None) -> bytes:
        return b""


def _error(code: int, details: str) -> Exception:
    """Through the same function the HTTP transport uses, so the client raises the same GraphError."""
    return error_from_response(HTTP_BAD_REQUEST, json.dumps(graph_error_body(code, details)).encode())


# ---- the checks Meta makes on a /messages body


def check_message(body: dict[str, Any]) -> str:
    """Raise Refusal for what the Cloud API refuses; return the recipient: the wa_id of `to`, or the
    business-scoped user ID of `recipient` (one of them, not both)."""
    if body.get("messaging_product") != "whatsapp":
        raise Refusal(131008, "messaging_product must be 'whatsapp'")
    to, bsuid = body.get("to"), body.get("recipient")
    if (to is None) == (bsuid is None):
        raise Refusal(131008, "exactly one of 'to' (a phone number) or 'recipient' (a BSUID) is required")
    if to is not None and (not isinstance(to, str) or not to.lstrip("+").isdigit()):
        raise Refusal(131008, "'to' must be a phone number")
    if bsuid is not None and (not isinstance(bsuid, str) or not _BSUID.match(bsuid)):
        raise Refusal(131008, "'recipient' must be a business-scoped user ID")
    kind = body.get("type")
    obj = body.get(kind) if isinstance(kind, str) else None
    if not isinstance(obj, dict):
        raise Refusal(131008, f"the message needs a '{kind}' object")
    if kind == "text":
        _length(obj.get("body"), "text.body", limits.TEXT_MAX)
    elif kind in _MEDIA:
        _check_media(kind, obj)
    elif kind == "template":
        _check_template(obj)
    elif kind == "interactive":
        _check_interactive(obj)
    elif kind == "reaction":
        if not obj.get("message_id"):
            raise Refusal(131008, "reaction.message_id is required")
    else:
        raise Refusal(100, f"unsupported message type '{kind}'")
    if bsuid is not None:
        return str(bsuid)
    return str(to).lstrip("+")


def _length(value: Any, what: str, maximum: int, minimum: int = 1) -> None:
    if value is None and minimum == 0:
        return
    if not isinstance(value, str) or len(value) < minimum:
        raise Refusal(131008, f"{what} is required")
    if len(value) > maximum:
        raise Refusal(131009, f"{what} is too long: {len(value)} characters, at most {maximum}")


def _check_media(kind: str, obj: dict[str, Any]) -> None:
    if ("link" in obj) == ("id" in obj):
        raise Refusal(131008, f"{kind} needs exactly one of 'link' or 'id'")
    if "caption" in obj:
        if kind not in _CAPTIONED:
            raise Refusal(131009, f"{kind} messages take no caption")
        _length(obj["caption"], f"{kind}.caption", limits.CAPTION_MAX)


def _check_template(obj: dict[str, Any]) -> None:
    name = obj.get("name")
    if not isinstance(name, str) or not _TEMPLATE_NAME.match(name):
        raise Refusal(131009, "template.name must be lower case letters, digits and _")
    language = obj.get("language")
    if not isinstance(language, dict) or not language.get("code"):
        raise Refusal(131008, "template.language.code is required")


def _check_interactive(obj: dict[str, Any]) -> None:
    body = obj.get("body")
    action = obj.get("action")
    if not isinstance(body, dict) or not isinstance(action, dict):
        raise Refusal(131008, "interactive messages need 'body' and 'action'")
    header = obj.get("header")
    if isinstance(header, dict) and header.get("type") == "text":
        _length(header.get("text"), "header.text", limits.HEADER_MAX)
    footer = obj.get("footer")
    if isinstance(footer, dict):
        _length(footer.get("text"), "footer.text", limits.FOOTER_MAX)
    if obj.get("type") == "button":
        _length(body.get("text"), "body.text", limits.BUTTON_BODY_MAX)
        _check_buttons(action.get("buttons"))
    elif obj.get("type") == "request_contact_info":
        _length(body.get("text"), "body.text", limits.BUTTON_BODY_MAX)
        if action.get("name") != "request_contact_info":
            raise Refusal(131008, "action.name must be request_contact_info")
    elif obj.get("type") == "list":
        _length(body.get("text"), "body.text", limits.LIST_BODY_MAX)
        _length(action.get("button"), "action.button", limits.LIST_BUTTON_MAX)
        _check_sections(action.get("sections"))
    else:
        raise Refusal(100, f"unsupported interactive type '{obj.get('type')}'")


def _check_buttons(buttons: Any) -> None:
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= limits.MAX_BUTTONS:
        count = len(buttons) if isinstance(buttons, list) else 0
        raise Refusal(131009, f"buttons: between 1 and {limits.MAX_BUTTONS} are allowed, got {count}")
    titles, ids = [], []
    for button in buttons:
        reply = button.get("reply") if isinstance(button, dict) else None
        if not isinstance(reply, dict):
            raise Refusal(131008, "each button needs a 'reply' object")
        _length(reply.get("id"), "button id", limits.BUTTON_ID_MAX)
        _length(reply.get("title"), "button title", limits.BUTTON_TITLE_MAX)
        titles.append(reply["title"])
        ids.append(reply["id"])
    if len(set(titles)) != len(titles):
        raise Refusal(131009, "button titles must be unique")
    if len(set(ids)) != len(ids):
        raise Refusal(131009, "button ids must be unique")


def _check_sections(sections: Any) -> None:
    if not isinstance(sections, list) or not 1 <= len(sections) <= limits.LIST_MAX_SECTIONS:
        raise Refusal(131009, f"a list needs between 1 and {limits.LIST_MAX_SECTIONS} sections")
    ids: list[str] = []
    for section in sections:
        if not isinstance(section, dict) or not isinstance(section.get("rows"), list):
            raise Refusal(131008, "each section needs 'rows'")
        if len(sections) > 1 or "title" in section:
            _length(section.get("title"), "section title", limits.LIST_SECTION_TITLE_MAX)
        for row in section["rows"]:
            if not isinstance(row, dict):
                raise Refusal(131008, "each row needs 'id' and 'title'")
            _length(row.get("id"), "row id", limits.LIST_ROW_ID_MAX)
            _length(row.get("title"), "row title", limits.LIST_ROW_TITLE_MAX)
            _length(row.get("description"), "row description", limits.LIST_ROW_DESCRIPTION_MAX, 0)
            ids.append(row["id"])
    if not 1 <= len(ids) <= limits.LIST_MAX_ROWS:
        raise Refusal(131009, f"a list holds 1 to {limits.LIST_MAX_ROWS} rows in all, got {len(ids)}")
    if len(set(ids)) != len(ids):
        raise Refusal(131009, "list row ids must be unique")
