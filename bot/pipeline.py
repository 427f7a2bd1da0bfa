"""The bot's moving parts, assembled once: the server, the simulator and `bot replay` all take them here.

`Pipeline(settings)` holds what needs neither the network nor a running loop: the database's claims
(bot/db/claims.py, chosen by its URL), the flows and engine (bot/wiring.py), the live events and the
handoff desk. The templates and texts are read once per (re)load with the flows; the flow set that
serves carries them, and every part beside the engine reads them from there (`Pipeline.content`).
`workers(client)` then builds, on a WhatsApp client, the intake writer, the inbox (with the handoff
policy: auto handoff after `handoff.after_misses` misunderstandings, the relay when
`handoff.relay_to_whatsapp`), the outbox (read receipts, quoted replies, retries as configured), the
reminder scheduler and the handoff guards, wired to each other and to the events.

`bot serve` starts their loops (`Workers.start()`); the simulator (`bot chat`, `bot flows test`) drives
the very same objects one step at a time on its own clock, without pacing (there is no real time to
pace against); `bot replay --resend` hands messages to the same inbox. So a flow test sees exactly what
a customer sees.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.appointments.reminders import ReminderScheduler
from bot.clock import Clock, utc_now
from bot.costs.guard import SendLimits
from bot.db.claims import Claims, claims_for
from bot.db.models import Message
from bot.engine import Engine, FlowSet
from bot.engine.content import Content
from bot.handoff.events import EventHub, status_event
from bot.handoff.guards import HandoffGuards
from bot.handoff.policy import DeskPolicy
from bot.handoff.relay import Relay
from bot.handoff.service import HandoffDesk, history_item
from bot.processes import Duty, ProcessRole, Wakes, duty_of
from bot.settings import Settings
from bot.spine.inbox import InboxConfig, InboxWorker
from bot.spine.intake import IntakeWriter
from bot.spine.outbox import OutboxConfig, OutboxWorker
from bot.spine.statuses import StatusChange
from bot.whatsapp.client import WhatsAppClient
from bot.wiring import build_engine, load_flow_set, load_shop_content, registered_actions


@dataclass(frozen=True)
class Workers:
    """Everything that moves messages, built by `Pipeline.workers()`."""

    intake: IntakeWriter
    inbox: InboxWorker
    outbox: OutboxWorker
    reminders: ReminderScheduler
    guards: HandoffGuards
    claims: Claims

    duty: Duty = Duty.ALL

    async def start(self) -> None:
        """Start the loops of this process's duty (`bot serve`: all of them). A database that one
        process claims rows in gets back at once the outbox rows a process that died had claimed."""
        if self.duty.serves_http:
            self.intake.start()
        if not self.duty.moves_messages:
            return
        if self.claims.one_process:
            await self.outbox.release_leases()
        self.inbox.start()
        self.outbox.start()
        self.reminders.start()
        self.guards.start()

    async def stop(self) -> None:
        """Intake first (what it holds is committed and handled), the outbox last (it sends what the
        others queued meanwhile)."""
        if self.duty.serves_http:
            await self.intake.stop()
        if not self.duty.moves_messages:
            return
        await self.guards.stop()
        await self.reminders.stop()
        await self.inbox.stop()
        await self.outbox.stop()


class Pipeline:
    """`flows`: already loaded (their actions registered with `clock`); else settings' flows_dir.
    `shared_file`: one of `bot serve --workers N`'s processes on a SQLite file (bot/processes.py)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        events: EventHub | None = None,
        flows: FlowSet | None = None,
        shared_file: bool = False,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.events = events if events is not None else EventHub()
        self.claims = claims_for(settings.database_url, shared_file=shared_file)
        if flows is None:  # may raise FlowLoadError: a bad flow or text stops start-up with its problems
            content = load_shop_content(settings)
            actions = registered_actions(
                settings, self.content, clock=clock, events=self.events, claims=self.claims
            )
            flows = load_flow_set(settings, actions, content)
        self.engine: Engine = build_engine(settings, flows)
        self.desk = HandoffDesk(
            settings,
            self.content,
            self.events,
            self.engine,
            clock=clock,
            on_queued=self.wake_outbox,
            claims=self.claims,
        )
        self._outbox: OutboxWorker | None = None
        self._elsewhere: Wakes | None = None
        """The worker process's wakes, in an HTTP process (bot/processes.py)."""
        self.limits = SendLimits(settings, self.claims, self._template_category)
        """The daily cap, Meta's messaging limit and the budget at the outbox's claim (bot/costs/)."""

    def content(self) -> Content:
        """The templates and texts served now: those the engine's flows were loaded with (hot reload
        swaps them together)."""
        return self.engine.flows.content

    def _template_category(self, name: str) -> str | None:
        """A template's category in templates/ as loaded now (the budget holds marketing ones)."""
        catalog = self.engine.flows.templates
        found = catalog.get(name) if catalog is not None else None
        return found.category if found is not None else None

    def wake_outbox(self) -> None:
        """Something was queued (a desk reply, an order notice): send it now rather than at the next poll."""
        if self._elsewhere is not None:
            self._elsewhere.outbox()
        elif self._outbox is not None:
            self._outbox.wake()

    def workers(self, client: WhatsAppClient, role: ProcessRole | None = None) -> Workers:
        """The workers, sending through `client` (the server's exists only once its HTTP session does),
        for a process of `role` (bot/processes.py; None: one that does everything). An HTTP process's
        intake and queued messages wake the worker process."""
        settings = self.settings
        duty = duty_of(role)
        if role is not None and not duty.moves_messages:
            self._elsewhere = role.wakes
        outbox = OutboxWorker(
            client,
            self.claims,
            OutboxConfig(
                concurrency=settings.sends_in_flight,
                max_attempts=settings.outbox.max_attempts,
                retry_horizon=settings.outbox.retry_horizon,
                mark_read=settings.whatsapp.mark_read,
                mark_read_every=settings.whatsapp.mark_read_every_seconds,
                quote_replies=settings.whatsapp.quote_replies,
            ),
            self.clock,
            on_recorded=self._publish_sent,
            limits=self.limits,
            category_of=self._template_category,
        )
        self._outbox = outbox
        inbox = self.inbox(outbox)
        intake = IntakeWriter(
            on_committed=self._elsewhere.inbox if self._elsewhere else inbox.wake,
            on_statuses=self._publish_statuses,
            clock=self.clock,
        )
        reminders = ReminderScheduler(
            settings, self.content, self.claims, clock=self.clock, on_queued=outbox.wake
        )
        guards = HandoffGuards(settings, self.content, self.events, clock=self.clock, on_queued=outbox.wake)
        return Workers(intake, inbox, outbox, reminders, guards, self.claims, duty)

    def inbox(self, outbox: OutboxWorker | None = None) -> InboxWorker:
        """The inbox as the server runs it, telling `outbox` what to send and mark read; None: another
        process's outbox finds what it queues (`bot replay --resend` beside a running server)."""
        settings, desk = self.settings, self.desk
        return InboxWorker(
            self.engine,
            self.claims,
            InboxConfig(
                default_language=settings.shop.default_language,
                inbound_per_minute=settings.limits.inbound_per_minute,
            ),
            on_queued=outbox.wake if outbox is not None else _nothing,
            on_handled=outbox.mark_read if outbox is not None else None,
            clock=self.clock,
            on_human_messages=self._publish_inbound,
            handoff=DeskPolicy(
                desk,
                Relay(desk, self.clock) if settings.handoff.relay_to_whatsapp else None,
                settings.handoff.after_misses,
            ),
            on_parked=self._publish_parked,
        )

    # --- live events for the technician panel

    def _publish_inbound(self, rows: list[Message]) -> None:
        """Inbound messages of chats a person has, live to the panel."""
        for row in rows:
            self.events.publish(
                {
                    "type": "message",
                    "phone": row.address,
                    "customer_id": row.customer_id,
                    "conversation_id": None,
                    "message": history_item(row),
                }
            )

    def _publish_parked(self, row: Message) -> None:
        """An inbound message the inbox gave up on: admins see it in the panel's list at once."""
        self.events.publish(
            {
                "type": "failed",
                "phone": row.address,
                "customer_id": row.customer_id,
                "conversation_id": None,
                "message": history_item(row),
            }
        )

    def _publish_sent(self, rows: list[Message]) -> None:
        if not self.events.listening:
            return
        for row in rows:
            self.events.publish(
                status_event(
                    row.address,
                    row.whatsapp_message_id,
                    str(row.delivery_status),
                    row.error_title,
                    row.id,
                    row.customer_id,
                )
            )

    def _publish_statuses(self, changes: list[StatusChange]) -> None:
        if not self.events.listening:
            return
        for change in changes:
            self.events.publish(status_event(change.phone, change.wamid, change.status, change.error_title))


def _nothing() -> None:
    pass
