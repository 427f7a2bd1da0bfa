"""The HTTP APIs for staff and the shop's systems, beside each other; the webhook is the spine's."""
