"""The right of access (bot/privacy/export.py), on SQLite and PostgreSQL: everything held about one
customer as JSON, decrypted, nobody else's; no table that points at a customer is forgotten by the
export or the erasure; `GET /api/customers/{phone}/export` and `bot export PHONE`."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from pathlib import Path

from tortoise import Tortoise
from tortoise.fields.relational import ForeignKeyFieldInstance, OneToOneFieldInstance
from tortoise.models import Model

from bot.db import close_db, init_db
from bot.db.models import Customer
from bot.media.store import MediaStore
from bot.privacy import erasure, export
from bot.privacy.erasure import HANDLING
from bot.privacy.export import EXCLUDED, SECTIONS, export_customer
from tests.helpers import ADMIN_TOKEN, ENCRYPTION_KEY, BotFactory, bearer, install_test_keys, write_settings
from tests.privacy_helpers import MEDIA_BYTES, seed_customer
from tests.test_commands import run_bot

PHONE = "15550987123"
OTHER = "15550987999"


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def pointing_at_customers(models: list[type[Model]]) -> set[type[Model]]:
    """Every model whose rows can belong to a customer: a foreign key to Customer or to such a model, or
    a loose reference (`customer_id`, `conversation_id`, `message_id` ... as a plain integer column)."""
    by_name = {snake(model.__name__): model for model in models}
    found: set[type[Model]] = {Customer}
    while True:
        more = set()
        for model in models:
            if model in found:
                continue
            targets = set()
            for field in model._meta.fields_map.values():
                if isinstance(field, ForeignKeyFieldInstance | OneToOneFieldInstance):
                    targets.add(field.related_model)
            for column in model._meta.fields_db_projection:
                if column.endswith("customer_id"):
                    targets.add(Customer)
                elif column.endswith("_id") and column.removesuffix("_id") in by_name:
                    targets.add(by_name[column.removesuffix("_id")])
            if targets & found:
                more.add(model)
        if not more:
            return found
        found |= more


async def test_every_table_pointing_at_a_customer_is_exported_or_excluded_and_erased(keyed_db: None) -> None:
    models = list(Tortoise.apps["models"].values())
    theirs = pointing_at_customers(models)
    assert len(theirs) > 10  # the walk finds the tables it should (messages, orders, notes ...)
    forgotten = {model.__name__ for model in theirs if model not in SECTIONS and model not in EXCLUDED}
    assert forgotten == set(), "add each to bot/privacy/export.py's SECTIONS, or EXCLUDED with a reason"
    assert not set(SECTIONS) & set(EXCLUDED)
    assert all(reason.strip() for reason in EXCLUDED.values())
    unhandled = {model.__name__ for model in theirs if model not in HANDLING}
    assert unhandled == set(), "say what erasing a customer does to each in bot/privacy/erasure.py's HANDLING"
    assert set(SECTIONS) | set(EXCLUDED) | set(HANDLING) <= set(models)


def further_customer_columns(models: set[type[Model]]) -> set[tuple[type[Model], str]]:
    """Columns naming a customer besides a row's own `customer_id` (the relay's `about_customer_id`):
    rows that are someone else's but about the customer too."""
    return {
        (model, column)
        for model in models
        for column in model._meta.fields_db_projection
        if column.endswith("customer_id") and column != "customer_id"
    }


async def test_every_further_column_naming_a_customer_is_exported_and_erased(keyed_db: None) -> None:
    theirs = pointing_at_customers(list(Tortoise.apps["models"].values()))
    columns = further_customer_columns({model for model in theirs if model not in EXCLUDED})
    assert any(column == "about_customer_id" for _, column in columns)  # the walk sees the relay's
    assert columns == set(export.ABOUT), "add each to bot/privacy/export.py's ABOUT, with its section"
    assert columns == set(erasure.ABOUT), "say what erasing does to each in bot/privacy/erasure.py's ABOUT"
    assert all(reason.strip() for reason in erasure.ABOUT.values())
    assert not set(export.ABOUT.values()) & set(SECTIONS.values())


async def test_the_export_holds_everything_of_theirs_decrypted_and_nothing_of_anyone_else(
    keyed_db: None, tmp_path: Path
) -> None:
    media = MediaStore(tmp_path / "media")
    mine = await seed_customer(PHONE, "Zebulon Quartermaine", media)
    await seed_customer(OTHER, "Philomena Brightwater", media)
    document = await export_customer(mine.customer, media)
    text = json.dumps(document)  # JSON as it stands: times, amounts and enums already turned to text

    empty = [section for section in SECTIONS.values() if not document[section]]
    assert empty == []  # every table of theirs has its rows in the export
    assert "Philomena" not in text and OTHER not in text
    assert document["customer"]["wa_id"] == PHONE and document["customer"]["profile_name"] == mine.name
    assert {row["value"] for row in document["identities"]} == {PHONE, mine.bsuid}
    assert [row["id"] for row in document["messages"]] == mine.message_ids  # by BSUID only too
    assert mine.text in [row["message_content"] for row in document["messages"]]
    [photo] = document["media_files"]
    assert base64.b64decode(photo["base64"]) == MEDIA_BYTES and photo["file_name"] == "screen.png"
    assert document["conversations"][0]["variables"] == {"name": mine.name}
    assert document["handoff_notes"][0]["text"] == mine.note
    [appointment] = document["appointments"]
    assert (appointment["customer_name"], appointment["notes"]) == (mine.name, mine.note)
    [order] = document["orders"]
    assert (order["customer_name"], order["quoted_price"]) == (mine.name, "89.50")
    assert [(c["scope"], c["action"], c["source"]) for c in document["consent_history"]] == [
        ("marketing", "opt_out", "user_preferences")
    ]
    assert document["cost_entries"][0]["category"] == "service"
    assert document["format"] == 1
    assert all(document[section] == [] for section in export.ABOUT.values())  # no relay: nothing about them


async def test_the_export_api_wants_the_admin_token_and_a_known_phone(
    bot_client: BotFactory, tmp_path: Path
) -> None:
    client = await bot_client()
    seeded = await seed_customer(PHONE, "Zebulon Quartermaine", MediaStore(tmp_path / "data" / "media"))
    path = f"/api/customers/{PHONE}/export"
    assert (await client.get(path)).status == 401
    assert (await client.get(path, headers=bearer("wrong"))).status == 401
    admin = bearer(ADMIN_TOKEN)
    response = await client.get("/api/customers/x1/export", headers=admin)
    assert response.status == 400 and "not a phone number" in (await response.json())["error"]
    response = await client.get(f"/api/customers/{OTHER}/export", headers=admin)
    assert (response.status, await response.json()) == (404, {"error": "no customer with this phone number"})
    response = await client.get(f"/api/customers/{seeded.bsuid}/export", headers=admin)
    assert response.status == 200 and response.content_type == "application/json"
    document = await response.json()
    assert document["customer"]["id"] == seeded.customer.id
    assert base64.b64decode(document["media_files"][0]["base64"]) == MEDIA_BYTES
    assert [row["id"] for row in document["messages"]] == seeded.message_ids


async def test_bot_export_prints_the_json_and_exits_0_1_2(tmp_path: Path, database_url: str) -> None:
    install_test_keys()
    await init_db(database_url)
    try:
        seeded = await seed_customer(PHONE, "Zebulon Quartermaine", MediaStore(tmp_path / "data" / "media"))
    finally:
        await close_db()
    env = {
        "BOT_SETTINGS": str(write_settings(tmp_path)),
        "DATABASE_URL": database_url,
        "BOT_ENCRYPTION_KEYS": ENCRYPTION_KEY,
    }
    bad = await asyncio.to_thread(run_bot, "export", "US.", env=env)
    assert bad.returncode == 2 and "bot export: not a phone number" in bad.stderr and bad.stdout == ""
    unknown = await asyncio.to_thread(run_bot, "export", OTHER, env=env)
    assert unknown.returncode == 1 and "bot export: no customer with this phone number" in unknown.stderr
    done = await asyncio.to_thread(run_bot, "export", f"+{PHONE}", env=env)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # stdout is the JSON and nothing else
    assert document["customer"]["profile_name"] == "Zebulon Quartermaine"
    assert base64.b64decode(document["media_files"][0]["base64"]) == MEDIA_BYTES
    assert len(document["messages"]) == len(seeded.message_ids)
