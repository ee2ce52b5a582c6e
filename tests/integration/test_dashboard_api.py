"""The dashboard in-process against the real PostgreSQL: every field checked against a value computed here
from the tenant's raw rows (not from the running totals the service reads)."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.rows import dict_row

from local.database import DatabaseUrls
from tests.http_events import HandlerClient, invoke_sample_event
from tests.integration.test_tickets_api import BASE as TICKETS
from tests.integration.test_tickets_api import new_agent, new_ticket

DASHBOARD = "/api/support/dashboard"
ANALYTICS = "/api/support/analytics"


@pytest.fixture
def dashboard_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.dashboard import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


def _as_owner(db: DatabaseUrls, tenant: UUID, statement: str, params: tuple[Any, ...]) -> None:
    with psycopg.connect(db.owner) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        conn.execute(statement.encode(), params)


@pytest.fixture
def desk(db: DatabaseUrls, tickets_api: HandlerClient) -> None:
    """A tenant with a week of history: agents, tickets in every state, feedback, chats."""
    tenant = tickets_api.tenant
    grace = new_agent(tickets_api, status="available")
    new_agent(tickets_api, status="available")
    alan = new_agent(tickets_api, status="busy")
    plan = [
        ("urgent", "billing", grace, "resolved", 5),
        ("high", "billing", grace, "closed", 4),
        ("low", "shipping", alan, "resolved", 2),
        ("medium", None, alan, "in_progress", None),
        ("medium", "shipping", None, "open", None),
        ("low", None, None, "waiting_customer", None),
    ]
    for priority, category, agent, status, rating in plan:
        ticket = new_ticket(tickets_api, priority=priority, **({"category": category} if category else {}))
        if agent:
            tickets_api.post(f"{TICKETS}/{ticket['id']}/assign", {"agentId": agent["id"]})
            tickets_api.post(
                f"{TICKETS}/{ticket['id']}/conversations", {"senderType": "agent", "senderName": "A", "message": "x"}
            )
        if status == "closed":
            tickets_api.post(f"{TICKETS}/{ticket['id']}/close")
        elif status != "in_progress" or not agent:
            tickets_api.patch(f"{TICKETS}/{ticket['id']}", {"status": status})
        if rating:
            tickets_api.post(f"{TICKETS}/{ticket['id']}/feedback", {"rating": rating})
    # History: tickets and feedback on earlier days, a ticket deleted, chats in several states.
    _as_owner(
        db,
        tenant,
        "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, created_at, status,"
        " resolved_at, resolution_time, first_response_time)"
        " SELECT %s, 'Old', 'old@example.com', 'old ' || n, now() - n * interval '1 day', 'resolved',"
        " now(), 3600 * n, 60 * n FROM generate_series(1, 9) n",
        (tenant,),
    )
    _as_owner(
        db,
        tenant,
        "UPDATE ticket_feedback SET created_at = now() - interval '2 days' WHERE user_id = %s AND rating = 2",
        (tenant,),
    )
    _as_owner(db, tenant, "DELETE FROM support_tickets WHERE user_id = %s AND subject = 'old 9'", (tenant,))
    _as_owner(
        db,
        tenant,
        "INSERT INTO live_chat_sessions (user_id, visitor_id, status, session_start_time, session_end_time, duration)"
        " VALUES (%s, 'v1', 'active', now(), NULL, NULL), (%s, 'v2', 'waiting', now(), NULL, NULL),"
        " (%s, 'v3', 'closed', now() - interval '3 days', now() - interval '3 days' + interval '600 s', 600),"
        " (%s, 'v4', 'closed', now() - interval '1 hour', now() - interval '1 hour' + interval '300 s', 301)",
        (tenant, tenant, tenant, tenant),
    )


def _rows(db: DatabaseUrls, tenant: UUID, table: str) -> list[dict[str, Any]]:
    with psycopg.connect(db.admin, row_factory=dict_row) as conn:
        return conn.execute(f"SELECT * FROM {table} WHERE user_id = %s".encode(), (tenant,)).fetchall()


def test_every_field_against_the_raw_rows(desk: None, dashboard_api: HandlerClient, db: DatabaseUrls) -> None:
    tenant = dashboard_api.tenant
    tickets = _rows(db, tenant, "support_tickets")
    chats = _rows(db, tenant, "live_chat_sessions")
    agents = _rows(db, tenant, "support_agents")
    feedback = _rows(db, tenant, "ticket_feedback")
    now = datetime.now(UTC)
    today = now.date()
    midnight = datetime.combine(today, datetime.min.time(), UTC)
    week = [today - timedelta(days=n) for n in range(6, -1, -1)]

    def mean(values: list[int]) -> int | None:  # whole seconds, ties away from zero (support.averages)
        return int(Decimal(sum(values)) / len(values) + Decimal("0.5")) if values else None

    reply = dashboard_api.get(DASHBOARD, query={"userId": str(tenant)})
    assert reply.status == 200
    data = reply.data

    assert data["totalTickets"] == len(tickets) == 14
    assert data["openTickets"] == sum(t["status"] in ("open", "in_progress", "waiting_customer") for t in tickets)
    assert data["resolvedTickets"] == sum(t["status"] in ("resolved", "closed") for t in tickets)
    assert data["totalChats"] == len(chats) == 4
    assert data["activeChats"] == sum(c["status"] == "active" for c in chats) == 1
    assert data["totalAgents"] == len(agents) == 3
    assert data["availableAgents"] == sum(a["status"] == "available" for a in agents) == 2
    assert data["averageResolutionTime"] == mean(
        [t["resolution_time"] for t in tickets if t["resolution_time"] is not None]
    )
    assert data["averageFirstResponseTime"] == mean(
        [t["first_response_time"] for t in tickets if t["first_response_time"] is not None]
    )
    assert data["customerSatisfactionScore"] == round(statistics.mean(f["rating"] for f in feedback), 2) == 3.67
    assert data["averageChatDuration"] == mean([c["duration"] for c in chats if c["duration"] is not None]) == 451
    assert data["ticketsCreatedToday"] == sum(t["created_at"] >= midnight for t in tickets)
    assert data["chatsStartedToday"] == sum(c["session_start_time"] >= midnight for c in chats)
    newest = sorted(tickets, key=lambda t: (t["created_at"], t["id"]), reverse=True)[:5]
    assert [t["id"] for t in data["recentTickets"]] == [str(t["id"]) for t in newest]
    ranked = sorted(
        agents,
        key=lambda a: (-a["total_tickets_resolved"], -(a["average_rating"] or 0), a["agent_name"], str(a["id"])),
    )
    assert [a["id"] for a in data["topAgents"]] == [str(a["id"]) for a in ranked[:5]]
    assert data["topAgents"][0]["totalTicketsResolved"] == 2
    assert data["ticketsByStatus"] == {
        s: sum(t["status"] == s for t in tickets)
        for s in ("open", "in_progress", "waiting_customer", "resolved", "closed")
    }
    assert data["ticketsByPriority"] == {
        p: sum(t["priority"] == p for t in tickets) for p in ("low", "medium", "high", "urgent")
    }
    assert data["ticketsByCategory"] == dict(sorted(Counter(t["category"] or "uncategorized" for t in tickets).items()))
    assert data["agentAvailability"] == {
        s: sum(a["status"] == s for a in agents) for s in ("available", "busy", "away", "offline")
    }
    volume = Counter(t["created_at"].astimezone(UTC).date() for t in tickets)
    assert data["ticketVolumeTrendLastWeek"] == [{"date": d.isoformat(), "count": volume[d]} for d in week]
    scores: dict[date, list[int]] = {}
    for f in feedback:
        scores.setdefault(f["created_at"].astimezone(UTC).date(), []).append(f["rating"])
    assert data["satisfactionTrendLastWeek"] == [
        {"date": d.isoformat(), "score": round(statistics.mean(scores[d]), 2) if d in scores else None} for d in week
    ]
    assert set(data) == {
        "totalTickets", "openTickets", "resolvedTickets", "totalChats", "activeChats", "totalAgents",
        "availableAgents", "averageResolutionTime", "averageFirstResponseTime", "customerSatisfactionScore",
        "averageChatDuration", "ticketsCreatedToday", "chatsStartedToday", "recentTickets", "topAgents",
        "ticketsByStatus", "ticketsByPriority", "ticketsByCategory", "agentAvailability",
        "satisfactionTrendLastWeek", "ticketVolumeTrendLastWeek",
    }  # fmt: skip


def test_a_new_tenant_has_an_empty_dashboard(dashboard_api: HandlerClient) -> None:
    data = dashboard_api.get(DASHBOARD).data
    assert (data["totalTickets"], data["totalChats"], data["averageResolutionTime"]) == (0, 0, None)
    assert data["customerSatisfactionScore"] is None
    assert [d["count"] for d in data["ticketVolumeTrendLastWeek"]] == [0] * 7


def test_tenants_never_see_each_others_figures(desk: None, dashboard_api: HandlerClient, other_tenant: UUID) -> None:
    other = dashboard_api.as_tenant(other_tenant)
    assert other.get(DASHBOARD).data["totalTickets"] == 0
    assert dashboard_api.get(DASHBOARD, query={"userId": str(other_tenant)}).status == 403


class TestAnalytics:
    @pytest.fixture
    def rows(self, db: DatabaseUrls, dashboard_api: HandlerClient) -> None:
        _as_owner(
            db,
            dashboard_api.tenant,
            "INSERT INTO support_analytics (user_id, analytics_date, total_tickets_created, tickets_by_status)"
            " SELECT %s, date '2026-01-01' + n, n, jsonb_build_object('open', n) FROM generate_series(0, 9) n",
            (dashboard_api.tenant,),
        )

    def test_a_range_oldest_first(self, rows: None, dashboard_api: HandlerClient) -> None:
        reply = dashboard_api.get(ANALYTICS, query={"from": "2026-01-03", "to": "2026-01-05"})
        assert reply.status == 200
        assert [(r["analyticsDate"], r["totalTicketsCreated"]) for r in reply.data] == [
            ("2026-01-03", 2),
            ("2026-01-04", 3),
            ("2026-01-05", 4),
        ]
        assert reply.data[0]["ticketsByStatus"] == {"open": 2}

    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ({"from": "2026-01-05", "to": "2026-01-03"}, "query.to"),
            ({"from": "2025-01-01", "to": "2026-01-02"}, "query.to"),  # 367 days
            ({"from": "yesterday", "to": "2026-01-02"}, "query.from"),
            ({"to": "2026-01-02"}, "query.from"),
        ],
    )
    def test_bad_ranges_are_422(self, dashboard_api: HandlerClient, query: dict[str, str], field: str) -> None:
        reply = dashboard_api.get(ANALYTICS, query=query)
        assert reply.status == 422
        assert reply.error["details"][0]["field"] == field

    def test_366_days_is_allowed(self, dashboard_api: HandlerClient) -> None:
        assert dashboard_api.get(ANALYTICS, query={"from": "2025-01-01", "to": "2026-01-01"}).status == 200

    def test_another_tenant_sees_none(self, rows: None, dashboard_api: HandlerClient) -> None:
        other = dashboard_api.as_tenant(uuid4())
        assert other.get(ANALYTICS, query={"from": "2026-01-01", "to": "2026-01-31"}).data == []


def test_the_dashboard_sample_events_succeed(db: DatabaseUrls) -> None:
    from pathlib import Path

    from functions.dashboard import app

    events = Path(__file__).resolve().parents[2] / "events" / "dashboard"
    assert sorted(p.stem for p in events.glob("*.json")) == ["analytics", "get"]
    for path in events.glob("*.json"):
        result = invoke_sample_event(app.lambda_handler, path, "DashboardFunction")
        assert result["statusCode"] == 200, (path.name, result["body"])
