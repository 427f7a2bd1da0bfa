"""Sandbox mode: the transport `bot serve` uses when no access token is set. It records and shows every
request and never calls out; it accepts anything (the simulator's fake_cloud_api.py is the strict one).

It answers the way the Cloud API does (a fake `wamid.SANDBOX.<n>`, `{"success": true}` for mark-read, a
media id for uploads), so the whole bot, outbox included, runs unchanged on a laptop without Meta.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger("bot.whatsapp.sandbox")


class SandboxTransport:
    """Implements the client's Transport protocol; `requests` holds the latest bodies, in order.

    Fake wamids carry a per-process prefix: they are stored as unique ids, and a restarted sandbox must
    not hand out the ones the previous run already used.
    """

    def __init__(self, echo: Callable[[str], None] | None = None, keep: int = 1000) -> None:
        self.requests: deque[dict[str, Any]] = deque(maxlen=keep)
        self._echo = echo if echo is not None else logger.info
        self._ids = itertools.count(1)
        self._run = secrets.token_hex(4)

    async def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(body)
        if body.get("status") == "read":
            typing = " (typing…)" if "typing_indicator" in body else ""
            self._echo(f"[sandbox] ✓ read {body.get('message_id')}{typing}")
            return {"success": True}
        to = str(body.get("to") or body.get("recipient") or "?")
        self._echo(f"[sandbox] → {to} {describe(body)}")
        contact = {"input": to, "wa_id": to.lstrip("+")} if "to" in body else {"input": to, "user_id": to}
        return {
            "messaging_product": "whatsapp",
            "contacts": [contact],
            "messages": [{"id": f"wamid.SANDBOX.{self._run}.{next(self._ids)}"}],
        }

    async def post_multipart(
        self, path: str, fields: Mapping[str, str], files: Mapping[str, tuple[str, bytes, str]]
    ) -> dict[str, Any]:
        record: dict[str, Any] = dict(fields)
        for name, (filename, data, mime_type) in files.items():
            record[name] = {"filename": filename, "mime_type": mime_type, "size": len(data)}
        self.requests.append(record)
        media_id = f"sandbox-media-{next(self._ids)}"
        names = ", ".join(f"{filename} ({mime})" for filename, _, mime in files.values())
        self._echo(f"[sandbox] ↑ upload {names} → {media_id}")
        return {"id": media_id}

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return media_info(path, "sandbox")

    async def get_bytes(self, url: str, limit: int | None = None) -> bytes:
        return b""


def media_info(path: str, scheme: str) -> dict[str, Any]:
    """What GET /{media-id} answers, for a transport that keeps no files: an empty file of unknown type."""
    media_id = path.rsplit("/", 1)[-1]
    return {
        "messaging_product": "whatsapp",
        "url": f"{scheme}://media/{media_id}",
        "mime_type": "application/octet-stream",
        "sha256": "",
        "file_size": "0",
        "id": media_id,
    }


def describe(body: dict[str, Any]) -> str:
    """One readable line for a /messages body: "text: Hello", "image: <link> — caption", ..."""
    kind = str(body.get("type", "?"))
    obj = body.get(kind)
    if not isinstance(obj, dict):
        return kind
    if kind == "text":
        text = str(obj.get("body", ""))
    elif kind == "template":
        params = [
            str(p.get("text", p.get("payload", "")))
            for c in obj.get("components", [])
            for p in c.get("parameters", [])
        ]
        language = obj.get("language", {}).get("code", "?")
        text = f"{obj.get('name')}/{language} " + " | ".join(params)
    elif kind == "interactive":
        action = obj.get("action", {})
        titles = [b["reply"]["title"] for b in action.get("buttons", [])]
        titles += [r["title"] for s in action.get("sections", []) for r in s.get("rows", [])]
        text = obj.get("body", {}).get("text", "") + " " + " ".join(f"[{t}]" for t in titles)
    elif kind == "reaction":
        text = f"{obj.get('emoji') or '(removed)'} on {obj.get('message_id')}"
    else:
        source = obj.get("link") or f"id {obj.get('id')}"
        extra = obj.get("caption") or obj.get("filename") or ("voice note" if obj.get("voice") else "")
        text = f"{source} {extra}".strip()
    reply = body.get("context", {}).get("message_id") if isinstance(body.get("context"), dict) else None
    return f"{kind}: {text}" + (f" (reply to {reply})" if reply else "")
