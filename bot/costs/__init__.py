"""What WhatsApp costs the shop and the guards on what it may send: the rate tables and limits in
settings.yaml (settings.py), prices from them (pricing.py), the cost ledger and its reports, the monthly
budget and the send limits (the daily per-customer cap, Meta's messaging limit)."""
