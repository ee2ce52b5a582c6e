"""Tenant isolation: through the API (404, never another tenant's rows) and in the database itself (RLS)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from tests.http_events import HandlerClient
from tests.integration.test_tickets_api import BASE, new_agent, new_ticket, resolve

TENANT_TABLES = [
    "support_tickets",
    "ticket_conversations",
    "support_agents",
    "live_chat_sessions",
    "chat_messages",
    "canned_responses",
    "support_analytics",
    "ticket_feedback",
    # the dashboard's running totals (sql/0007)
    "ticket_totals",
    "chat_totals",
    "feedback_totals",
]


@pytest.fixture
def tenant_a_data(tickets_api: HandlerClient) -> dict[str, Any]:
    """Tenant A: an agent, and a resolved ticket with a conversation and feedback."""
    agent = new_agent(tickets_api)
    ticket = new_ticket(tickets_api, subject="Secret merger paperwork", customerEmail="ceo@tenant-a.example")
    tickets_api.post(
        f"{BASE}/{ticket['id']}/conversations", {"senderType": "customer", "senderName": "CEO", "message": "hi"}
    )
    resolve(tickets_api, ticket["id"])
    tickets_api.post(f"{BASE}/{ticket['id']}/feedback", {"rating": 5})
    return {"ticket": ticket, "agent": agent}


def test_another_tenants_ids_answer_404_on_every_ticket_route(
    tickets_api: HandlerClient, other_tenant: UUID, tenant_a_data: dict[str, Any]
) -> None:
    b = tickets_api.as_tenant(other_tenant)
    a_ticket = tenant_a_data["ticket"]["id"]
    b_agent = new_agent(b)
    b_ticket = new_ticket(b)

    replies = {
        "get": b.get(f"{BASE}/{a_ticket}"),
        "patch": b.patch(f"{BASE}/{a_ticket}", {"priority": "low"}),
        "close": b.post(f"{BASE}/{a_ticket}/close"),
        "assign": b.post(f"{BASE}/{a_ticket}/assign", {"agentId": b_agent["id"]}),
        "list conversations": b.get(f"{BASE}/{a_ticket}/conversations"),
        "add conversation": b.post(
            f"{BASE}/{a_ticket}/conversations", {"senderType": "agent", "senderName": "B", "message": "x"}
        ),
        "get feedback": b.get(f"{BASE}/{a_ticket}/feedback"),
        "add feedback": b.post(f"{BASE}/{a_ticket}/feedback", {"rating": 1}),
        # B's own ticket with A's agent: the agent is not B's, so it does not exist for B.
        "assign A's agent": b.post(f"{BASE}/{b_ticket['id']}/assign", {"agentId": tenant_a_data["agent"]["id"]}),
        "patch with A's agent": b.patch(f"{BASE}/{b_ticket['id']}", {"assignedAgentId": tenant_a_data["agent"]["id"]}),
    }

    assert {name: r.status for name, r in replies.items()} == dict.fromkeys(replies, 404)
    assert all(r.error["code"] == "not_found" for r in replies.values())
    # and nothing of A's changed
    assert tickets_api.get(f"{BASE}/{a_ticket}").data["status"] == "resolved"


def test_lists_and_search_never_show_another_tenants_rows(
    tickets_api: HandlerClient, other_tenant: UUID, tenant_a_data: dict[str, Any]
) -> None:
    b = tickets_api.as_tenant(other_tenant)
    b_ticket = new_ticket(b, subject="Secret merger paperwork too")

    for query in ({}, {"search": "secret merger"}, {"search": "ceo"}, {"status": "resolved"}):
        reply = b.get(BASE, query=query)
        assert reply.status == 200
        assert {t["userId"] for t in reply.data} <= {str(other_tenant)}
    assert [t["id"] for t in b.get(BASE, query={"search": "merger"}).data] == [b_ticket["id"]]
    from functions.agents import app as agents_app

    b_agents = HandlerClient(agents_app.lambda_handler, tenant=other_tenant)
    assert [a["id"] for a in b_agents.get("/api/support/agents").data] == []


def _as_runtime_role(db: DatabaseUrls, tenant: UUID | None, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db.app) as conn:
        if tenant is not None:
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        return conn.execute(statement.encode()).fetchall()


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_rls_alone_hides_other_tenants_rows(
    db: DatabaseUrls, tenant: UUID, other_tenant: UUID, tenant_a_data: dict[str, Any], table: str
) -> None:
    # No WHERE user_id = ...: the application's own tenant filter is out of the way.
    count = f"SELECT count(*) FROM {table}"
    assert _as_runtime_role(db, other_tenant, count) == [(0,)]
    if table in {"support_tickets", "ticket_conversations", "support_agents", "ticket_feedback", "ticket_totals"}:
        assert _as_runtime_role(db, tenant, count)[0][0] >= 1


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_without_a_tenant_setting_queries_fail(db: DatabaseUrls, tenant_a_data: dict[str, Any], table: str) -> None:
    with pytest.raises(psycopg.errors.UndefinedObject):
        _as_runtime_role(db, None, f"SELECT * FROM {table}")


def test_after_a_tenant_transaction_the_setting_is_gone(db: DatabaseUrls, tenant: UUID) -> None:
    with psycopg.connect(db.app, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            conn.execute("SELECT * FROM support_tickets")


def test_runtime_role_cannot_write_another_tenants_rows(db: DatabaseUrls, tenant: UUID, other_tenant: UUID) -> None:
    with psycopg.connect(db.app) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject) "
                "VALUES (%s, 'x', 'x@example.com', 'x')",
                (other_tenant,),
            )


def test_runtime_role_owns_nothing_and_cannot_bypass_rls(db: DatabaseUrls) -> None:
    with psycopg.connect(db.app) as conn:
        role = conn.execute(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        owned = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = current_user"
        ).fetchone()
        rls = conn.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = ANY(%s)",
            (TENANT_TABLES,),
        ).fetchall()
    assert role == (False, False, False, False)
    assert owned == (0,)
    assert sorted(rls) == sorted((t, True, True) for t in TENANT_TABLES)


def test_composite_foreign_keys_refuse_cross_tenant_references(db: DatabaseUrls, tenant: UUID) -> None:
    """Even the owner cannot point tenant A's ticket at tenant B's agent."""
    other = uuid4()
    with psycopg.connect(db.admin) as conn:  # superuser: RLS does not apply, only the constraints do
        agent = conn.execute(
            "INSERT INTO support_agents (user_id, agent_name, agent_email) VALUES (%s, 'b', 'b@x.example') "
            "RETURNING id",
            (other,),
        ).fetchone()
        assert agent is not None
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(
                "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, assigned_agent_id) "
                "VALUES (%s, 'x', 'x@example.com', 'x', %s)",
                (tenant, agent[0]),
            )
