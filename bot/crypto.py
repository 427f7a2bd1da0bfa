"""Encryption at rest: AES-256-GCM values, master keys from the environment, per-customer data keys.

A value is stored as text that says how to open it: ``enc1:<key>:<owner>:<nonce+ciphertext, base64>``.

- ``<key>`` is ``m.<id>`` (encrypted directly under master key `<id>`) or ``d`` (under the data key of
  `<owner>`). A master key's id is a fingerprint of the key itself (`key_id`), so a value names the key
  it needs and a missing one is named in the error, never guessed at.
- ``<owner>`` is whose data this is (a customer id), or empty when the writer did not know it.
- The associated data is the header plus the value's place (``table.column``), so a ciphertext copied
  into another column does not open, and one copied into another customer's row is refused when the
  reader knows the row's owner (bot/db/encrypted.py does). A changed byte anywhere fails the GCM tag.
- Every value gets a fresh random 96-bit nonce.

Envelope keys: each customer's data key (32 random bytes) is stored wrapped (AES-GCM) under the first
master key, with the owner as associated data. Destroying the wrapped key makes everything encrypted
under it unreadable everywhere at once (crypto-shredding); `rewrap` moves a data key to a new master key
without touching the values (`bot keys rotate`).

Master keys come from BOT_ENCRYPTION_KEYS: comma-separated base64 keys of 32 bytes, the first encrypts,
all decrypt. Nothing here knows the database: data keys missing from the cache are asked of a loader.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENV_VARIABLE = "BOT_ENCRYPTION_KEYS"
PREFIX = "enc1:"
KEY_BYTES = 32
NONCE_BYTES = 12
_OWNER = re.compile(r"^[A-Za-z0-9_.\-]{0,64}$")
_WRAP_CONTEXT = b"repairbot data key|"


class CryptoError(Exception):
    """A value or key cannot be used; the message says which and why (never the value itself)."""


class KeyConfigError(CryptoError):
    """BOT_ENCRYPTION_KEYS (or the sandbox key file) holds something that is not a usable key."""


class MissingKey(CryptoError):
    """The key a value names is not available: a master key not in BOT_ENCRYPTION_KEYS, or a data key
    that was destroyed (the customer was erased) or never stored."""

    def __init__(self, key_name: str, detail: str) -> None:
        super().__init__(f"{key_name} {detail}")
        self.key_name = key_name


class TamperedValue(CryptoError):
    """The value is not what was encrypted here: changed, truncated, or moved from another place."""


class NotConfigured(CryptoError):
    """No key ring is installed in this process."""


def key_id(key: bytes) -> str:
    """A master key's public name: 8 hex digits of a hash of the key (reveals nothing about it)."""
    return hashlib.sha256(b"repairbot key id|" + key).hexdigest()[:8]


def generate_master_key() -> str:
    """A new master key as BOT_ENCRYPTION_KEYS takes it: 32 random bytes in base64."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


@dataclass(frozen=True)
class MasterKey:
    id: str
    aead: AESGCM
    mac_key: bytes
    """A separate key derived from this one for signatures (panel sessions): one key, one use."""

    @classmethod
    def from_bytes(cls, key: bytes) -> MasterKey:
        if len(key) != KEY_BYTES:
            raise KeyConfigError(f"a key must be {KEY_BYTES} bytes, this one is {len(key)}")
        return cls(key_id(key), AESGCM(key), hmac.new(key, b"repairbot mac key", hashlib.sha256).digest())


def parse_master_keys(text: str, source: str = ENV_VARIABLE) -> list[MasterKey]:
    """The keys of a BOT_ENCRYPTION_KEYS value, first (the one that encrypts) first."""
    keys: list[MasterKey] = []
    parts = [part.strip() for part in text.split(",")]
    for position, part in enumerate(parts, start=1):
        if not part:
            raise KeyConfigError(f"{source}: key {position} of {len(parts)} is empty")
        try:
            raw = base64.b64decode(part, validate=True)
        except (binascii.Error, ValueError):
            raise KeyConfigError(
                f"{source}: key {position} is not base64 (make one with `bot keys generate`)"
            ) from None
        try:
            keys.append(MasterKey.from_bytes(raw))
        except KeyConfigError as exc:
            raise KeyConfigError(f"{source}: key {position}: {exc}") from None
    if len({key.id for key in keys}) != len(keys):
        raise KeyConfigError(f"{source}: a key is listed twice")
    return keys


@dataclass(frozen=True)
class WrappedKey:
    """A data key as stored: encrypted under master key `master_key_id`."""

    master_key_id: str
    blob: bytes
    """nonce + ciphertext + tag"""


DataKeyLoader = Callable[[str], WrappedKey | None]
"""Fetch the stored wrapped data key of an owner (None: there is none). Called synchronously, on a cache
miss only, so it must not need the event loop (bot/db/keystore.py)."""


@dataclass(frozen=True)
class Header:
    key: str
    """`m.<master key id>` or `d` (the owner's data key)."""
    owner: str

    @property
    def text(self) -> str:
        return f"{PREFIX}{self.key}:{self.owner}:"

    def key_name(self) -> str:
        if self.key == "d":
            return f"the data key of {self.owner}"
        return f"encryption key {self.key.removeprefix('m.')}"


def is_ciphertext(value: str) -> bool:
    return value.startswith(PREFIX)


def parse(value: str) -> tuple[Header, bytes]:
    """Split a stored value into its header and its sealed bytes; TamperedValue when it is malformed."""
    if not is_ciphertext(value):
        raise TamperedValue("not an encrypted value")
    try:
        key, owner, body = value[len(PREFIX) :].split(":", 2)
        sealed = base64.urlsafe_b64decode(body.encode("ascii"))
    except (ValueError, UnicodeEncodeError, binascii.Error):
        raise TamperedValue("not a well-formed encrypted value") from None
    if not (key == "d" or key.startswith("m.")) or not _OWNER.match(owner) or (key == "d" and not owner):
        raise TamperedValue("not a well-formed encrypted value")
    if len(sealed) < NONCE_BYTES + 16:
        raise TamperedValue("an encrypted value too short to be one")
    return Header(key, owner), sealed


def _seal(aead: AESGCM, plaintext: bytes, associated: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + aead.encrypt(nonce, plaintext, associated)


def _open(aead: AESGCM, sealed: bytes, associated: bytes) -> bytes:
    return aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)


class KeyRing:
    """The master keys and the data keys in use; encrypts and decrypts values.

    Data keys are cached unwrapped once known: `add_data_key` for one this process stored (after its
    commit), the loader for the rest. Only committed keys may enter the cache, or a value could be
    written under a key whose row was rolled back; bot/db/keystore.py keeps that rule.
    """

    def __init__(self, master_keys: Sequence[MasterKey], loader: DataKeyLoader | None = None) -> None:
        if not master_keys:
            raise KeyConfigError(f"{ENV_VARIABLE}: no key given")
        self.master_keys = list(master_keys)
        self._by_id = {key.id: key for key in self.master_keys}
        self.loader = loader
        self._data_keys: dict[str, AESGCM] = {}
        self._lock = threading.Lock()

    @property
    def primary(self) -> MasterKey:
        return self.master_keys[0]

    def master(self, master_key_id: str) -> MasterKey:
        try:
            return self._by_id[master_key_id]
        except KeyError:
            raise MissingKey(
                f"encryption key {master_key_id}", f"is not in {ENV_VARIABLE} (add it back to read this)"
            ) from None

    # -- data keys ---------------------------------------------------------------------------------

    def new_data_key(self, owner: str) -> tuple[bytes, WrappedKey]:
        """A fresh data key for `owner` and its wrapped form under the primary master key."""
        raw = os.urandom(KEY_BYTES)
        return raw, self.wrap(raw, owner)

    def wrap(self, raw: bytes, owner: str) -> WrappedKey:
        _check_owner(owner)
        return WrappedKey(self.primary.id, _seal(self.primary.aead, raw, _WRAP_CONTEXT + owner.encode()))

    def unwrap(self, wrapped: WrappedKey, owner: str) -> bytes:
        master = self.master(wrapped.master_key_id)
        try:
            raw = _open(master.aead, wrapped.blob, _WRAP_CONTEXT + owner.encode())
        except InvalidTag:
            raise TamperedValue(f"the stored data key of {owner} does not open (changed or moved)") from None
        if len(raw) != KEY_BYTES:
            raise TamperedValue(f"the stored data key of {owner} is not a key")
        return raw

    def rewrap(self, wrapped: WrappedKey, owner: str) -> WrappedKey:
        """The same data key wrapped under the primary master key (unchanged if it already is)."""
        if wrapped.master_key_id == self.primary.id:
            return wrapped
        return self.wrap(self.unwrap(wrapped, owner), owner)

    def add_data_key(self, owner: str, raw: bytes) -> None:
        """Cache a committed data key."""
        with self._lock:
            self._data_keys[owner] = AESGCM(raw)

    def load_data_key(self, owner: str, wrapped: WrappedKey) -> None:
        self.add_data_key(owner, self.unwrap(wrapped, owner))

    def forget_data_key(self, owner: str) -> None:
        with self._lock:
            self._data_keys.pop(owner, None)

    def has_data_key(self, owner: str) -> bool:
        return owner in self._data_keys

    def _data_key(self, owner: str) -> AESGCM:
        found = self._data_keys.get(owner)
        if found is not None:
            return found
        wrapped = self.loader(owner) if self.loader is not None else None
        if wrapped is None:
            raise MissingKey(
                f"the data key of {owner}", "is gone (the customer was erased) or was never stored"
            )
        self.load_data_key(owner, wrapped)
        return self._data_keys[owner]

    # -- values ------------------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, context: str, owner: str | None = None) -> str:
        """Seal `plaintext` for the place `context` (table.column): under the owner's data key, else
        (no owner: nobody's data, or a row written without its customer) under the primary master key.

        An owner's value is never sealed under the master key: destroying their data key must shred
        all of it. Their key is taken from the cache or the loader; MissingKey when neither has it
        (bot/db/keystore.ensure_keys creates the keys before a batch writes)."""
        header, aead = self._sealing_key(owner)
        sealed = _seal(aead, plaintext, _associated(header, context))
        return header.text + base64.urlsafe_b64encode(sealed).decode("ascii")

    def _sealing_key(self, owner: str | None) -> tuple[Header, AESGCM]:
        owner = owner or ""
        _check_owner(owner)
        if owner:
            try:
                return Header("d", owner), self._data_key(owner)
            except MissingKey:
                raise MissingKey(
                    f"the data key of {owner}",
                    "is not stored: nothing is written for them without it (bot/db/keystore.ensure_keys)",
                ) from None
        return Header(f"m.{self.primary.id}", owner), self.primary.aead

    def decrypt(self, value: str, context: str, row_owner: str | None = None) -> bytes:
        """Open a stored value; `row_owner`, when the reader knows it, must be the value's owner."""
        header, sealed = parse(value)
        if row_owner is not None and header.owner and header.owner != row_owner:
            raise TamperedValue(f"{context}: the value belongs to another row")
        if header.key == "d":
            aead = self._data_key(header.owner)
        else:
            aead = self.master(header.key.removeprefix("m.")).aead
        try:
            return _open(aead, sealed, _associated(header, context))
        except InvalidTag:
            raise TamperedValue(
                f"{context}: the value does not open with {header.key_name()} (changed, or moved from "
                "another column)"
            ) from None

    def key_of(self, value: str) -> Header:
        return parse(value)[0]

    # -- files: the same, binary (the header on its own first line) ---------------------------------

    def encrypt_bytes(self, plaintext: bytes, context: str, owner: str | None = None) -> bytes:
        header, aead = self._sealing_key(owner)
        return header.text.encode() + b"\n" + _seal(aead, plaintext, _associated(header, context))

    def decrypt_bytes(self, data: bytes, context: str, row_owner: str | None = None) -> bytes:
        first, newline, sealed = data.partition(b"\n")
        if not newline:
            raise TamperedValue(f"{context}: not an encrypted file")
        try:
            header_text = first.decode("ascii")
        except UnicodeDecodeError:
            raise TamperedValue(f"{context}: not an encrypted file") from None
        value = header_text + base64.urlsafe_b64encode(sealed).decode("ascii")
        return self.decrypt(value, context, row_owner)

    # -- signatures ---------------------------------------------------------------------------------

    def sign(self, message: bytes) -> bytes:
        """HMAC-SHA256 under the primary key's signing key."""
        return hmac.new(self.primary.mac_key, message, hashlib.sha256).digest()

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Signed by any of the master keys (one rotated out no longer verifies); constant time."""
        found = False
        for key in self.master_keys:
            expected = hmac.new(key.mac_key, message, hashlib.sha256).digest()
            found |= hmac.compare_digest(expected, signature)
        return found


def _associated(header: Header, context: str) -> bytes:
    return f"{header.text}{context}".encode()


def _check_owner(owner: str) -> None:
    if not _OWNER.match(owner):
        raise CryptoError(f"an owner is 1-64 letters, digits, '_', '.' or '-' (got {len(owner)} characters)")


# -- the process's key ring: the ORM's fields are defined at import, so they find it here -----------

_current: KeyRing | None = None


def install(ring: KeyRing | None) -> None:
    """Make `ring` the key ring the encrypted fields use (None: uninstall)."""
    global _current
    _current = ring


def current() -> KeyRing:
    if _current is None:
        raise NotConfigured(
            f"encryption keys are not loaded: the server and the commands load {ENV_VARIABLE} (or the "
            "sandbox key file) at start-up"
        )
    return _current
