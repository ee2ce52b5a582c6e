"""Figures recounted from a tenant's rows, apart from what the triggers keep (sql/0007, 0008, 0009).

Every recount reads the source rows through the superuser connection (no RLS, filtered by tenant here), and
every `stored_*` reads the kept figures the same way, in the same shape, so a test compares the two with one
`==`. Running-totals rows whose figures are all zero are left out of `stored_*`: a group that has emptied
counts as absent (whether such rows are deleted is the dashboard tests' concern).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from local.database import DatabaseUrls

FINISHED = ("resolved", "closed")


def half_up(total: int, count: int, places: int = 0) -> Decimal | None:
    """total / count rounded half away from zero (as PostgreSQL's round(numeric) does); None without rows."""
    if not count:
        return None
    return (Decimal(total) / Decimal(count)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def rows(db: DatabaseUrls, tenant: UUID, table: str, *, order: str = "id") -> list[dict[str, Any]]:
    with psycopg.connect(db.admin, row_factory=dict_row) as conn:
        return conn.execute(f"SELECT * FROM {table} WHERE user_id = %s ORDER BY {order}".encode(), (tenant,)).fetchall()


def _nonzero(figures: dict[Any, tuple[int, ...]]) -> dict[Any, tuple[int, ...]]:
    return {key: value for key, value in figures.items() if any(value)}


# ticket_totals: (status, priority, category, channel) -> (tickets, resolution s, count, first response s, count)
TicketGroup = tuple[str, str, str | None, str]


def recount_ticket_totals(db: DatabaseUrls, tenant: UUID) -> dict[TicketGroup, tuple[int, ...]]:
    totals: dict[TicketGroup, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for t in rows(db, tenant, "support_tickets"):
        group = totals[(t["status"], t["priority"], t["category"], t["channel"])]
        group[0] += 1
        if t["resolution_time"] is not None:
            group[1] += t["resolution_time"]
            group[2] += 1
        if t["first_response_time"] is not None:
            group[3] += t["first_response_time"]
            group[4] += 1
    return _nonzero({key: tuple(value) for key, value in totals.items()})


def stored_ticket_totals(db: DatabaseUrls, tenant: UUID) -> dict[TicketGroup, tuple[int, ...]]:
    return _nonzero(
        {
            (r["status"], r["priority"], r["category"], r["channel"]): (
                r["tickets"],
                r["resolution_seconds"],
                r["resolution_count"],
                r["first_response_seconds"],
                r["first_response_count"],
            )
            for r in rows(db, tenant, "ticket_totals", order="status, priority, category, channel")
        }
    )


# chat_totals: status -> (sessions, duration s, count)
def recount_chat_totals(db: DatabaseUrls, tenant: UUID) -> dict[str, tuple[int, ...]]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for s in rows(db, tenant, "live_chat_sessions"):
        group = totals[s["status"]]
        group[0] += 1
        if s["duration"] is not None:
            group[1] += s["duration"]
            group[2] += 1
    return _nonzero({key: tuple(value) for key, value in totals.items()})


def stored_chat_totals(db: DatabaseUrls, tenant: UUID) -> dict[str, tuple[int, ...]]:
    return _nonzero(
        {
            r["status"]: (r["sessions"], r["duration_seconds"], r["duration_count"])
            for r in rows(db, tenant, "chat_totals", order="status")
        }
    )


# feedback_totals: (ratings, rating sum)
def recount_feedback_totals(db: DatabaseUrls, tenant: UUID) -> tuple[int, int]:
    feedback = rows(db, tenant, "ticket_feedback")
    return len(feedback), sum(f["rating"] for f in feedback)


def stored_feedback_totals(db: DatabaseUrls, tenant: UUID) -> tuple[int, int]:
    stored = rows(db, tenant, "feedback_totals", order="user_id")
    return (stored[0]["ratings"], stored[0]["rating_sum"]) if stored else (0, 0)


# ticket_day_totals and feedback_day_totals (sql/0021): UTC day -> (tickets created) / (ratings, rating sum)
def recount_day_totals(db: DatabaseUrls, tenant: UUID) -> dict[str, dict[Any, tuple[int, ...]]]:
    tickets: dict[Any, list[int]] = defaultdict(lambda: [0])
    for t in rows(db, tenant, "support_tickets"):
        tickets[t["created_at"].astimezone(UTC).date()][0] += 1
    ratings: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
    for f in rows(db, tenant, "ticket_feedback"):
        day = ratings[f["created_at"].astimezone(UTC).date()]
        day[0] += 1
        day[1] += f["rating"]
    return {
        "tickets": _nonzero({key: tuple(value) for key, value in tickets.items()}),
        "feedback": _nonzero({key: tuple(value) for key, value in ratings.items()}),
    }


def stored_day_totals(db: DatabaseUrls, tenant: UUID) -> dict[str, dict[Any, tuple[int, ...]]]:
    return {
        "tickets": _nonzero({r["day"]: (r["tickets"],) for r in rows(db, tenant, "ticket_day_totals", order="day")}),
        "feedback": _nonzero(
            {r["day"]: (r["ratings"], r["rating_sum"]) for r in rows(db, tenant, "feedback_day_totals", order="day")}
        ),
    }


AGENT_FIGURES = (
    "total_tickets_resolved",
    "resolution_seconds",
    "resolution_count",
    "first_response_seconds",
    "first_response_count",
    "rating_sum",
    "rating_count",
    "average_resolution_time",
    "response_time_average",
    "average_rating",
)


def _as_figures(sums: dict[str, int]) -> dict[str, Any]:
    resolution = half_up(sums["resolution_seconds"], sums["resolution_count"])
    first_response = half_up(sums["first_response_seconds"], sums["first_response_count"])
    return {
        **sums,
        "average_resolution_time": None if resolution is None else int(resolution),
        "response_time_average": None if first_response is None else int(first_response),
        "average_rating": half_up(sums["rating_sum"], sums["rating_count"], 2),
    }


def recount_agent_figures(db: DatabaseUrls, tenant: UUID) -> dict[UUID, dict[str, Any]]:
    """Per agent, from the tickets assigned to them now and those tickets' feedback (sql/0009's definition):
    a resolved or closed ticket counts as resolved, with its resolution_time; any ticket with a
    first_response_time counts there; the feedback's agent_rating counts for the ticket's agent."""
    ratings = {f["ticket_id"]: f["agent_rating"] for f in rows(db, tenant, "ticket_feedback")}
    sums: dict[UUID, dict[str, int]] = {
        a["id"]: dict.fromkeys(AGENT_FIGURES[:7], 0) for a in rows(db, tenant, "support_agents")
    }
    for t in rows(db, tenant, "support_tickets"):
        agent = sums.get(t["assigned_agent_id"])
        if agent is None:
            continue
        if t["status"] in FINISHED:
            agent["total_tickets_resolved"] += 1
            if t["resolution_time"] is not None:
                agent["resolution_seconds"] += t["resolution_time"]
                agent["resolution_count"] += 1
        if t["first_response_time"] is not None:
            agent["first_response_seconds"] += t["first_response_time"]
            agent["first_response_count"] += 1
        if ratings.get(t["id"]) is not None:
            agent["rating_sum"] += ratings[t["id"]]
            agent["rating_count"] += 1
    return {agent_id: _as_figures(figures) for agent_id, figures in sums.items()}


def stored_agent_figures(db: DatabaseUrls, tenant: UUID) -> dict[UUID, dict[str, Any]]:
    return {a["id"]: {key: a[key] for key in AGENT_FIGURES} for a in rows(db, tenant, "support_agents")}


def recount_current_chats(db: DatabaseUrls, tenant: UUID) -> dict[UUID, int]:
    chats = {a["id"]: 0 for a in rows(db, tenant, "support_agents")}
    for s in rows(db, tenant, "live_chat_sessions"):
        if s["assigned_agent_id"] is not None and s["status"] != "closed":
            chats[s["assigned_agent_id"]] += 1
    return chats


def stored_current_chats(db: DatabaseUrls, tenant: UUID) -> dict[UUID, int]:
    return {a["id"]: a["current_chats"] for a in rows(db, tenant, "support_agents")}
