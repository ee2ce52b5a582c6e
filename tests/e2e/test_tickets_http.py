"""Ticket journeys over real HTTP through the local gateway, as an agent console would make them."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID, uuid4

import httpx

BASE = "/api/support/tickets"


def test_a_ticket_from_creation_to_feedback(client_for: Callable[..., httpx.Client], tenant: UUID) -> None:
    api = client_for(tenant)
    agent = api.post("/api/support/agents", json={"agentName": "Grace", "agentEmail": "grace@desk.example"})
    assert agent.status_code == 201

    created = api.post(
        BASE,
        json={"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "Broken mug", "priority": "high"},
    )
    assert created.status_code == 201
    ticket_id = created.json()["data"]["id"]

    assigned = api.post(f"{BASE}/{ticket_id}/assign", json={"agentId": agent.json()["data"]["id"]})
    assert assigned.json()["data"]["status"] == "in_progress"
    reply = api.post(
        f"{BASE}/{ticket_id}/conversations", json={"senderType": "agent", "senderName": "Grace", "message": "On it"}
    )
    assert reply.status_code == 201
    assert api.get(f"{BASE}/{ticket_id}/conversations").json()["data"][0]["message"] == "On it"
    assert api.get(f"{BASE}/{ticket_id}").json()["data"]["firstResponseTime"] is not None

    assert api.patch(f"{BASE}/{ticket_id}", json={"status": "resolved"}).json()["data"]["resolvedAt"]
    assert api.post(f"{BASE}/{ticket_id}/feedback", json={"rating": 5, "agentRating": 5}).status_code == 201
    assert api.get(f"{BASE}/{ticket_id}/feedback").json()["data"]["rating"] == 5
    closed = api.post(f"{BASE}/{ticket_id}/close")
    assert closed.json()["data"]["status"] == "closed"

    listed = api.get(BASE, params={"status": "closed", "search": "mug"})
    assert [t["id"] for t in listed.json()["data"]] == [ticket_id]


def test_error_envelopes_over_http(client_for: Callable[..., httpx.Client], tenant: UUID, gateway_url: str) -> None:
    api = client_for(tenant)

    no_token = httpx.get(f"{gateway_url}{BASE}")
    assert no_token.status_code == 401
    bad_token = httpx.get(f"{gateway_url}{BASE}", headers={"Authorization": "Bearer not.a.jwt"})
    assert bad_token.status_code == 401

    malformed = api.post(BASE, content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "malformed_json"

    assert api.get(BASE, params={"userId": str(uuid4())}).status_code == 403
    invalid = api.get(BASE, params={"limit": 101})
    assert invalid.status_code == 422
    assert invalid.json()["error"]["details"][0]["field"] == "query.limit"
    assert api.get(f"{BASE}/{uuid4()}").status_code == 404

    ticket = api.post(BASE, json={"customerName": "A", "customerEmail": "a@example.com", "subject": "s"}).json()
    too_big = api.post(
        f"{BASE}/{ticket['data']['id']}/conversations",
        json={"senderType": "agent", "senderName": "A", "message": "x" * 51201},
    )
    assert too_big.status_code == 413
    assert too_big.json() == {
        "success": False,
        "error": {
            "code": "payload_too_large",
            "message": "a field is over its size limit",
            "details": [too_big.json()["error"]["details"][0]],
        },
    }


def test_tenants_do_not_see_each_other_over_http(
    client_for: Callable[..., httpx.Client], tenant: UUID, other_tenant: UUID
) -> None:
    a, b = client_for(tenant), client_for(other_tenant)
    ticket = a.post(BASE, json={"customerName": "A", "customerEmail": "a@example.com", "subject": "private"}).json()

    assert b.get(f"{BASE}/{ticket['data']['id']}").status_code == 404
    assert b.get(BASE, params={"search": "private"}).json()["data"] == []
    assert b.get(f"{BASE}/{ticket['data']['id']}/conversations").status_code == 404
