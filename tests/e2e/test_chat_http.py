"""A live chat over real HTTP through the local gateway, as a chat widget and an agent console would drive it."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID, uuid4

import httpx

from support.auth import Principal, Role
from support.models.agents import AgentCreate
from support.models.chat import ChatMessageCreate, ChatRating
from support.models.tickets import SenderType
from support.services import agents, chat

BASE = "/api/support/chat/sessions"


def admin_of(tenant: UUID) -> Principal:
    return Principal(tenant_id=tenant, role=Role.ADMIN, subject="test-admin")


def new_agent(tenant: UUID, name: str) -> str:
    data = AgentCreate(agent_name=name, agent_email=f"{uuid4()}@desk.example", max_concurrent_chats=2)
    return str(agents.create_agent(admin_of(tenant), data).id)


def test_a_chat_from_start_to_rating(client_for: Callable[..., httpx.Client], tenant: UUID) -> None:
    api = client_for(tenant)
    first, specialist = new_agent(tenant, "Grace"), new_agent(tenant, "Ada")

    started = api.post(
        BASE,
        json={"visitorId": "visitor-42", "visitorName": "Lin", "visitorEmail": "lin@example.com"},
        headers={"User-Agent": "Mozilla/5.0 (Macintosh) Safari/605.1.15"},
    )
    assert started.status_code == 201, started.text
    session = started.json()["data"]
    path = f"{BASE}/{session['id']}"
    assert session["status"] == "waiting"
    assert session["visitorIp"] == "127.0.0.1"  # the gateway's client address, as API Gateway's sourceIp
    assert session["visitorBrowser"] == "Mozilla/5.0 (Macintosh) Safari/605.1.15"
    assert api.get(BASE, params={"status": "active"}).json()["data"] == []

    assigned = api.post(f"{path}/transfer", json={"toAgentId": first})
    assert assigned.json()["data"]["status"] == "active"
    assert [s["id"] for s in api.get(BASE, params={"status": "active"}).json()["data"]] == [session["id"]]

    # The visitor's message comes over the WebSocket (its service call here); staff may not write it for them
    visitor = Principal(
        tenant_id=tenant, role=Role.VISITOR, subject="visitor:visitor-42", visitor_id="visitor-42", widget_key="wk"
    )
    said = ChatMessageCreate(sender_type=SenderType.CUSTOMER, sender_name="Lin", message="Hi!")
    question = chat.add_chat_message(visitor, UUID(session["id"]), said)
    for sender in ("customer", "system"):
        refused = api.post(f"{path}/messages", json={"senderType": sender, "message": "Transferring you to billing"})
        assert refused.status_code == 403, refused.text
    moved = api.post(f"{path}/transfer", json={"toAgentId": specialist}).json()["data"]
    assert (moved["status"], moved["assignedAgentId"], moved["transferredFromAgentId"]) == ("active", specialist, first)
    api.post(f"{path}/messages", json={"senderType": "agent", "senderName": "Ada", "message": "Hello Lin"})

    read = api.post(f"{path}/read", json={"upToMessageId": str(question.id)})
    assert read.json()["data"] == {"markedCount": 1}
    messages = api.get(f"{path}/messages", params={"limit": 1})
    assert [m["senderType"] for m in messages.json()["data"]] == ["customer"]
    rest = api.get(f"{path}/messages", params={"cursor": messages.json()["nextCursor"]})
    assert [m["message"] for m in rest.json()["data"]] == ["Hello Lin"]

    assert api.post(f"{path}/rating", json={"rating": 5}).status_code == 403  # the visitor's to give
    assert api.post(f"{path}/end", json={"duration": 60}).status_code == 422  # the server computes it
    ended = api.post(f"{path}/end").json()["data"]
    assert ended["status"] == "closed" and ended["duration"] >= 0
    assert (ended["totalMessages"], ended["messageCount"]) == (2, 2)
    assert api.post(f"{path}/end").status_code == 409
    assert api.post(f"{path}/messages", json={"senderType": "agent", "message": "still there?"}).status_code == 409

    assert api.post(f"{path}/rating", json={"rating": 5}).status_code == 403  # staff never rate a chat
    rated = chat.rate_chat_session(visitor, UUID(session["id"]), ChatRating(rating=5, feedback="Sorted in minutes"))
    assert api.get(path).json()["data"]["rating"] == rated.rating == 5
    assert [agents.get_agent(admin_of(tenant), UUID(agent)).current_chats for agent in (first, specialist)] == [0, 0]


def test_chat_errors_and_tenancy_over_http(
    client_for: Callable[..., httpx.Client], tenant: UUID, other_tenant: UUID, gateway_url: str
) -> None:
    a, b = client_for(tenant), client_for(other_tenant)
    session = a.post(BASE, json={"visitorId": "v"}).json()["data"]
    path = f"{BASE}/{session['id']}"

    assert httpx.get(f"{gateway_url}{BASE}").status_code == 401
    assert a.post(BASE, content=b"{", headers={"content-type": "application/json"}).status_code == 400
    assert a.post(BASE, json={"visitorId": "v", "visitorIp": "10.0.0.1"}).status_code == 422
    assert a.get(BASE, params={"userId": str(other_tenant)}).status_code == 403
    too_big = a.post(f"{path}/messages", json={"senderType": "agent", "message": "x" * 51201})
    assert too_big.status_code == 413

    assert b.get(path).status_code == 404
    assert b.get(f"{path}/messages").status_code == 404
    assert b.get(BASE).json()["data"] == []
