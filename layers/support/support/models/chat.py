"""Live chat sessions and their messages."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address
from uuid import UUID

from pydantic import Field

from support.models.base import Record
from support.models.tickets import SenderType


class ChatStatus(StrEnum):
    ACTIVE = "active"
    WAITING = "waiting"
    TRANSFERRED = "transferred"
    CLOSED = "closed"


class ChatSession(Record):
    id: UUID
    user_id: UUID
    visitor_id: str
    visitor_name: str | None
    visitor_email: str | None
    status: ChatStatus
    assigned_agent_id: UUID | None
    transferred_from_agent_id: UUID | None
    visitor_ip: IPv4Address | IPv6Address | None
    visitor_browser: str | None
    session_start_time: datetime
    session_end_time: datetime | None
    total_messages: int
    message_count: int
    duration: int | None = Field(description="seconds")
    rating: int | None
    feedback: str | None
    created_at: datetime
    updated_at: datetime


class ChatMessage(Record):
    id: UUID
    session_id: UUID
    user_id: UUID
    sender_type: SenderType
    sender_name: str | None
    message: str
    attachment_url: str | None
    attachment_type: str | None
    is_read: bool
    read_at: datetime | None
    created_at: datetime
