"""Tickets, their conversation threads and their feedback."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import BeforeValidator, Field, StringConstraints, model_validator

from support.models.base import (
    ApiModel,
    AttachmentIds,
    AttachmentUrl,
    Category,
    Email,
    FeedbackText,
    JsonObject,
    MediaType,
    MessageText,
    Name,
    NoNul,
    OptionalLongText,
    Phone,
    Record,
    SearchText,
)
from support.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE


class TicketStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    WAITING_CUSTOMER = "waiting_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"


class TicketPriority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


class SlaState(StrEnum):
    """Where a ticket stands against its SLA targets (support.services.sla): `breached` once a target's due time
    passed before it was met, `met` when resolved with none breached, `at_risk` once 80 % of a pending target's
    time is used, else `ok`."""

    OK = "ok"
    AT_RISK = "at_risk"
    BREACHED = "breached"
    MET = "met"


class SenderType(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    SYSTEM = "system"


class TicketChannel(StrEnum):
    """How the ticket came in (sql/0025). Existing tickets, and staff's by default, are `api`."""

    API = "api"
    EMAIL = "email"
    WEB_FORM = "web_form"
    CHAT = "chat"
    PHONE = "phone"
    SOCIAL = "social"


class StaffChannel(StrEnum):
    """The channels staff may give a ticket they create: `phone` for a call taken, `email` for an email forwarded by
    hand. `chat`, `web_form` and `social` are set by those paths only (a chat made into a ticket, the widget's form,
    a connector): a client that sends one gets 422, so a figure by channel counts what really came in that way."""

    API = "api"
    PHONE = "phone"
    EMAIL = "email"


class CallDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class ConversationKind(StrEnum):
    MESSAGE = "message"
    CALL = "call"


# A reference as people write it: `#1042` or `1042` (search text, stripped).
REFERENCE_TEXT = re.compile(r"^#?\s*([1-9][0-9]{0,17})$")
MAX_CALL_SECONDS = 86_400


def reference_number(text: str) -> int | None:
    """The number of a reference written as `#1042` or `1042`, else None."""
    match = REFERENCE_TEXT.match(text.strip())
    return int(match.group(1)) if match else None


def _reference_text(value: Any) -> Any:
    return f"#{value}" if isinstance(value, int) else value


class CallCreate(ApiModel):
    """A phone call to log on a ticket. The agent is the caller's own (their token's agent), never named here."""

    direction: CallDirection
    caller_number: Phone | None = None
    duration_seconds: int = Field(ge=0, le=MAX_CALL_SECONDS)
    notes: MessageText | None = None


Subject = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), NoNul]


class TicketCreate(ApiModel):
    customer_name: Name
    customer_email: Email
    customer_phone: Phone | None = None
    subject: Subject
    description: OptionalLongText | None = None
    category: Category | None = None
    priority: TicketPriority = TicketPriority.MEDIUM
    custom_fields: JsonObject = Field(default_factory=dict)
    channel: StaffChannel = StaffChannel.API
    call: CallCreate | None = Field(default=None, description="with `channel: phone` only: the call, logged with it")

    @model_validator(mode="after")
    def _call_only_by_phone(self) -> TicketCreate:
        if self.call is not None and self.channel is not StaffChannel.PHONE:
            raise ValueError("`call` is given only with `channel: phone`")
        return self


class ChatTicketCreate(ApiModel):
    """A ticket made from a chat ("Make a ticket"). Both optional: the subject defaults to the visitor's first
    words, the email to the visitor's; a ticket always has a customer email, so a chat whose visitor gave none needs
    `customerEmail`."""

    subject: Subject | None = None
    customer_email: Email | None = Field(
        default=None, description="the customer's email; default the visitor's (required when the visitor gave none)"
    )


class TicketUpdate(ApiModel):
    """Only the fields present are changed; `assignedAgentId: null` unassigns."""

    status: TicketStatus | None = None
    priority: TicketPriority | None = None
    assigned_agent_id: UUID | None = None
    category: Category | None = None
    custom_fields: JsonObject | None = None


class TicketQuery(ApiModel):
    status: TicketStatus | None = None
    priority: TicketPriority | None = None
    assigned_agent_id: UUID | None = None
    category: Category | None = None
    channel: TicketChannel | None = None
    search: SearchText | None = None
    sla_state: SlaState | None = None
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = None


class AssignRequest(ApiModel):
    agent_id: UUID


class Ticket(Record):
    id: UUID
    user_id: UUID
    customer_name: str
    customer_email: str
    customer_phone: str | None
    subject: str
    description: str | None
    category: str | None
    priority: TicketPriority
    status: TicketStatus
    assigned_agent_id: UUID | None
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    first_response_time: int | None = Field(description="seconds from creation to the first agent reply")
    resolution_time: int | None = Field(description="seconds from creation to resolution")
    custom_fields: dict[str, Any]
    contact_id: UUID | None = Field(
        default=None, description="the customer's contact (GET /api/support/contacts/{contactId}); null until linked"
    )
    channel: TicketChannel
    reference: Annotated[str | None, BeforeValidator(_reference_text)] = Field(
        description="the tenant's short reference, `#1001` on: null only for a ticket older than references "
        "until the backfill numbers it"
    )
    first_response_due_at: datetime | None = Field(
        default=None,
        description="when the first response is due under the tenant's SLA policy (business time; moves out while "
        "the ticket is paused); null without a target",
    )
    resolution_due_at: datetime | None = Field(
        default=None, description="when resolution is due under the tenant's SLA policy; null without a target"
    )
    sla_state: SlaState = Field(default=SlaState.OK, description="ok, at_risk (80 % of a target used), breached or met")
    sla_paused_at: datetime | None = Field(
        default=None, description="since when the SLA clock stands still (a pause status, or resolved or closed)"
    )


class Attachment(ApiModel):
    """Metadata only: files go straight to S3 with a presigned URL, never through Lambda."""

    file_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255), NoNul]
    content_type: MediaType
    size_bytes: int = Field(ge=0, le=100 * 1024 * 1024)  # the seed's 100 MB per file
    url: AttachmentUrl | None = None


class ConversationCreate(ApiModel):
    sender_type: SenderType
    sender_name: Name
    sender_email: Email | None = None
    message: MessageText
    is_internal: bool = False
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)
    attachment_ids: AttachmentIds = Field(
        default_factory=list,
        description="files uploaded with POST /api/support/attachments/upload-url for this ticket: checked and "
        "claimed with the message, listed in its `attachments` as {id, fileName, contentType, sizeBytes}",
    )


class Call(Record):
    direction: CallDirection
    caller_number: str | None
    duration_seconds: int
    agent_id: UUID | None = Field(description="the agent who logged it; null once that agent is deleted")


class Conversation(Record):
    id: UUID
    ticket_id: UUID
    user_id: UUID
    kind: ConversationKind = Field(
        description="`message`, or `call` for a logged phone call (its notes are the message)"
    )
    sender_type: SenderType
    sender_name: str
    sender_email: str | None
    message: str
    is_internal: bool
    attachments: list[dict[str, Any]]
    call: Call | None = Field(default=None, description="the call's details when `kind` is `call`, else null")
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _call_from_columns(cls, row: Any) -> Any:
        """A row of ticket_conversations carries the call's fields as columns (sql/0025): nest them."""
        if isinstance(row, dict) and "call_direction" in row:
            row = dict(row)
            direction = row.pop("call_direction")
            call = {
                "direction": direction,
                "caller_number": row.pop("caller_number"),
                "duration_seconds": row.pop("call_duration_seconds"),
                "agent_id": row.pop("agent_id"),
            }
            row["call"] = call if direction is not None else None
        return row


ScoreOneToFive = Annotated[int, Field(ge=1, le=5)]


class FeedbackCreate(ApiModel):
    rating: ScoreOneToFive
    recommendation: Annotated[int, Field(ge=0, le=10)] | None = None
    feedback: FeedbackText | None = None
    resolved_issue: bool | None = None
    agent_rating: ScoreOneToFive | None = None
    response_time_rating: ScoreOneToFive | None = None
    communication_rating: ScoreOneToFive | None = None


class Feedback(Record):
    id: UUID
    ticket_id: UUID
    user_id: UUID
    rating: int
    recommendation: int | None
    feedback: str | None
    resolved_issue: bool | None
    agent_rating: int | None
    response_time_rating: int | None
    communication_rating: int | None
    created_at: datetime
