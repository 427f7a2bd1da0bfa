"""The inbox's HandoffPolicy (bot/spine/inbox.py) on the desk: auto handoff after misunderstandings, and the
relay to technicians' own WhatsApp when `handoff.relay_to_whatsapp` is on (else its hooks do nothing)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from bot.db.models import Customer, Message, Technician
from bot.handoff.relay import Relay
from bot.handoff.service import HandoffDesk
from bot.spine.inbox import HandoffPolicy
from bot.whatsapp.outbound import OutboundMessage


class DeskPolicy(HandoffPolicy):
    """Every hook runs inside the inbox's transaction."""

    def __init__(self, desk: HandoffDesk, relay: Relay | None, after_misses: int) -> None:
        self.desk = desk
        self.relay = relay
        self._after_misses = after_misses

    @property
    def after_misses(self) -> int:
        return self._after_misses

    async def technicians(self, addresses: Collection[str]) -> Mapping[str, Technician]:
        return await self.relay.technicians(addresses) if self.relay else {}

    async def technician_message(self, technician: Technician, row: Message, now: datetime) -> list[Message]:
        return await self.relay.technician_message(technician, row, now) if self.relay else []

    async def customer_message(self, customer: Customer, row: Message, now: datetime) -> list[Message]:
        return await self.relay.customer_message(customer, row, now) if self.relay else []

    async def handed_off(self, customer: Customer, row: Message, now: datetime) -> list[Message]:
        return await self.relay.handed_off(customer, row, now) if self.relay else []

    async def auto_handoff(
        self, conversation_id: int, customer: Customer, language: str, now: datetime
    ) -> list[OutboundMessage]:
        return await self.desk.auto_handoff(conversation_id, customer, language, now)
