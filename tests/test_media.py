"""Media customers send: fetched with limits on size and type, kept encrypted under random names (no
name from outside reaches a path), and served to the panel only with a technician's token."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.db.models import Direction, Message, TechnicianRole
from bot.handoff.tokens import create_technician
from bot.media import types
from bot.media.store import MediaStore
from tests.helpers import BotFactory, eventually, payload, post_webhook, text_notification

PHONE = "15550556677"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"pixels of a cracked screen" * 50
PDF = b"%PDF-1.4\n" + b"the invoice of Zebulon" * 40
Client = TestClient[web.Request, web.Application]


async def offer(graph: TestServer, media_id: str, data: bytes, mime: str, size: str | None = None) -> None:
    """The fake Graph API holds this file under this media id, as Meta would."""
    headers = {"Content-Type": mime, **({"X-Announce-Size": size} if size else {})}
    url = graph.make_url(f"/received/{media_id}")
    async with aiohttp.ClientSession() as session, session.put(url, data=data, headers=headers) as response:
        assert response.status == 200


def media_notification(kind: str, wamid: str, media_id: str, **fields: Any) -> dict[str, Any]:
    body = copy.deepcopy(payload(f"inbound_{kind}.json"))
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = PHONE
    message = value["messages"][0]
    message.update({"from": PHONE, "id": wamid, "timestamp": str(int(time.time()))})
    message[kind].update({"id": media_id, **fields})
    message[kind].pop("url", None)
    return body


async def kept(wamid: str) -> Message:
    async def settled() -> bool:
        row = await Message.get_or_none(whatsapp_message_id=wamid)
        return row is not None and row.file_url is not None

    await eventually(settled, within=15)
    return await Message.get(whatsapp_message_id=wamid)


def escaped(tmp_path: Path) -> bool:
    return Path("/tmp/evil").exists() or bool(list(tmp_path.rglob("*evil*")))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_an_image_is_kept_encrypted_under_a_random_name_and_served_with_a_token(
    bot_client: BotFactory, fake_graph: TestServer, tmp_path: Path
) -> None:
    client = await bot_client()
    await offer(fake_graph, "900000000000001", PNG, "image/png")
    note = media_notification("image", "wamid.MEDIA.1", "900000000000001", mime_type="image/png")
    assert (await post_webhook(client, note)).status == 200
    row = await kept("wamid.MEDIA.1")
    assert row.file_url is not None and row.file_url.startswith("media:")
    [stored] = list((tmp_path / "data" / "media").iterdir())
    assert len(stored.name) == 32 and all(c in "0123456789abcdef" for c in stored.name)
    assert stored.name == row.file_url.removeprefix("media:")
    on_disk = stored.read_bytes()
    assert on_disk.startswith(b"enc1:") and b"PNG" not in on_disk and b"cracked" not in on_disk
    assert oct(stored.stat().st_mode & 0o777) == "0o600"

    url = f"/api/tech/media/{row.id}"
    assert (await client.get(url)).status == 401
    _, admin_token = await create_technician("Boss", TechnicianRole.ADMIN)
    _, other_token = await create_technician("Ana")
    _, owner_token = await create_technician("Ben")
    assert (await client.get(url, headers=bearer(other_token))).status == 403  # the bot has this chat
    served = await client.get(url, headers=bearer(admin_token))
    assert served.status == 200 and await served.read() == PNG
    assert served.content_type == "image/png"
    assert served.headers["Cache-Control"] == "no-store"
    assert served.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert (await client.post(f"/api/tech/chats/{PHONE}/claim", headers=bearer(owner_token))).status == 200
    assert (await client.get(url, headers=bearer(other_token))).status == 403  # Ben's chat
    assert (await client.get(url, headers=bearer(owner_token))).status == 200
    history = await (
        await client.get(f"/api/tech/chats/{PHONE}/messages", headers=bearer(owner_token))
    ).json()
    [image] = [item for item in history["messages"] if item.get("type") == "image"]
    assert image["file_url"] == url
    assert (await client.get("/api/tech/media/99999", headers=bearer(admin_token))).status == 404


async def test_an_outside_file_name_never_reaches_a_path(
    bot_client: BotFactory, fake_graph: TestServer, tmp_path: Path
) -> None:
    client = await bot_client()
    _, admin_token = await create_technician("Boss", TechnicianRole.ADMIN)
    await offer(fake_graph, "900000000000002", PDF, "application/pdf")
    evil = "../../../../tmp/evil\r\nX-Injected: 1.pdf"
    note = media_notification("document", "wamid.MEDIA.2", "900000000000002", filename=evil)
    assert (await post_webhook(client, note)).status == 200
    row = await kept("wamid.MEDIA.2")
    assert row.file_url is not None and row.file_url.startswith("media:")
    media = tmp_path / "data" / "media"
    assert [path.name for path in media.iterdir()] == [row.file_url.removeprefix("media:")]
    assert not escaped(tmp_path)
    served = await client.get(f"/api/tech/media/{row.id}", headers=bearer(admin_token))
    assert served.status == 200 and await served.read() == PDF
    assert "X-Injected" not in served.headers
    disposition = served.headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename*=UTF-8''") and "/" not in disposition.split("''")[1]


@pytest.mark.parametrize(
    ("mime", "data", "size", "reason"),
    [
        ("image/tiff", b"II*\x00" + b"x" * 100, None, "files of type 'image/tiff' are not kept"),
        ("image/jpeg", PDF, None, "the file does not look like image/jpeg"),
        ("image/png", PNG, str(50 * 1024 * 1024), "image/png files are kept up to 5 MB"),
        ("application/pdf", b"", None, "the file is empty"),
    ],
)
async def test_a_file_of_the_wrong_type_or_size_is_refused_and_not_kept(
    bot_client: BotFactory,
    fake_graph: TestServer,
    tmp_path: Path,
    mime: str,
    data: bytes,
    size: str | None,
    reason: str,
) -> None:
    client = await bot_client()
    await offer(fake_graph, "900000000000003", data, mime, size)
    note = media_notification("document", "wamid.MEDIA.3", "900000000000003", mime_type=mime)
    assert (await post_webhook(client, note)).status == 200
    row = await kept("wamid.MEDIA.3")
    assert row.file_url == f"refused: {reason}"
    assert not (tmp_path / "data" / "media").exists() or not list((tmp_path / "data" / "media").iterdir())
    # the message itself is answered as usual
    assert (await post_webhook(client, text_notification(PHONE, "wamid.MEDIA.3b", "hi"))).status == 200

    async def answered() -> bool:
        return await Message.filter(address=PHONE, message_direction=Direction.OUTBOUND).exists()

    await eventually(answered)


def test_the_type_rules() -> None:
    types.check("image/png", PNG, 16 * types.MB)
    with pytest.raises(types.Refused, match="kept up to 1 MB"):
        types.check("application/pdf", PDF + b"x" * types.MB, 1 * types.MB)
    assert types.base_type("audio/ogg; codecs=opus") == "audio/ogg"
    types.check("audio/ogg", b"OggS" + b"\x00" * 10, types.MB)


async def test_the_store_refuses_any_name_it_did_not_make(tmp_path: Path) -> None:
    store = MediaStore(tmp_path)
    for reference in ("media:../../etc/passwd", "media:abc", "/etc/passwd", "media:" + "g" * 32):
        with pytest.raises(ValueError):
            await store.get(reference, None)
