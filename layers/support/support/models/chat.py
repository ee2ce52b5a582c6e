"""Live chat sessions and their messages."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from support.models.base import (
    ApiModel,
    AttachmentIds,
    AttachmentUrl,
    Email,
    FeedbackText,
    MediaType,
    MessageText,
    Name,
    NoNul,
    Record,
)
from support.models.tickets import SenderType

VISITOR_BROWSER_MAX_CHARS = 1000  # the column's CHECK: a longer User-Agent is cut, not refused


class ChatStatus(StrEnum):
    """`waiting`: no agent yet. `active`: an agent has it (also after a transfer: `transferredFromAgentId` tells
    who had it before). `closed`: ended, for good. The API never sets `transferred`: it is kept for a hand-over
    that waits for the new agent to accept it, which this API does not have."""

    ACTIVE = "active"
    WAITING = "waiting"
    TRANSFERRED = "transferred"
    CLOSED = "closed"


VisitorId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoNul]


class ChatSessionStart(ApiModel):
    """startChatSession. The visitor's IP address and browser come from the request itself (the source IP
    API Gateway saw and the User-Agent header), never from the body: `visitorIp` here is refused."""

    visitor_id: VisitorId
    visitor_name: Name | None = None
    visitor_email: Email | None = None


class VisitorContext(BaseModel):
    """What the server itself knows about the visitor's connection (not input the client chooses)."""

    model_config = ConfigDict(frozen=True)

    ip: IPv4Address | IPv6Address | None = None
    browser: str | None = None

    @classmethod
    def from_request(cls, source_ip: str | None, user_agent: str | None) -> VisitorContext:
        try:
            ip = ip_address(source_ip) if source_ip else None
        except ValueError:
            ip = None
        browser = (user_agent or "").replace("\x00", "").strip()[:VISITOR_BROWSER_MAX_CHARS]
        return cls(ip=ip, browser=browser or None)


class ChatSessionEnd(ApiModel):
    """endChatSession takes no input: the server computes the duration from the session's start time. The
    seed's signature passes a client duration; one sent here is refused (422) rather than silently ignored."""

    duration: SkipJsonSchema[Any] = None

    @field_validator("duration", mode="before")
    @classmethod
    def _refuse_client_duration(cls, value: Any) -> Any:
        raise PydanticCustomError(
            "server_computed", "duration is computed by the server from the session's start time; do not send it"
        )


class ChatTransfer(ApiModel):
    """Hand the session to `toAgentId`. On a `waiting` session this is how an agent is first assigned."""

    to_agent_id: UUID


class ChatRating(ApiModel):
    rating: Annotated[int, Field(ge=1, le=5)]
    feedback: FeedbackText | None = None


class ChatMessageCreate(ApiModel):
    sender_type: SenderType
    sender_name: Name | None = None
    message: MessageText  # at most 50 KB of UTF-8: 413 over
    attachment_url: AttachmentUrl | None = None
    attachment_type: MediaType | None = None
    attachment_ids: AttachmentIds = Field(
        default_factory=list,
        description="files uploaded for this chat (POST /api/support/attachments/upload-url): checked and claimed "
        "with the message, listed in its `attachments`",
    )


class ChatReadRequest(ApiModel):
    """Mark the other side's messages read, up to and including this one."""

    up_to_message_id: UUID


class ChatReadReceipt(Record):
    marked_count: int = Field(description="messages newly marked read by this request")


class ChatSession(Record):
    id: UUID
    user_id: UUID
    visitor_id: str
    visitor_name: str | None
    visitor_email: str | None
    status: ChatStatus
    assigned_agent_id: UUID | None
    assigned_agent_name: str | None = Field(
        default=None, description="the assigned agent's display name (null while waiting); no other agent field"
    )
    transferred_from_agent_id: UUID | None
    visitor_ip: IPv4Address | IPv6Address | None
    visitor_browser: str | None
    session_start_time: datetime
    session_end_time: datetime | None
    total_messages: int = Field(description="every message, system messages included")
    message_count: int = Field(description="messages between the visitor and agents (customer and agent only)")
    duration: int | None = Field(description="seconds from start to end, set when the session ends")
    rating: int | None
    feedback: str | None
    created_at: datetime
    updated_at: datetime
    contact_id: UUID | None = Field(
        default=None, description="the visitor's contact (GET /api/support/contacts/{contactId}); null until linked"
    )
    ticket_id: UUID | None = Field(
        default=None,
        description="the ticket made from this chat (POST /api/support/chat/sessions/{sessionId}/ticket), else null",
    )


class ChatMessage(Record):
    id: UUID
    session_id: UUID
    user_id: UUID
    sender_type: SenderType
    sender_name: str | None
    message: str
    attachment_url: str | None
    attachment_type: str | None
    attachments: list[dict[str, Any]] = Field(
        default_factory=list,
        description="the files the message claimed: {id, fileName, contentType, sizeBytes}; read one with GET "
        "/api/support/attachments/{id}",
    )
    is_read: bool
    read_at: datetime | None
    created_at: datetime
    client_message_id: str | None = Field(
        default=None, description="the sender's own id for it (WebSocket): a resend with it stores nothing new"
    )
