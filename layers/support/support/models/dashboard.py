"""The support dashboard (the seed's SupportDashboardData) and the analytics range query."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from support.models.agents import Agent
from support.models.base import Record
from support.models.tickets import Ticket


class DailyCount(Record):
    date: date
    count: int


class DailyScore(Record):
    date: date
    score: float | None = Field(description="mean rating (1-5) of the feedback given that day; null if none")


class SlaTargetCompliance(Record):
    """One kind of SLA target of one priority: how many tickets met or missed it, how many of them in time."""

    measured: int = Field(
        description="tickets whose target was met or missed (a due time, and the reply or resolution)"
    )
    within_target: int = Field(description="of those, the ones in time")
    percent: float | None = Field(description="within_target / measured, in %, two decimals; null when none")
    average_business_seconds: int | None = Field(
        description="the mean SLA clock at the reply or resolution: business hours less the pauses (beside the "
        "wall-clock averageFirstResponseTime / averageResolutionTime)"
    )


class SlaCompliance(Record):
    first_response: SlaTargetCompliance
    resolution: SlaTargetCompliance


class SupportDashboard(Record):
    total_tickets: int
    open_tickets: int = Field(description="open, in_progress or waiting_customer")
    resolved_tickets: int = Field(description="resolved or closed")
    total_chats: int
    active_chats: int = Field(description="sessions with status active")
    total_agents: int
    available_agents: int
    average_resolution_time: int | None = Field(description="seconds, over tickets with a resolution time")
    average_first_response_time: int | None = Field(description="seconds, over tickets with a first response")
    customer_satisfaction_score: float | None = Field(description="mean ticket feedback rating, 1-5")
    average_chat_duration: int | None = Field(description="seconds, over ended chats")
    tickets_created_today: int = Field(description="since 00:00 UTC")
    chats_started_today: int = Field(description="since 00:00 UTC")
    recent_tickets: list[Ticket] = Field(description="the 5 newest tickets")
    top_agents: list[Agent] = Field(description="5 agents with the most resolved tickets, then the best rating")
    tickets_by_status: dict[str, int]
    tickets_by_priority: dict[str, int]
    tickets_by_category: dict[str, int] = Field(description='tickets without a category count as "uncategorized"')
    tickets_by_channel: dict[str, int] = Field(description="every channel, 0 included (api, email, web_form, ...)")
    agent_availability: dict[str, int]
    satisfaction_trend_last_week: list[DailyScore] = Field(description="the last 7 UTC days, oldest first")
    ticket_volume_trend_last_week: list[DailyCount] = Field(description="the last 7 UTC days, oldest first")
    sla_compliance: dict[str, SlaCompliance] = Field(
        default_factory=dict, description="per priority (low, medium, high, urgent): SLA targets met in time"
    )
