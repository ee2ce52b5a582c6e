"""Daily aggregated support KPIs, one row per tenant and day, and the summary of a range of them."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from pydantic import Field

from support.models.base import Record
from support.models.dashboard import SlaCompliance


class AgentDayLoad(Record):
    """One agent's chats over a day's UTC hours (issue 18): index h of each list is the hour h:00-h:59 UTC."""

    peak: list[int] = Field(description="per UTC hour, the most chats the agent held at once (24 values)")
    seconds: list[int] = Field(
        description="per UTC hour, the chat-seconds the agent held (24 values; / 3600 = the hour's mean concurrency)"
    )


class AgentLoadSummary(Record):
    """One agent's concurrent chats over a range, by UTC hour of the day (issue 18)."""

    peak_by_hour: list[int] = Field(description="per UTC hour (24 values), the most chats held at once on any day")
    average_by_hour: list[float] = Field(
        description="per UTC hour (24 values), the mean number of chats held at once over the range's days (2 decimals)"
    )
    peak: int = Field(description="the most chats held at once in the range")
    average: float = Field(description="the mean number of chats held at once over the range's days (2 decimals)")


class AnalyticsFigures(Record):
    """A day's figures (support.services.analytics says what each counts)."""

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
    tickets_by_channel: dict[str, int] = Field(description="tickets created, by channel (sql/0025)")
    sla_compliance: dict[str, int] = Field(
        default_factory=dict,
        description='SLA targets met or missed in the window (sql/0033), additive counts: "<priority>.<target>.'
        'measured", ".met" (in time) and ".business_seconds" (the SLA clock, business hours less the pauses, beside '
        "the wall-clock durations), target first_response or resolution",
    )
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
    # The counts and sums behind the averages (sql/0013).
    first_response_count: int = Field(description="tickets first answered that day")
    first_response_seconds: int = Field(description="the sum of their first response times")
    resolution_count: int = Field(description="tickets resolved that day, with a resolution time")
    resolution_seconds: int = Field(description="the sum of their resolution times")
    chat_duration_count: int = Field(description="sessions ended that day, with a duration")
    chat_duration_seconds: int = Field(description="the sum of their durations")
    agent_response_count: int = Field(description="sessions started that day that got an agent message")
    agent_response_seconds: int = Field(description="the sum of their waits for it")
    rating_count: int = Field(description="ticket feedback given that day")
    rating_sum: int = Field(description="the sum of its ratings")
    # ==== issue 18 (an), sql/0035: chat abandonment, peak hours, the agents' concurrent load (UTC) ====
    chats_abandoned: int = Field(
        description="sessions ended that day by their visitor before any agent message (a chat is answered by "
        "an agent message sent before it ended)"
    )
    chat_abandon_rate: float | None = Field(
        description="chatsAbandoned / totalChatsCompleted (4 decimals); null with no session ended that day"
    )
    abandoned_wait_seconds: int = Field(description="the sum of the abandoned sessions' waits (start to end)")
    abandoned_wait_p50_seconds: int | None = Field(description="seconds, exact, over the abandoned sessions")
    abandoned_wait_p90_seconds: int | None = Field(description="seconds, exact")
    abandoned_wait_histogram: dict[str, int] = Field(description="the abandoned waits, in the buckets above")
    tickets_by_hour: dict[str, int] = Field(description='tickets created, by UTC hour {"0".."23": n}, sparse')
    chats_by_hour: dict[str, int] = Field(description='sessions started, by UTC hour {"0".."23": n}, sparse')
    tickets_by_weekday: dict[str, int] = Field(
        description='tickets created, by ISO weekday of the UTC day {"1" (Monday) .. "7" (Sunday): n}'
    )
    chats_by_weekday: dict[str, int] = Field(description="sessions started, by ISO weekday of the UTC day")
    agent_concurrent_load: dict[str, AgentDayLoad] = Field(
        description="{agentId: its chats by UTC hour}, the agents who held a chat that day"
    )


class SupportAnalytics(AnalyticsFigures):
    id: UUID
    user_id: UUID
    analytics_date: date
    created_at: datetime


class AnalyticsToday(AnalyticsFigures):
    analytics_date: date = Field(description="today (UTC): its figures so far, from the rows, exact percentiles")


class AnalyticsSummary(Record):
    """A range of days: totals, means weighted by their counts, and percentiles of the merged distributions."""

    from_date: date = Field(alias="from")
    to_date: date = Field(alias="to")
    days: int = Field(description="the days counted: from `from` to the earlier of `to` and today (UTC)")
    rolled_up_days: int = Field(description="of those, the days read from their stored rollup rows")
    live_days: list[date] = Field(
        description="of those, the days computed from the raw rows: today, and any past day not rolled up yet "
        "(so no day is missing)"
    )
    total_tickets_created: int
    total_tickets_resolved: int
    total_chats_started: int
    total_chats_completed: int
    average_resolution_time: int | None = Field(description="seconds: the range's resolution seconds / count")
    average_first_response_time: int | None = Field(description="seconds, weighted by the days' counts")
    average_chat_duration: int | None = Field(description="seconds, weighted by the days' counts")
    agent_response_time: int | None = Field(description="seconds, weighted by the days' counts")
    customer_satisfaction_score: float | None = Field(description="the mean of every rating given in the range")
    first_response_count: int
    resolution_count: int
    chat_duration_count: int
    agent_response_count: int
    rating_count: int
    first_response_p50: int | None = Field(description="seconds, from the merged histogram (see percentileError)")
    first_response_p90: int | None = Field(description="seconds")
    resolution_p50: int | None = Field(description="seconds")
    resolution_p90: int | None = Field(description="seconds")
    chat_duration_p50: int | None = Field(description="seconds")
    chat_duration_p90: int | None = Field(description="seconds")
    percentile_error: float = Field(
        description="each p50 and p90 is within this fraction of the exact percentile of the range's values "
        "(percentile_disc), plus half a second of rounding to whole seconds"
    )
    tickets_by_status: dict[str, int]
    tickets_by_priority: dict[str, int]
    tickets_by_category: dict[str, int]
    tickets_by_channel: dict[str, int] = Field(description="tickets created, by channel (sql/0025)")
    chats_by_agent: dict[str, int] | None = Field(
        description="{agentId: sessions that agent ended in the range}, with byAgent=true only (null otherwise)"
    )
    first_response_histogram: dict[str, int]
    resolution_histogram: dict[str, int]
    chat_duration_histogram: dict[str, int]
    # ==== issue 18 (an): chat abandonment, peak hours, the agents' concurrent load (UTC hours and days) ====
    chats_abandoned: int = Field(description="sessions ended in the range by their visitor before any agent message")
    chat_abandon_rate: float | None = Field(
        description="chatsAbandoned / totalChatsCompleted over the range (4 decimals); null with none ended"
    )
    abandoned_wait_p50_seconds: int | None = Field(
        description="the abandoned sessions' wait (start to end), from the merged histogram (see percentileError)"
    )
    abandoned_wait_p90_seconds: int | None = Field(description="seconds")
    abandoned_wait_histogram: dict[str, int]
    tickets_by_hour: dict[str, int] = Field(description='tickets created, by UTC hour: every hour "0".."23"')
    chats_by_hour: dict[str, int] = Field(description='sessions started, by UTC hour: every hour "0".."23"')
    tickets_by_weekday: dict[str, int] = Field(
        description='tickets created, by ISO weekday of the UTC day: every day "1" (Monday) .. "7" (Sunday)'
    )
    chats_by_weekday: dict[str, int] = Field(description="sessions started, by ISO weekday of the UTC day")
    agent_concurrent_load: dict[str, AgentLoadSummary] | None = Field(
        description="{agentId: concurrent chats by UTC hour over the range's days}, with byAgent=true only "
        "(null otherwise)"
    )
    today: AnalyticsToday | None = Field(
        description="today's partial figures (already in the totals above), when the range includes today"
    )
    sla_compliance: dict[str, SlaCompliance] = Field(
        default_factory=dict,
        description="per priority: the SLA targets met or missed in the range, the share in time, and the mean SLA "
        "clock in business seconds (sql/0033)",
    )
