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
    # The day's distributions (sql/0012): {bucket: count} over fixed logarithmic buckets (bucket 0: 0 s; bucket k:
    # [1.1^(k-1), 1.1^k) s, within 4.9% read back), and the exact p50 and p90, whole seconds.
    first_response_histogram: dict[str, int]
    resolution_histogram: dict[str, int]
    chat_duration_histogram: dict[str, int]
    first_response_p50: int | None = Field(description="seconds, over the tickets first answered that day")
    first_response_p90: int | None = Field(description="seconds")
    resolution_p50: int | None = Field(description="seconds, over the tickets resolved that day")
    resolution_p90: int | None = Field(description="seconds")
    chat_duration_p50: int | None = Field(description="seconds, over the sessions that ended that day")
    chat_duration_p90: int | None = Field(description="seconds")
    created_at: datetime
