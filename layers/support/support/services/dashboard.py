"""getSupportDashboardData and the daily analytics rows.

Counts and averages come from the running totals the database keeps (sql/0007, sql/0010), so the dashboard
costs the same at a thousand tickets as at a million. The week's trends read the past six days from the daily
rollup (support_analytics, sql/0012) and only today from the rows, along the creation-time indexes; a past day
not rolled up yet is read from the rows too, so no day is missing. Days are UTC days.

Its statements read one REPEATABLE READ READ ONLY snapshot, so its figures agree with each other (a ticket
created meanwhile is in every figure or in none). Averages follow support.averages (half away from zero).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from support.auth import Principal
from support.averages import mean_score, mean_seconds
from support.db import read_snapshot, tenant_transaction
from support.db.connection import Cursor
from support.errors import InvalidInput
from support.models.agents import Agent, AgentStatus
from support.models.analytics import SupportAnalytics
from support.models.dashboard import DailyCount, DailyScore, SupportDashboard
from support.models.tickets import Ticket, TicketPriority, TicketStatus

OPEN = {TicketStatus.OPEN, TicketStatus.IN_PROGRESS, TicketStatus.WAITING_CUSTOMER}
RESOLVED = {TicketStatus.RESOLVED, TicketStatus.CLOSED}
TREND_DAYS = 7
MAX_ANALYTICS_DAYS = 366
UNCATEGORIZED = "uncategorized"


def _one(cur: Cursor, query: str, params: tuple[Any, ...] | dict[str, Any]) -> dict[str, Any]:
    cur.execute(query.encode(), params)
    row = cur.fetchone()
    assert row is not None  # aggregate queries always return a row
    return row


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


def _trend_days(today: date) -> list[date]:
    return [today - timedelta(days=offset) for offset in range(TREND_DAYS - 1, -1, -1)]


# Every figure of the dashboard in one call of sql/0017's dashboard_figures, in the dashboard's snapshot: the
# running totals summed by status, by priority, by category and overall, the agents by status, today's counts,
# the five newest tickets, the five top agents, the past six days' rollup rows and today's feedback. Maps and
# lists come back as JSON. A function, so that its plan is made once per connection, not on every call.
_FIGURES = "SELECT * FROM public.dashboard_figures(%(t)s, %(midnight)s, %(week)s, %(today)s)"


def _trends(
    cur: Cursor, principal: Principal, today: date, figures: dict[str, Any]
) -> tuple[dict[date, int], dict[date, float | None]]:
    """The week's ticket volume and satisfaction by day: the past six days from their support_analytics rows
    (written by the daily rollup), today, and any past day not rolled up yet, from the rows (so no day is ever
    missing). Read in the dashboard's snapshot, so that today's count is the one the other figures say."""
    tenant = principal.tenant_id
    days = _trend_days(today)
    volume: dict[date, int] = {today: figures["tickets_today"]}
    satisfaction: dict[date, float | None] = {
        today: mean_score(figures["rating_total_today"], figures["ratings_today"])
    }
    for row in figures["rollup_days"]:
        day = date.fromisoformat(row["analytics_date"])
        volume[day] = row["total_tickets_created"]
        score = row["customer_satisfaction_score"]
        satisfaction[day] = None if score is None else float(score)
    live = [day for day in days if day not in volume]  # past days without a rollup row
    if live:
        lo, hi = _midnight(live[0]), _midnight(today)
        cur.execute(
            "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM support_tickets"
            " WHERE user_id = %s AND created_at >= %s AND created_at < %s GROUP BY 1",
            (tenant, lo, hi),
        )
        counts = {row["day"]: row["n"] for row in cur.fetchall()}
        cur.execute(
            "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, sum(rating) AS total, count(*) AS n"
            " FROM ticket_feedback WHERE user_id = %s AND created_at >= %s AND created_at < %s GROUP BY 1",
            (tenant, lo, hi),
        )
        scores = {row["day"]: mean_score(row["total"], row["n"]) for row in cur.fetchall()}
        volume |= {day: counts.get(day, 0) for day in live}
        satisfaction |= {day: scores.get(day) for day in live}
    return volume, satisfaction


def get_dashboard(principal: Principal, *, now: datetime | None = None) -> SupportDashboard:
    tenant = principal.tenant_id
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    midnight = _midnight(today)

    def read(cur: Cursor) -> tuple[dict[str, Any], dict[date, int], dict[date, float | None]]:
        figures = _one(
            cur, _FIGURES, {"t": tenant, "midnight": midnight, "week": _trend_days(today)[0], "today": today}
        )
        return figures, *_trends(cur, principal, today, figures)

    figures, volume, satisfaction = read_snapshot(tenant, read)
    ticket_groups = figures["ticket_groups"]
    chat_groups = figures["chat_groups"]
    agents_by_status = figures["agents_by_status"]

    # grouping(status, priority, category): 3 = by status, 5 = by priority, 6 = by category, 7 = all of them
    by_status = dict.fromkeys(TicketStatus, 0)
    by_priority = dict.fromkeys(TicketPriority, 0)
    by_category: dict[str, int] = {}
    sums = {"resolution_seconds": 0, "resolution_count": 0, "first_response_seconds": 0, "first_response_count": 0}
    for group in ticket_groups:
        match group["level"]:
            case 3:
                by_status[group["status"]] += group["tickets"]
            case 5:
                by_priority[group["priority"]] += group["tickets"]
            case 6:
                category = group["category"] or UNCATEGORIZED
                by_category[category] = by_category.get(category, 0) + group["tickets"]
            case _:
                sums = {key: group[key] for key in sums}
    chats = {row["status"]: row for row in chat_groups}
    days = _trend_days(today)
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
        tickets_created_today=figures["tickets_today"],
        chats_started_today=figures["chats_today"],
        recent_tickets=[Ticket.model_validate(row) for row in figures["recent_tickets"]],
        top_agents=[Agent.model_validate(row) for row in figures["top_agents"]],
        tickets_by_status={str(k): v for k, v in by_status.items()},
        tickets_by_priority={str(k): v for k, v in by_priority.items()},
        tickets_by_category=dict(sorted(by_category.items())),
        agent_availability={str(s): agents_by_status.get(s, 0) for s in AgentStatus},
        satisfaction_trend_last_week=[DailyScore(date=d, score=satisfaction.get(d)) for d in days],
        ticket_volume_trend_last_week=[DailyCount(date=d, count=volume.get(d, 0)) for d in days],
    )


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
                tickets_by_priority, tickets_by_category, chats_by_agent, first_response_histogram,
                resolution_histogram, chat_duration_histogram, first_response_p50, first_response_p90,
                resolution_p50, resolution_p90, chat_duration_p50, chat_duration_p90, first_response_count,
                first_response_seconds, resolution_count, resolution_seconds, chat_duration_count,
                chat_duration_seconds, agent_response_count, agent_response_seconds, rating_count, rating_sum,
                created_at
            FROM support_analytics WHERE user_id = %s AND analytics_date BETWEEN %s AND %s
            ORDER BY analytics_date""",
            (principal.tenant_id, start, end),
        )
        return [SupportAnalytics.model_validate(row) for row in cur.fetchall()]
