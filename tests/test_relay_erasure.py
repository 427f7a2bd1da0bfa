"""The relay's rows on a technician's number (handoff.relay_to_whatsapp) are erased and exported with
the customer they are about (Message.about_customer_id), on SQLite and PostgreSQL, through the real
server: the copies of the customer's messages, the technician's replies to them, the notices naming them;
another customer's relayed rows stay."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestServer
from tortoise import connections

from bot.db.config import sqlite_file
from bot.db.models import Customer, Message
from bot.handoff.tokens import create_technician
from bot.media.store import MediaStore
from bot.privacy.export import export_customer
from tests.helpers import ADMIN_TOKEN, BotFactory, bearer
from tests.test_erasure import traces
from tests.test_handoff_relay import RELAY, say, to

ZEB = "15550981001"
PHIL = "15550981002"
ANA = "15550982001"


async def test_a_customer_relayed_to_a_technicians_whatsapp_is_erased_with_the_relay_rows(
    bot_client: BotFactory, fake_graph: TestServer, tmp_path: Path, database_url: str
) -> None:
    zeb_name, zeb_text, zeb_reply = (
        "Zebulon Quartermaine",
        "passcode 4812 is under the case",
        "Thanks Zebulon",
    )
    phil_name, phil_text, phil_reply = "Philomena Brightwater", "is my tablet ready?", "Tomorrow, Philomena"
    client = await bot_client(RELAY)
    await create_technician("Ana", phone=ANA)
    await say(client, "hi", "wamid.z.1", ZEB, zeb_name)
    await say(client, "I want a human please", "wamid.z.2", ZEB, zeb_name)  # announced to Ana
    await say(client, "claim", "wamid.a.1", ANA, "Ana")  # "You have Zebulon ..."
    await say(client, zeb_text, "wamid.z.3", ZEB, zeb_name)  # relayed to Ana
    await say(client, zeb_reply, "wamid.a.2", ANA, "Ana")  # her reply to him
    await say(client, "hi", "wamid.p.1", PHIL, phil_name)
    await say(client, "I want a human please", "wamid.p.2", PHIL, phil_name)
    await say(client, "claim", "wamid.a.3", ANA, "Ana")  # her replies go to Philomena now
    await say(client, phil_text, "wamid.p.3", PHIL, phil_name)
    await say(client, phil_reply, "wamid.a.4", ANA, "Ana")
    zeb, phil = await Customer.get(wa_id=ZEB), await Customer.get(wa_id=PHIL)

    to_ana = [row.message_content or "" for row in await to(ANA) if row.about_customer_id == zeb.id]
    assert f"[{zeb_name} · +{ZEB}] {zeb_text}" in to_ana
    assert any(text.startswith(f"You have {zeb_name}") for text in to_ana)
    [reply] = await Message.filter(whatsapp_message_id="wamid.a.2")
    assert (reply.message_content, reply.about_customer_id) == (zeb_reply, zeb.id)
    assert (await Message.get(whatsapp_message_id="wamid.a.4")).about_customer_id == phil.id
    document = await export_customer(zeb, MediaStore(tmp_path / "data" / "media"))
    exported = [row["message_content"] for row in document["relayed_to_technicians"]]
    assert f"[{zeb_name} · +{ZEB}] {zeb_text}" in exported and zeb_reply in exported
    assert not [text for text in exported if phil_name in str(text) or phil_text in str(text)]
    phil_rows = await Message.filter(about_customer_id=phil.id).count()

    response = await client.delete(f"/api/customers/{ZEB}", headers=bearer(ADMIN_TOKEN))
    assert response.status == 200, await response.text()
    assert (await response.json())["relayed_to_technicians"] == len(exported)

    assert not await Message.filter(about_customer_id=zeb.id).exists()
    left = [row.message_content or "" for row in await Message.all()]
    needles = [ZEB, zeb_name, zeb_text, zeb_reply, "Zebulon"]
    assert [text for text in left if any(needle in text for needle in needles)] == []
    assert await Message.filter(about_customer_id=phil.id).count() == phil_rows  # untouched
    assert f"[{phil_name} · +{PHIL}] {phil_text}" in left and phil_reply in left

    database = sqlite_file(database_url)
    if database is not None:  # the raw bytes: SQLite only
        await connections.get("default").execute_query("SELECT 1")
        files = [path for path in database.parent.iterdir() if path.name.startswith(database.name)]
        assert traces(files, needles) == {}
