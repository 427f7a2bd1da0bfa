"""Media files on disk: encrypted, under random names, in one folder (`media.directory`).

A name is 32 random hex digits and nothing else: no file name, type or number from outside ever becomes
part of a path, so nothing a customer sends can point a write elsewhere. The file is the media's bytes
sealed with the owner's key (bot/crypto.py's encrypt_bytes, the name as associated data), so a file
copied or renamed does not open, and erasing the customer's data key shreds their media with their
messages. The message row holds `media:<name>` in file_url.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from pathlib import Path

from bot import crypto

REF_PREFIX = "media:"
REFUSED_PREFIX = "refused: "
"""file_url of an inbound file not kept, then why (bot/media/fetch.py)."""
_NAME = re.compile(r"^[0-9a-f]{32}$")


def media_owner(customer_id: int | None, address: str) -> str | None:
    """Whose key seals a message's file: its customer's data key (by id: the same whatever number or
    BSUID they write from; destroying it shreds the file too), or the master key for a row written
    without one (an address is no owner: a phone's digits could be another customer's id)."""
    return str(customer_id) if customer_id is not None else None


class MediaStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ValueError("not a media name")
        return self.directory / name

    async def put(self, data: bytes, owner: str | None) -> str:
        """Store `data` encrypted; returns the file_url reference (`media:<name>`)."""
        name = secrets.token_hex(16)
        sealed = crypto.current().encrypt_bytes(data, f"media:{name}", owner)
        await asyncio.to_thread(self._write, self._path(name), sealed)
        return REF_PREFIX + name

    @staticmethod
    def _write(path: Path, sealed: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_suffix(".part")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(sealed)
            file.flush()
            os.fsync(file.fileno())
        temporary.rename(path)

    async def get(self, reference: str, owner: str | None) -> bytes:
        """The decrypted bytes of a stored reference; FileNotFoundError, or crypto.CryptoError."""
        name = name_of(reference)
        sealed = await asyncio.to_thread(self._path(name).read_bytes)
        return crypto.current().decrypt_bytes(sealed, f"media:{name}", owner)

    async def delete(self, reference: str) -> bool:
        """Remove a stored file (erasure, retention); False when it was not there."""
        path = self._path(name_of(reference))
        try:
            await asyncio.to_thread(path.unlink)
        except FileNotFoundError:
            return False
        return True


def is_stored(file_url: str | None) -> bool:
    return bool(file_url) and str(file_url).startswith(REF_PREFIX)


def name_of(reference: str) -> str:
    if not reference.startswith(REF_PREFIX):
        raise ValueError("not a stored media reference")
    return reference.removeprefix(REF_PREFIX)
