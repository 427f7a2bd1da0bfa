"""The cost of encryption at rest per message: what the encrypted fields do for one inbound message and
its reply (seal on write, open on read), timed in a loop. A micro-benchmark to run by hand, not a test:

    .venv/bin/python bench/crypto_cost.py [--messages 20000]

Per inbound message the bot seals its text, its raw payload (Meta's JSON, holding the text again) and
the profile name once, and opens them when the inbox reads the row; per reply it seals and opens the
text and the outbound payload. The numbers are microseconds of one core for all of that, with the
customer's data key (the usual case) and with the master key (a customer without one yet).
"""

from __future__ import annotations

import argparse
import json
import time

from bot import crypto

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


def one_message(ring: crypto.KeyRing, owner: str) -> None:
    stored = [
        ring.encrypt(INBOUND_TEXT.encode(), "message.message_content", owner),
        ring.encrypt(json.dumps(PAYLOAD).encode(), "message.payload", owner),
        ring.encrypt(PROFILE_NAME.encode(), "customer.profile_name", owner),
        ring.encrypt(REPLY.encode(), "message.message_content", owner),
        ring.encrypt(json.dumps(REPLY_PAYLOAD).encode(), "message.payload", owner),
    ]
    places = [
        "message.message_content",
        "message.payload",
        "customer.profile_name",
        "message.message_content",
        "message.payload",
    ]
    for value, place in zip(stored, places, strict=True):
        ring.decrypt(value, place, owner)


def per_message_us(ring: crypto.KeyRing, owner: str, messages: int) -> float:
    for _ in range(min(1000, messages)):  # warm up
        one_message(ring, owner)
    started = time.perf_counter()
    for _ in range(messages):
        one_message(ring, owner)
    return (time.perf_counter() - started) / messages * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    ring = crypto.KeyRing(crypto.parse_master_keys(crypto.generate_master_key()))
    raw, _ = ring.new_data_key("42")
    ring.add_data_key("42", raw)
    data_key = per_message_us(ring, "42", args.messages)
    master = per_message_us(ring, "7", args.messages)
    print(f"{args.messages} messages, 5 values sealed and opened each (text, payload, name; reply, payload)")
    print(f"under the customer's data key: {data_key:6.1f} µs per message")
    print(f"under the master key:          {master:6.1f} µs per message")


if __name__ == "__main__":
    main()
