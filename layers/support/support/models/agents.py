"""Support agents."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import Field, StringConstraints

from support.models.base import ApiModel, Email, Name, NoNul, Record


class AgentStatus(StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    AWAY = "away"
    OFFLINE = "offline"


Skill = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50), NoNul]
Department = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoNul]


class AgentCreate(ApiModel):
    agent_name: Name
    agent_email: Email
    department: Department | None = None
    skills: list[Skill] = Field(default_factory=list, max_length=50)
    status: AgentStatus = AgentStatus.OFFLINE
    max_concurrent_chats: int = Field(default=5, ge=1, le=50)


class AgentUpdate(ApiModel):
    """Only the fields present are changed."""

    agent_name: Name | None = None
    agent_email: Email | None = None
    department: Department | None = None
    skills: list[Skill] | None = Field(default=None, max_length=50)
    max_concurrent_chats: int | None = Field(default=None, ge=1, le=50)


class AgentStatusUpdate(ApiModel):
    status: AgentStatus


class Agent(Record):
    id: UUID
    user_id: UUID
    agent_name: str
    agent_email: str
    department: str | None
    skills: list[str]
    status: AgentStatus
    current_chats: int
    max_concurrent_chats: int
    total_tickets_resolved: int
    average_resolution_time: int | None = Field(description="seconds")
    average_rating: float | None
    response_time_average: int | None = Field(description="seconds")
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime | None
