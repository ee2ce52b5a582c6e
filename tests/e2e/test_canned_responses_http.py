"""Canned responses over real HTTP through the local gateway, as an agent console would use them."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import httpx

from local.token import mint_token

BASE = "/api/support/canned-responses"


def test_a_canned_response_from_creation_to_deletion(client_for: Callable[..., httpx.Client], tenant: UUID) -> None:
    admin, agent = client_for(tenant), client_for(tenant, role="agent")

    created = admin.post(
        BASE,
        json={
            "responseTitle": "Refund policy",
            "responseContent": "Refunds reach your card within 5 to 7 business days.",
            "shortcutKey": "Refund",
            "category": "billing",
        },
    )
    assert created.status_code == 201
    response_id = created.json()["data"]["id"]

    duplicate = agent.post(BASE, json={"responseTitle": "t", "responseContent": "c", "shortcutKey": "REFUND"})
    assert duplicate.status_code == 409
    found = agent.get(f"{BASE}/by-shortcut/refund")
    assert found.json()["data"]["id"] == response_id
    used = agent.post(f"{BASE}/{response_id}/use")
    assert used.json()["data"]["usageCount"] == 1
    edited = agent.patch(f"{BASE}/{response_id}", json={"responseContent": "Refunds take 3 business days."})
    assert edited.json()["data"]["responseContent"] == "Refunds take 3 business days."
    listed = agent.get(BASE, params={"search": "3 business", "sort": "usage", "category": "billing"})
    assert [r["id"] for r in listed.json()["data"]] == [response_id]

    deleted = admin.delete(f"{BASE}/{response_id}")
    assert deleted.status_code == 200
    assert deleted.json()["data"]["id"] == response_id
    assert agent.get(f"{BASE}/by-shortcut/refund").status_code == 404


def test_50_concurrent_uses_over_http_add_exactly_50(
    client_for: Callable[..., httpx.Client], tenant: UUID, gateway_url: str
) -> None:
    api = client_for(tenant)
    response_id = api.post(BASE, json={"responseTitle": "t", "responseContent": "c", "shortcutKey": "busy"}).json()[
        "data"
    ]["id"]
    headers = {"Authorization": f"Bearer {mint_token(str(tenant), 'agent')}"}

    def use(_: int) -> int:
        reply = httpx.post(f"{gateway_url}{BASE}/{response_id}/use", headers=headers, timeout=30)
        assert reply.status_code == 200, reply.text
        return int(reply.json()["data"]["usageCount"])

    with ThreadPoolExecutor(max_workers=50) as pool:
        counts = list(pool.map(use, range(50)))

    assert sorted(counts) == list(range(1, 51))
    assert api.get(f"{BASE}/by-shortcut/busy").json()["data"]["usageCount"] == 50


def test_the_reply_box_gets_suggestions_for_a_ticket_through_the_gateway(
    client_for: Callable[..., httpx.Client], tenant: UUID
) -> None:
    admin, agent = client_for(tenant), client_for(tenant, role="agent")
    refund = admin.post(
        BASE, json={"responseTitle": "Refund policy", "responseContent": "Refunds take 5 days.", "shortcutKey": "r"}
    ).json()["data"]["id"]
    admin.post(BASE, json={"responseTitle": "Opening hours", "responseContent": "We open at 9.", "shortcutKey": "o"})
    ticket = admin.post(
        "/api/support/tickets",
        json={"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "Refund?", "description": "Hi"},
    ).json()["data"]

    # The route under /tickets is the canned responses function's (the ticket itself stays the tickets function's)
    reply = agent.get(f"/api/support/tickets/{ticket['id']}/suggested-responses")
    assert reply.status_code == 200, reply.text
    assert [(r["id"], r["matchedWords"]) for r in reply.json()["data"]] == [(refund, ["refund"])]
    assert agent.get(f"/api/support/tickets/{ticket['id']}").json()["data"]["subject"] == "Refund?"
