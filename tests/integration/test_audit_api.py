"""GET /api/support/audit: the audit trail through the API (admins only, filters, keyset pages)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from local.database import DatabaseUrls
from tests.http_events import HandlerClient
from tests.integration.test_tickets_api import BASE, new_agent, new_ticket

AUDIT = "/api/support/audit"


@pytest.fixture
def audit_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.audit import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


def test_a_tickets_history_newest_first(tickets_api: HandlerClient, audit_api: HandlerClient, tenant: UUID) -> None:
    # Given a ticket an admin created and an agent worked on, and another ticket
    agent = new_agent(tickets_api)
    ticket = new_ticket(tickets_api)
    new_ticket(tickets_api, subject="Another")
    as_agent = HandlerClient(tickets_api.handler, tenant=tenant, role="agent", agent_id=UUID(agent["id"]))
    assert as_agent.patch(f"{BASE}/{ticket['id']}", {"status": "in_progress"}).status == 200
    # When an admin asks for the ticket's history
    reply = audit_api.get(AUDIT, query={"entity": "ticket", "id": ticket["id"]})
    # Then its two entries, newest first, with who, what and when
    assert reply.status == 200, reply.body
    update, insert = reply.data
    assert (update["action"], update["entity"], update["entityId"], update["table"]) == (
        "update",
        "ticket",
        ticket["id"],
        "support_tickets",
    )
    assert update["actor"]["type"] == "agent" and update["actor"]["id"] == agent["id"]
    assert update["actor"]["requestId"] and update["actor"]["dbRole"] == "support_app"
    assert update["changes"]["status"] == {"old": "open", "new": "in_progress"}
    assert insert["action"] == "insert" and insert["actor"]["type"] == "admin"
    assert insert["changes"]["customer_email"] == {"personal": True}
    assert insert["changes"]["description"] == {"redacted": True}
    assert datetime.fromisoformat(update["occurredAt"]) >= datetime.fromisoformat(insert["occurredAt"])
    assert reply.body["nextCursor"] is None


def test_filters_by_actor_action_and_time(tickets_api: HandlerClient, audit_api: HandlerClient, tenant: UUID) -> None:
    agent = new_agent(tickets_api)
    ticket = new_ticket(tickets_api)
    as_agent = HandlerClient(tickets_api.handler, tenant=tenant, role="agent", agent_id=UUID(agent["id"]))
    as_agent.patch(f"{BASE}/{ticket['id']}", {"priority": "urgent"})
    by_agent = audit_api.get(AUDIT, query={"actor": agent["id"]})
    assert by_agent.status == 200, by_agent.body
    assert {e["actor"]["id"] for e in by_agent.data} == {agent["id"]} and by_agent.data
    updates = audit_api.get(AUDIT, query={"action": "update", "entity": "ticket"}).data
    assert updates and {e["action"] for e in updates} == {"update"}
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert audit_api.get(AUDIT, query={"from": future}).data == []
    assert audit_api.get(AUDIT, query={"to": future}).data


def test_keyset_pages_cover_every_entry_once(tickets_api: HandlerClient, audit_api: HandlerClient) -> None:
    for n in range(3):
        new_ticket(tickets_api, subject=f"T{n}")
    everything = audit_api.get(AUDIT, query={"limit": 100}).data
    seen: list[int] = []
    cursor = None
    while True:
        query: dict[str, object] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        reply = audit_api.get(AUDIT, query=query)
        assert reply.status == 200, reply.body
        seen += [e["id"] for e in reply.data]
        cursor = reply.body["nextCursor"]
        if cursor is None:
            break
    assert seen == [e["id"] for e in everything] and len(seen) == len(set(seen)) >= 6


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",
        _b64(b"[1.5]"),
        _b64(b"[true]"),
        _b64(b"[0]"),
        _b64(b"[99999999999999999999]"),
        _b64(b"{}"),
        _b64(b'["2026-01-01T00:00:00+00:00", "00000000-0000-0000-0000-000000000000"]'),
        _b64(b"[[[[[[1]]]]]]"),
    ],
)
def test_a_crafted_cursor_is_422(audit_api: HandlerClient, cursor: str) -> None:
    reply = audit_api.get(AUDIT, query={"cursor": cursor})
    assert reply.status == 422, reply.body
    assert reply.error["details"][0]["field"] == "query.cursor"


@pytest.mark.parametrize(
    "query",
    [
        {"entity": "nothing"},
        {"action": "truncate"},
        {"from": "yesterday"},
        {"from": "2026-01-01T00:00:00"},
        {"limit": 0},
        {"limit": 101},
        {"unknown": "x"},
        {"id": ""},
    ],
)
def test_bad_filters_are_422(audit_api: HandlerClient, query: dict[str, object]) -> None:
    reply = audit_api.get(AUDIT, query=query)
    assert reply.status == 422, reply.body


def test_agents_are_refused(tickets_api: HandlerClient, audit_api: HandlerClient, tenant: UUID) -> None:
    agent = new_agent(tickets_api)
    as_agent = HandlerClient(audit_api.handler, tenant=tenant, role="agent", agent_id=UUID(agent["id"]))
    reply = as_agent.get(AUDIT)
    assert reply.status == 403, reply.body


def test_another_tenants_entries_never_show(
    tickets_api: HandlerClient, audit_api: HandlerClient, other_tenant: UUID
) -> None:
    theirs = new_ticket(tickets_api.as_tenant(other_tenant))
    new_ticket(tickets_api)
    assert audit_api.get(AUDIT, query={"entity": "ticket", "id": theirs["id"]}).data == []
    assert theirs["id"] not in {e["entityId"] for e in audit_api.get(AUDIT, query={"limit": 100}).data}


def test_the_sample_event_answers_200(db: DatabaseUrls) -> None:
    import json
    from pathlib import Path

    from functions.audit import app
    from tests.http_events import invoke_sample_event

    event = Path(__file__).resolve().parents[2] / "events" / "audit" / "ticket_history.json"
    result = invoke_sample_event(app.lambda_handler, event, "AuditFunction")
    assert result["statusCode"] == 200, result
    # the sample ticket's history: whatever other tests wrote about that ticket of the sample tenant, and nothing else
    body = json.loads(result["body"])
    assert body["success"] is True and isinstance(body["data"], list)
    event_query = json.loads(event.read_text())["queryStringParameters"]
    assert all(e["entity"] == "ticket" and e["entityId"] == event_query["id"] for e in body["data"])
