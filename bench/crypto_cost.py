"""The cost of encryption at rest per message: what the encrypted fields do for one inbound message and
its reply (seal on write, open on read), timed in a loop. A micro-benchmark to run by hand, not a test:

    .venv/bin/python bench/crypto_cost.py [--messages 20000]

Per inbound message the bot seals its text, its raw payload (Meta's JSON, holding the text again) and
the profile name once, and opens them when the inbox reads the row; per reply it seals and opens the
text and the outbound payload. The numbers are microseconds of one core for all of that, through the
bot's own encrypted fields (bot/db/encrypted.py: to_db_value, to_python_value) under the customer's
data key, as every customer's values are (none is ever sealed under the master key).
"""

from __future__ import annotations

import argparse
import time

from bot import crypto
from bot.db.encrypted import _row
from bot.db.models import Customer, Message

INBOUND_TEXT = "Hi, my iPhone 13 screen is cracked, can you fix it today? Order 10452"
PROFILE_NAME = "Alex Example"
PAYLOAD = {
    "message": {
        "from": "15550002222",
        "id": "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzQTdCRDQ5RTlGQzY5RDkzRjg2RQA=",
        "timestamp": "1750000000",
        "type": "text",
        "text": {"body": INBOUND_TEXT},
    },
    "profile_name": PROFILE_NAME,
}
REPLY = "Hi Alex! What can we do for you?\n1. Repair status\n2. Book an appointment\n3. Technician"
REPLY_PAYLOAD = {
    "type": "interactive",
    "body": REPLY,
    "buttons": ["Repair status", "Appointment", "Technician"],
}


FIELDS = Message._meta.fields_map
CONTENT = FIELDS["message_content"]
PAYLOAD_FIELD = FIELDS["payload"]
NAME_FIELD = Customer._meta.fields_map["profile_name"]


def one_message(owner: str, customer: Customer, reply_row: Message) -> None:
    """What the bot's field layer does for one inbound message and its reply: the intake's insert_rows
    seals text and payload for the row's customer, the inbox notes the profile name (update_rows) and
    reads the row back (opens both, checking the owner), the reply is sealed and opened by the outbox."""
    inbound = [
        CONTENT.to_db_value_for(INBOUND_TEXT, owner),
        PAYLOAD_FIELD.to_db_value_for(PAYLOAD, owner),
    ]
    name = NAME_FIELD.to_db_value(PROFILE_NAME, customer)
    outbound = [CONTENT.to_db_value(REPLY, reply_row), PAYLOAD_FIELD.to_db_value(REPLY_PAYLOAD, reply_row)]
    token = _row.set({"customer_id": customer.id, "id": customer.id})
    try:
        for field, value in zip(
            (CONTENT, PAYLOAD_FIELD, CONTENT, PAYLOAD_FIELD), inbound + outbound, strict=True
        ):
            field.to_python_value(value)
        NAME_FIELD.to_python_value(name)
    finally:
        _row.reset(token)


def per_message_us(owner: str, messages: int) -> float:
    customer, reply_row = Customer(id=int(owner)), Message(customer_id=int(owner))
    for _ in range(min(1000, messages)):  # warm up
        one_message(owner, customer, reply_row)
    started = time.perf_counter()
    for _ in range(messages):
        one_message(owner, customer, reply_row)
    return (time.perf_counter() - started) / messages * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    ring = crypto.KeyRing(crypto.parse_master_keys(crypto.generate_master_key()))
    crypto.install(ring)
    raw, _ = ring.new_data_key("42")
    ring.add_data_key("42", raw)
    data_key = per_message_us("42", args.messages)
    print(f"{args.messages} messages, 5 values sealed and opened each (text, payload, name; reply, payload)")
    print(f"through the encrypted fields, under the customer's data key: {data_key:6.1f} µs per message")


if __name__ == "__main__":
    main()
