"""Chats handed from the bot to a person: the handoff action, technicians, their API, live events, guards.

While a conversation's mode is HUMAN the engine stays silent (bot/spine/inbox.py): inbound messages are logged
and pushed to the panel. A handoff is waiting until a technician claims it, then claimed until it is
released back to the bot (by the technician, or by the idle guard).
"""
