"""The `bot` command as staff run it: flows check, settings errors, db init, replay."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.db.models import DeliveryStatus, Handoff, Message
from tests.helpers import (
    ENCRYPTION_KEY,
    REPO,
    BotFactory,
    eventually,
    make_settings,
    post_webhook,
    shop_content,
    text_notification,
    write_settings,
)


def run_bot(
    *args: str, env: dict[str, str] | None = None, cwd: Path = REPO, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_flows_check_passes_on_the_shipped_flows() -> None:
    result = run_bot("flows", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_flows_check_reports_every_problem_with_file_line_and_column(tmp_path: Path) -> None:
    broken = tmp_path / "main.yaml"
    broken.write_text(
        "flow: main\n"
        "start: menu\n"
        "states:\n"
        "  menu:\n"
        '    say: "Pick one"\n'
        "    buttons:\n"
        '      - {id: a, title: "A title that is far too long"}\n'
        "    colour: red\n"
        "    on:\n"
        "      a: menu\n"
    )
    other = tmp_path / "extra.yaml"
    other.write_text('flow: extra\nstart: one\nstates:\n  one:\n    say: "Hi"\n    goto: nowhere\n')
    result = run_bot("flows", "check", str(tmp_path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith(f"{broken}:7:") and "20" in line for line in lines), result.stdout
    assert any(line.startswith(f"{broken}:8:") and "colour" in line for line in lines), result.stdout
    assert any(line.startswith(f"{other}:6:") and "nowhere" in line for line in lines), result.stdout


def test_an_invalid_settings_file_stops_start_up_with_the_key_path(tmp_path: Path) -> None:
    bad = tmp_path / "settings.yaml"
    bad.write_text("whatsapp:\n  messages_per_second: lots\n")
    result = run_bot("serve", env={"BOT_SETTINGS": str(bad)})
    assert result.returncode == 2
    assert "whatsapp.messages_per_second" in result.stderr
    assert "valid number" in result.stderr


def test_db_init_creates_the_database(tmp_path: Path) -> None:
    database = tmp_path / "shop" / "bot.db"
    result = run_bot(
        "db",
        "init",
        env={"BOT_SETTINGS": str(write_settings(tmp_path)), "DATABASE_URL": f"sqlite://{database}"},
    )
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(database) as connection:
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"message", "customer", "conversation", "template", "early_status"} <= tables


async def test_replay_shows_answers_without_sending_unless_asked(
    bot_client: BotFactory, tmp_path: Path, database_url: str
) -> None:
    client = await bot_client()
    for wamid, text in (("wamid.R1", "hello"), ("wamid.R2", "status")):
        await post_webhook(client, text_notification("15550009999", wamid, text))

    async def answered() -> bool:
        return await Message.filter(reply_to="wamid.R2", delivery_status=DeliveryStatus.SENT).exists()

    await eventually(answered)
    await client.close()
    outbound_before = await _outbound_count(database_url)
    env = {
        "BOT_SETTINGS": str(write_settings(tmp_path)),
        "DATABASE_URL": database_url,
        "BOT_ENCRYPTION_KEYS": ENCRYPTION_KEY,  # the server's: the command reads what it wrote
    }

    dry = await asyncio.to_thread(run_bot, "replay", "--since", "2000-01-01T00:00", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "'hello'" in dry.stdout and "'status'" in dry.stdout
    assert "would send" in dry.stdout and "was sent" in dry.stdout
    assert await _outbound_count(database_url) == outbound_before  # nothing queued, nothing sent

    again = await asyncio.to_thread(run_bot, "replay", "--since", "2000-01-01T00:00", "--resend", env=env)
    assert again.returncode == 0, again.stderr
    assert "2 message(s) handled again" in again.stdout
    assert await _outbound_count(database_url) > outbound_before


async def test_a_dry_run_replay_leaves_the_database_exactly_as_it_was(
    bot_client: BotFactory, tmp_path: Path, database_url: str
) -> None:
    """The replayed "technician" runs the real handoff action (it would open a handoff and put the chat
    in a person's hands), but the dry run rolls it all back: every table is unchanged afterwards."""
    client = await bot_client()
    for wamid, text in (("wamid.D1", "hello"), ("wamid.D2", "technician")):
        await post_webhook(client, text_notification("15550008888", wamid, text))

    async def handed_off() -> bool:
        return await Handoff.filter(conversation__customer__wa_id="15550008888").exists()

    await eventually(handed_off)
    await client.close()
    await _release_every_chat(database_url, tmp_path)
    before = await _every_table(database_url)
    env = {
        "BOT_SETTINGS": str(write_settings(tmp_path)),
        "DATABASE_URL": database_url,
        "BOT_ENCRYPTION_KEYS": ENCRYPTION_KEY,  # the server's: the command reads what it wrote
    }

    dry = await asyncio.to_thread(run_bot, "replay", "--since", "2000-01-01T00:00", env=env)

    assert dry.returncode == 0, dry.stderr
    assert "main.technician" in dry.stdout  # the handoff did run, inside the rolled-back transaction
    assert await _every_table(database_url) == before


async def test_a_resent_replay_hands_off_after_misses_as_the_server_does(
    bot_client: BotFactory, tmp_path: Path, database_url: str
) -> None:
    """--resend hands the messages to the server's own inbox (bot/pipeline.py), handoff policy and all:
    four misunderstandings in a row give the chat to a person, as they would have live."""
    phone = "15550007777"
    client = await bot_client("handoff:\n  after_misses: 0\n")  # live: never
    texts = ("hi", "my phone fell in the bath", "it is still wet", "hmm", "so what now")
    for number, text in enumerate(texts):
        await post_webhook(client, text_notification(phone, f"wamid.M{number}", text))

    async def all_handled() -> bool:
        pending = Message.filter(address=phone, delivery_status=DeliveryStatus.PENDING)
        return await Message.filter(address=phone).count() >= len(texts) and not await pending.exists()

    await eventually(all_handled)
    assert not await Handoff.filter(conversation__customer__wa_id=phone).exists()
    await client.close()
    env = {
        "BOT_SETTINGS": str(write_settings(tmp_path)),
        "DATABASE_URL": database_url,
        "BOT_ENCRYPTION_KEYS": ENCRYPTION_KEY,  # the server's: the command reads what it wrote
    }  # after_misses: 4

    again = await asyncio.to_thread(run_bot, "replay", "--since", "2000-01-01T00:00", "--resend", env=env)

    assert again.returncode == 0, again.stderr
    assert f"{len(texts)} message(s) handled again" in again.stdout
    from bot.db import close_db, init_db

    await init_db(database_url)
    try:
        [handoff] = await Handoff.filter(conversation__customer__wa_id=phone)
        assert handoff.reason == "misunderstood"
    finally:
        await close_db()


async def _release_every_chat(database_url: str, tmp_path: Path) -> None:
    """As a technician giving the chat back: the conversation is the bot's again, the handoff closed."""
    from bot.db import close_db, init_db
    from bot.handoff.service import HandoffDesk

    await init_db(database_url)
    try:
        settings = make_settings(tmp_path, database_url)
        desk = HandoffDesk(settings, shop_content(settings))
        for handoff in await Handoff.filter(status__in=["waiting", "claimed"]).prefetch_related(
            "conversation"
        ):
            await desk.release(None, handoff.conversation.customer_id)
    finally:
        await close_db()


async def _every_table(database_url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, in a stable order: what "the database is unchanged" compares."""
    if database_url.startswith("sqlite://"):
        with sqlite3.connect(database_url.removeprefix("sqlite://")) as connection:
            tables = [
                name
                for (name,) in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                )
            ]
            return {
                t: sorted(connection.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables
            }
    import asyncpg

    connection = await asyncpg.connect(database_url)
    try:
        tables = [
            record["table_name"]
            for record in await connection.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
        return {
            t: sorted((tuple(r) for r in await connection.fetch(f'SELECT * FROM "{t}"')), key=repr)
            for t in sorted(tables)
        }
    finally:
        await connection.close()


async def _outbound_count(database_url: str) -> int:
    from bot.db import close_db, init_db

    await init_db(database_url)
    try:
        return await Message.filter(message_direction="outbound").count()
    finally:
        await close_db()


@pytest.mark.parametrize("command", ["rotate", "encrypt-existing"])
@pytest.mark.parametrize("size", ["0", "-5", "100001", "many"])
def test_a_key_batch_size_out_of_range_is_refused_before_anything_runs(command: str, size: str) -> None:
    result = run_bot("keys", command, "--batch-size", size)
    assert result.returncode == 2
    assert "--batch-size" in result.stderr
    assert "Traceback" not in result.stderr
