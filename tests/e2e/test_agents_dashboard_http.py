"""An admin's day over real HTTP through the local gateway: the team, a resolved ticket, the dashboard."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID, uuid4

import httpx

from local.token import mint_token


def test_team_figures_and_dashboard_follow_the_work(
    client_for: Callable[..., httpx.Client], tenant: UUID, gateway_url: str
) -> None:
    admin = client_for(tenant)
    grace = admin.post("/api/support/agents", json={"agentName": "Grace", "agentEmail": "grace@desk.example"}).json()
    agent_id = grace["data"]["id"]

    # The agent sets their own status with a token that names them; not a colleague's.
    token = mint_token(str(tenant), "agent", agent_id)
    as_grace = httpx.Client(base_url=gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert as_grace.patch(f"/api/support/agents/{agent_id}/status", json={"status": "available"}).status_code == 200
    assert as_grace.patch(f"/api/support/agents/{uuid4()}/status", json={"status": "away"}).status_code == 403
    assert as_grace.patch(f"/api/support/agents/{agent_id}", json={"department": "x"}).status_code == 403
    as_grace.close()

    ticket = admin.post(
        "/api/support/tickets", json={"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "Help"}
    ).json()["data"]
    admin.post(f"/api/support/tickets/{ticket['id']}/assign", json={"agentId": agent_id})
    admin.patch(f"/api/support/tickets/{ticket['id']}", json={"status": "resolved"})
    admin.post(f"/api/support/tickets/{ticket['id']}/feedback", json={"rating": 4, "agentRating": 5})

    agent = admin.get(f"/api/support/agents/{agent_id}").json()["data"]
    assert (agent["status"], agent["totalTicketsResolved"], agent["averageRating"]) == ("available", 1, 5)
    assert [a["id"] for a in admin.get("/api/support/agents", params={"status": "available"}).json()["data"]] == [
        agent_id
    ]

    dashboard = admin.get("/api/support/dashboard", params={"userId": str(tenant)}).json()["data"]
    assert (dashboard["totalTickets"], dashboard["resolvedTickets"], dashboard["availableAgents"]) == (1, 1, 1)
    assert dashboard["customerSatisfactionScore"] == 4
    assert dashboard["topAgents"][0]["id"] == agent_id
    today = datetime.now(UTC).date().isoformat()
    assert dashboard["ticketVolumeTrendLastWeek"][-1] == {"date": today, "count": 1}

    analytics = admin.get("/api/support/analytics", params={"from": "2026-01-01", "to": "2027-01-02"})
    assert analytics.status_code == 422  # 367 days
    assert admin.get("/api/support/analytics", params={"from": today, "to": today}).json() == {
        "success": True,
        "data": [],
    }
