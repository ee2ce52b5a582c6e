"""The agents function in-process against the real PostgreSQL: the team, its status and its figures."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from tests.http_events import HandlerClient, invoke_sample_event
from tests.integration.test_tickets_api import BASE as TICKETS
from tests.integration.test_tickets_api import new_agent, new_ticket

AGENTS = "/api/support/agents"


class TestCreateListGet:
    def test_create_then_get(self, agents_api: HandlerClient) -> None:
        created = agents_api.post(
            AGENTS,
            {"agentName": "Grace", "agentEmail": "grace@desk.example", "skills": ["billing"], "department": "Tier 1"},
        )
        assert created.status == 201
        agent = created.data
        assert (agent["skills"], agent["status"], agent["maxConcurrentChats"]) == (["billing"], "offline", 5)
        assert (agent["totalTicketsResolved"], agent["averageRating"], agent["currentChats"]) == (0, None, 0)
        assert agents_api.get(f"{AGENTS}/{agent['id']}").data == agent

    def test_filters_by_status_department_and_skill(self, agents_api: HandlerClient) -> None:
        billing = new_agent(agents_api, department="Billing", skills=["refunds", "billing"], status="available")
        tech = new_agent(agents_api, department="Tech", skills=["api"], status="busy")

        def ids(**query: str) -> set[str]:
            reply = agents_api.get(AGENTS, query=query)
            assert reply.status == 200, reply.body
            return {a["id"] for a in reply.data}

        assert ids() == {billing["id"], tech["id"]}
        assert ids(status="available") == {billing["id"]}
        assert ids(department="billing") == {billing["id"]}  # ignoring case
        assert ids(skill="api") == {tech["id"]}
        assert ids(skill="refunds", status="busy") == set()

    def test_pagination(self, agents_api: HandlerClient) -> None:
        made = [new_agent(agents_api)["id"] for _ in range(5)]
        first = agents_api.get(AGENTS, query={"limit": 2})
        second = agents_api.get(AGENTS, query={"limit": 2, "cursor": first.body["nextCursor"]})
        third = agents_api.get(AGENTS, query={"limit": 2, "cursor": second.body["nextCursor"]})
        assert [a["id"] for a in first.data + second.data + third.data] == list(reversed(made))
        assert third.body["nextCursor"] is None

    def test_email_is_unique_per_tenant_ignoring_case(self, agents_api: HandlerClient, other_tenant: UUID) -> None:
        new_agent(agents_api, "sam@desk.example")
        duplicate = agents_api.post(AGENTS, {"agentName": "Sam", "agentEmail": "SAM@desk.example"})
        assert duplicate.status == 409
        new_agent(agents_api.as_tenant(other_tenant), "sam@desk.example")  # another tenant may

    def test_the_501st_agent_is_refused(self, agents_api: HandlerClient, db: DatabaseUrls) -> None:
        with psycopg.connect(db.owner) as conn:
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(agents_api.tenant),))
            conn.execute(
                "INSERT INTO support_agents (user_id, agent_name, agent_email) "
                "SELECT %s, 'Agent ' || n, 'agent' || n || '@desk.example' FROM generate_series(1, 499) n",
                (agents_api.tenant,),
            )
        assert agents_api.post(AGENTS, {"agentName": "500th", "agentEmail": "a500@desk.example"}).status == 201
        refused = agents_api.post(AGENTS, {"agentName": "501st", "agentEmail": "a501@desk.example"})
        assert refused.status == 409
        assert refused.error["code"] == "quota_exceeded"
        assert "500" in refused.error["message"]

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"maxConcurrentChats": 51}, "body.maxConcurrentChats"),
            ({"maxConcurrentChats": 0}, "body.maxConcurrentChats"),
            ({"agentEmail": "nope"}, "body.agentEmail"),
            ({"status": "asleep"}, "body.status"),
            ({"skills": ["x" * 51]}, "body.skills.0"),
        ],
    )
    def test_bad_input_is_422(self, agents_api: HandlerClient, body: dict[str, Any], field: str) -> None:
        reply = agents_api.post(AGENTS, {"agentName": "X", "agentEmail": "x@desk.example", **body})
        assert reply.status == 422
        assert field in [d["field"] for d in reply.error["details"]]

    def test_unknown_agent_is_404(self, agents_api: HandlerClient) -> None:
        assert agents_api.get(f"{AGENTS}/{uuid4()}").status == 404
        assert agents_api.patch(f"{AGENTS}/{uuid4()}", {"department": "x"}).status == 404
        assert agents_api.patch(f"{AGENTS}/{uuid4()}/status", {"status": "away"}).status == 404

    def test_user_id_must_be_the_callers_tenant(self, agents_api: HandlerClient) -> None:
        assert agents_api.get(AGENTS, query={"userId": str(uuid4())}).status == 403


class TestUpdate:
    def test_changes_only_the_given_fields(self, agents_api: HandlerClient) -> None:
        agent = new_agent(agents_api, department="Tier 1", skills=["a"])
        updated = agents_api.patch(f"{AGENTS}/{agent['id']}", {"skills": ["b", "c"], "maxConcurrentChats": 9}).data
        assert (updated["skills"], updated["maxConcurrentChats"], updated["department"]) == (["b", "c"], 9, "Tier 1")
        assert updated["updatedAt"] > agent["updatedAt"]

    def test_email_clash_is_409(self, agents_api: HandlerClient) -> None:
        new_agent(agents_api, "taken@desk.example")
        agent = new_agent(agents_api)
        assert agents_api.patch(f"{AGENTS}/{agent['id']}", {"agentEmail": "Taken@desk.example"}).status == 409

    def test_capacity_cannot_drop_below_the_chats_held(self, agents_api: HandlerClient, db: DatabaseUrls) -> None:
        agent = new_agent(agents_api, maxConcurrentChats=5)
        with psycopg.connect(db.admin) as conn:
            conn.execute("UPDATE support_agents SET current_chats = 3 WHERE id = %s", (agent["id"],))
        assert agents_api.patch(f"{AGENTS}/{agent['id']}", {"maxConcurrentChats": 2}).status == 409
        assert agents_api.patch(f"{AGENTS}/{agent['id']}", {"maxConcurrentChats": 3}).status == 200

    def test_only_admins_add_or_edit_agents(self, agents_api: HandlerClient) -> None:
        agent = new_agent(agents_api)
        as_agent = agents_api.as_tenant(agents_api.tenant, role="agent")
        assert as_agent.post(AGENTS, {"agentName": "Eve", "agentEmail": "eve@desk.example"}).status == 403
        assert as_agent.patch(f"{AGENTS}/{agent['id']}", {"department": "x"}).status == 403
        assert as_agent.get(f"{AGENTS}/{agent['id']}").status == 200  # but may look


class TestStatus:
    def test_status_change_records_activity(self, agents_api: HandlerClient) -> None:
        agent = new_agent(agents_api)
        assert agent["lastActivityAt"] is None
        changed = agents_api.patch(f"{AGENTS}/{agent['id']}/status", {"status": "available"})
        assert changed.status == 200
        assert changed.data["status"] == "available"
        assert changed.data["lastActivityAt"] is not None

    def test_an_agent_sets_only_their_own_status(self, agents_api: HandlerClient) -> None:
        me, colleague = new_agent(agents_api), new_agent(agents_api)
        as_me = HandlerClient(agents_api.handler, tenant=agents_api.tenant, role="agent", agent_id=UUID(me["id"]))
        assert as_me.patch(f"{AGENTS}/{me['id']}/status", {"status": "away"}).data["status"] == "away"
        assert as_me.patch(f"{AGENTS}/{colleague['id']}/status", {"status": "away"}).status == 403

    def test_unknown_status_is_422(self, agents_api: HandlerClient) -> None:
        agent = new_agent(agents_api)
        assert agents_api.patch(f"{AGENTS}/{agent['id']}/status", {"status": "lunch"}).status == 422


class TestFiguresStayTrue:
    """Each figure checked against a value computed here, from what the API reported, after the work."""

    def _work(self, tickets_api: HandlerClient, agent: dict[str, Any], rating: int | None, wait: float) -> None:
        ticket = new_ticket(tickets_api)
        tickets_api.post(f"{TICKETS}/{ticket['id']}/assign", {"agentId": agent["id"]})
        time.sleep(wait)
        tickets_api.post(
            f"{TICKETS}/{ticket['id']}/conversations", {"senderType": "agent", "senderName": "G", "message": "hi"}
        )
        tickets_api.patch(f"{TICKETS}/{ticket['id']}", {"status": "resolved"})
        if rating is not None:
            tickets_api.post(f"{TICKETS}/{ticket['id']}/feedback", {"rating": 5, "agentRating": rating})

    def test_resolution_response_and_rating_figures(
        self, tickets_api: HandlerClient, agents_api: HandlerClient
    ) -> None:
        agent, other = new_agent(agents_api), new_agent(agents_api)
        self._work(tickets_api, agent, rating=5, wait=1.1)
        self._work(tickets_api, agent, rating=2, wait=0)
        self._work(tickets_api, agent, rating=None, wait=0)
        self._work(tickets_api, other, rating=4, wait=0)
        open_ticket = new_ticket(tickets_api)
        tickets_api.post(f"{TICKETS}/{open_ticket['id']}/assign", {"agentId": agent["id"]})

        mine = tickets_api.get(TICKETS, query={"assignedAgentId": agent["id"]}).data
        resolved = [t for t in mine if t["status"] in ("resolved", "closed")]
        responded = [t["firstResponseTime"] for t in mine if t["firstResponseTime"] is not None]
        ratings = [tickets_api.get(f"{TICKETS}/{t['id']}/feedback") for t in resolved]
        agent_ratings = [r.data["agentRating"] for r in ratings if r.status == 200]

        figures = agents_api.get(f"{AGENTS}/{agent['id']}").data
        assert figures["totalTicketsResolved"] == len(resolved) == 3
        assert figures["averageResolutionTime"] == round(statistics.mean(t["resolutionTime"] for t in resolved))
        assert figures["responseTimeAverage"] == round(statistics.mean(responded))
        assert figures["averageRating"] == pytest.approx(round(statistics.mean(agent_ratings), 2)) == 3.5
        assert agents_api.get(f"{AGENTS}/{other['id']}").data["averageRating"] == 4

    def test_reassignment_and_reopening_move_the_figures(
        self, tickets_api: HandlerClient, agents_api: HandlerClient
    ) -> None:
        first, second = new_agent(agents_api), new_agent(agents_api)
        self._work(tickets_api, first, rating=3, wait=0)
        ticket = tickets_api.get(TICKETS, query={"assignedAgentId": first["id"]}).data[0]

        tickets_api.patch(f"{TICKETS}/{ticket['id']}", {"assignedAgentId": second["id"]})
        after_move = (agents_api.get(f"{AGENTS}/{first['id']}").data, agents_api.get(f"{AGENTS}/{second['id']}").data)
        assert [a["totalTicketsResolved"] for a in after_move] == [0, 1]
        assert [a["averageRating"] for a in after_move] == [None, 3]

        tickets_api.patch(f"{TICKETS}/{ticket['id']}", {"status": "open"})
        reopened = agents_api.get(f"{AGENTS}/{second['id']}").data
        assert (reopened["totalTicketsResolved"], reopened["averageResolutionTime"]) == (0, None)

    def test_bulk_inserts_and_deletes_keep_the_figures(
        self, tickets_api: HandlerClient, agents_api: HandlerClient, db: DatabaseUrls
    ) -> None:
        agent = new_agent(agents_api)
        with psycopg.connect(db.owner) as conn:  # a bulk load, as an import would do it
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(agents_api.tenant),))
            conn.execute(
                "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, status,"
                " assigned_agent_id, resolved_at, resolution_time, first_response_time)"
                " SELECT %s, 'C', 'c@example.com', 's', 'resolved', %s, now(), 100 * n, 10 * n"
                " FROM generate_series(1, 4) n",
                (agents_api.tenant, agent["id"]),
            )
        loaded = agents_api.get(f"{AGENTS}/{agent['id']}").data
        assert (loaded["totalTicketsResolved"], loaded["averageResolutionTime"], loaded["responseTimeAverage"]) == (
            4,
            250,
            25,
        )

        with psycopg.connect(db.admin) as conn:  # an admin deletes two of them, naming the tenant as a fix must
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(agents_api.tenant),))
            conn.execute(
                "DELETE FROM support_tickets WHERE assigned_agent_id = %s AND resolution_time >= 300", (agent["id"],)
            )
        after = agents_api.get(f"{AGENTS}/{agent['id']}").data
        assert (after["totalTicketsResolved"], after["averageResolutionTime"], after["responseTimeAverage"]) == (
            2,
            150,
            15,
        )


class TestTenancy:
    def test_another_tenants_agent_answers_404_everywhere(self, agents_api: HandlerClient, other_tenant: UUID) -> None:
        agent = new_agent(agents_api)
        b = agents_api.as_tenant(other_tenant)
        replies = [
            b.get(f"{AGENTS}/{agent['id']}"),
            b.patch(f"{AGENTS}/{agent['id']}", {"department": "x"}),
            b.patch(f"{AGENTS}/{agent['id']}/status", {"status": "away"}),
        ]
        assert [r.status for r in replies] == [404, 404, 404]
        assert b.get(AGENTS).data == []
        assert agents_api.get(f"{AGENTS}/{agent['id']}").data["department"] is None


EVENTS = Path(__file__).resolve().parents[2] / "events" / "agents"


def test_every_agents_sample_event_succeeds(db: DatabaseUrls) -> None:
    from functions.agents import app
    from local.sample_events import AGENT_ID, TENANT_ID

    with psycopg.connect(db.admin) as conn:
        conn.execute("DELETE FROM support_agents WHERE user_id = %s AND agent_email <> 'seed@x.example'", (TENANT_ID,))
        conn.execute(
            "INSERT INTO support_agents (id, user_id, agent_name, agent_email) "
            "VALUES (%s, %s, 'Seed', 'seed@x.example') ON CONFLICT (id) DO NOTHING",
            (AGENT_ID, TENANT_ID),
        )
    expected = {"create": 201, "list": 200, "get": 200, "update": 200, "update_status": 200}
    assert sorted(p.stem for p in EVENTS.glob("*.json")) == sorted(expected)
    for name, status in expected.items():
        result = invoke_sample_event(app.lambda_handler, EVENTS / f"{name}.json", "AgentsFunction")
        assert result["statusCode"] == status, (name, result["body"])
