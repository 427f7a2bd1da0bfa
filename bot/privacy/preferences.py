"""Meta's user_preferences webhook: a user stopped or resumed marketing messages inside WhatsApp.

Each known entry becomes a marketing opt-out or opt-in in the consent ledger (source USER_PREFERENCES,
at the time Meta gives), for the customer its phone or BSUID belongs to (made when nobody has written
from it yet, so the stop holds when they do). Runs inside the intake's transaction: the webhook is
acknowledged only once the ledger has it. Entries of a category or value this bot does not know are
logged and skipped by the intake, never refused (`known`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from bot.db.models import ConsentAction, ConsentScope, ConsentSource, Customer
from bot.identity import customer_by_address, customer_for_address, masked
from bot.privacy.consent import record_once
from bot.whatsapp.notifications import PreferenceItem

log = logging.getLogger(__name__)


def known(items: Sequence[PreferenceItem]) -> list[PreferenceItem]:
    """The entries that say stop or resume for marketing; the others are logged (Meta adds values)."""
    kept = []
    for item in items:
        if item.marketing_stop is None:
            log.warning(
                "user_preferences ignored: category %r, value %r (user %s)",
                item.category,
                item.value,
                masked(item.bsuid or item.phone or ""),
            )
        else:
            kept.append(item)
    return kept


async def record_preferences(items: Sequence[PreferenceItem], now: datetime) -> int:
    """Record each entry for its customer; returns how many changed a customer's state."""
    changed = 0
    for item in items:
        customer = await _customer_of(item, now)
        stop = item.marketing_stop
        action = ConsentAction.OPT_OUT if stop else ConsentAction.OPT_IN
        if await record_once(
            customer,
            ConsentScope.MARKETING,
            action,
            ConsentSource.USER_PREFERENCES,
            item.at or now,
            item.detail,
        ):
            changed += 1
            log.info(
                "marketing %s for customer %s (user_preferences)",
                "stopped" if stop else "resumed",
                customer.id,
            )
    return changed


async def _customer_of(item: PreferenceItem, now: datetime) -> Customer:
    """The BSUID's customer, else the phone's, else one made for them."""
    for address in (item.bsuid, item.phone):
        if address and (customer := await customer_by_address(address)) is not None:
            return customer
    address = item.phone or item.bsuid
    assert address is not None  # Notification.user_preferences keeps only entries that name someone
    return await customer_for_address(address, now)
