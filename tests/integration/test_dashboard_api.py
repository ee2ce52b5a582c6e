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
from tests import recount
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
        ("urgent", "billing", grace, "resolved", 5, "phone"),
        ("high", "billing", grace, "closed", 4, "api"),
        ("low", "shipping", alan, "resolved", 2, "email"),
        ("medium", None, alan, "in_progress", None, "phone"),
        ("medium", "shipping", None, "open", None, "api"),
        ("low", None, None, "waiting_customer", None, "api"),
    ]
    for priority, category, agent, status, rating, channel in plan:
        ticket = new_ticket(
            tickets_api, priority=priority, channel=channel, **({"category": category} if category else {})
        )
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


def expected_top_agents(db: DatabaseUrls, tenant: UUID, shown: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The five agents get_dashboard documents, ranked from a recount of the tickets and feedback (not from the
    agent columns the triggers keep): resolved tickets, then average agent rating (none last), then name, then
    id; each with its recounted figures. `shown` gives the other fields, as the API returned them."""
    figures = recount.recount_agent_figures(db, tenant)
    agents = _rows(db, tenant, "support_agents")

    def rank(agent: dict[str, Any]) -> tuple[Any, ...]:
        mine = figures[agent["id"]]
        rating = mine["average_rating"]
        return (-mine["total_tickets_resolved"], rating is None, -(rating or 0), agent["agent_name"], agent["id"])

    by_id = {a["id"]: a for a in shown}
    expected = []
    for agent in sorted(agents, key=rank)[:5]:
        mine = figures[agent["id"]]
        rating = mine["average_rating"]
        expected.append(
            {
                **by_id.get(str(agent["id"]), {"id": str(agent["id"])}),
                "totalTicketsResolved": mine["total_tickets_resolved"],
                "averageRating": None if rating is None else float(rating),
                "averageResolutionTime": mine["average_resolution_time"],
                "responseTimeAverage": mine["response_time_average"],
            }
        )
    return expected


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
    assert data["topAgents"] == expected_top_agents(db, tenant, data["topAgents"])
    assert data["topAgents"][0]["totalTicketsResolved"] == 2
    assert data["ticketsByStatus"] == {
        s: sum(t["status"] == s for t in tickets)
        for s in ("open", "in_progress", "waiting_customer", "resolved", "closed")
    }
    assert data["ticketsByPriority"] == {
        p: sum(t["priority"] == p for t in tickets) for p in ("low", "medium", "high", "urgent")
    }
    assert data["ticketsByCategory"] == dict(sorted(Counter(t["category"] or "uncategorized" for t in tickets).items()))
    assert data["ticketsByChannel"] == {
        c: sum(t["channel"] == c for t in tickets) for c in ("api", "email", "web_form", "chat", "phone", "social")
    }
    assert data["ticketsByChannel"]["phone"] == 2
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
        "ticketsByStatus", "ticketsByPriority", "ticketsByCategory", "ticketsByChannel", "agentAvailability",
        "satisfactionTrendLastWeek", "ticketVolumeTrendLastWeek", "slaCompliance",
    }  # fmt: skip
    # SLA compliance per priority (sql/0033): targets met or missed, and in time, from the tickets themselves
    for priority in ("low", "medium", "high", "urgent"):
        mine = [t for t in tickets if t["priority"] == priority]
        for target, done in (("first_response", "first_responded_at"), ("resolution", "resolved_at")):
            measured = [t for t in mine if t[f"{target}_business_seconds"] is not None and t[f"{target}_due_at"]]
            within = sum(t[done] <= t[f"{target}_due_at"] for t in measured)
            figure = data["slaCompliance"][priority]["firstResponse" if target == "first_response" else "resolution"]
            assert figure["measured"] == len(measured)
            assert figure["withinTarget"] == within
            assert figure["averageBusinessSeconds"] == mean([t[f"{target}_business_seconds"] for t in measured])


def _backdate(db: DatabaseUrls, ticket: dict[str, Any], seconds: int) -> None:
    """As if the ticket had been created `seconds` ago: its resolution and first response times follow."""
    _as_owner(
        db,
        UUID(ticket["userId"]),
        "UPDATE support_tickets SET created_at = now() - make_interval(secs => %s) WHERE id = %s",
        (seconds, ticket["id"]),
    )


def _ok(reply: Any, status: int = 200) -> dict[str, Any]:
    assert reply.status == status, reply.body
    return dict(reply.data)


def recount_figures(db: DatabaseUrls, tenant: UUID) -> dict[str, Any]:
    """The dashboard's ticket figures, counted here from the tenant's rows."""
    tickets = _rows(db, tenant, "support_tickets")
    feedback = _rows(db, tenant, "ticket_feedback")
    resolution = [t["resolution_time"] for t in tickets if t["resolution_time"] is not None]
    first_response = [t["first_response_time"] for t in tickets if t["first_response_time"] is not None]
    satisfaction = recount.half_up(sum(f["rating"] for f in feedback), len(feedback), 2)
    return {
        "totalTickets": len(tickets),
        "openTickets": sum(t["status"] in ("open", "in_progress", "waiting_customer") for t in tickets),
        "resolvedTickets": sum(t["status"] in ("resolved", "closed") for t in tickets),
        "ticketsByStatus": {
            s: sum(t["status"] == s for t in tickets)
            for s in ("open", "in_progress", "waiting_customer", "resolved", "closed")
        },
        "ticketsByPriority": {p: sum(t["priority"] == p for t in tickets) for p in ("low", "medium", "high", "urgent")},
        # only categories that hold a ticket now
        "ticketsByCategory": dict(sorted(Counter(t["category"] or "uncategorized" for t in tickets).items())),
        "averageResolutionTime": _int(recount.half_up(sum(resolution), len(resolution))),
        "averageFirstResponseTime": _int(recount.half_up(sum(first_response), len(first_response))),
        "customerSatisfactionScore": None if satisfaction is None else float(satisfaction),
    }


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


class TestFiguresFollowTheTickets:
    """Tickets move between categories, priorities, agents and states; every figure follows, by a recount."""

    @pytest.fixture
    def moved(self, db: DatabaseUrls, tickets_api: HandlerClient) -> None:
        api = tickets_api
        crew = {
            name: new_agent(api, agentName=name) for name in ("Gus", "Bob", "Ann", "Cid", "Dee", "Eve", "Fay", "Abe")
        }
        made: dict[str, dict[str, Any]] = {}
        # name: (agent, category, priority, age in s, reply?, resolve?, feedback (rating, agentRating))
        plan: dict[str, tuple[str | None, str | None, str, int, bool, bool, tuple[int, int] | None]] = {
            "T1": ("Gus", "billing", "high", 1000, True, True, (4, 3)),
            "T2": ("Gus", "billing", "urgent", 2000, True, True, (2, 2)),
            "T3": ("Gus", "billing", "low", 3000, False, True, None),
            "T4": ("Ann", "shipping", "medium", 4000, True, True, (5, 4)),
            "T5": ("Ann", "shipping", "low", 5000, False, True, (3, 4)),
            "T6": ("Bob", None, "medium", 6000, True, True, (4, 5)),
            "T7": ("Bob", "billing", "medium", 7000, True, False, None),
            "T8": ("Cid", "returns", "high", 8000, False, True, None),
            "T9": ("Cid", "returns", "low", 9000, True, True, None),
            "T10": ("Dee", "shipping", "urgent", 10000, False, True, (3, 3)),
            "T11": ("Eve", None, "low", 11000, True, True, (1, 3)),
            "T12": (None, "billing", "low", 12000, False, False, None),
            "T13": ("Fay", None, "medium", 13000, False, False, None),
            "T14": ("Cid", "returns", "medium", 14000, False, True, None),
            "T15": ("Abe", None, "high", 15000, True, True, (4, 3)),
        }
        for name, (agent, category, priority, age, replied, resolved, rated) in plan.items():
            ticket = new_ticket(api, priority=priority, **({"category": category} if category else {}))
            _backdate(db, ticket, age)
            made[name] = ticket
            if agent:
                _ok(api.post(f"{TICKETS}/{ticket['id']}/assign", {"agentId": crew[agent]["id"]}))
            if replied:
                message = {"senderType": "agent", "senderName": "A", "message": "x"}
                _ok(api.post(f"{TICKETS}/{ticket['id']}/conversations", message), 201)
            if resolved:
                _ok(api.patch(f"{TICKETS}/{ticket['id']}", {"status": "resolved"}))
            if rated:
                body = {"rating": rated[0], "agentRating": rated[1]}
                _ok(api.post(f"{TICKETS}/{ticket['id']}/feedback", body), 201)
        _ok(api.patch(f"{TICKETS}/{made['T12']['id']}", {"status": "waiting_customer"}))

        def patch(name: str, body: dict[str, Any]) -> None:
            _ok(api.patch(f"{TICKETS}/{made[name]['id']}", body))

        patch("T2", {"assignedAgentId": crew["Bob"]["id"]})  # resolved, rated 2: both move to Bob
        patch("T3", {"status": "open"})  # reopened: no longer resolved, resolution time cleared
        _ok(api.post(f"{TICKETS}/{made['T3']['id']}/assign", {"agentId": crew["Eve"]["id"]}))
        patch("T3", {"status": "resolved"})
        patch("T7", {"status": "resolved"})
        patch("T9", {"status": "open"})  # Cid keeps it, unresolved
        for name in ("T1", "T2", "T3", "T7", "T12"):  # every billing ticket
            patch(name, {"category": "shipping"})
        patch("T5", {"category": "returns"})
        patch("T4", {"priority": "urgent"})
        _ok(api.post(f"{TICKETS}/{made['T13']['id']}/close"))
        # Now: Bob 3 resolved (ratings 5, 2); Ann 2 (4, 4); Eve 2 (3); Cid 2 (none); Gus, Dee, Abe 1 (3 each);
        # Fay 1 (none).

    def test_every_ticket_figure_matches_a_recount(
        self, moved: None, db: DatabaseUrls, dashboard_api: HandlerClient
    ) -> None:
        data = _ok(dashboard_api.get(DASHBOARD))
        expected = recount_figures(db, dashboard_api.tenant)
        assert {key: data[key] for key in expected} == expected
        assert "billing" not in data["ticketsByCategory"]  # every billing ticket moved to shipping
        assert data["ticketsByCategory"] == {"returns": 4, "shipping": 7, "uncategorized": 4}

    def test_top_agents_are_ranked_by_a_recount_of_the_rows(
        self, moved: None, db: DatabaseUrls, dashboard_api: HandlerClient
    ) -> None:
        top = _ok(dashboard_api.get(DASHBOARD))["topAgents"]
        assert top == expected_top_agents(db, dashboard_api.tenant, top)
        # most resolved first; then the better rating, no rating last; then the name (Abe before Dee and Gus)
        assert [a["agentName"] for a in top] == ["Bob", "Ann", "Eve", "Cid", "Abe"]
        assert [(a["totalTicketsResolved"], a["averageRating"]) for a in top] == [
            (3, 3.5),
            (2, 4.0),
            (2, 3.0),
            (2, None),
            (1, 3.0),
        ]


def test_a_category_whose_last_ticket_moved_away_is_not_listed(
    tickets_api: HandlerClient, dashboard_api: HandlerClient
) -> None:
    # Given two billing tickets and one about shipping
    billing = [new_ticket(tickets_api, category="billing") for _ in range(2)]
    new_ticket(tickets_api, category="shipping")
    assert _ok(dashboard_api.get(DASHBOARD))["ticketsByCategory"] == {"billing": 2, "shipping": 1}

    # When both billing tickets move to shipping
    for ticket in billing:
        _ok(tickets_api.patch(f"{TICKETS}/{ticket['id']}", {"category": "shipping"}))

    # Then billing is gone from the dashboard, not listed with 0
    assert _ok(dashboard_api.get(DASHBOARD))["ticketsByCategory"] == {"shipping": 3}


@pytest.fixture
def rated_an_eighth_above_3_12(db: DatabaseUrls, tickets_api: HandlerClient) -> dict[str, Any]:
    """Eight resolved tickets of one agent whose ratings, and agent ratings, are 3 x 7 and 4: mean 3.125."""
    agent = new_agent(tickets_api, agentName="Grace")
    for rating in (3, 3, 3, 3, 3, 3, 3, 4):
        ticket = new_ticket(tickets_api)
        _ok(tickets_api.post(f"{TICKETS}/{ticket['id']}/assign", {"agentId": agent["id"]}))
        _ok(tickets_api.patch(f"{TICKETS}/{ticket['id']}", {"status": "resolved"}))
        _ok(tickets_api.post(f"{TICKETS}/{ticket['id']}/feedback", {"rating": rating, "agentRating": rating}), 201)
    return agent


def test_satisfaction_and_agent_rating_both_round_half_away_from_zero(
    rated_an_eighth_above_3_12: dict[str, Any], dashboard_api: HandlerClient
) -> None:
    # Given ratings with a mean of exactly 3.125, for the tickets and for their agent
    # When the dashboard is read
    data = _ok(dashboard_api.get(DASHBOARD))
    # Then both means round the same way, half away from zero, as PostgreSQL's round(numeric) does
    (agent,) = data["topAgents"]
    assert agent["id"] == rated_an_eighth_above_3_12["id"]
    assert (data["customerSatisfactionScore"], agent["averageRating"]) == (3.13, 3.13)


def test_the_satisfaction_trend_rounds_as_the_score_does(
    rated_an_eighth_above_3_12: dict[str, Any], dashboard_api: HandlerClient
) -> None:
    # Given today's ratings with a mean of exactly 3.125; When the dashboard is read
    data = _ok(dashboard_api.get(DASHBOARD))
    # Then today's point of the trend is the same 3.13 (the trend's last day is today)
    assert data["satisfactionTrendLastWeek"][-1]["score"] == 3.13


def test_a_new_tenant_has_an_empty_dashboard(dashboard_api: HandlerClient) -> None:
    data = dashboard_api.get(DASHBOARD).data
    assert (data["totalTickets"], data["totalChats"], data["averageResolutionTime"]) == (0, 0, None)
    assert data["customerSatisfactionScore"] is None
    assert [d["count"] for d in data["ticketVolumeTrendLastWeek"]] == [0] * 7


def test_tenants_never_see_each_others_figures(desk: None, dashboard_api: HandlerClient, other_tenant: UUID) -> None:
    other = dashboard_api.as_tenant(other_tenant)
    assert other.get(DASHBOARD).data["totalTickets"] == 0
    assert dashboard_api.get(DASHBOARD, query={"userId": str(other_tenant)}).status == 403


def test_the_figures_function_lists_the_columns_of_the_api(
    desk: None, dashboard_api: HandlerClient, db: DatabaseUrls
) -> None:
    # sql/0017 spells out the columns of the newest tickets and the top agents: they must be the API's
    from support.services.agents import AGENT_COLUMNS
    from support.services.tickets import TICKET_COLUMN_NAMES

    columns = {"recent_tickets": ", ".join(TICKET_COLUMN_NAMES), "top_agents": AGENT_COLUMNS}
    with psycopg.connect(db.app, row_factory=dict_row) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(dashboard_api.tenant),))
        row = conn.execute("SELECT * FROM public.dashboard_figures(%s, now())", (dashboard_api.tenant,)).fetchone()
    assert row is not None
    for name, listed in columns.items():
        assert row[name], name  # the desk has tickets and agents
        assert [list(item) for item in row[name]] == [[c.strip() for c in listed.split(",")]] * len(row[name])


def test_the_figures_function_sees_only_the_bound_tenant(
    desk: None, dashboard_api: HandlerClient, db: DatabaseUrls, other_tenant: UUID
) -> None:
    # SECURITY INVOKER under the caller's row-level security: another tenant's id, while bound to one's own, finds
    # nothing of theirs, and no binding at all fails closed
    with psycopg.connect(db.app, row_factory=dict_row) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(other_tenant),))
        row = conn.execute("SELECT * FROM public.dashboard_figures(%s, now())", (dashboard_api.tenant,)).fetchone()
    assert row is not None
    assert [group["tickets"] for group in row["ticket_groups"]] == [None]  # the grand total of no rows
    assert (row["recent_tickets"], row["top_agents"], row["ratings"], row["agents_by_status"]) == ([], [], 0, {})
    with psycopg.connect(db.app) as conn, pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT * FROM public.dashboard_figures(%s, now())", (dashboard_api.tenant,))


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

    def test_the_days_distributions_are_read_too(self, db: DatabaseUrls, dashboard_api: HandlerClient) -> None:
        _as_owner(
            db,
            dashboard_api.tenant,
            "INSERT INTO support_analytics (user_id, analytics_date, resolution_histogram, resolution_p50,"
            " resolution_p90, chat_duration_histogram, chat_duration_p50, chat_duration_p90)"
            """ VALUES (%s, date '2026-02-01', '{"44": 3, "90": 1}', 62, 5000, '{"0": 2}', 0, 0)""",
            (dashboard_api.tenant,),
        )
        (day,) = dashboard_api.get(ANALYTICS, query={"from": "2026-02-01", "to": "2026-02-01"}).data
        assert (day["resolutionHistogram"], day["resolutionP50"], day["resolutionP90"]) == (
            {"44": 3, "90": 1},
            62,
            5000,
        )
        assert (day["chatDurationHistogram"], day["chatDurationP50"], day["chatDurationP90"]) == ({"0": 2}, 0, 0)
        assert (day["firstResponseHistogram"], day["firstResponseP50"], day["firstResponseP90"]) == ({}, None, None)

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
    assert sorted(p.stem for p in events.glob("*.json")) == ["analytics", "get", "summary"]
    for path in events.glob("*.json"):
        result = invoke_sample_event(app.lambda_handler, path, "DashboardFunction")
        assert result["statusCode"] == 200, (path.name, result["body"])
