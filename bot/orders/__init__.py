"""Repair orders fed in by the shop's own system (REST API, CSV import), and the status messages they
cause: each status change commits together with its queued notification (the transactional outbox)."""
