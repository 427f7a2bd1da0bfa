"""Who a customer is: an internal id with phones, BSUIDs, parent BSUIDs and usernames pointing at it.

- `resolve.py`: the customer of each inbound message, inside the intake's transaction (new senders get
  a customer; a phone and a BSUID on one message join; `user_changed_number`, `user_changed_user_id` and
  the "share my number" reply move identities to the customer they now belong to).
- `link.py`: attach a phone or a BSUID to a customer, moving it from another (`merge.py` when the other
  is the same person under another key).
- `lookup.py`: a customer by phone, BSUID or address; one made for a phone the shop names (orders,
  appointments, technicians), so everything the shop sends has a customer to go to.
- `addresses.py`: a phone (digits, `to`) or a BSUID (`recipient`), and how logs show them.
"""

from bot.identity.addresses import is_phone, masked
from bot.identity.link import link_bsuid, link_other, link_phone
from bot.identity.lookup import (
    customer_by_address,
    customer_for_address,
    customer_for_phone,
    customers_for_phones,
)
from bot.identity.merge import merge_customers
from bot.identity.resolve import resolve_senders

__all__ = [
    "customer_by_address",
    "customer_for_address",
    "customer_for_phone",
    "customers_for_phones",
    "is_phone",
    "link_bsuid",
    "link_other",
    "link_phone",
    "masked",
    "merge_customers",
    "resolve_senders",
]
