"""Secrets: every token compared in constant time, credentials listed (never shown) and revoked from
the command line and the admin API, panel sessions that end, and the panel's headers."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient

from bot import crypto
from bot.db.models import ApiKey, Technician
from bot.handoff import sessions
from bot.handoff.tokens import create_technician
from bot.http import technicians as technician_api
from bot.orders.keys import create_key
from tests.helpers import ADMIN_TOKEN, REPO, BotFactory, bearer, migrated_sqlite, write_settings
from tests.test_commands import run_bot

Client = TestClient[web.Request, web.Application]
SECRET_NAMES = ("token", "secret", "signature", "key_hash", "password", "api_key", "mac")


def _names(node: ast.AST) -> list[str]:
    found = []
    for inner in ast.walk(node):
        if isinstance(inner, ast.Name):
            found.append(inner.id)
        elif isinstance(inner, ast.Attribute):
            found.append(inner.attr)
    return [name.lower() for name in found]


def test_no_secret_is_compared_with_equals() -> None:
    """`==` on a secret stops at the first differing byte; hmac.compare_digest does not. A test looks at
    every comparison in bot/ whose sides name a token, secret, signature, key hash or password."""
    offenders = []
    for path in sorted((REPO / "bot").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Compare) or not any(
                isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops
            ):
                continue
            sides = [node.left, *node.comparators]
            if any(isinstance(side, ast.Constant) and side.value is None for side in sides):
                continue
            names = [name for side in sides for name in _names(side)]
            if any(secret in name for name in names for secret in SECRET_NAMES):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []


async def test_api_keys_are_listed_without_the_key_and_revoked_over_the_admin_api(
    bot_client: BotFactory,
) -> None:
    client = await bot_client()
    key = await create_key("shop-pos")
    await create_key("spare")
    assert (await client.get("/api/orders/R-1", headers=bearer(key))).status == 404  # works: no such order
    assert (await client.get("/api/admin/apikeys")).status == 401
    assert (await client.get("/api/admin/apikeys", headers=bearer("wrong"))).status == 401
    listed = await client.get("/api/admin/apikeys", headers=bearer(ADMIN_TOKEN))
    body = await listed.json()
    assert [(row["name"], row["revoked_at"]) for row in body] == [("shop-pos", None), ("spare", None)]
    assert body[0]["last_used_at"] is not None and body[1]["last_used_at"] is None
    assert body[0]["created_at"]
    text = await listed.text()
    stored = await ApiKey.get(name="shop-pos")
    assert key not in text and stored.key_hash not in text
    gone = await client.delete("/api/admin/apikeys/shop-pos", headers=bearer(ADMIN_TOKEN))
    assert (gone.status, await gone.json()) == (200, {"revoked": "shop-pos"})
    assert (await client.get("/api/orders/R-1", headers=bearer(key))).status == 401
    again = await client.delete("/api/admin/apikeys/shop-pos", headers=bearer(ADMIN_TOKEN))
    assert again.status == 404
    assert (await client.delete("/api/admin/apikeys/x" * 100, headers=bearer(ADMIN_TOKEN))).status == 404
    revoked = await (await client.get("/api/admin/apikeys", headers=bearer(ADMIN_TOKEN))).json()
    assert revoked[0]["revoked_at"] is not None


async def test_a_login_token_buys_a_session_that_works_until_it_ends(bot_client: BotFactory) -> None:
    client = await bot_client()
    ana, token = await create_technician("Ana")
    opened = await client.post("/api/tech/sessions", headers=bearer(token))
    assert opened.status == 200
    body = await opened.json()
    session = body["session"]
    assert session.startswith("rs_") and token not in session and body["technician"]["name"] == "Ana"
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(hours=11) < expires - datetime.now(UTC) <= timedelta(hours=12)  # handoff.session_hours
    me = await client.get("/api/tech/me", headers=bearer(session))
    assert (me.status, (await me.json())["name"]) == (200, "Ana")
    # a session cannot open another, nor be changed, nor outlive its time
    assert (await client.post("/api/tech/sessions", headers=bearer(session))).status == 401
    tampered = session[:-2] + ("AA" if not session.endswith("AA") else "BB")
    longer = session.replace(f".{int(expires.timestamp())}.", f".{int(expires.timestamp()) + 86400}.")
    for bad in (tampered, longer, "rs_1.2.3", "rs_" + "9" * 300, "rs_x.y.z.w"):
        assert (await client.get("/api/tech/me", headers=bearer(bad))).status == 401, bad
    expired = sessions.issue_session(ana, timedelta(hours=1), now=datetime.now(UTC) - timedelta(hours=2))
    assert (await client.get("/api/tech/me", headers=bearer(expired.token))).status == 401
    assert (await client.get(f"/api/tech/ws?token={expired.token}")).status == 401
    # a session signed by a master key that left BOT_ENCRYPTION_KEYS no longer opens anything
    current = crypto.current()
    crypto.install(crypto.KeyRing(crypto.parse_master_keys(crypto.generate_master_key())))
    try:
        assert (await client.get("/api/tech/me", headers=bearer(session))).status == 401
    finally:
        crypto.install(current)
    assert (await client.get("/api/tech/me", headers=bearer(session))).status == 200


async def test_an_admin_ends_a_technicians_token_sessions_and_open_socket(
    bot_client: BotFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(technician_api, "RECHECK_SECONDS", 0.2)
    client = await bot_client()
    ana, token = await create_technician("Ana")
    session = (await (await client.post("/api/tech/sessions", headers=bearer(token))).json())["session"]
    ws = await client.ws_connect(f"/api/tech/ws?token={session}")
    hello = await ws.receive_json(timeout=5)
    assert hello["technician"]["name"] == "Ana"
    listed = await (await client.get("/api/admin/technicians", headers=bearer(ADMIN_TOKEN))).json()
    assert [(row["name"], row["active"]) for row in listed] == [("Ana", True)]
    assert "token_hash" not in listed[0] and ana.token_hash not in str(listed)
    assert (await client.delete(f"/api/admin/technicians/{ana.id}")).status == 401
    ended = await client.delete(f"/api/admin/technicians/{ana.id}", headers=bearer(ADMIN_TOKEN))
    assert (ended.status, await ended.json()) == (200, {"deactivated": "Ana", "id": ana.id})
    closing = await ws.receive(timeout=5)
    assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert ws.close_code == 4001
    for credential in (token, session):
        assert (await client.get("/api/tech/me", headers=bearer(credential))).status == 401
    assert (
        await client.delete(f"/api/admin/technicians/{ana.id}", headers=bearer(ADMIN_TOKEN))
    ).status == 404
    assert (
        await client.delete("/api/admin/technicians/99999999999", headers=bearer(ADMIN_TOKEN))
    ).status == 404
    assert not (await Technician.get(id=ana.id)).active  # kept, with their chats and notes


def test_the_commands_list_and_revoke_keys_and_technicians(tmp_path: Path) -> None:
    env = {
        "BOT_SETTINGS": str(write_settings(tmp_path)),
        "DATABASE_URL": migrated_sqlite(tmp_path / "bot.db"),
    }
    key = run_bot("apikeys", "add", "shop-pos", env=env).stdout.strip()
    token = run_bot("technicians", "add", "Tess", env=env).stdout.strip()
    keys = run_bot("apikeys", "list", env=env)
    assert keys.returncode == 0 and "shop-pos" in keys.stdout and key not in keys.stdout
    assert keys.stdout.splitlines()[0].split() == ["name", "created", "last", "used", "revoked"]
    people = run_bot("technicians", "list", env=env)
    assert people.returncode == 0 and "Tess" in people.stdout and token not in people.stdout
    assert "yes" in people.stdout.splitlines()[1]
    revoked = run_bot("technicians", "revoke", "Tess", env=env)
    assert revoked.returncode == 0 and "deactivated" in revoked.stdout
    assert "no" in run_bot("technicians", "list", env=env).stdout.splitlines()[1].split()
    assert run_bot("technicians", "revoke", "Tess", env=env).returncode == 1
    assert run_bot("apikeys", "revoke", "shop-pos", env=env).returncode == 0
    [row] = run_bot("apikeys", "list", env=env).stdout.splitlines()[1:]
    assert row.startswith("shop-pos") and row.count("UTC") == 2 and row.endswith("UTC")  # created, revoked


async def test_every_answer_keeps_referrers_and_the_panel_its_policy(bot_client: BotFactory) -> None:
    client = await bot_client()
    page = await client.get("/panel")
    assert page.headers["Referrer-Policy"] == "no-referrer"
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "style-src 'self'" in policy
    for path in ("/panel/static/panel.js", "/api/tech/me", "/healthz", "/nowhere"):
        response = await client.get(path)
        assert response.headers["Referrer-Policy"] == "no-referrer", path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
