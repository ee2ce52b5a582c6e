"""Routing (issue 18): the routing settings, skills-based assignment of tickets and chats with limits, the races, an
agent going away, the waiting visitor's expected wait, and chats that wait too long becoming tickets.

Real handlers and services on the real PostgreSQL; the management API is the real HTTP stand-in that records what
each connection is sent. Figures are read back as the owner, apart from the services.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from support.auth import Principal, Role
from support.db import tenant_transaction
from support.models.agents import AgentCreate, AgentStatus
from support.models.chat import ChatMessageCreate, ChatSession, ChatSessionStart, ChatStatus, VisitorContext
from support.models.settings import RoutingSettings
from support.models.tickets import SenderType, TicketCreate, TicketStatus, TicketUpdate
from support.services import agents, chat, chat_expiry, routing, settings, tickets
from tests.http_events import HandlerClient
from tests.integration.test_chat_concurrency import connection_per_thread, run_together
from tests.management_api import Posts, posts

__all__ = ["connection_per_thread", "posts"]  # fixtures, used by name

SETTINGS = "/api/support/settings/routing"
ROUTING_SQL = Path(__file__).resolve().parents[2] / "sql" / "definitions" / "routing.sql"


def admin(tenant: UUID) -> Principal:
    return Principal(tenant_id=tenant, role=Role.ADMIN, subject="test-admin")


def configure(tenant: UUID, **values: Any) -> RoutingSettings:
    return settings.put_routing_settings(admin(tenant), RoutingSettings.model_validate(values))


def new_agent(
    tenant: UUID, *, skills: list[str] | None = None, status: AgentStatus = AgentStatus.AVAILABLE, chats: int = 5
) -> UUID:
    data = AgentCreate(
        agent_name="Ada",
        agent_email=f"{uuid4()}@desk.example",
        skills=skills or [],
        status=status,
        max_concurrent_chats=chats,
    )
    return agents.create_agent(admin(tenant), data).id


def new_ticket(tenant: UUID, **fields: Any) -> Any:
    data = TicketCreate.model_validate(
        {"customerName": "Lin", "customerEmail": "lin@shop.example", "subject": "Help", **fields}
    )
    return tickets.create_ticket(admin(tenant), data)


def owner_rows(db: DatabaseUrls, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db.admin) as conn:
        return conn.execute(query, params).fetchall()


def open_tickets(db: DatabaseUrls, agent: UUID) -> tuple[int, int]:
    """(the agent's open_tickets figure, their open tickets counted)"""
    [(figure,)] = owner_rows(db, "SELECT open_tickets FROM support_agents WHERE id = %s", agent)
    [(counted,)] = owner_rows(
        db,
        "SELECT count(*) FROM support_tickets WHERE assigned_agent_id = %s AND status NOT IN ('resolved', 'closed')",
        agent,
    )
    return figure, counted


def start(tenant: UUID, visitor: str | None = None) -> ChatSession:
    data = ChatSessionStart(visitor_id=visitor or f"v-{uuid4().hex[:8]}", visitor_name="Lin")
    return chat.start_chat_session(admin(tenant), data, VisitorContext())


# --- the settings -------------------------------------------------------------------------------------------------


@pytest.fixture
def settings_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.settings import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


DEFAULTS = {
    "autoAssignTickets": False,
    "autoAssignChats": True,
    "ticketLimitPerAgent": 10,
    "rules": [],
    "chatWaitLimitSeconds": 600,
    "reassignTicketsWhenAway": False,
}


def test_routing_settings_default_then_round_trip_per_tenant(settings_api: HandlerClient, other_tenant: UUID) -> None:
    assert settings_api.get(SETTINGS).data == DEFAULTS
    body = {
        "autoAssignTickets": True,
        "autoAssignChats": False,
        "ticketLimitPerAgent": 3,
        "rules": [
            {"category": "billing", "requiredSkills": ["billing"]},
            {"channel": "chat", "requiredSkills": ["chat"]},
            {"customField": "tier", "value": "vip", "requiredSkills": ["vip", "billing"]},
        ],
        "chatWaitLimitSeconds": None,
        "reassignTicketsWhenAway": True,
    }
    reply = settings_api.put(SETTINGS, body)
    assert reply.status == 200, reply.body
    assert settings_api.get(SETTINGS).data == reply.data
    assert reply.data["rules"][2] == {
        "category": None,
        "channel": None,
        "customField": "tier",
        "value": "vip",
        "requiredSkills": ["vip", "billing"],
    }
    assert settings_api.as_tenant(other_tenant).get(SETTINGS).data == DEFAULTS


@pytest.mark.parametrize(
    "body",
    [
        {"ticketLimitPerAgent": 0},
        {"ticketLimitPerAgent": 1001},
        {"ticketLimitPerAgent": "many"},
        {"chatWaitLimitSeconds": 59},
        {"chatWaitLimitSeconds": 86401},
        {"autoAssignTickets": "sometimes"},
        {"reassignTicketsWhenAway": None},
        {"rules": [{"category": "billing"}]},
        {"rules": [{"category": "billing", "requiredSkills": []}]},
        {"rules": [{"requiredSkills": ["billing"]}]},
        {"rules": [{"category": "billing", "channel": "chat", "requiredSkills": ["billing"]}]},
        {"rules": [{"customField": "tier", "requiredSkills": ["vip"]}]},
        {"rules": [{"category": "billing", "value": "x", "requiredSkills": ["vip"]}]},
        {"rules": [{"channel": "fax", "requiredSkills": ["vip"]}]},
        {"rules": [{"category": "billing", "requiredSkills": ["a", "a"]}]},
        {"rules": [{"category": "billing", "requiredSkills": [""]}]},
        {"rules": [{"category": "billing", "requiredSkills": ["x"], "priority": 1}]},
        {"rules": [{"category": "b", "requiredSkills": ["x"]}] * 101},
        {"routeBy": "skills"},
    ],
)
def test_invalid_routing_settings_are_422_and_change_nothing(settings_api: HandlerClient, body: dict[str, Any]) -> None:
    reply = settings_api.put(SETTINGS, body)
    assert reply.status == 422, reply.body
    assert settings_api.get(SETTINGS).data == DEFAULTS


def test_only_an_admin_reads_or_changes_the_routing_settings(settings_api: HandlerClient, tenant: UUID) -> None:
    agent = settings_api.as_tenant(tenant, role="agent")
    assert agent.put(SETTINGS, {"autoAssignTickets": True}).status == 403
    assert agent.get(SETTINGS).status == 403  # issue 18: GET/PUT /settings/routing, admin
    assert settings_api.get(SETTINGS).data == DEFAULTS


def test_the_databases_defaults_are_the_models() -> None:
    """The routing functions read the stored JSON with coalesce(..., default): the same defaults as RoutingSettings."""
    text = ROUTING_SQL.read_text() + (ROUTING_SQL.parent / "chat.sql").read_text()
    model = RoutingSettings()
    found = re.findall(r"coalesce\(\(cfg ->> '(\w+)'\)::(?:boolean|integer), (\w+)\)", text)
    assert found
    for name, default in found:
        assert str(getattr(model, name)).lower() == default, name


# --- tickets ------------------------------------------------------------------------------------------------------


def test_tickets_stay_unassigned_while_automatic_assignment_is_off(db: DatabaseUrls, tenant: UUID) -> None:
    new_agent(tenant)
    assert new_ticket(tenant).assigned_agent_id is None


def test_a_new_ticket_goes_to_the_skilled_available_agent_with_fewest_open_tickets(
    db: DatabaseUrls, tenant: UUID
) -> None:
    configure(tenant, autoAssignTickets=True, rules=[{"category": "billing", "requiredSkills": ["billing"]}])
    unskilled = new_agent(tenant)
    busy_billing = new_agent(tenant, skills=["billing"])
    idle_billing = new_agent(tenant, skills=["billing", "de"])
    away_billing = new_agent(tenant, skills=["billing"], status=AgentStatus.AWAY)
    tickets.assign_ticket(admin(tenant), new_ticket(tenant, category="other").id, busy_billing)

    billing = new_ticket(tenant, category="billing")
    other = new_ticket(tenant, category="other")

    assert billing.assigned_agent_id == idle_billing  # fewest open: 0 against 1 (or 2); the away one never
    assert other.assigned_agent_id == unskilled  # anyone may take it: 0 open, and idle longest
    assert billing.status is TicketStatus.OPEN  # routing keeps the status
    for agent in (unskilled, busy_billing, idle_billing, away_billing):
        assert open_tickets(db, agent)[0] == open_tickets(db, agent)[1]


def test_channel_and_custom_field_rules_add_up(db: DatabaseUrls, tenant: UUID) -> None:
    configure(
        tenant,
        autoAssignTickets=True,
        rules=[
            {"channel": "phone", "requiredSkills": ["phone"]},
            {"customField": "tier", "value": "vip", "requiredSkills": ["vip"]},
            {"customField": "seats", "value": "50", "requiredSkills": ["enterprise"]},
        ],
    )
    phone_only = new_agent(tenant, skills=["phone"])
    vip_phone = new_agent(tenant, skills=["phone", "vip"])
    enterprise = new_agent(tenant, skills=["enterprise"])

    vip_call = new_ticket(tenant, channel="phone", customFields={"tier": "vip"})
    seats = new_ticket(tenant, customFields={"seats": 50})  # a number, compared as text
    call = new_ticket(tenant, channel="phone")

    assert vip_call.assigned_agent_id == vip_phone
    assert seats.assigned_agent_id == enterprise
    assert call.assigned_agent_id == phone_only


def test_the_limit_holds_and_the_oldest_waiting_ticket_goes_to_whoever_frees_up(db: DatabaseUrls, tenant: UUID) -> None:
    configure(tenant, autoAssignTickets=True, ticketLimitPerAgent=2)
    agent = new_agent(tenant)
    first, second, third, fourth = (new_ticket(tenant, subject=f"t{i}") for i in range(4))
    assert (first.assigned_agent_id, second.assigned_agent_id) == (agent, agent)
    assert (third.assigned_agent_id, fourth.assigned_agent_id) == (None, None)  # they wait, in order

    tickets.update_ticket(admin(tenant), first.id, TicketUpdate(status=TicketStatus.RESOLVED))
    assert tickets.get_ticket(admin(tenant), third.id).assigned_agent_id == agent  # the oldest waiting
    assert tickets.get_ticket(admin(tenant), fourth.id).assigned_agent_id is None

    tickets.close_ticket(admin(tenant), second.id)
    assert tickets.get_ticket(admin(tenant), fourth.id).assigned_agent_id == agent
    assert open_tickets(db, agent) == (2, 2)


def test_an_agent_who_becomes_available_takes_the_oldest_waiting_tickets_they_can(
    db: DatabaseUrls, tenant: UUID
) -> None:
    configure(
        tenant,
        autoAssignTickets=True,
        ticketLimitPerAgent=2,
        rules=[{"category": "billing", "requiredSkills": ["billing"]}],
    )
    billing = new_ticket(tenant, category="billing")
    plain = [new_ticket(tenant, subject=f"p{i}") for i in range(3)]
    agent = new_agent(tenant, status=AgentStatus.OFFLINE)  # no billing skill

    agents.update_agent_status(admin(tenant), agent, AgentStatus.AVAILABLE)

    assigned = [tickets.get_ticket(admin(tenant), t.id).assigned_agent_id for t in [billing, *plain]]
    assert assigned == [None, agent, agent, None]  # billing is not theirs; the two oldest plain ones are


def test_turning_automatic_assignment_on_routes_the_tickets_already_waiting(db: DatabaseUrls, tenant: UUID) -> None:
    waiting = new_ticket(tenant)
    agent = new_agent(tenant)
    configure(tenant, autoAssignTickets=True)
    assert tickets.get_ticket(admin(tenant), waiting.id).assigned_agent_id == agent


def test_tickets_routed_by_a_settings_change_or_a_status_run_their_rules_after_the_commit(
    db: DatabaseUrls, tenant: UUID
) -> None:
    """Routing writes ticket_updated events (the agent changed); the settings and the agents' status start their
    run themselves (support.services.automations), not the every-minute sweep."""
    from support.models.automations import RuleCreate
    from support.services import automations

    for existing in automations.list_rules(admin(tenant)):
        automations.delete_rule(admin(tenant), existing.id)
    body = {
        "name": "routed",
        "event": "ticket_updated",
        "conditions": {"all": []},
        "actions": [{"type": "add_internal_note", "value": "routed"}],
    }
    automations.create_rule(admin(tenant), RuleCreate.model_validate(body))
    waiting = new_ticket(tenant)
    away = new_agent(tenant, status=AgentStatus.AWAY)
    configure(tenant, autoAssignTickets=True)  # no one available: still waiting
    agents.update_agent_status(admin(tenant), away, AgentStatus.AVAILABLE)  # takes it
    assert tickets.get_ticket(admin(tenant), waiting.id).assigned_agent_id == away
    with tenant_transaction(tenant) as cur:
        cur.execute(
            "SELECT count(*) AS n FROM automation_events WHERE user_id = %s AND processed_at IS NULL", (tenant,)
        )
        assert cur.fetchone() == {"n": 0}
        cur.execute("SELECT message FROM ticket_conversations WHERE ticket_id = %s AND is_internal", (waiting.id,))
        assert [r["message"] for r in cur.fetchall()] == ["routed"]
    configure(tenant, autoAssignTickets=False)
    other = new_ticket(tenant)
    new_agent(tenant)  # one free agent more
    assert tickets.get_ticket(admin(tenant), other.id).assigned_agent_id is None
    configure(tenant, autoAssignTickets=True)  # routes the waiting ticket
    assert tickets.get_ticket(admin(tenant), other.id).assigned_agent_id is not None
    with tenant_transaction(tenant) as cur:
        cur.execute(
            "SELECT count(*) AS n FROM automation_events WHERE user_id = %s AND processed_at IS NULL", (tenant,)
        )
        assert cur.fetchone() == {"n": 0}


def test_route_ticket_is_the_automations_route_by_skills(db: DatabaseUrls, tenant: UUID) -> None:
    configure(tenant, autoAssignTickets=True, rules=[{"category": "vip", "requiredSkills": ["vip"]}])
    ticket = new_ticket(tenant)  # nobody to take it yet
    agent = new_agent(tenant, skills=["vip"], status=AgentStatus.OFFLINE)
    with tenant_transaction(tenant) as cur:
        assert routing.route_ticket(cur, admin(tenant), ticket.id) is None  # the only agent is offline
    agents.update_agent_status(admin(tenant), agent, AgentStatus.AVAILABLE)  # takes it from the queue
    assert tickets.get_ticket(admin(tenant), ticket.id).assigned_agent_id == agent
    later = new_ticket(tenant, category="vip")
    assert later.assigned_agent_id == agent
    with tenant_transaction(tenant) as cur:
        assert routing.route_ticket(cur, admin(tenant), later.id) is None  # it has an agent: nothing moves
        assert routing.route_ticket(cur, admin(tenant), uuid4()) is None


def test_an_agent_going_away_keeps_their_tickets_unless_the_settings_say_otherwise(
    db: DatabaseUrls, tenant: UUID
) -> None:
    configure(tenant, autoAssignTickets=True)
    leaving = new_agent(tenant)
    ticket = new_ticket(tenant)
    assert ticket.assigned_agent_id == leaving
    staying = new_agent(tenant)

    agents.update_agent_status(admin(tenant), leaving, AgentStatus.AWAY)
    assert tickets.get_ticket(admin(tenant), ticket.id).assigned_agent_id == leaving

    configure(tenant, autoAssignTickets=True, reassignTicketsWhenAway=True)
    agents.update_agent_status(admin(tenant), leaving, AgentStatus.AVAILABLE)
    agents.update_agent_status(admin(tenant), leaving, AgentStatus.OFFLINE)
    assert tickets.get_ticket(admin(tenant), ticket.id).assigned_agent_id == staying
    assert open_tickets(db, leaving) == (0, 0)
    assert open_tickets(db, staying) == (1, 1)


@pytest.mark.usefixtures("connection_per_thread")
def test_fifty_concurrent_new_tickets_and_ten_agents_never_over_assign(db: DatabaseUrls, tenant: UUID) -> None:
    configure(tenant, autoAssignTickets=True, ticketLimitPerAgent=3)
    team = [new_agent(tenant) for _ in range(10)]

    results = run_together([lambda i=i: new_ticket(tenant, subject=f"race {i}") for i in range(50)])

    assert not [r for r in results if isinstance(r, Exception)]
    loads = dict(
        owner_rows(
            db,
            """SELECT assigned_agent_id, count(*) FROM support_tickets WHERE user_id = %s
            AND assigned_agent_id IS NOT NULL GROUP BY 1""",
            tenant,
        )
    )
    assert sorted(loads) == sorted(team) and set(loads.values()) == {3}  # 30 assigned, 3 each, none over
    assert sum(1 for r in results if r.assigned_agent_id is None) == 20
    for agent in team:
        assert open_tickets(db, agent) == (3, 3)


@pytest.mark.usefixtures("connection_per_thread")
def test_resolves_racing_new_tickets_keep_the_limit_and_the_figures_true(db: DatabaseUrls, tenant: UUID) -> None:
    configure(tenant, autoAssignTickets=True, ticketLimitPerAgent=2)
    team = [new_agent(tenant) for _ in range(5)]
    held = [new_ticket(tenant, subject=f"held {i}") for i in range(10)]
    resolve = [
        lambda t=t: tickets.update_ticket(admin(tenant), t.id, TicketUpdate(status=TicketStatus.RESOLVED))
        for t in held[:6]
    ]
    create = [lambda i=i: new_ticket(tenant, subject=f"new {i}") for i in range(20)]
    status = [lambda a=a: agents.update_agent_status(admin(tenant), a, AgentStatus.AVAILABLE) for a in team]

    results = run_together(resolve + create + status)

    assert not [r for r in results if isinstance(r, Exception)], [r for r in results if isinstance(r, Exception)]
    for agent in team:
        figure, counted = open_tickets(db, agent)
        assert figure == counted == 2
    [(waiting,)] = owner_rows(
        db,
        """SELECT count(*) FROM support_tickets WHERE user_id = %s AND assigned_agent_id IS NULL
        AND status NOT IN ('resolved', 'closed')""",
        tenant,
    )
    assert waiting == 30 - 6 - 10


# --- chats --------------------------------------------------------------------------------------------------------


def test_chats_go_only_to_agents_with_the_chat_rules_skills(db: DatabaseUrls, tenant: UUID) -> None:
    configure(tenant, rules=[{"channel": "chat", "requiredSkills": ["chat", "de"]}])
    new_agent(tenant, skills=["chat"])
    assert start(tenant).status is ChatStatus.WAITING
    skilled = new_agent(tenant, skills=["de", "chat", "billing"], status=AgentStatus.OFFLINE)
    agents.update_agent_status(admin(tenant), skilled, AgentStatus.AVAILABLE)
    [(status, agent)] = owner_rows(
        db, "SELECT status, assigned_agent_id FROM live_chat_sessions WHERE user_id = %s", tenant
    )
    assert (status, agent) == ("active", skilled)


def test_chats_wait_for_a_claim_while_automatic_chat_assignment_is_off(db: DatabaseUrls, tenant: UUID) -> None:
    configure(tenant, autoAssignChats=False)
    new_agent(tenant)
    session = start(tenant)
    assert session.status is ChatStatus.WAITING


@pytest.mark.usefixtures("connection_per_thread")
def test_fifty_concurrent_new_chats_and_ten_agents_never_over_assign(db: DatabaseUrls, tenant: UUID) -> None:
    configure(tenant, rules=[{"channel": "chat", "requiredSkills": ["chat"]}])
    team = [new_agent(tenant, skills=["chat"], chats=3) for _ in range(10)]
    new_agent(tenant, chats=3)  # without the skill: never given one

    results = run_together([lambda: start(tenant) for _ in range(50)])

    assert not [r for r in results if isinstance(r, Exception)]
    rows = owner_rows(
        db,
        "SELECT id, status, assigned_agent_id FROM live_chat_sessions WHERE user_id = %s",
        tenant,
    )
    assert len(rows) == len({row[0] for row in rows}) == 50
    loads: dict[UUID, int] = {}
    for _, status, agent in rows:
        if status == "active":
            loads[agent] = loads.get(agent, 0) + 1
    assert sorted(loads) == sorted(team) and set(loads.values()) == {3}
    assert sum(1 for _, status, _ in rows if status == "waiting") == 20
    figures = dict(owner_rows(db, "SELECT id, current_chats FROM support_agents WHERE user_id = %s", tenant))
    assert all(figures[agent] == 3 for agent in team)


def test_an_agent_going_away_hands_back_their_unanswered_chats(posts: Posts, db: DatabaseUrls, tenant: UUID) -> None:
    leaving = new_agent(tenant, chats=3)
    answered, unanswered = start(tenant, "v-answered"), start(tenant, "v-unanswered")
    visitor_connection = f"visitor-{uuid4().hex[:10]}"
    with tenant_transaction(tenant) as cur:
        cur.execute(
            """INSERT INTO ws_connections (connection_id, user_id, role, visitor_id, widget_key)
            VALUES (%s, %s, 'visitor', 'v-unanswered', 'wk_test')""",
            (visitor_connection, tenant),
        )
    agent_principal = Principal(tenant_id=tenant, role=Role.AGENT, subject="ada", agent_id=leaving)
    chat.add_chat_message(
        agent_principal, answered.id, ChatMessageCreate(sender_type=SenderType.AGENT, message="Hello, how can I help?")
    )
    waiting_first = start(tenant, "v-waiting")  # the desk is not full: assigned too
    assert waiting_first.status is ChatStatus.ACTIVE

    agents.update_agent_status(admin(tenant), leaving, AgentStatus.AWAY)

    sessions = {s.visitor_id: s for s in (chat.get_chat_session(admin(tenant), x.id) for x in (answered, unanswered))}
    assert sessions["v-answered"].status is ChatStatus.ACTIVE  # answered: stays theirs
    assert sessions["v-unanswered"].status is ChatStatus.WAITING
    assert sessions["v-unanswered"].assigned_agent_id is None
    [(current,)] = owner_rows(db, "SELECT current_chats FROM support_agents WHERE id = %s", leaving)
    assert current == 1
    [told] = posts.of(visitor_connection, "chat.queued")
    assert told["sessionId"] == str(unanswered.id)
    assert told["position"] == 1  # it keeps its place: before v-waiting's (handed back as well)
    assert "expectedWaitSeconds" in told

    # another agent becoming available takes the oldest
    other = new_agent(tenant, status=AgentStatus.OFFLINE)
    agents.update_agent_status(admin(tenant), other, AgentStatus.AVAILABLE)
    assert chat.get_chat_session(admin(tenant), unanswered.id).assigned_agent_id == other
    assert posts.of(visitor_connection, "chat.assigned")


# --- the expected wait --------------------------------------------------------------------------------------------

HANDLE_SECONDS = 2.0
TOLERANCE_SECONDS = 1.0


def _history(db: DatabaseUrls, tenant: UUID, agent: UUID, handle: float, count: int = 5) -> None:
    """`count` chats this agent handled in exactly `handle` seconds, ended a minute ago (as the owner)."""
    with psycopg.connect(db.admin) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))  # the totals' triggers
        for _ in range(count):
            conn.execute(
                """INSERT INTO live_chat_sessions (user_id, visitor_id, status, assigned_agent_id, created_at,
                    session_start_time, assigned_at, session_end_time)
                SELECT %(tenant)s, 'history', 'closed', %(agent)s, e - interval '5 minutes', e - interval '5 minutes',
                    e - make_interval(secs => %(handle)s), e
                FROM (SELECT now() - interval '1 minute' AS e) t""",
                {"tenant": tenant, "agent": agent, "handle": handle},
            )


def test_the_expected_wait_matches_what_happens_with_known_handle_times(db: DatabaseUrls, tenant: UUID) -> None:
    """Two agents of one chat each, whose chats take HANDLE_SECONDS; four visitors queue behind two chats that have
    just started. Each agent ends a chat when it has run HANDLE_SECONDS (their known handle time): each visitor's
    actual wait (start to assignment) is within TOLERANCE_SECONDS of the estimate it was told."""
    team = [new_agent(tenant, chats=1) for _ in range(2)]
    for agent in team:
        _history(db, tenant, agent, HANDLE_SECONDS)
    first = [start(tenant) for _ in range(2)]
    assert all(s.status is ChatStatus.ACTIVE for s in first)

    queued = []
    for _ in range(4):
        session = start(tenant)
        with tenant_transaction(tenant) as cur:
            cur.execute(
                """SELECT count(*)::integer AS position FROM live_chat_sessions
                WHERE user_id = %s AND status = 'waiting'""",
                (tenant,),
            )
            position = cur.fetchone()["position"]  # type: ignore[index]
            cur.execute("SELECT chat_wait_estimates(%s, ARRAY[%s]) AS e", (tenant, position))
            estimate = cur.fetchone()["e"][0]  # type: ignore[index]
        queued.append((session, estimate))
    assert [e for _, e in queued] == [2, 2, 4, 4]  # within a second of start: the two slots, then the next round

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with tenant_transaction(tenant) as cur:
            cur.execute(
                """SELECT id FROM live_chat_sessions WHERE user_id = %s AND status = 'active'
                AND assigned_at <= clock_timestamp() - make_interval(secs => %s)""",
                (tenant, HANDLE_SECONDS),
            )
            due = [row["id"] for row in cur.fetchall()]
        for session_id in due:
            chat.end_chat_session(admin(tenant), session_id)
        if all(chat.get_chat_session(admin(tenant), s.id).status is not ChatStatus.WAITING for s, _ in queued):
            break
        time.sleep(0.05)
    for session, estimate in queued:
        [(waited,)] = owner_rows(
            db,
            "SELECT extract(epoch FROM assigned_at - created_at)::float FROM live_chat_sessions WHERE id = %s",
            session.id,
        )
        assert abs(waited - estimate) <= TOLERANCE_SECONDS, (waited, estimate)


def test_no_estimate_without_an_agent_who_could_take_the_chat(posts: Posts, db: DatabaseUrls, tenant: UUID) -> None:
    new_agent(tenant, status=AgentStatus.OFFLINE)
    with tenant_transaction(tenant) as cur:
        cur.execute("SELECT chat_wait_estimates(%s, ARRAY[1, 2]) AS e", (tenant,))
        assert cur.fetchone()["e"] == [None, None]  # type: ignore[index]


def test_without_history_the_estimate_uses_the_default_handle_time(db: DatabaseUrls, tenant: UUID) -> None:
    new_agent(tenant, chats=1)
    start(tenant)
    with tenant_transaction(tenant) as cur:
        cur.execute("SELECT chat_wait_estimates(%s, ARRAY[1, 2, 3]) AS e", (tenant,))
        assert cur.fetchone()["e"] == [300, 600, 900]  # type: ignore[index]


# --- chats that wait too long -------------------------------------------------------------------------------------


def test_a_chat_waiting_past_the_limit_becomes_a_ticket_with_its_messages(
    posts: Posts, db: DatabaseUrls, tenant: UUID
) -> None:
    configure(tenant, chatWaitLimitSeconds=120)
    visitor = f"v-{uuid4().hex[:8]}"
    connection = f"visitor-{uuid4().hex[:10]}"
    with tenant_transaction(tenant) as cur:
        cur.execute(
            """INSERT INTO ws_connections (connection_id, user_id, role, visitor_id, widget_key)
            VALUES (%s, %s, 'visitor', %s, 'wk_test')""",
            (connection, tenant, visitor),
        )
    session = start(tenant, visitor)
    visitor_principal = Principal(
        tenant_id=tenant, role=Role.VISITOR, subject=f"visitor:{visitor}", visitor_id=visitor, widget_key="wk"
    )
    chat.add_chat_message(
        visitor_principal, session.id, ChatMessageCreate(sender_type=SenderType.CUSTOMER, message="My order is late")
    )
    fresh = start(tenant)
    now = datetime.now(UTC)

    assert session.id not in chat_expiry.expire_waiting_chats(now + timedelta(seconds=60)).ticketed  # not yet
    report = chat_expiry.expire_waiting_chats(now + timedelta(seconds=121))
    again = chat_expiry.expire_waiting_chats(now + timedelta(seconds=121))

    assert session.id in report.ticketed and fresh.id in report.ticketed
    assert session.id not in again.ticketed  # at most one ticket per chat
    ended = chat.get_chat_session(admin(tenant), session.id)
    assert ended.status is ChatStatus.CLOSED and ended.ticket_id is not None
    ticket = tickets.get_ticket(admin(tenant), ended.ticket_id)
    assert (ticket.channel, ticket.subject, ticket.customer_email) == (
        "chat",
        "My order is late",
        tickets.NO_CHAT_EMAIL,
    )
    thread = owner_rows(db, "SELECT sender_type, message FROM ticket_conversations WHERE ticket_id = %s", ticket.id)
    assert thread == [("customer", "My order is late")]
    # the desk ended it, not an admin (the abandonment figures read ended_by: sql/0035)
    assert owner_rows(db, "SELECT ended_by FROM live_chat_sessions WHERE id = %s", session.id) == [("system",)]
    [told] = posts.of(connection, "chat.ticketed")
    assert told == {
        "sessionId": str(session.id),
        "ticketId": str(ticket.id),
        "reference": ticket.reference,
        "emailRequested": True,
    }
    assert posts.of(connection, "chat.ended")
    [(outbox,)] = owner_rows(db, "SELECT count(*) FROM email_outbox WHERE ticket_id = %s", ticket.id)
    assert outbox == 0  # nothing is mailed to the placeholder


def test_a_tenant_without_a_wait_limit_keeps_its_waiting_chats(db: DatabaseUrls, tenant: UUID) -> None:
    configure(tenant, chatWaitLimitSeconds=None)
    session = start(tenant)
    report = chat_expiry.expire_waiting_chats(datetime.now(UTC) + timedelta(days=2))
    assert session.id not in report.ticketed
    assert chat.get_chat_session(admin(tenant), session.id).status is ChatStatus.WAITING


def test_an_assigned_chat_never_expires(db: DatabaseUrls, tenant: UUID) -> None:
    configure(tenant, chatWaitLimitSeconds=60)
    new_agent(tenant)
    session = start(tenant)
    report = chat_expiry.expire_waiting_chats(datetime.now(UTC) + timedelta(hours=1))
    assert session.id not in report.ticketed
    assert chat.get_chat_session(admin(tenant), session.id).status is ChatStatus.ACTIVE


def test_the_visitor_of_an_expired_chat_leaves_their_email(posts: Posts, db: DatabaseUrls, tenant: UUID) -> None:
    from support.errors import Conflict, NotFound

    configure(tenant, chatWaitLimitSeconds=60)
    session = start(tenant, "v-late")
    chat_expiry.expire_waiting_chats(datetime.now(UTC) + timedelta(seconds=61))
    ticket_id = chat.get_chat_session(admin(tenant), session.id).ticket_id
    assert ticket_id is not None
    visitor = Principal(
        tenant_id=tenant, role=Role.VISITOR, subject="visitor:v-late", visitor_id="v-late", widget_key="wk"
    )
    stranger = Principal(tenant_id=tenant, role=Role.VISITOR, subject="visitor:x", visitor_id="x", widget_key="wk")

    with pytest.raises(NotFound):
        chat_expiry.leave_email(stranger, session.id, "x@shop.example")
    answer = chat_expiry.leave_email(visitor, session.id, "lin@shop.example")
    again = chat_expiry.leave_email(visitor, session.id, "lin@shop.example")  # a retry: the same answer
    with pytest.raises(Conflict):
        chat_expiry.leave_email(visitor, session.id, "other@shop.example")

    assert answer == again and not answer.email_requested and answer.ticket_id == ticket_id
    assert tickets.get_ticket(admin(tenant), ticket_id).customer_email == "lin@shop.example"
    [(identity,)] = owner_rows(
        db,
        """SELECT count(*) FROM contact_identities i JOIN support_tickets t ON t.contact_id = i.contact_id
        WHERE t.id = %s AND i.kind = 'email' AND i.value = 'lin@shop.example'""",
        ticket_id,
    )
    assert identity == 1


def test_an_agent_given_the_skill_takes_the_waiting_chat_and_ticket(db: DatabaseUrls, tenant: UUID) -> None:
    from support.models.agents import AgentUpdate

    configure(
        tenant,
        autoAssignTickets=True,
        rules=[{"channel": "chat", "requiredSkills": ["de"]}, {"category": "de", "requiredSkills": ["de"]}],
    )
    agent = new_agent(tenant)
    session = start(tenant)
    ticket = new_ticket(tenant, category="de")
    assert session.status is ChatStatus.WAITING and ticket.assigned_agent_id is None

    agents.update_agent(admin(tenant), agent, AgentUpdate(skills=["de"]))

    assert chat.get_chat_session(admin(tenant), session.id).assigned_agent_id == agent
    assert tickets.get_ticket(admin(tenant), ticket.id).assigned_agent_id == agent
