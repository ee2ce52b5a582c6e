"""getSupportDashboardData and the daily analytics rows.

Counts and averages come from the running totals the database keeps (sql/0007, sql/0010), so the dashboard
costs the same at a thousand tickets as at a million. The week's trends read seven rows whatever the volume: a
past day from its rollup row (support_analytics, sql/0012) when the daily job has written one, else, like today,
from the running totals per UTC day (sql/0021: tickets created, ratings given). No day is missing, and none is
counted from the tickets themselves, whether the job has run or not.

"Today" is one UTC day, [midnight, next midnight), of one clock: the database's, which stamps created_at (or the
caller's `now`, a test's). Today's figures are the trend's last day, so they agree at every hour: a ticket created
at 00:00:01 is today's, never yesterday's "today". Its statements read one REPEATABLE READ READ ONLY snapshot, so
its figures agree with each other (a ticket created meanwhile is in every figure or in none). Averages follow
support.averages (half away from zero).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from support.auth import Principal
from support.averages import mean_score, mean_seconds
from support.db import read_snapshot, tenant_transaction
from support.db.connection import Cursor
from support.errors import InvalidInput
from support.models.agents import Agent, AgentStatus
from support.models.analytics import SupportAnalytics
from support.models.dashboard import DailyCount, DailyScore, SlaCompliance, SlaTargetCompliance, SupportDashboard
from support.models.tickets import Ticket, TicketChannel, TicketPriority, TicketStatus

OPEN = {TicketStatus.OPEN, TicketStatus.IN_PROGRESS, TicketStatus.WAITING_CUSTOMER}
RESOLVED = {TicketStatus.RESOLVED, TicketStatus.CLOSED}
MAX_ANALYTICS_DAYS = 366
UNCATEGORIZED = "uncategorized"

# Every figure of the dashboard in one call of sql/0021's dashboard_figures, in the dashboard's snapshot: its day,
# the running totals summed by status, by priority, by category and overall, the agents by status, today's chats,
# the five newest tickets, the five top agents and the week (a rollup row or the day's running totals per day).
# Maps and lists come back as JSON. A function, so that its plan is made once per connection, not on every call.
_FIGURES = "SELECT * FROM public.dashboard_figures(%(t)s, %(now)s)"


def _day_score(day: dict[str, Any]) -> float | None:
    """A day's satisfaction: its rollup row's score, or the mean of the ratings given that day."""
    if day["rolled_up"]:
        return None if day["score"] is None else float(day["score"])
    return mean_score(day["rating_sum"], day["ratings"])


def get_dashboard(principal: Principal, *, now: datetime | None = None) -> SupportDashboard:
    """The dashboard of `now`'s UTC day (None: the database's clock, the one that stamps the rows)."""

    def read(cur: Cursor) -> dict[str, Any]:
        cur.execute(_FIGURES.encode(), {"t": principal.tenant_id, "now": now})
        row = cur.fetchone()
        assert row is not None  # a function of aggregates: always one row
        return row

    figures = read_snapshot(principal.tenant_id, read)
    ticket_groups = figures["ticket_groups"]
    chat_groups = figures["chat_groups"]
    agents_by_status = figures["agents_by_status"]
    week = [(date.fromisoformat(day["day"]), day) for day in figures["week"]]

    # grouping(status, priority, category, channel): 7 = by status, 11 = by priority, 13 = by category,
    # 14 = by channel, 15 = all of them
    by_status = dict.fromkeys(TicketStatus, 0)
    by_priority = dict.fromkeys(TicketPriority, 0)
    by_channel = dict.fromkeys(TicketChannel, 0)
    by_category: dict[str, int] = {}
    sums = {"resolution_seconds": 0, "resolution_count": 0, "first_response_seconds": 0, "first_response_count": 0}
    for group in ticket_groups:
        match group["level"]:
            case 7:
                by_status[group["status"]] += group["tickets"]
            case 11:
                by_priority[group["priority"]] += group["tickets"]
            case 13:
                category = group["category"] or UNCATEGORIZED
                by_category[category] = by_category.get(category, 0) + group["tickets"]
            case 14:
                by_channel[group["channel"]] += group["tickets"]
            case _:
                sums = {key: group[key] for key in sums}
    chats = {row["status"]: row for row in chat_groups}
    return SupportDashboard(
        total_tickets=sum(by_status.values()),
        open_tickets=sum(by_status[s] for s in OPEN),
        resolved_tickets=sum(by_status[s] for s in RESOLVED),
        total_chats=sum(row["sessions"] for row in chat_groups),
        active_chats=chats["active"]["sessions"] if "active" in chats else 0,
        total_agents=sum(agents_by_status.values()),
        available_agents=agents_by_status.get(AgentStatus.AVAILABLE, 0),
        average_resolution_time=mean_seconds(sums["resolution_seconds"], sums["resolution_count"]),
        average_first_response_time=mean_seconds(sums["first_response_seconds"], sums["first_response_count"]),
        customer_satisfaction_score=mean_score(figures["rating_total"], figures["ratings"]),
        average_chat_duration=mean_seconds(
            sum(row["duration_seconds"] for row in chat_groups), sum(row["duration_count"] for row in chat_groups)
        ),
        tickets_created_today=week[-1][1]["tickets"],  # the trend's last day: the same figure, by construction
        chats_started_today=figures["chats_today"],
        recent_tickets=[Ticket.model_validate(row) for row in figures["recent_tickets"]],
        top_agents=[Agent.model_validate(row) for row in figures["top_agents"]],
        tickets_by_status={str(k): v for k, v in by_status.items()},
        tickets_by_priority={str(k): v for k, v in by_priority.items()},
        tickets_by_category=dict(sorted(by_category.items())),
        tickets_by_channel={str(k): v for k, v in by_channel.items()},
        agent_availability={str(s): agents_by_status.get(s, 0) for s in AgentStatus},
        satisfaction_trend_last_week=[DailyScore(date=d, score=_day_score(day)) for d, day in week],
        ticket_volume_trend_last_week=[DailyCount(date=d, count=day["tickets"]) for d, day in week],
        sla_compliance=sla_compliance(figures["sla"]),
    )


def _target_compliance(measured: int, met: int, seconds: int) -> SlaTargetCompliance:
    return SlaTargetCompliance(
        measured=measured,
        within_target=met,
        percent=mean_score(met * 100, measured),  # two decimals, half away from zero (support.averages)
        average_business_seconds=mean_seconds(seconds, measured),
    )


def sla_compliance(rows: list[dict[str, Any]]) -> dict[str, SlaCompliance]:
    """SLA compliance per priority, every priority present (zeros where none), from ticket_sla_totals' rows."""
    found = {row["priority"]: row for row in rows}
    empty = dict.fromkeys(
        (
            "first_response_measured",
            "first_response_met",
            "first_response_business_seconds",
            "resolution_measured",
            "resolution_met",
            "resolution_business_seconds",
        ),
        0,
    )
    result = {}
    for priority in TicketPriority:
        row = found.get(priority.value, empty)
        result[priority.value] = SlaCompliance(
            first_response=_target_compliance(
                row["first_response_measured"], row["first_response_met"], row["first_response_business_seconds"]
            ),
            resolution=_target_compliance(
                row["resolution_measured"], row["resolution_met"], row["resolution_business_seconds"]
            ),
        )
    return result


def check_range(start: date, end: date) -> None:
    """A range of days the analytics reads accept: `to` not before `from`, at most MAX_ANALYTICS_DAYS days."""
    if end < start:
        raise InvalidInput("`to` is before `from`", details=[{"field": "query.to", "message": "before from"}])
    if (end - start).days + 1 > MAX_ANALYTICS_DAYS:
        raise InvalidInput(
            f"a range covers at most {MAX_ANALYTICS_DAYS} days",
            details=[{"field": "query.to", "message": f"more than {MAX_ANALYTICS_DAYS} days after from"}],
        )


def list_analytics(principal: Principal, start: date, end: date) -> list[SupportAnalytics]:
    """The tenant's daily rollup rows from `start` to `end`, both included, oldest first."""
    check_range(start, end)
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            """SELECT id, user_id, analytics_date, total_tickets_created, total_tickets_resolved,
                total_chats_started, total_chats_completed, average_resolution_time, average_first_response_time,
                average_chat_duration, customer_satisfaction_score, agent_response_time, tickets_by_status,
                tickets_by_priority, tickets_by_category, tickets_by_channel, chats_by_agent, first_response_histogram,
                resolution_histogram, chat_duration_histogram, first_response_p50, first_response_p90,
                resolution_p50, resolution_p90, chat_duration_p50, chat_duration_p90, first_response_count,
                first_response_seconds, resolution_count, resolution_seconds, chat_duration_count,
                chat_duration_seconds, agent_response_count, agent_response_seconds, rating_count, rating_sum,
                sla_compliance,
                chats_abandoned, chat_abandon_rate, abandoned_wait_seconds, abandoned_wait_p50_seconds,
                abandoned_wait_p90_seconds, abandoned_wait_histogram, tickets_by_hour, chats_by_hour,
                tickets_by_weekday, chats_by_weekday, agent_concurrent_load,
                created_at
            FROM support_analytics WHERE user_id = %s AND analytics_date BETWEEN %s AND %s
            ORDER BY analytics_date""",
            (principal.tenant_id, start, end),
        )
        return [SupportAnalytics.model_validate(row) for row in cur.fetchall()]
