"""The 24-hour customer service window: free-form messages only while it is open (templates any time)."""

from __future__ import annotations

from datetime import datetime, timedelta

CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)
WINDOW_ERROR_CODE = 131047
WINDOW_ERROR_TITLE = (
    "Outside the 24-hour customer service window: refused before sending; only an approved template can "
    "reach this customer until they write again"
)


def window_closes_at(last_inbound_at: datetime | None) -> datetime | None:
    """When free-form messages stop being allowed; None when the customer never wrote."""
    return None if last_inbound_at is None else last_inbound_at + CUSTOMER_SERVICE_WINDOW


def window_open(last_inbound_at: datetime | None, now: datetime) -> bool:
    closes = window_closes_at(last_inbound_at)
    return closes is not None and now <= closes
