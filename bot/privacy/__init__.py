"""The customer's data over time and on request: retention (retention.py) deletes what is older than the
shop keeps; erasure, export and the consent ledger are the customer's rights."""
