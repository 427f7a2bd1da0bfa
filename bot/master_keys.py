"""Which master keys this process runs with: BOT_ENCRYPTION_KEYS, or in sandbox mode a key file.

With WhatsApp credentials set, real customers' data is at stake: the keys must come from the
environment (the secrets file beside the other credentials), and nothing starts without them. In sandbox
mode without them a key is made once under data/ (mode 0600) and announced, so `make run` works on a
fresh checkout and what it stores is still encrypted.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bot import crypto
from bot.settings import Settings

log = logging.getLogger(__name__)

SANDBOX_KEY_FILE = Path("data") / "encryption.key"


class EncryptionKeysRequired(crypto.KeyConfigError):
    """Credentials are set but BOT_ENCRYPTION_KEYS is not."""


def sandbox_key_path(settings: Settings) -> Path:
    return (settings.base_dir / SANDBOX_KEY_FILE).resolve()


def master_keys(settings: Settings) -> list[crypto.MasterKey]:
    """The master keys, first (the one that encrypts) first; raises KeyConfigError saying what to do."""
    configured = settings.secrets.encryption_keys
    if configured is not None:
        return crypto.parse_master_keys(configured.get_secret_value())
    if not settings.sandbox:
        raise EncryptionKeysRequired(
            f"{crypto.ENV_VARIABLE} is not set: with WhatsApp credentials (WHATSAPP_ACCESS_TOKEN) the bot "
            f"stores real customers' data and does not start without its encryption keys. Make one with "
            f"`bot keys generate` and put {crypto.ENV_VARIABLE}=<key> beside the other secrets."
        )
    return [_sandbox_key(sandbox_key_path(settings))]


def _sandbox_key(path: Path) -> crypto.MasterKey:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it meanwhile: read theirs
        else:
            with os.fdopen(descriptor, "w") as file:
                file.write(crypto.generate_master_key() + "\n")
            log.warning(
                "sandbox: %s is not set, so a new encryption key was created in %s (mode 0600); what the "
                "bot stores cannot be read without it. Set %s before going live.",
                crypto.ENV_VARIABLE,
                path,
                crypto.ENV_VARIABLE,
            )
    keys = crypto.parse_master_keys(path.read_text().strip(), source=str(path))
    if path.stat().st_mode & 0o077:
        log.warning("sandbox: %s can be read by other users; chmod 600 it", path)
    return keys[0]


def check_master_keys(settings: Settings) -> None:
    """Raise KeyConfigError now if the configured keys cannot be used (or are required and missing);
    the sandbox's key file is left for `load_key_ring` to make, once the database is up."""
    if settings.secrets.encryption_keys is not None or not settings.sandbox:
        master_keys(settings)


def load_key_ring(settings: Settings, loader: crypto.DataKeyLoader | None = None) -> crypto.KeyRing:
    """The key ring for `settings`, installed as the process's (the encrypted fields use it); the data
    keys it has not seen are read from `settings.database_url` (bot/db/keystore.sync_loader)."""
    if loader is None:
        from bot.db.keystore import sync_loader

        loader = sync_loader(settings.database_url)
    ring = crypto.KeyRing(master_keys(settings), loader)
    crypto.install(ring)
    return ring
