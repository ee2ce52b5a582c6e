"""Tickets, their conversation threads and their feedback."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import Field, StringConstraints

from support.models.base import (
    ApiModel,
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


class SenderType(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    SYSTEM = "system"


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
    search: SearchText | None = None
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


class Conversation(Record):
    id: UUID
    ticket_id: UUID
    user_id: UUID
    sender_type: SenderType
    sender_name: str
    sender_email: str | None
    message: str
    is_internal: bool
    attachments: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime


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
