"""The media fetcher inside `bot serve`: inbound images, voice notes, videos, documents and stickers are
downloaded from the Cloud API soon after they arrive, checked, and kept encrypted (store.py).

Limits come first: the declared type must be one kept (types.py) and its announced size within the
limit, before a byte is read; the download stops at the limit; the bytes must look like the type and
match Meta's sha256. A file refused is noted on the row (`file_url` = `refused: <why>`), never kept. A
download that fails (the network, Meta) is tried again a few times, then noted the same way. The
webhook and the inbox never wait for any of it: a message is answered whether or not its file is kept.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import timedelta
from typing import Any

from bot.clock import Clock, utc_now
from bot.db.keystore import ensure_keys
from bot.db.models import Direction, Message
from bot.loops import Loop
from bot.media import types
from bot.media.store import REFUSED_PREFIX, MediaStore, media_owner
from bot.whatsapp.client import TooLarge, WhatsAppClient
from bot.whatsapp.errors import GraphError

log = logging.getLogger(__name__)

MEDIA_KINDS = ("image", "audio", "video", "document", "sticker")
BATCH = 20
TRIES = 3
LOOK_BACK = timedelta(days=2)
"""Rows older than this are not fetched any more (Meta's media URLs are for recent messages)."""


class MediaFetcher:
    def __init__(
        self,
        client: WhatsAppClient,
        store: MediaStore,
        max_bytes: int,
        *,
        clock: Clock = utc_now,
        interval: float = 2.0,
    ) -> None:
        self._client = client
        self._store = store
        self._max_bytes = max_bytes
        self._clock = clock
        self._failures: dict[int, int] = {}
        self._loop = Loop("media-fetcher", self.step, interval, eager=True)

    def start(self) -> None:
        self._loop.start()

    def wake(self) -> None:
        self._loop.wake()

    async def stop(self) -> None:
        await self._loop.stop()

    async def step(self) -> int:
        """Fetch one batch; returns how many rows it settled (kept or refused)."""
        rows = (
            await Message.filter(
                message_direction=Direction.INBOUND,
                message_type__in=MEDIA_KINDS,
                file_url=None,
                created_at__gte=self._clock() - LOOK_BACK,
            )
            .exclude(id__in=[row_id for row_id, tries in self._failures.items() if tries >= TRIES])
            .order_by("id")
            .limit(BATCH)
        )
        settled = 0
        for row in rows:
            settled += await self._fetch(row)
        return settled

    async def _fetch(self, row: Message) -> int:
        media = _media_of(row)
        try:
            if media is None:
                raise types.Refused("the message names no media id")
            reference = await self._download(row, media)
        except types.Refused as refused:
            await self._settle(row, REFUSED_PREFIX + str(refused))
            return 1
        except (GraphError, TooLarge) as exc:
            tries = self._failures.get(row.id, 0) + 1
            self._failures[row.id] = tries
            if isinstance(exc, TooLarge) or tries >= TRIES:
                reason = "too large" if isinstance(exc, TooLarge) else f"the download failed ({exc.code})"
                await self._settle(row, REFUSED_PREFIX + reason)
                return 1
            log.warning("media of message %s not fetched (try %d): %s", row.id, tries, exc)
            return 0
        if not await self._settle(row, reference):
            await self._store.delete(reference)  # another process kept it meanwhile
        return 1

    async def _download(self, row: Message, media: dict[str, Any]) -> str:
        info = await self._client.get_media_url(str(media["id"]))
        mime = types.base_type(info.get("mime_type") or media.get("mime_type"))
        limit = types.limit_for(mime, self._max_bytes)
        announced = _int(info.get("file_size"))
        if announced is not None and announced > limit:
            raise types.Refused(f"{mime} files are kept up to {limit // types.MB} MB")
        data = await self._client.download_media(str(info["url"]), limit)
        types.check(mime, data, self._max_bytes)
        expected = info.get("sha256") or media.get("sha256")
        if expected and not _digest_matches(data, str(expected)):
            raise types.Refused("the file does not match its sha256")
        await ensure_keys([row.customer_id])
        return await self._store.put(data, media_owner(row.customer_id, row.address))

    async def _settle(self, row: Message, file_url: str) -> bool:
        self._failures.pop(row.id, None)
        return await Message.filter(id=row.id, file_url=None).update(file_url=file_url) > 0


def _media_of(row: Message) -> dict[str, Any] | None:
    raw = (row.payload or {}).get("message") or {}
    media = raw.get(row.message_type) if isinstance(raw, dict) else None
    return media if isinstance(media, dict) and media.get("id") else None


def _digest_matches(data: bytes, expected: str) -> bool:
    """Meta gives the SHA-256 in hex or in base64; a well-formed one must match (anything else is not a
    digest this code can check, and refuses nothing)."""
    digest, given = hashlib.sha256(data).digest(), expected.strip()
    if len(given) == 64 and all(c in "0123456789abcdefABCDEF" for c in given):
        return given.lower() == digest.hex()
    if len(given) == 44 and given.endswith("="):
        return given == base64.b64encode(digest).decode()
    return True


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
