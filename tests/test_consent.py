"""The consent ledger (bot/privacy/consent.py), on SQLite and PostgreSQL: every opt-out and opt-in is
kept with its time and source, and the customer's current state moves with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.db.models import ConsentAction, ConsentScope, ConsentSource, Customer
from bot.privacy.consent import consent_history, record
from tests.appointments_helpers import database as started_database

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[None]:
    async with started_database(database_url):
        yield


async def test_the_ledger_keeps_every_change_and_the_state_follows(database: None) -> None:
    customer = await Customer.create(wa_id="15550771001", language="es")
    out, back = ConsentAction.OPT_OUT, ConsentAction.OPT_IN
    assert await record(customer, ConsentScope.ALL, out, ConsentSource.KEYWORD, T0, "BAJA")
    assert not await record(customer, ConsentScope.ALL, out, ConsentSource.KEYWORD, T0 + timedelta(1), "STOP")
    marketing = ConsentScope.MARKETING
    assert await record(customer, marketing, out, ConsentSource.USER_PREFERENCES, T0 + timedelta(2))
    stored = await Customer.get(id=customer.id)
    assert stored.opted_out_at == T0 and stored.marketing_opted_out_at == T0 + timedelta(2)

    assert await record(customer, ConsentScope.ALL, back, ConsentSource.KEYWORD, T0 + timedelta(3), "ALTA")
    stored = await Customer.get(id=customer.id)
    assert stored.opted_out_at is None  # back in for what the shop starts
    assert stored.marketing_opted_out_at == T0 + timedelta(2)  # Meta's marketing stop still holds

    history = await consent_history(customer.id)
    assert [(h["scope"], h["action"], h["source"], h["detail"]) for h in history] == [
        ("all", "opt_out", "keyword", "BAJA"),
        ("all", "opt_out", "keyword", "STOP"),
        ("marketing", "opt_out", "user_preferences", None),
        ("all", "opt_in", "keyword", "ALTA"),
    ]
    assert [datetime.fromisoformat(h["at"]) for h in history] == [T0 + timedelta(n) for n in range(4)]
    assert await consent_history(customer.id + 1) == []
