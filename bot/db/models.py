"""The message log and the conversation state, as Tortoise models.

A customer is an internal id (`Customer`); the phone numbers, business-scoped user IDs (BSUIDs) and
usernames WhatsApp tells us about are `CustomerIdentity` rows pointing at it. Everything about a customer
(messages, conversation, orders, appointments, handoffs through the conversation) keys on the customer
id; a message keeps the address it came from or went to (a phone or a BSUID).

`Message.order_id` and `technician_id` are plain indexed integers: a loose reference keeps the message
log independent of the shop's other tables.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from bot.db.encrypted import EncryptedJSONField, EncryptedTextField, PrivateModel

# Column sizes fed from outside (webhooks); bot/whatsapp/notifications.py checks each at parse
PHONE_LENGTH = 32
"""A wa_id: Customer.wa_id, Order.customer_phone, Appointment.customer_phone."""
BSUID_LENGTH = 160
"""A business-scoped user ID: `CC.` or `CC.ENT.` and up to 128 alphanumerics (Customer.bsuid)."""
ADDRESS_LENGTH = BSUID_LENGTH
"""What a message was sent from or to, a phone or a BSUID (Message.address)."""
IDENTITY_LENGTH = 256
"""CustomerIdentity.value: a phone, a BSUID, a parent BSUID or a username (clipped to it)."""
WAMID_LENGTH = 128
"""A WhatsApp message id: Message.whatsapp_message_id and reply_to, EarlyStatus.whatsapp_message_id."""
NAME_LENGTH = 256
"""Customer.profile_name, Message.file_name (the plaintext: encrypted, the columns are TEXT)."""
STATUS_LENGTH = 16
"""EarlyStatus.status."""
PACE_KEY_LENGTH = 64
PRICING_LENGTH = 64
"""A status webhook's pricing values (CostEntry.category, pricing_type): notifications.py clips them to it."""
"""PaceBucket.key: `business:` or `pair:` and a number or id."""
CONSENT_DETAIL_LENGTH = 128
"""ConsentChange.detail: the word, Meta's description of a preference change (clipped to it)."""
INT_RANGE = range(-(2**31), 2**31)
"""What an IntField holds on PostgreSQL (error_code)."""


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class DeliveryStatus(StrEnum):
    """Outbound (Meta's words): queued → sent → delivered → read, or failed. Inbound: pending → handled
    once the bot has taken it, or failed when it gave up (parked). Earlier releases marked handled
    inbound rows `delivered`; migration 0002_inbound_handled made them `handled`."""

    PENDING = "pending"
    HANDLED = "handled"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


class ConversationMode(StrEnum):
    BOT = "bot"
    HUMAN = "human"


class IdentityKind(StrEnum):
    PHONE = "phone"
    BSUID = "bsuid"
    PARENT_BSUID = "parent_bsuid"
    USERNAME = "username"


class Customer(PrivateModel):
    """Someone who writes to the business number, whatever WhatsApp identifies them by.

    A technician who writes in is one too: their row carries their identities and 24-hour window, never
    a conversation. `wa_id` and `bsuid` are the current phone and BSUID (either may be unknown, not both); the
    CustomerIdentity rows keep every one seen, and are what makes them unique. `last_inbound_at` is the
    start of the 24-hour window, whoever writes."""

    id = fields.IntField(primary_key=True)
    wa_id = fields.CharField(max_length=PHONE_LENGTH, unique=True, null=True)
    bsuid = fields.CharField(max_length=BSUID_LENGTH, null=True, db_index=True)
    username = fields.CharField(max_length=NAME_LENGTH, null=True)
    profile_name: fields.Field[str | None] = EncryptedTextField(owner="id", max_length=NAME_LENGTH, null=True)
    """Encrypted under their own data key, like everything of theirs below (bot/db/keystore.py)."""
    language = fields.CharField(max_length=8, null=True)
    last_inbound_at = fields.DatetimeField(null=True)
    opted_out_at = fields.DatetimeField(null=True)
    """Since when they want none of the messages the shop starts (STOP); None: in (bot/privacy/consent.py)."""
    marketing_opted_out_at = fields.DatetimeField(null=True)
    """Since when they want no marketing (Meta's user_preferences, error 131050); None: in."""
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    identities: fields.ReverseRelation[CustomerIdentity]

    class Meta:
        table = "customer"

    @property
    def address(self) -> str:
        """Where messages to them go: the phone when known (`to`), else the BSUID (`recipient`)."""
        address = self.wa_id or self.bsuid
        if address is None:
            raise ValueError(f"customer {self.id} has neither a phone nor a BSUID")
        return address

    @property
    def display_name(self) -> str:
        """What staff see: the username, else the profile name, else the phone (else the BSUID)."""
        if self.username:
            return self.username
        if self.profile_name:
            return self.profile_name
        return f"+{self.wa_id}" if self.wa_id else (self.bsuid or f"customer {self.id}")


class CustomerIdentity(Model):
    """One phone, BSUID, parent BSUID or username of a customer, first and last seen.

    Unique per (kind, value): a phone or a BSUID names one customer. Old ones stay (a changed number, a
    changed BSUID) so that statuses and history still find their customer."""

    id = fields.BigIntField(primary_key=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="identities", on_delete=fields.CASCADE, db_index=True
    )
    customer_id: int
    kind = fields.CharEnumField(IdentityKind, max_length=16)
    value = fields.CharField(max_length=IDENTITY_LENGTH)
    first_seen_at = fields.DatetimeField()
    last_seen_at = fields.DatetimeField()

    class Meta:
        table = "customer_identity"
        unique_together = (("kind", "value"),)


class Conversation(PrivateModel):
    id = fields.IntField(primary_key=True)
    customer: fields.OneToOneRelation[Customer] = fields.OneToOneField(
        "models.Customer", related_name="conversation", on_delete=fields.CASCADE
    )
    flow = fields.CharField(max_length=64, null=True)
    state = fields.CharField(max_length=128, null=True)
    variables: fields.Field[dict[str, Any]] = EncryptedJSONField(owner="customer_id", default=dict)
    """What the flows saved, answers the customer typed among them: encrypted."""
    mode = fields.CharEnumField(ConversationMode, default=ConversationMode.BOT, max_length=8)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    customer_id: int

    class Meta:
        table = "conversation"


class Message(PrivateModel):
    """One row per message in or out: the log, the durable inbox and the transactional outbox.

    The content, the file name and the payload are encrypted under the customer's data key (a row
    written without its customer: under the master key)."""

    id = fields.BigIntField(primary_key=True)
    customer: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="messages", null=True, on_delete=fields.CASCADE
    )
    customer_id: int | None
    address = fields.CharField(max_length=ADDRESS_LENGTH)
    """The phone or BSUID it came from or went to."""
    message_direction = fields.CharEnumField(Direction, max_length=8)
    message_type = fields.CharField(max_length=24)
    message_content: fields.Field[str | None] = EncryptedTextField(owner="customer_id", null=True)
    file_url = fields.TextField(null=True)
    file_name: fields.Field[str | None] = EncryptedTextField(
        owner="customer_id", max_length=NAME_LENGTH, null=True
    )
    whatsapp_message_id: fields.Field[str | None] = fields.CharField(
        max_length=WAMID_LENGTH, unique=True, null=True
    )
    delivery_status = fields.CharEnumField(DeliveryStatus, max_length=12, db_index=True)
    error_code = fields.IntField(null=True)
    error_title: fields.Field[str | None] = fields.TextField(null=True)  # type: ignore[assignment]
    order_id = fields.IntField(null=True, db_index=True)
    technician_id = fields.IntField(null=True, db_index=True)
    about_customer_id = fields.IntField(null=True, db_index=True)
    """The relay (bot/handoff/relay.py): the customer whose chat this technician's row carries or
    answers (a copy of their message, a reply to them, a notice naming them); erased and exported with
    that customer. The row's own `customer_id` is the technician's number."""
    # inbound: the message object exactly as Meta sent it; outbound: the OutboundMessage value
    payload: fields.Field[dict[str, Any] | None] = EncryptedJSONField(owner="customer_id", null=True)
    reply_to = fields.CharField(max_length=WAMID_LENGTH, null=True)
    pricing: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)
    received_at = fields.DatetimeField(null=True)
    processed_at = fields.DatetimeField(null=True)
    sent_at = fields.DatetimeField(null=True, db_index=True)
    delivered_at = fields.DatetimeField(null=True)
    read_at = fields.DatetimeField(null=True)
    failed_at = fields.DatetimeField(null=True)
    flow = fields.CharField(max_length=64, null=True)
    """Outbound: the flow whose state sent it (a bot's reply), for the cost ledger; else none."""
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "message"
        # created_at: the statistics' periods (bot/stats.py) are ranges of it
        indexes = (Index(fields=("customer_id", "id")), Index(fields=("created_at",)))


class ConversationTimer(Model):
    """A flow's `on: timeout`: fire at `due_at` if the conversation is still at (flow, state).

    Written in the same transaction as the state it belongs to; one per conversation at most, replaced
    whenever the conversation moves. Its own table, so adding it needed no change to existing tables.
    """

    id = fields.BigIntField(primary_key=True)
    conversation: fields.OneToOneRelation[Conversation] = fields.OneToOneField(
        "models.Conversation", related_name="timer", on_delete=fields.CASCADE
    )
    conversation_id: int
    flow = fields.CharField(max_length=64)
    state = fields.CharField(max_length=128)
    due_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "conversation_timer"


class EarlyStatus(Model):
    """A status webhook for a wamid the outbox has not recorded yet; applied when it is."""

    id = fields.BigIntField(primary_key=True)
    whatsapp_message_id = fields.CharField(max_length=WAMID_LENGTH, db_index=True)
    status = fields.CharField(max_length=STATUS_LENGTH)
    timestamp = fields.DatetimeField()
    pricing: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    error_code = fields.IntField(null=True)
    error_title: fields.Field[str | None] = fields.TextField(null=True)  # type: ignore[assignment]
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "early_status"
        unique_together = (("whatsapp_message_id", "status"),)


class PaceBucket(Model):
    """A throughput bucket every process shares (bot/db/buckets.py): the business number's messages per
    second and each recipient's pair limit, as the time the bucket is full again (GCRA's theoretical
    arrival time, in seconds of the database's clock). On PostgreSQL the table is UNLOGGED: a commit
    that only moves a bucket waits for no disk, and a crash that empties it only leaves buckets full."""

    key = fields.CharField(max_length=PACE_KEY_LENGTH, primary_key=True)
    tat = fields.FloatField()

    class Meta:
        table = "pace_bucket"


class Template(Model):
    id = fields.IntField(primary_key=True)
    template_name = fields.CharField(max_length=512, unique=True)
    template_content = fields.TextField()
    language_code = fields.CharField(max_length=16)
    category = fields.CharField(max_length=32)
    variables: fields.JSONField[list[str]] = fields.JSONField(default=list)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "template"


class OrderSource(StrEnum):
    """Where a status change came from: the shop's system over the REST API, or a spreadsheet import."""

    API = "api"
    IMPORT = "import"


class Order(PrivateModel):
    """A repair order as the shop's own system knows it; fed in by the orders API or a CSV import.

    `status` is one of the names configured under `orders.statuses` in settings.yaml (not an enum here:
    shops configure them). `customer_phone` is digits only, as WhatsApp's wa_id: what the shop's system
    knows. `customer` is the owner the chat asks about: the customer with that phone, set when the order
    is written (none with it yet: one is made) and moved with the phone (bot/identity).
    """

    id = fields.IntField(primary_key=True)
    order_number = fields.CharField(max_length=64, unique=True)
    customer_phone = fields.CharField(max_length=32, db_index=True)
    customer: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="orders", null=True, on_delete=fields.SET_NULL, db_index=True
    )
    customer_id: int | None
    customer_name: fields.Field[str] = EncryptedTextField(owner="customer_id", max_length=256)
    device_model = fields.CharField(max_length=256)
    problem = fields.TextField()
    status = fields.CharField(max_length=64)
    quoted_price = fields.DecimalField(max_digits=12, decimal_places=2, null=True)
    technician = fields.CharField(max_length=256, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    history: fields.ReverseRelation[OrderStatusChange]

    class Meta:
        table = "repair_order"  # "order" is an SQL keyword


class OrderStatusChange(Model):
    """One status change of an order, written in the transaction that changed it (the first one too)."""

    id = fields.BigIntField(primary_key=True)
    order: fields.ForeignKeyRelation[Order] = fields.ForeignKeyField(
        "models.Order", related_name="history", on_delete=fields.CASCADE
    )
    order_id: int
    from_status = fields.CharField(max_length=64, null=True)
    to_status = fields.CharField(max_length=64)
    changed_at = fields.DatetimeField()
    source = fields.CharEnumField(OrderSource, max_length=8)

    class Meta:
        table = "order_status_change"


class ApiKey(Model):
    """A bearer key for the orders API, stored only as the SHA-256 hex of the key.

    The keys are 256-bit random tokens (`secrets.token_urlsafe(32)`), not passwords: nobody can guess
    or brute-force them, so a fast hash is enough and lets a request find its key by an indexed lookup.
    """

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64, unique=True)
    key_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_key"


class TemplateText(Model):
    """One template in one language: its body as templates/ holds it and its state at Meta's last check.

    `template` keeps one row per name (its unique column cannot change under generate_schemas), so the
    per-language texts `bot templates sync` loads live in this table of their own.
    """

    id = fields.IntField(primary_key=True)
    template_name = fields.CharField(max_length=512)
    language_code = fields.CharField(max_length=16)
    body = fields.TextField()
    status = fields.CharField(max_length=16)
    """As templates/ declares it (approved, pending ...)."""
    sync_state = fields.CharField(max_length=24, null=True)
    """ok, missing, pending, rejected, differs ... at the last comparison with Meta (null: not compared)."""
    checked_at = fields.DatetimeField(null=True)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "template_text"
        unique_together = (("template_name", "language_code"),)


class AppointmentStatus(StrEnum):
    BOOKED = "booked"
    CONFIRMED = "confirmed"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    NO_SHOW = "no_show"


class ChangeSource(StrEnum):
    """Who changed an appointment: the customer in the chat, staff over the API, or the scheduler."""

    CHAT = "chat"
    API = "api"
    REMINDER = "reminder"


class Appointment(PrivateModel):
    """A repair appointment. `starts_at` is stored in UTC and shown in the shop's zone.

    `plan` counts how often its reminders were planned: moving or re-activating the appointment plans
    them anew under the next number, so a reminder already sent for the old time does not block the
    one for the new time.
    """

    id = fields.IntField(primary_key=True)
    customer: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="appointments", null=True, on_delete=fields.SET_NULL, db_index=True
    )
    customer_id: int | None
    customer_phone = fields.CharField(max_length=32, db_index=True, null=True)
    """As staff gave it (none for a customer without a phone who booked in the chat)."""
    customer_name: fields.Field[str | None] = EncryptedTextField(
        owner="customer_id", max_length=256, null=True
    )
    order: fields.ForeignKeyNullableRelation[Order] = fields.ForeignKeyField(
        "models.Order", related_name="appointments", null=True, on_delete=fields.SET_NULL
    )
    order_id: int | None
    order_number = fields.CharField(max_length=64, null=True)
    device_model = fields.CharField(max_length=256, null=True)
    starts_at = fields.DatetimeField(db_index=True)
    duration_minutes = fields.IntField()
    status = fields.CharEnumField(AppointmentStatus, max_length=16, db_index=True)
    notes: fields.Field[str | None] = EncryptedTextField(owner="customer_id", null=True)
    plan = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    reminders: fields.ReverseRelation[AppointmentReminder]
    history: fields.ReverseRelation[AppointmentChange]

    class Meta:
        table = "appointment"


class AppointmentSeat(Model):
    """One of a slot's `capacity` seats, held by one appointment that is not cancelled.

    The unique (slot_start, seat) pair is what makes overbooking impossible: two bookings racing for
    the last seat insert the same pair, and the database lets only one of them commit.
    """

    id = fields.BigIntField(primary_key=True)
    slot_start = fields.DatetimeField()
    seat = fields.IntField()
    appointment: fields.OneToOneRelation[Appointment] = fields.OneToOneField(
        "models.Appointment", related_name="seat", on_delete=fields.CASCADE
    )
    appointment_id: int

    class Meta:
        table = "appointment_seat"
        unique_together = (("slot_start", "seat"),)


class ReminderStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    SKIPPED = "skipped"


class AppointmentReminder(Model):
    """One reminder of one appointment's plan; pending until it is sent (exactly once) or skipped.

    `send_after` starts as `due_at` and moves to the end of quiet hours when a reminder is held.
    `message_id` is the outbox row queued in the same transaction that marked it sent.
    """

    id = fields.BigIntField(primary_key=True)
    appointment: fields.ForeignKeyRelation[Appointment] = fields.ForeignKeyField(
        "models.Appointment", related_name="reminders", on_delete=fields.CASCADE
    )
    appointment_id: int
    plan = fields.IntField()
    offset_minutes = fields.IntField()
    due_at = fields.DatetimeField()
    send_after = fields.DatetimeField(db_index=True)
    status = fields.CharEnumField(ReminderStatus, max_length=8, db_index=True)
    reason = fields.CharField(max_length=128, null=True)
    """Why it was skipped or held."""
    sent_at = fields.DatetimeField(null=True)
    message_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "appointment_reminder"
        unique_together = (("appointment", "plan", "offset_minutes"),)


class AppointmentChange(Model):
    """One change of an appointment's status or time, written in the transaction that made it."""

    id = fields.BigIntField(primary_key=True)
    appointment: fields.ForeignKeyRelation[Appointment] = fields.ForeignKeyField(
        "models.Appointment", related_name="history", on_delete=fields.CASCADE
    )
    appointment_id: int
    from_status = fields.CharField(max_length=16, null=True)
    to_status = fields.CharField(max_length=16)
    from_starts_at = fields.DatetimeField(null=True)
    to_starts_at = fields.DatetimeField(null=True)
    source = fields.CharEnumField(ChangeSource, max_length=8)
    changed_at = fields.DatetimeField()

    class Meta:
        table = "appointment_change"


class TechnicianRole(StrEnum):
    TECHNICIAN = "technician"
    ADMIN = "admin"


class Technician(Model):
    """A person who answers chats in the panel; logs in with a token stored only as its SHA-256 hex."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=128, unique=True)
    phone = fields.CharField(max_length=32, null=True)
    role = fields.CharEnumField(TechnicianRole, max_length=16, default=TechnicianRole.TECHNICIAN)
    active = fields.BooleanField(default=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "technician"


class HandoffStatus(StrEnum):
    WAITING = "waiting"
    CLAIMED = "claimed"
    RELEASED = "released"


class Handoff(Model):
    """One stretch of a conversation with a person: waiting → claimed → released.

    At most one open (waiting or claimed) per conversation, enforced by bot/handoff/service.py inside a
    transaction that locks the conversation row; a claim is one conditional UPDATE on status='waiting'.
    """

    id = fields.BigIntField(primary_key=True)
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name="handoffs", on_delete=fields.CASCADE
    )
    conversation_id: int
    status = fields.CharEnumField(HandoffStatus, max_length=12, db_index=True)
    technician: fields.ForeignKeyNullableRelation[Technician] = fields.ForeignKeyField(
        "models.Technician", related_name="handoffs", null=True, on_delete=fields.SET_NULL
    )
    technician_id: int | None
    reason = fields.CharField(max_length=64)
    requested_at = fields.DatetimeField()
    claimed_at = fields.DatetimeField(null=True)
    last_activity_at = fields.DatetimeField(null=True)
    released_at = fields.DatetimeField(null=True)
    apologized_at = fields.DatetimeField(null=True)
    """When the unclaimed guard told the customer nobody could answer yet (once per handoff)."""

    class Meta:
        table = "handoff"


class RelayPointer(Model):
    """Where a technician's relay commands point (bot/handoff/relay.py), kept here so a restart changes
    nothing a technician relies on: the chat their plain replies go to (`claim`, `switch N`), the waiting
    chats their last `list` numbered (`claim N`), the chat last announced to them (a late `claim`).
    Chats are their customers (Customer.id), not phone numbers."""

    id = fields.IntField(primary_key=True)
    technician: fields.OneToOneRelation[Technician] = fields.OneToOneField(
        "models.Technician", related_name="relay_pointer", on_delete=fields.CASCADE
    )
    technician_id: int
    current_customer: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="relay_current_of", null=True, on_delete=fields.SET_NULL
    )
    current_customer_id: int | None
    offered_customer: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="relay_offered_to", null=True, on_delete=fields.SET_NULL
    )
    offered_customer_id: int | None
    listed: fields.JSONField[list[int] | None] = fields.JSONField(null=True)
    """The customers whose waiting chats the last `list` numbered, from 1, in its order; None: the
    technician has not asked for a list yet."""
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "relay_pointer"


class HandoffNote(PrivateModel):
    """An internal note on a chat: shown to technicians in its history, never sent to the customer.
    Its text is encrypted under the data key of `customer_id`, the chat's customer."""

    id = fields.BigIntField(primary_key=True)
    handoff: fields.ForeignKeyNullableRelation[Handoff] = fields.ForeignKeyField(
        "models.Handoff", related_name="notes", null=True, on_delete=fields.SET_NULL
    )
    handoff_id: int | None
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name="notes", on_delete=fields.CASCADE
    )
    conversation_id: int
    technician: fields.ForeignKeyNullableRelation[Technician] = fields.ForeignKeyField(
        "models.Technician", related_name="notes", null=True, on_delete=fields.SET_NULL
    )
    technician_id: int | None
    customer_id = fields.IntField(null=True, db_index=True)
    """The chat's customer, whose data key encrypts the text (set with the note; 0009_encryption)."""
    text: fields.Field[str] = EncryptedTextField(owner="customer_id")
    created_at = fields.DatetimeField()

    class Meta:
        table = "handoff_note"


class AuditKind(StrEnum):
    CLAIM = "claim"
    RELEASE = "release"
    TRANSFER = "transfer"
    GUARD_UNCLAIMED = "guard_unclaimed"
    GUARD_IDLE = "guard_idle"
    HANDOFF = "handoff"
    ERASURE = "erasure"
    """A customer was erased (bot/privacy/erasure.py): no conversation, details say by whom and
    which customer id, never what was erased."""


class AuditEvent(Model):
    """Who took, passed on or gave back which chat, what the guards did, and who erased a customer:
    append only. An erasure's row has no conversation (it was erased)."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharEnumField(AuditKind, max_length=16, db_index=True)
    technician: fields.ForeignKeyNullableRelation[Technician] = fields.ForeignKeyField(
        "models.Technician", related_name="audit_events", null=True, on_delete=fields.SET_NULL
    )
    technician_id: int | None
    conversation: fields.ForeignKeyNullableRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name="audit_events", null=True, on_delete=fields.CASCADE
    )
    conversation_id: int | None
    details: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "audit_event"


class CostEntry(Model):
    """One message's price as Meta reported it (a status webhook's `pricing`), recorded once per
    message (bot/costs/ledger.py); priced from the rate tables when a report is made, so a new table
    re-prices the past without touching these rows."""

    id = fields.BigIntField(primary_key=True)
    message_id = fields.BigIntField(unique=True)
    customer_id = fields.IntField(null=True, db_index=True)
    market = fields.CharField(max_length=8)
    """The recipient's calling code ("34"), a BSUID's country ("US"), or "*"."""
    message_type = fields.CharField(max_length=24)
    category = fields.CharField(max_length=PRICING_LENGTH)
    """Meta's category, kept as written (an open set: marketing, utility, service, …)."""
    pricing_type = fields.CharField(max_length=PRICING_LENGTH, null=True)
    """regular, free_customer_service, free_entry_point, or whatever Meta adds."""
    pricing_model = fields.CharField(max_length=PRICING_LENGTH, null=True)
    template = fields.CharField(max_length=512, null=True)
    flow = fields.CharField(max_length=64, null=True)
    at = fields.DatetimeField(db_index=True)
    """The status's time: the month and shop day it is counted in."""
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "cost_entry"


class ConversationStep(Model):
    """A state a conversation entered (every `goto` hop too), written with the state it moved to: the
    funnels of bot/stats.py count them."""

    id = fields.BigIntField(primary_key=True)
    conversation_id = fields.IntField(db_index=True)
    flow = fields.CharField(max_length=64)
    state = fields.CharField(max_length=128)
    at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "conversation_step"


class SendAdmission(Model):
    """An outbound message the send limits let through at the outbox's claim (bot/costs/guard.py),
    once per message: a customer's admissions since the shop's midnight are its daily cap's count, and
    the customers of `initiated` ones (templates the shop started, the window closed) in the rolling 24
    hours are what Meta's messaging limit caps. Counted here rather than from sends, so two processes
    claiming one customer's rows at once cannot both let the last one through."""

    id = fields.BigIntField(primary_key=True)
    message_id = fields.BigIntField(unique=True)
    customer_id = fields.IntField()
    initiated = fields.BooleanField(default=False)
    at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "send_admission"
        indexes = (Index(fields=("customer_id", "at")),)


class AccountState(Model):
    """What Meta last told us about the account (the messaging limit's tier), by key."""

    key = fields.CharField(max_length=64, primary_key=True)
    value: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "account_state"


class ConsentScope(StrEnum):
    ALL = "all"
    """Every message the shop starts (status notices, reminders, marketing): the STOP words."""
    MARKETING = "marketing"
    """Marketing only: Meta's user_preferences webhook and error 131050."""


class ConsentAction(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"


class ConsentSource(StrEnum):
    KEYWORD = "keyword"
    USER_PREFERENCES = "user_preferences"
    ERROR_131050 = "error_131050"


class ConsentChange(Model):
    """The consent ledger: every opt-out and opt-in a customer gave, with its time and source, append
    only (bot/privacy/consent.py). The current state is on Customer (opted_out_at, marketing_opted_out_at)."""

    id = fields.BigIntField(primary_key=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="consent_changes", on_delete=fields.CASCADE
    )
    customer_id: int
    scope = fields.CharEnumField(ConsentScope, max_length=16)
    action = fields.CharEnumField(ConsentAction, max_length=8)
    source = fields.CharEnumField(ConsentSource, max_length=24)
    detail = fields.CharField(max_length=CONSENT_DETAIL_LENGTH, null=True)
    """What said so: the word, Meta's description, the failed message's wamid."""
    at = fields.DatetimeField()

    class Meta:
        table = "consent_change"
        indexes = (Index(fields=("customer_id", "at")),)


class DataKey(Model):
    """A customer's data key, wrapped (AES-GCM) under master key `master_key_id` (bot/db/keystore.py).

    Deleting the row is crypto-shredding: everything encrypted under the key is unreadable everywhere,
    backups included. No foreign key: the key is the customer's, whatever happens to their rows."""

    customer_id = fields.IntField(primary_key=True, generated=False)
    wrapped_key = fields.TextField()
    """nonce + ciphertext + tag, base64."""
    master_key_id = fields.CharField(max_length=16, db_index=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "data_key"
