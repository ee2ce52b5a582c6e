"""A phone call taken by the desk over real HTTP through the local gateway: a ticket created with `channel: phone` and
its first call, a call back logged later, the reference found by search, the channel counted on the dashboard."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID, uuid4

import httpx

BASE = "/api/support/tickets"


def test_a_phone_ticket_with_its_calls_and_its_reference(
    client_for: Callable[..., httpx.Client], tenant: UUID, other_tenant: UUID
) -> None:
    api = client_for(tenant)
    first_call = {"direction": "inbound", "callerNumber": "+1 555 0100", "durationSeconds": 240, "notes": "No login"}
    created = api.post(
        BASE,
        json={
            "customerName": "Grace",
            "customerEmail": "grace@example.com",
            "subject": "Cannot log in",
            "channel": "phone",
            "call": first_call,
        },
    )
    assert created.status_code == 201, created.text
    ticket = created.json()["data"]
    assert ticket["channel"] == "phone" and ticket["reference"] == "#1001"
    api.post(BASE, json={"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "Other"})

    called_back = api.post(f"{BASE}/{ticket['id']}/calls", json={"direction": "outbound", "durationSeconds": 75})
    assert called_back.status_code == 201
    thread = api.get(f"{BASE}/{ticket['id']}/conversations").json()["data"]
    assert [(c["kind"], c["call"]["direction"]) for c in thread] == [("call", "inbound"), ("call", "outbound")]
    assert thread[0]["message"] == "No login" and thread[1]["message"] == "Outbound call, 1:15"

    by_reference = api.get(BASE, params={"search": "#1001"}).json()["data"]
    assert [t["id"] for t in by_reference] == [ticket["id"]]
    by_channel = api.get(BASE, params={"channel": "phone"}).json()["data"]
    assert [t["reference"] for t in by_channel] == ["#1001"]
    dashboard = api.get("/api/support/dashboard").json()["data"]
    assert dashboard["ticketsByChannel"]["phone"] == 1 and dashboard["ticketsByChannel"]["api"] == 1

    # the errors: a channel a client may not claim, bad call input, another tenant's ticket
    refused = api.post(
        BASE, json={"customerName": "A", "customerEmail": "a@example.com", "subject": "s", "channel": "social"}
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "validation_error"
    bad = api.post(f"{BASE}/{ticket['id']}/calls", json={"direction": "inbound", "durationSeconds": -5})
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "body.durationSeconds"
    stranger = client_for(other_tenant)
    assert (
        stranger.post(f"{BASE}/{ticket['id']}/calls", json={"direction": "inbound", "durationSeconds": 5}).status_code
        == 404
    )
    assert (
        stranger.post(f"{BASE}/{uuid4()}/calls", json={"direction": "inbound", "durationSeconds": 5}).status_code == 404
    )
