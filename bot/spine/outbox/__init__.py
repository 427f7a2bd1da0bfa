"""The transactional outbox: the one write API for queued messages, and the sender that delivers them.

`enqueue`, or `outbound_row` and `write_outbound` (queue.py), are what every producer calls inside its
own transaction; `OutboxWorker` (worker.py) sends the committed rows, with the 24-hour window rule
(window.py), retries within a horizon (retries.py), a pause on account-wide errors (pause.py) and leases
kept alive for the rows it holds (leases.py).
"""

from bot.spine.outbox.queue import enqueue, outbound_row, write_outbound
from bot.spine.outbox.window import CUSTOMER_SERVICE_WINDOW, WINDOW_ERROR_CODE, WINDOW_ERROR_TITLE
from bot.spine.outbox.worker import OutboxConfig, OutboxWorker

__all__ = [
    "CUSTOMER_SERVICE_WINDOW",
    "WINDOW_ERROR_CODE",
    "WINDOW_ERROR_TITLE",
    "OutboxConfig",
    "OutboxWorker",
    "enqueue",
    "outbound_row",
    "write_outbound",
]
