"""The `handoff` action flows call: the chat goes to a person, and `{wait_text}` says how long it takes.

It runs inside the inbox's transaction, like every action: the conversation's mode, the open handoff
and its audit event commit together with the inbound message that asked for it. Its result says
`hand_off`, so the inbox knows the chat is a person's from now on (bot/spine/inbox.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from bot.clock import utc_now
from bot.db.models import Conversation
from bot.engine import ActionContext, ActionError, ActionRegistry, ActionResult
from bot.handoff.service import HandoffDesk


class HandoffArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = "asked"
    """Shown in the technicians' queue (the menu's button: "asked")."""


class HandoffActions:
    def __init__(self, desk: HandoffDesk, clock: Callable[[], datetime] | None = None) -> None:
        self.desk = desk
        self._clock = clock

    def register(self, registry: ActionRegistry) -> None:
        registry.add("handoff", self.handoff, args_model=HandoffArgs)

    async def handoff(self, context: ActionContext) -> ActionResult:
        args = HandoffArgs.model_validate(dict(context.args))
        customer_id = context.customer.id
        conversation = (
            await Conversation.filter(customer_id=customer_id).prefetch_related("customer").first()
            if customer_id is not None
            else None
        )
        if conversation is None:
            raise ActionError(f"no conversation for customer {customer_id}")
        now = self._clock() if self._clock is not None else utc_now()
        language = context.customer.language
        text = await self.desk.request(
            conversation.id, conversation.customer, language, args.reason, now, context.texts
        )
        return ActionResult(variables={"wait_text": text}, hand_off=True)
