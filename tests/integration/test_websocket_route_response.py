"""The caller's answer is the WebSocket route's response: the real WebSocket function, in-process with the events
API Gateway builds, against the real database, and a management API that records every request the fan-out makes.
Each action's answer (its requestId echoed) is the body of the function's result, which API Gateway sends to the
caller when the invocation ends; nothing is posted to the caller but what else happened (such as its queue position),
so those events come first. A refusal that closes the connection still posts its error, before the close."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from starlette.requests import Request
from starlette.responses import Response

from local.database import DatabaseUrls
from local.gateway import LambdaContext
from local.gateway.websocket_api import direct_websocket_event
from support.auth import Principal, Role, authorizer_context
from support.models.agents import AgentCreate
from support.models.widgets import WidgetCreate
from support.services import agents, widgets
from support.services.connections import Caller, Outbox, Reply
from tests.management_api import management_api_serving


class ManagementApi:
    """Every request to `@connections/{id}`, in the order they arrived: (method, connection id, event or None)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        self._lock = threading.Lock()

    async def post(self, request: Request) -> Response:
        body = json.loads(await request.body())
        with self._lock:
            self.requests.append(("POST", request.path_params["connection_id"], body))
        return Response(status_code=200)

    async def delete(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(("DELETE", request.path_params["connection_id"], None))
        return Response(status_code=204)

    def take(self) -> list[tuple[str, str, dict[str, Any] | None]]:
        with self._lock:
            taken, self.requests = self.requests, []
        return taken


@pytest.fixture
def management(db: DatabaseUrls, monkeypatch: pytest.MonkeyPatch) -> Iterator[ManagementApi]:
    api = ManagementApi()
    with management_api_serving(api.post, monkeypatch, delete=api.delete):
        yield api


class Connection:
    """A WebSocket connection as the function sees it; `send` returns the function's result as API Gateway gets it."""

    def __init__(self, authorizer: dict[str, str]) -> None:
        self.id = f"conn-{uuid4().hex[:12]}"
        self.authorizer = {**authorizer, "principalId": "p"}
        self._count = 0
        assert self.invoke("$connect") == {"statusCode": 200}

    def invoke(self, route: str, body: str | None = None) -> dict[str, Any]:
        from functions.websocket import app

        event = direct_websocket_event(
            route, self.id, self.authorizer, body=body, source_ip="203.0.113.7", user_agent="route-response-test"
        )
        return dict(app.lambda_handler(event, LambdaContext("WebSocketFunction", 512, 10)))

    def send(self, action: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        self._count += 1
        request_id = f"r{self._count}"
        return request_id, self.invoke(action, json.dumps({"action": action, "requestId": request_id, **fields}))


def _answer(result: dict[str, Any], request_id: str) -> dict[str, Any]:
    """The route response's body: the answer event, which echoes the request's id."""
    assert result["statusCode"] == 200 and set(result) == {"statusCode", "body"}, result
    answer = json.loads(result["body"])
    assert answer["requestId"] == request_id
    return dict(answer)


def _posted_to(requests: list[tuple[str, str, dict[str, Any] | None]], connection: Connection) -> list[Any]:
    return [event for method, target, event in requests if method == "POST" and target == connection.id]


@pytest.fixture
def desk(db: DatabaseUrls, tenant: UUID) -> tuple[Connection, Connection, UUID]:
    """An agent's connection (Grace, offline for now) and a visitor's, of one tenant."""
    admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="admin")
    agent = agents.create_agent(admin, AgentCreate(agent_name="Grace", agent_email=f"{uuid4()}@desk.example"))
    staff = Principal(tenant_id=tenant, role=Role.AGENT, subject="grace", agent_id=agent.id)
    key = widgets.create_widget(admin, WidgetCreate(name="Shop", allowed_origins=["https://shop.example"])).widget_key
    visitor = Principal(tenant_id=tenant, role=Role.VISITOR, subject="visitor:v-1", visitor_id="v-1", widget_key=key)
    return Connection(authorizer_context(staff)), Connection(authorizer_context(visitor)), agent.id


def test_every_answer_is_the_route_response_and_nothing_is_posted_to_the_caller_but_other_news(
    management: ManagementApi, desk: tuple[Connection, Connection, UUID]
) -> None:
    agent, visitor, agent_id = desk

    # startChat with no agent free: chat.started is the response; the queue position, news of its own, is posted
    request_id, result = visitor.send("startChat", visitorName="Lin")
    started = _answer(result, request_id)
    assert (started["type"], started["data"]["status"]) == ("chat.started", "waiting")
    session_id = started["data"]["id"]
    posted = management.take()
    assert [e["type"] for e in _posted_to(posted, visitor)] == ["chat.queued"]
    assert [e["type"] for e in _posted_to(posted, agent)] == ["queue.updated"]  # the staff broadcast (run inline)

    # setStatus: agent.status is the response; the chat the agent takes from the queue is posted to it (and to the
    # visitor), so it arrives first
    request_id, result = agent.send("setStatus", status="available")
    assert _answer(result, request_id)["data"] == {"agentId": str(agent_id), "status": "available"}
    posted = management.take()
    # then the staff broadcast (run inline here, after the action's posts): the agent's new status and the queue
    # (posted concurrently with each other, so in either order)
    kinds = [e["type"] for e in _posted_to(posted, agent)]
    assert kinds[0] == "chat.assigned" and sorted(kinds[1:]) == ["agent.status", "queue.updated"], kinds
    assert [e["type"] for e in _posted_to(posted, visitor)] == ["chat.assigned"]

    # sendMessage: message.new to the sender as the response, to the agent as a post
    request_id, result = visitor.send("sendMessage", sessionId=session_id, message="Hello", clientMessageId="m-1")
    message = _answer(result, request_id)
    assert (message["type"], message["data"]["message"]) == ("message.new", "Hello")
    posted = management.take()
    assert _posted_to(posted, visitor) == []
    assert [e["data"]["id"] for e in _posted_to(posted, agent)] == [message["data"]["id"]]

    # typing answers nothing: a result without a body; the other side is told
    request_id, result = visitor.send("typing", sessionId=session_id, isTyping=True)
    assert result == {"statusCode": 200}
    posted = management.take()
    assert _posted_to(posted, visitor) == [] and [e["type"] for e in _posted_to(posted, agent)] == ["typing"]
    # typing's route is one-way (no route response): its error is posted to the caller, or it would be lost
    request_id, result = visitor.send("typing", sessionId=str(uuid4()), isTyping=True)
    assert result == {"statusCode": 200}
    refused = _posted_to(management.take(), visitor)
    assert [(e["type"], e["requestId"], e["data"]["code"]) for e in refused] == [("error", request_id, "not_found")]

    # and every other action, and every kind of error, is answered the same way
    for connection, action, fields, kind in [
        (agent, "markRead", {"sessionId": session_id, "upToMessageId": message["data"]["id"]}, "message.read"),
        (agent, "sync", {"sessionId": session_id}, "sync"),
        (agent, "ping", {}, "pong"),
        (agent, "claimChat", {"sessionId": session_id}, "error"),  # no longer waiting: conflict
        (visitor, "sync", {"sessionId": str(uuid4())}, "error"),  # not found
        (visitor, "sendMessage", {"sessionId": session_id}, "error"),  # validation error
        (visitor, "noSuchAction", {}, "error"),  # unknown_action, on $default
        (visitor, "endChat", {"sessionId": session_id}, "chat.ended"),
        (visitor, "rateChat", {"sessionId": session_id, "rating": 5}, "chat.rated"),
    ]:
        route = action if action != "noSuchAction" else "$default"
        connection._count += 1
        request_id = f"r{connection._count}"
        result = connection.invoke(route, json.dumps({"action": action, "requestId": request_id, **fields}))
        assert _answer(result, request_id)["type"] == kind, (action, result)
        assert not [e for e in _posted_to(management.take(), connection) if e.get("requestId")], action

    # A body that is not JSON has no requestId to echo: still the response
    result = visitor.invoke("$default", "{not json")
    assert json.loads(result["body"])["data"]["code"] == "bad_request"
    assert _posted_to(management.take(), visitor) == []


def test_an_expired_token_is_refused_by_a_post_before_the_close_and_no_route_response(
    management: ManagementApi, tenant: UUID
) -> None:
    staff = Principal(tenant_id=tenant, role=Role.ADMIN, subject="admin", token_expires_at=datetime.now(UTC))
    connection = Connection(authorizer_context(staff))

    _, result = connection.send("ping")

    # The error must reach the client before the server closes the connection: a route response would come after
    assert result == {"statusCode": 200}
    requests = management.take()
    assert [(method, target) for method, target, _ in requests] == [("POST", connection.id), ("DELETE", connection.id)]
    assert requests[0][2] is not None and requests[0][2]["data"]["code"] == "token_expired"
    assert requests[0][2]["requestId"] == "r1"


def test_the_outbox_answers_into_the_reply_after_the_commit_and_posts_an_answer_without_one(
    management: ManagementApi, tenant: UUID
) -> None:
    # Into the reply, and only at send (after the commit): a transaction that fails after answering answers nothing
    reply = Reply()
    outbox = Outbox(tenant, Caller("conn-a", "r-1", reply=reply))
    outbox.answer("pong", {"n": 1})
    outbox.tell(["conn-a", "conn-b"], "news", {}, caller_too=True)
    assert reply.event is None
    outbox.send()
    assert reply.event == {"type": "pong", "requestId": "r-1", "data": {"n": 1}}
    assert sorted((target, e["type"]) for _, target, e in management.take() if e) == [
        ("conn-a", "news"),
        ("conn-b", "news"),
    ]

    # A second answer to the same request (no action gives one) is posted rather than lost
    again = Outbox(tenant, Caller("conn-a", "r-1", reply=reply))
    again.answer("error", {"code": "internal_error"})
    again.send()
    assert reply.event["type"] == "pong"
    assert [(target, e["type"]) for _, target, e in management.take() if e] == [("conn-a", "error")]

    # A caller without a reply (an answer outside its route's invocation) is answered by a post, with the rest and
    # before any close
    posting = Outbox(tenant, Caller("conn-c", "r-9"))
    posting.tell(["conn-c"], "news", {}, caller_too=True)
    posting.answer("pong", {})
    posting.close(["conn-c"])
    posting.send()
    requests = management.take()
    assert ("POST", "conn-c", {"type": "pong", "requestId": "r-9", "data": {}}) in requests[:2]
    assert [(m, t) for m, t, _ in requests] == [("POST", "conn-c"), ("POST", "conn-c"), ("DELETE", "conn-c")]
