"""Media customers send: fetched from the Cloud API with limits on size and type (fetch.py), kept
encrypted under random names (store.py), shown to technicians only (bot/http/technicians.py)."""
