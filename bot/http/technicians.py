"""The technician API under /api/tech/ (bearer token from `bot technicians add`), and its WebSocket.

Routes (JSON in and out; errors are `{"error": "..."}` with 401, 403, 404, 409 or 422):
  POST /api/tech/sessions                    a panel session for the login token (it expires)
  GET  /api/tech/me                          the technician the token belongs to
  GET  /api/tech/technicians                 active technicians (whom a chat can be transferred to)
  GET  /api/tech/queue                       waiting chats, longest wait first
  GET  /api/tech/chats                       chats claimed by me (admin: by anyone)
  POST /api/tech/chats/{phone}/claim         take a chat; 409 when someone else has it
  GET  /api/tech/chats/{phone}/messages      the chat, its window and its history (notes included)
  POST /api/tech/chats/{phone}/messages      {"text"} or {"template", "params"}; only the owner
  POST /api/tech/chats/{phone}/media         multipart `file` (+ optional `caption`); only the owner
  POST /api/tech/chats/{phone}/notes         {"text"}: internal, never sent
  POST /api/tech/chats/{phone}/transfer      {"technician_id"}
  POST /api/tech/chats/{phone}/release       {"flow"?, "state"?}: back to the bot
  /api/tech/customers/{id}/...               the same seven, the chat named by the customer's id (a
                                             customer without a phone too); {phone} may also be a BSUID
  GET  /api/tech/media/{message id}          a kept file of a chat I may open, decrypted (never cached)
  GET  /api/tech/failed                      admin: inbound messages the bot gave up on, newest first
  GET  /api/tech/ws?token=...                live events (bot/handoff/events.py)

Thin on purpose: authenticate, validate, hand over to the HandoffDesk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import BodyPartReader, WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.crypto import CryptoError
from bot.db.models import Handoff, HandoffStatus, Technician
from bot.handoff.service import OPEN, ChatKey, DeskError, HandoffDesk, is_admin
from bot.handoff.sessions import issue_session, technician_of
from bot.handoff.tokens import TOKEN_PREFIX, verify_token
from bot.http.errors import (
    RowId,
    bearer_token,
    error_response,
    field_errors,
    path_id,
    unauthorized,
    validated_body,
)
from bot.identity import customer_by_address
from bot.media import types as media_types
from bot.media.store import MediaStore, is_stored, media_owner
from bot.whatsapp.client import WhatsAppClient
from bot.whatsapp.errors import GraphError
from bot.whatsapp.outbound import OutboundMessage, Text

log = logging.getLogger(__name__)

DESK = web.AppKey("handoff_desk", HandoffDesk)
SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("handoff_sockets")
WA_CLIENT: web.AppKey[Callable[[], WhatsAppClient]] = web.AppKey("handoff_client")

MB = 1024 * 1024
IMAGE_TYPES = {"image/jpeg": 5 * MB, "image/png": 5 * MB}
DOCUMENT_TYPES = {
    mime: 100 * MB
    for mime in (
        "application/pdf",
        "text/plain",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    )
}
MEDIA_LIMITS = {**IMAGE_TYPES, **DOCUMENT_TYPES}
HEARTBEAT_SECONDS = 25.0

Body = TypeVar("Body", bound=BaseModel)
Handler = Callable[[web.Request, Technician], Awaitable[Any]]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SendIn(_In):
    text: str | None = Field(default=None, min_length=1, max_length=4096)
    template: str | None = Field(default=None, min_length=1, max_length=512)
    params: list[str] = []

    @model_validator(mode="after")
    def _one(self) -> SendIn:
        if (self.text is None) == (self.template is None):
            raise ValueError("give either text or template")
        return self


class NoteIn(_In):
    text: str = Field(min_length=1, max_length=4000)


class TransferIn(_In):
    technician_id: RowId


class ReleaseIn(_In):
    flow: str | None = Field(default=None, max_length=64)
    state: str | None = Field(default=None, max_length=128)


def technician_out(technician: Technician) -> dict[str, Any]:
    return {
        "id": technician.id,
        "name": technician.name,
        "phone": technician.phone,
        "role": str(technician.role),
        "active": technician.active,
    }


SESSION_HOURS = web.AppKey("session_hours", float)
RECHECK_SECONDS = 30.0
"""How often an open WebSocket checks that its session still holds (expired, or ended by an admin)."""


async def authenticate(request: web.Request) -> Technician:
    """The active technician whose token or session the request carries; 401 otherwise."""
    technician = await technician_of(bearer_token(request))
    if technician is None:
        raise unauthorized("missing, unknown, expired or inactive technician token", "technicians")
    return technician


async def new_session(request: web.Request) -> web.Response:
    """Only a login token opens a session (a session cannot extend itself)."""
    token = bearer_token(request)
    technician = await verify_token(token) if token.startswith(TOKEN_PREFIX) else None
    if technician is None:
        raise unauthorized("missing, unknown or inactive technician token", "technicians")
    session = issue_session(technician, timedelta(hours=request.app[SESSION_HOURS]))
    return web.json_response(
        {
            "session": session.token,
            "expires_at": session.expires_at.isoformat(),
            "technician": technician_out(technician),
        }
    )


def route(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Authenticate, run, answer JSON; a DeskError becomes its status and `{"error", ...}`."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        technician = await authenticate(request)
        try:
            result = await handler(request, technician)
        except DeskError as exc:
            return web.json_response({"error": exc.message, **exc.extra}, status=exc.status)
        return web.json_response(result)

    return wrapped


async def validated(request: web.Request, model: type[Body]) -> Body:
    fields = list(model.model_fields)
    return await validated_body(request, model, "request", lambda exc: field_errors(exc, fields))


async def me(request: web.Request, technician: Technician) -> dict[str, Any]:
    return technician_out(technician)


async def technicians(request: web.Request, technician: Technician) -> list[dict[str, Any]]:
    return [technician_out(t) for t in await Technician.filter(active=True).order_by("name")]


async def queue(request: web.Request, technician: Technician) -> list[dict[str, Any]]:
    return await request.app[DESK].queue()


async def chats(request: web.Request, technician: Technician) -> list[dict[str, Any]]:
    return await request.app[DESK].chats(technician)


def _chat_key(request: web.Request) -> ChatKey:
    """The chat a route names: a customer id (/api/tech/customers/{customer_id}/...), or a phone or
    BSUID (/api/tech/chats/{phone}/...)."""
    if "customer_id" in request.match_info:
        try:
            return int(request.match_info["customer_id"])
        except ValueError:
            raise DeskError(404, "no chat with this customer") from None
    return request.match_info["phone"]


async def claim(request: web.Request, technician: Technician) -> dict[str, Any]:
    return await request.app[DESK].claim(technician, _chat_key(request))


async def history(request: web.Request, technician: Technician) -> dict[str, Any]:
    return await request.app[DESK].history(technician, _chat_key(request))


async def send(request: web.Request, technician: Technician) -> dict[str, Any]:
    desk, phone = request.app[DESK], _chat_key(request)
    body = await validated(request, SendIn)
    message: OutboundMessage
    if body.template is not None:
        chat = await desk.owned_chat(technician, phone, free_form=False)
        message = desk.template(chat.customer, body.template, body.params)
    else:
        assert body.text is not None
        message = Text(body=body.text)
    return await desk.send(technician, phone, message)


async def media(request: web.Request, technician: Technician) -> dict[str, Any]:
    """Upload to the Cloud API's media endpoint, then queue a message that sends it by id."""
    desk, phone = request.app[DESK], _chat_key(request)
    await desk.owned_chat(technician, phone, free_form=True)  # refuse before reading megabytes
    if not request.content_type.startswith("multipart/"):
        raise DeskError(422, "send the file as multipart/form-data in a field named 'file'")
    reader = await request.multipart()
    data: bytearray | None = None
    mime, filename, caption = "", "file", None
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "caption":
            caption = (await part.text())[:1024]
        elif part.name == "file":
            mime = (part.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            filename = part.filename or "file"
            limit = MEDIA_LIMITS.get(mime)
            if limit is None:
                raise DeskError(
                    422,
                    f"files of type '{mime or 'unknown'}' cannot be sent",
                    {"allowed": sorted(MEDIA_LIMITS)},
                )
            data = bytearray()
            while chunk := await part.read_chunk():
                data.extend(chunk)
                if len(data) > limit:
                    raise DeskError(422, f"{mime} files can be at most {limit // MB} MB")
    if not data:
        raise DeskError(422, "no file: send it in a multipart field named 'file'")
    try:
        media_id = await request.app[WA_CLIENT]().upload_media(bytes(data), mime, filename)
    except GraphError as exc:
        raise DeskError(502, f"the upload to WhatsApp failed: {exc}") from None
    return await desk.send(technician, phone, desk.media(media_id, mime, filename, caption))


MEDIA_STORE = web.AppKey("media_store", MediaStore)


async def media_file(request: web.Request) -> web.StreamResponse:
    """A customer's file, only to a technician who may open their chat: decrypted here, sent with a
    type checked when it was kept, never cached, and sandboxed should a browser open it directly."""
    technician = await authenticate(request)
    message_id = path_id(request, "id", "no such file")
    try:
        row = await request.app[DESK].visible_message(technician, message_id)
    except DeskError as exc:
        return web.json_response({"error": exc.message}, status=exc.status)
    if not is_stored(row.file_url):
        return error_response(404, "no file is kept for this message")
    assert row.file_url is not None
    try:
        data = await request.app[MEDIA_STORE].get(row.file_url, media_owner(row.customer_id, row.address))
    except FileNotFoundError:
        return error_response(404, "the file is gone (retention or erasure)")
    except CryptoError as exc:
        log.error("media of message %s cannot be opened: %s", row.id, exc)
        return error_response(500, "the file cannot be decrypted")
    raw = (row.payload or {}).get("message") or {}
    media = raw.get(row.message_type) if isinstance(raw, dict) else None
    mime = media_types.base_type(media.get("mime_type") if isinstance(media, dict) else None)
    mime = mime if mime in media_types.ALLOWED else "application/octet-stream"
    disposition = "inline" if mime in media_types.INLINE else "attachment"
    name = quote(row.file_name or f"{row.message_type}-{row.id}", safe="")
    return web.Response(
        body=data,
        content_type=mime,
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{name}",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


async def note(request: web.Request, technician: Technician) -> dict[str, Any]:
    body = await validated(request, NoteIn)
    return await request.app[DESK].note(technician, _chat_key(request), body.text)


async def transfer(request: web.Request, technician: Technician) -> dict[str, Any]:
    body = await validated(request, TransferIn)
    return await request.app[DESK].transfer(technician, _chat_key(request), body.technician_id)


async def release(request: web.Request, technician: Technician) -> dict[str, Any]:
    body = await validated(request, ReleaseIn)
    return await request.app[DESK].release(technician, _chat_key(request), body.flow, body.state)


async def failed(request: web.Request, technician: Technician) -> list[dict[str, Any]]:
    return await request.app[DESK].failed(technician)


async def visible(technician: Technician, event: dict[str, Any]) -> bool:
    """Admins see every event; technicians the queue, and the messages of waiting chats and their own."""
    if is_admin(technician) or event.get("type") == "queue":
        return True
    customer_id = event.get("customer_id")
    if not customer_id and event.get("phone"):  # a status webhook names its recipient by address only
        customer = await customer_by_address(str(event["phone"]))
        customer_id = customer.id if customer else None
    if not customer_id:
        return False
    handoff = await Handoff.filter(conversation__customer_id=customer_id, status__in=list(OPEN)).first()
    return handoff is not None and (
        handoff.status == HandoffStatus.WAITING or handoff.technician_id == technician.id
    )


async def websocket(request: web.Request) -> web.StreamResponse:
    """Live events as JSON text frames; the first is `{"type": "hello", "technician": {...}}`."""
    token = request.query.get("token", "")
    technician = await technician_of(token) if token else None
    if technician is None:
        return error_response(401, "missing, unknown, expired or inactive technician token")
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    with request.app[DESK].events.subscription() as events:
        await ws.send_json({"type": "hello", "technician": technician_out(technician)})
        incoming = asyncio.create_task(_drain(ws))
        loop = asyncio.get_running_loop()
        checked = loop.time()
        try:
            while not ws.closed:
                next_event = asyncio.create_task(events.get())
                done, _ = await asyncio.wait(
                    {next_event, incoming}, timeout=RECHECK_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                if incoming in done:
                    next_event.cancel()
                    break
                if loop.time() - checked >= RECHECK_SECONDS:  # expired or ended meanwhile: close
                    checked = loop.time()
                    if await technician_of(token) is None:
                        next_event.cancel()
                        await ws.close(code=4001, message=b"session ended")
                        break
                if next_event not in done:
                    next_event.cancel()
                    continue
                event = next_event.result()
                if await visible(technician, event):
                    await ws.send_json(event)
        finally:
            incoming.cancel()
            request.app[SOCKETS].discard(ws)
    return ws


async def _drain(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the panel sends, so pings, pongs and the close are handled."""
    async for message in ws:
        if message.type == WSMsgType.ERROR:
            break


async def _close_sockets(app: web.Application) -> None:
    sockets: set[web.WebSocketResponse] = app[SOCKETS]
    for ws in tuple(sockets):
        await ws.close(code=1001, message=b"server shutting down")


def add_routes(
    app: web.Application,
    desk: HandoffDesk,
    client: Callable[[], WhatsAppClient],
    session_hours: float = 12,
    media_store: MediaStore | None = None,
) -> None:
    app[DESK] = desk
    if media_store is not None:
        app[MEDIA_STORE] = media_store
    app[SESSION_HOURS] = session_hours
    app[WA_CLIENT] = client
    app[SOCKETS] = set()
    app.on_shutdown.append(_close_sockets)
    add = app.router
    add.add_post("/api/tech/sessions", new_session)
    add.add_get("/api/tech/me", route(me))
    add.add_get("/api/tech/technicians", route(technicians))
    add.add_get("/api/tech/queue", route(queue))
    add.add_get("/api/tech/chats", route(chats))
    for chat in ("/api/tech/chats/{phone}", "/api/tech/customers/{customer_id}"):
        add.add_post(f"{chat}/claim", route(claim))
        add.add_get(f"{chat}/messages", route(history))
        add.add_post(f"{chat}/messages", route(send))
        add.add_post(f"{chat}/media", route(media))
        add.add_post(f"{chat}/notes", route(note))
        add.add_post(f"{chat}/transfer", route(transfer))
        add.add_post(f"{chat}/release", route(release))
    add.add_get("/api/tech/media/{id}", media_file)
    add.add_get("/api/tech/failed", route(failed))
    add.add_get("/api/tech/ws", websocket)
