"""WhatsAppClient: sends of `outbound` values, mark-read and media over a small Transport (HTTP or sandbox).

The client makes exactly one attempt per call and raises a `GraphError` subclass on failure: retries
belong to the outbox, which keeps them durable across restarts. The client only paces (so 130429 and
131056 are avoided rather than retried) and, after an error about one recipient (131056), tells the
pacer to hold that recipient. Callers pass an `outbound` value, built and checked against the Cloud
API's limits before any request is made.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from bot.monitoring import metrics
from bot.whatsapp.errors import (
    GraphError,
    MediaError,
    TransportError,
    UnexpectedResponse,
    error_from_response,
)
from bot.whatsapp.outbound import MB, MEDIA_MAX_BYTES, Media, OutboundMessage, to_request_body
from bot.whatsapp.pacing import Pacer
from bot.whatsapp.sandbox import SandboxTransport

__all__ = ["HttpTransport", "SandboxTransport", "SendResult", "Transport", "WhatsAppClient"]

DEFAULT_TIMEOUT = 15.0
_ENCODE_JSON = json.JSONEncoder(separators=(",", ":")).encode
"""A request body's JSON, compact: one encoder made once (json.dumps with options makes one per call)."""


@dataclass(frozen=True)
class SendResult:
    """Meta accepted the message (not yet delivered: status webhooks report that)."""

    wamid: str
    wa_id: str | None
    raw: dict[str, Any]


class Transport(Protocol):
    """Where requests go. Paths are relative to the versioned Graph base URL; failures raise GraphError."""

    async def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def post_multipart(
        self, path: str, fields: Mapping[str, str], files: Mapping[str, tuple[str, bytes, str]]
    ) -> dict[str, Any]:
        """`files` maps a form field to (filename, data, mime type)."""
        ...

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]: ...

    async def get_bytes(self, url: str, limit: int | None = None) -> bytes:
        """GET an absolute URL with the bearer token (media download); more than `limit` bytes raise
        TooLarge without reading the rest."""
        ...


class TooLarge(Exception):
    """A download longer than the caller's limit; what was read is dropped."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


class HttpTransport:
    """The real Graph API over a shared aiohttp session (owned by the app, not by this object)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        access_token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {access_token}"}
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def __repr__(self) -> str:  # never show the token
        return f"HttpTransport({self._base_url!r})"

    async def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """The body goes as bytes encoded here, with its Content-Type: what aiohttp's `json=` sends,
        without its JsonPayload per request (two of them per message: the send and the mark-read)."""
        data = _ENCODE_JSON(body).encode()
        return _json_object(*await self._request("POST", self._url(path), self._json_headers, data=data))

    async def post_multipart(
        self, path: str, fields: Mapping[str, str], files: Mapping[str, tuple[str, bytes, str]]
    ) -> dict[str, Any]:
        form = aiohttp.FormData()
        for name, value in fields.items():
            form.add_field(name, value)
        for name, (filename, data, mime_type) in files.items():
            form.add_field(name, data, filename=filename, content_type=mime_type)
        return _json_object(*await self._request("POST", self._url(path), self._headers, data=form))

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return _json_object(
            *await self._request("GET", self._url(path), self._headers, params=dict(params or {}))
        )

    async def get_bytes(self, url: str, limit: int | None = None) -> bytes:
        """Only give this URLs from `get_media_url`: the bearer token goes with the request."""
        if limit is None:
            return (await self._request("GET", url, self._headers))[1]
        try:
            async with self._session.get(
                url, headers=self._headers, timeout=self._timeout, raise_for_status=False
            ) as response:
                if not 200 <= response.status < 300:
                    raise error_from_response(response.status, await response.read())
                if (response.content_length or 0) > limit:
                    raise TooLarge(limit)
                data = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    data.extend(chunk)
                    if len(data) > limit:
                        raise TooLarge(limit)
                return bytes(data)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError.from_exception(exc) from exc

    def _url(self, path: str) -> str:
        return f"{self._base_url}/{path.lstrip('/')}"

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], **kwargs: Any
    ) -> tuple[int, bytes]:
        try:
            async with self._session.request(
                method, url, headers=headers, timeout=self._timeout, raise_for_status=False, **kwargs
            ) as response:
                status = response.status
                payload = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError.from_exception(exc) from exc
        if not 200 <= status < 300:
            raise error_from_response(status, payload)
        return status, payload


def _json_object(status: int, payload: bytes) -> dict[str, Any]:
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise UnexpectedResponse.about("body is not JSON", payload[:1000], status) from None
    if not isinstance(body, dict):
        raise UnexpectedResponse.about("body is not a JSON object", body, status)
    return body


class WhatsAppClient:
    """Sends to one business phone number. One attempt per call; GraphError subclasses on failure."""

    def __init__(self, transport: Transport, phone_number_id: str, pacer: Pacer | None = None) -> None:
        self.transport = transport
        self.phone_number_id = phone_number_id
        self.pacer = pacer
        self._messages_path = f"{phone_number_id}/messages"
        self._media_path = f"{phone_number_id}/media"

    async def send(
        self,
        to: str,
        message: OutboundMessage,
        *,
        reply_to: str | None = None,
        pace: bool = True,
        pace_as: str | None = None,
    ) -> SendResult:
        """Send one message to a phone or a BSUID (`to_request_body`), paced first, per `pace_as` (the
        customer, whatever their address) or else per address. After an error about this recipient only
        (131056, the pair rate limit) the pacer holds the recipient, then it raises. A relayed file goes
        as its copy."""
        if isinstance(message, Media) and message.relayed_media_id is not None:
            try:
                message = await self.copy(message)
            except GraphError as err:
                metrics.graph_error(err.code)
                raise
        body = to_request_body(to, message, reply_to)
        key = pace_as or to
        if pace and self.pacer is not None:
            await self.pacer.acquire(key)
        try:
            response = await self.transport.post_json(self._messages_path, body)
        except GraphError as err:
            metrics.graph_error(err.code)
            if err.per_recipient and self.pacer is not None:
                self.pacer.hold(key, err.retry_delay(0))
            raise
        return _send_result(response)

    async def mark_read(self, message_id: str, *, typing: bool = False) -> None:
        """Mark an inbound message (and the ones before it) read; `typing` also shows "typing…" (25 s).

        Not paced: it is a status update, not a message to the recipient.
        """
        body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
        if typing:
            body["typing_indicator"] = {"type": "text"}
        try:
            response = await self.transport.post_json(self._messages_path, body)
        except GraphError as err:
            metrics.graph_error(err.code)
            raise
        if response.get("success") is not True:
            raise UnexpectedResponse.about("mark-read without success: true", response)

    async def upload_media(self, data: bytes, mime_type: str, filename: str) -> str:
        """Upload a file for later sends by id (kept 30 days); returns the media id."""
        response = await self.transport.post_multipart(
            self._media_path,
            {"messaging_product": "whatsapp", "type": mime_type},
            {"file": (filename, data, mime_type)},
        )
        media_id = response.get("id")
        if not isinstance(media_id, str) or not media_id:
            raise UnexpectedResponse.about("upload without an id", response)
        return media_id

    async def get_media_url(self, media_id: str) -> dict[str, Any]:
        """{url, mime_type, sha256, file_size, id, ...}; the URL expires after 5 minutes."""
        response = await self.transport.get_json(media_id, {"phone_number_id": self.phone_number_id})
        if not isinstance(response.get("url"), str):
            raise UnexpectedResponse.about("media lookup without a url", response)
        return response

    async def download_media(self, url: str, limit: int | None = None) -> bytes:
        """Fetch media from a `get_media_url` URL (it needs the bearer token); TooLarge over `limit`."""
        return await self.transport.get_bytes(url, limit)

    async def copy(self, message: Media) -> Media:
        """`message` with the file it relays made the business number's own: its URL asked for
        (GET /{media-id}, good for 5 minutes), downloaded with the token and uploaded again; each try
        of a send makes its copy. A file larger than WhatsApp sends of its kind is refused (131053)."""
        assert message.relayed_media_id is not None
        info = await self.get_media_url(message.relayed_media_id)
        limit = MEDIA_MAX_BYTES[message.media_type]
        _within(_size(info.get("file_size")), limit, message.media_type)
        try:
            data = await self.download_media(info["url"], limit)  # stops reading past the limit
        except TooLarge:
            raise _too_large(message.media_type, limit) from None
        mime_type = str(info.get("mime_type") or "application/octet-stream").split(";")[0].strip()
        media_id = await self.upload_media(data, mime_type, message.filename or _file_name(mime_type))
        return message.model_copy(update={"media_id": media_id, "relayed_media_id": None})


def _size(value: Any) -> int:
    """GET /{media-id}'s file_size (a string of digits in Meta's answers); 0 when not given."""
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _within(size: int, limit: int, kind: str) -> None:
    if size > limit:
        raise _too_large(kind, limit, size)


def _too_large(kind: str, limit: int, size: int | None = None) -> MediaError:
    what = f"{size / MB:.1f} MB" if size is not None else f"larger than {limit / MB:g} MB"
    return MediaError(131053, f"the {kind} is {what}; WhatsApp sends at most {limit / MB:g} MB")


def _file_name(mime_type: str) -> str:
    """An upload's file name when the message names none: "file" with the type's extension."""
    extension = mimetypes.guess_extension(mime_type) or ""
    return f"file{extension}"


def _send_result(response: dict[str, Any]) -> SendResult:
    messages = response.get("messages")
    first = messages[0] if isinstance(messages, list) and messages else None
    wamid = first.get("id") if isinstance(first, dict) else None
    if not isinstance(wamid, str) or not wamid:
        raise UnexpectedResponse.about("no messages[0].id", response, 200)
    contacts = response.get("contacts")
    contact = contacts[0] if isinstance(contacts, list) and contacts else None
    wa_id = contact.get("wa_id") if isinstance(contact, dict) else None
    return SendResult(wamid=wamid, wa_id=wa_id if isinstance(wa_id, str) else None, raw=response)
