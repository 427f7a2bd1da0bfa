"""Which media the bot keeps, and how big: a declared type must be one of these and the bytes must look
like it (a file's first bytes, where its format has a signature), so nothing else reaches the disk."""

from __future__ import annotations

from collections.abc import Callable

MB = 1024 * 1024

_OFFICE_ZIP = b"PK\x03\x04"
_OFFICE_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _starts(*signatures: bytes) -> Callable[[bytes], bool]:
    return lambda data: any(data.startswith(signature) for signature in signatures)


def _webp(data: bytes) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def _mp4(data: bytes) -> bool:
    return data[4:8] == b"ftyp"


def _mpeg_audio(data: bytes) -> bool:
    return data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


def _aac(data: bytes) -> bool:
    return len(data) > 1 and data[0] == 0xFF and data[1] & 0xF0 == 0xF0


def _anything(data: bytes) -> bool:
    return True


def _text(data: bytes) -> bool:
    return b"\x00" not in data[:4096]


ALLOWED: dict[str, tuple[int, Callable[[bytes], bool]]] = {
    "image/jpeg": (5 * MB, _starts(b"\xff\xd8\xff")),
    "image/png": (5 * MB, _starts(b"\x89PNG\r\n\x1a\n")),
    "image/webp": (5 * MB, _webp),  # stickers too
    "audio/ogg": (16 * MB, _starts(b"OggS")),  # voice notes
    "audio/mpeg": (16 * MB, _mpeg_audio),
    "audio/aac": (16 * MB, _aac),
    "audio/mp4": (16 * MB, _mp4),
    "audio/amr": (16 * MB, _starts(b"#!AMR")),
    "video/mp4": (16 * MB, _mp4),
    "video/3gpp": (16 * MB, _mp4),
    "application/pdf": (100 * MB, _starts(b"%PDF-")),
    "text/plain": (100 * MB, _text),
    "application/msword": (100 * MB, _starts(_OFFICE_OLE)),
    "application/vnd.ms-excel": (100 * MB, _starts(_OFFICE_OLE)),
    "application/vnd.ms-powerpoint": (100 * MB, _starts(_OFFICE_OLE)),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (
        100 * MB,
        _starts(_OFFICE_ZIP),
    ),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": (100 * MB, _starts(_OFFICE_ZIP)),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": (
        100 * MB,
        _starts(_OFFICE_ZIP),
    ),
}
INLINE = frozenset({"image/jpeg", "image/png", "image/webp"})
"""Shown in the panel as images; everything else is a download."""


class Refused(Exception):
    """This file is not kept; the message says why (type or size), never its content."""


def base_type(mime_type: str | None) -> str:
    """'audio/ogg; codecs=opus' -> 'audio/ogg'."""
    return (mime_type or "").split(";")[0].strip().lower()


def limit_for(mime_type: str, max_bytes: int) -> int:
    """The most bytes kept of this type (Meta's own limit, within `media.max_mb`); Refused if not kept."""
    allowed = ALLOWED.get(mime_type)
    if allowed is None:
        raise Refused(f"files of type '{mime_type or 'unknown'}' are not kept")
    return min(allowed[0], max_bytes)


def check(mime_type: str, data: bytes, max_bytes: int) -> None:
    """Refused unless `data` is within the type's size and looks like that type."""
    limit = limit_for(mime_type, max_bytes)
    if len(data) > limit:
        raise Refused(f"{mime_type} files are kept up to {limit // MB} MB; this one has {len(data)} bytes")
    if not data:
        raise Refused("the file is empty")
    if not ALLOWED[mime_type][1](data):
        raise Refused(f"the file does not look like {mime_type}")
