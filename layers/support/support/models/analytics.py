"""Daily aggregated support KPIs, one row per tenant and day."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from pydantic import Field

from support.models.base import Record


class SupportAnalytics(Record):
    id: UUID
    user_id: UUID
    analytics_date: date
    total_tickets_created: int
    total_tickets_resolved: int
    total_chats_started: int
    total_chats_completed: int
    average_resolution_time: int | None = Field(description="seconds")
    average_first_response_time: int | None = Field(description="seconds")
    average_chat_duration: int | None = Field(description="seconds")
    customer_satisfaction_score: float | None
    agent_response_time: int | None = Field(description="seconds")
    tickets_by_status: dict[str, int]
    tickets_by_priority: dict[str, int]
    tickets_by_category: dict[str, int]
    chats_by_agent: dict[str, int]
    created_at: datetime
