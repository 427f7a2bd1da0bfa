"""Encryption at rest (bot/crypto.py, bot/db/encrypted.py, bot/master_keys.py): values round-trip, a
changed or moved ciphertext is refused, a missing key is named, and the keys come from where they must."""

from __future__ import annotations

import base64
import logging
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tortoise import Tortoise, connections

from bot import crypto
from bot.db import encrypted
from bot.db.keystore import sync_loader
from bot.master_keys import EncryptionKeysRequired, load_key_ring, sandbox_key_path
from tests.encrypted_models import SecretNote
from tests.helpers import ENCRYPTION_KEY, REPO, dialect_sql, execute, make_settings, write_settings

OTHER_KEY = crypto.generate_master_key()


def ring(*keys: str) -> crypto.KeyRing:
    return crypto.KeyRing(crypto.parse_master_keys(",".join(keys or (ENCRYPTION_KEY,))))


def owning(keys: crypto.KeyRing, *owners: str) -> crypto.KeyRing:
    """`keys` holding a data key for each of `owners` (a customer's values need theirs)."""
    for owner in owners:
        keys.add_data_key(owner, keys.new_data_key(owner)[0])
    return keys


def test_a_value_round_trips_and_every_encryption_differs() -> None:
    keys = owning(ring(), "42")
    for text in ["", "my screen is cracked", "pantalla rota ñ", "屏幕碎了 📱", "x" * 100_000]:
        first = keys.encrypt(text.encode(), "message.message_content", "42")
        assert first.startswith("enc1:") and (not text or text.encode() not in first.encode())
        assert keys.decrypt(first, "message.message_content", "42").decode() == text
        assert keys.encrypt(text.encode(), "message.message_content", "42") != first  # fresh nonce


def test_a_changed_ciphertext_is_detected() -> None:
    keys = owning(ring(), "7", "8")
    stored = keys.encrypt(b"call me at noon", "message.message_content", "7")
    header, body = stored.rsplit(":", 1)
    sealed = bytearray(base64.urlsafe_b64decode(body))
    for position in (0, 12, len(sealed) // 2, len(sealed) - 1):  # nonce, ciphertext, tag
        changed = bytearray(sealed)
        changed[position] ^= 1
        with pytest.raises(crypto.TamperedValue):
            keys.decrypt(
                f"{header}:{base64.urlsafe_b64encode(bytes(changed)).decode()}", "message.message_content"
            )
    with pytest.raises(crypto.TamperedValue):
        keys.decrypt(stored[:-8], "message.message_content")
    with pytest.raises(crypto.TamperedValue):
        keys.decrypt("enc1:garbage", "message.message_content")
    with pytest.raises(crypto.TamperedValue):  # the owner in the header is associated data too
        keys.decrypt(stored.replace(":7:", ":8:"), "message.message_content")


def test_a_ciphertext_moved_to_another_column_or_customer_is_refused() -> None:
    keys = owning(ring(), "7", "8")
    stored = keys.encrypt(b"Alex", "customer.profile_name", "7")
    with pytest.raises(crypto.TamperedValue, match=r"message\.message_content"):
        keys.decrypt(stored, "message.message_content", "7")
    with pytest.raises(crypto.TamperedValue, match="another row"):
        keys.decrypt(stored, "customer.profile_name", "8")


def test_a_missing_master_key_is_named() -> None:
    old = ring(OTHER_KEY)
    stored = old.encrypt(b"hello", "message.message_content")
    old_id = old.primary.id
    with pytest.raises(crypto.MissingKey, match=f"encryption key {old_id} is not in BOT_ENCRYPTION_KEYS"):
        ring().decrypt(stored, "message.message_content")
    # a new key in front: new values under it, the old ones still open
    rotated = ring(ENCRYPTION_KEY, OTHER_KEY)
    assert rotated.decrypt(stored, "message.message_content") == b"hello"
    assert rotated.key_of(rotated.encrypt(b"x", "t.c")).key == f"m.{rotated.primary.id}"


def test_data_keys_wrap_rewrap_and_shred() -> None:
    old = ring(OTHER_KEY)
    raw, wrapped = old.new_data_key("42")
    assert wrapped.master_key_id == old.primary.id and raw not in wrapped.blob
    old.add_data_key("42", raw)
    stored = old.encrypt(b"my address", "appointment.notes", "42")
    assert old.key_of(stored).key == "d"
    # rotation: the data key re-wrapped under the new first key; values untouched still open
    rotated = ring(ENCRYPTION_KEY, OTHER_KEY)
    rewrapped = rotated.rewrap(wrapped, "42")
    assert rewrapped.master_key_id == rotated.primary.id
    fresh = ring()  # the old master key gone: only the re-wrapped data key opens
    fresh.load_data_key("42", rewrapped)
    assert fresh.decrypt(stored, "appointment.notes", "42") == b"my address"
    with pytest.raises(crypto.MissingKey, match=f"encryption key {old.primary.id}"):
        ring().load_data_key("42", wrapped)
    with pytest.raises(crypto.TamperedValue, match="data key of 43"):  # a wrapped key moved to another owner
        fresh.load_data_key("43", rewrapped)
    # shredding: without the data key nothing opens, and the error names it
    shredded = ring()
    shredded.loader = lambda owner: None
    with pytest.raises(crypto.MissingKey, match="the data key of 42 is gone"):
        shredded.decrypt(stored, "appointment.notes", "42")
    # a key this process has not seen is asked of the loader (another process stored it)
    loaded = ring()
    loaded.loader = lambda owner: rewrapped if owner == "42" else None
    assert loaded.decrypt(stored, "appointment.notes", "42") == b"my address"


def test_master_keys_are_checked_and_named_by_position() -> None:
    with pytest.raises(crypto.KeyConfigError, match="key 2 is not base64"):
        crypto.parse_master_keys(f"{ENCRYPTION_KEY},not base64!")
    with pytest.raises(crypto.KeyConfigError, match="key 1: a key must be 32 bytes, this one is 16"):
        crypto.parse_master_keys(base64.b64encode(os.urandom(16)).decode())
    with pytest.raises(crypto.KeyConfigError, match="key 2 of 2 is empty"):
        crypto.parse_master_keys(f"{ENCRYPTION_KEY},")
    with pytest.raises(crypto.KeyConfigError, match="listed twice"):
        crypto.parse_master_keys(f"{ENCRYPTION_KEY},{ENCRYPTION_KEY}")
    assert [key.id for key in crypto.parse_master_keys(f" {OTHER_KEY} , {ENCRYPTION_KEY}")] == [
        crypto.key_id(base64.b64decode(OTHER_KEY)),
        crypto.key_id(base64.b64decode(ENCRYPTION_KEY)),
    ]


def test_sandbox_without_a_key_makes_one_under_data_mode_0600(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, f"sqlite://{tmp_path / 'bot.db'}", BOT_ENCRYPTION_KEYS="")
    assert settings.sandbox and settings.secrets.encryption_keys is None
    with caplog.at_level(logging.WARNING):
        first = load_key_ring(settings)
    path = sandbox_key_path(settings)
    assert path == tmp_path / "data" / "encryption.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"a new encryption key was created in {path}" in caplog.text
    assert ENCRYPTION_KEY not in caplog.text and path.read_text().strip() not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert load_key_ring(settings).primary.id == first.primary.id  # the same key next time
    assert "created" not in caplog.text
    crypto.install(None)


def test_with_credentials_the_server_needs_bot_encryption_keys(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "sqlite://x.db", "http://127.0.0.1:9/v21.0", BOT_ENCRYPTION_KEYS="")
    with pytest.raises(EncryptionKeysRequired, match="BOT_ENCRYPTION_KEYS is not set"):
        load_key_ring(settings)
    assert not sandbox_key_path(settings).exists()
    env = {
        **os.environ,
        "BOT_SETTINGS": str(write_settings(tmp_path)),
        "DATABASE_URL": f"sqlite://{tmp_path / 'bot.db'}",
        "WHATSAPP_ACCESS_TOKEN": "token",
        "WHATSAPP_APP_SECRET": "secret",
        "BOT_ENCRYPTION_KEYS": "",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot", "serve"], env=env, capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 2
    assert "BOT_ENCRYPTION_KEYS is not set" in done.stderr and "The server did not start." in done.stderr


def test_keys_generate_prints_a_usable_key() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "keys", "generate"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0
    key = done.stdout.strip()
    [master] = crypto.parse_master_keys(key)
    assert f"key id {master.id}" in done.stderr


@pytest.fixture
async def notes_db(database_url: str) -> AsyncIterator[crypto.KeyRing]:
    encrypted._reported.clear()
    keys = ring()
    keys.loader = sync_loader(database_url)
    crypto.install(keys)
    await Tortoise.init(
        config={
            "connections": {"default": database_url},
            "apps": {"models": {"models": ["tests.encrypted_models"], "default_connection": "default"}},
        },
        _enable_global_fallback=True,
    )
    await Tortoise.generate_schemas(safe=True)
    yield keys
    await Tortoise.close_connections()
    crypto.install(None)


async def raw_row(note_id: int) -> dict[str, object]:
    sql = dialect_sql("SELECT body, title, extra FROM test_secret_note WHERE id = $1")
    _, rows = await connections.get("default").execute_query(sql, [note_id])
    return dict(rows[0])


async def test_the_field_stores_only_ciphertext_and_reads_plain(notes_db: crypto.KeyRing) -> None:
    raw, _ = notes_db.new_data_key("7")
    notes_db.add_data_key("7", raw)
    note = await SecretNote.create(
        owner_id=7, body="cracked screen", title=None, extra={"device": "iPhone 13"}
    )
    stored = await raw_row(note.id)
    assert stored["title"] is None
    assert isinstance(stored["body"], str) and stored["body"].startswith("enc1:d:7:")
    assert "cracked" not in stored["body"] and "iPhone" not in str(stored["extra"])
    again = await SecretNote.get(id=note.id)
    assert (again.body, again.title, again.extra) == ("cracked screen", None, {"device": "iPhone 13"})
    again.title = "Alex"
    await again.save()
    assert str((await raw_row(note.id))["title"]).startswith("enc1:d:7:")
    assert (await SecretNote.get(id=note.id)).title == "Alex"
    # an update without an instance knows no owner: refused, never sealed under the master key
    with pytest.raises(crypto.CryptoError, match="written without its row"):
        await SecretNote.filter(id=note.id).update(body="updated")
    again.body = "updated"
    await again.save(update_fields=["body"])
    assert str((await raw_row(note.id))["body"]).startswith("enc1:d:7:")
    assert await SecretNote.filter(owner_id=7).values_list("body", flat=True) == ["updated"]
    with pytest.raises(Exception, match="longer than 100"):
        await SecretNote.create(owner_id=7, body="x" * 101)


async def test_a_ciphertext_moved_between_rows_or_columns_reads_as_unreadable(
    notes_db: crypto.KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    alex = await SecretNote.create(owner_id=7, body="Alex's secret", title="Alex")
    sam = await SecretNote.create(owner_id=8, body="Sam's note", title="Sam")
    alex_body = (await raw_row(alex.id))["body"]
    await execute("UPDATE test_secret_note SET body = $1 WHERE id = $2", alex_body, sam.id)
    await execute("UPDATE test_secret_note SET title = $1 WHERE id = $2", alex_body, alex.id)
    with caplog.at_level(logging.ERROR):
        moved = await SecretNote.get(id=sam.id)
        swapped = await SecretNote.get(id=alex.id)
    assert moved.body == "[unreadable: test_secret_note.body: the value belongs to another row]"
    assert swapped.title is not None and swapped.title.startswith("[unreadable: test_secret_note.title:")
    assert swapped.body == "Alex's secret"  # the rest of the row reads
    assert "Alex's secret" not in caplog.text and "cannot decrypt a stored value" in caplog.text


async def test_a_value_whose_key_is_missing_is_named_and_kept(
    notes_db: crypto.KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    old = ring(OTHER_KEY)
    crypto.install(old)
    note = await SecretNote.create(owner_id=9, body="under the old key", extra={"a": 1})
    before = await raw_row(note.id)
    crypto.install(notes_db)  # the old key left BOT_ENCRYPTION_KEYS
    with caplog.at_level(logging.ERROR):
        rows = await SecretNote.filter(owner_id=9)  # the batch is read; nothing crashes
    [unreadable] = rows
    assert (
        unreadable.body == f"[unreadable: encryption key {old.primary.id} is not in BOT_ENCRYPTION_KEYS "
        "(add it back to read this)]"
    )
    assert unreadable.extra == {}
    assert f"encryption key {old.primary.id}" in caplog.text
    await unreadable.save()  # saving it back keeps the ciphertext: the data returns with the key
    assert await raw_row(note.id) == before
    both = ring(ENCRYPTION_KEY, OTHER_KEY)
    both.loader = notes_db.loader
    crypto.install(both)
    restored = await SecretNote.get(id=note.id)
    assert (restored.body, restored.extra) == ("under the old key", {"a": 1})


async def test_plaintext_from_before_encryption_reads_as_it_is(notes_db: crypto.KeyRing) -> None:
    note = await SecretNote.create(owner_id=3)
    await execute(
        "UPDATE test_secret_note SET body = $1, extra = '{\"x\": 2}' WHERE id = $2", "old plain text", note.id
    )
    again = await SecretNote.get(id=note.id)
    assert (again.body, again.extra) == ("old plain text", {"x": 2})


def test_a_file_round_trips_and_does_not_open_under_another_name() -> None:
    keys = ring()
    raw, _ = keys.new_data_key("42")
    keys.add_data_key("42", raw)
    sealed = keys.encrypt_bytes(b"\x89PNG the photo", "media:" + "a" * 32, "42")
    assert sealed.startswith(b"enc1:d:42:\n") and b"photo" not in sealed
    assert keys.decrypt_bytes(sealed, "media:" + "a" * 32, "42") == b"\x89PNG the photo"
    with pytest.raises(crypto.TamperedValue):
        keys.decrypt_bytes(sealed, "media:" + "b" * 32, "42")  # renamed or copied
    with pytest.raises(crypto.TamperedValue):
        keys.decrypt_bytes(sealed[:-1] + bytes([sealed[-1] ^ 1]), "media:" + "a" * 32, "42")
    with pytest.raises(crypto.TamperedValue):
        keys.decrypt_bytes(b"plain file", "media:" + "a" * 32)
