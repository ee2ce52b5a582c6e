"""A chat's own staff connection (`$connect` with `?sessionId=`: a console's chat window): it hears that chat's events
only, not the agent's other chats nor the staff broadcasts, which the agent's main connection hears; a malformed id
or a chat not of the tenant refuses the connection.

Real database, the real WebSocket handler with the events API Gateway builds, the real services; the management API
is a real HTTP stand-in recording what each connection is sent (staff broadcasts run inline).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from local.gateway import LambdaContext
from local.gateway.websocket_api import direct_websocket_event
from support.auth import Principal, Role, authorizer_context
from support.models.agents import AgentStatus
from support.models.chat import ChatMessageCreate
from support.models.tickets import SenderType
from support.models.widgets import WidgetCreate
from support.services import chat, widgets
from tests.integration.test_broadcasts import Desk
from tests.integration.test_connection_rights import SHOP, _visitor_connects
from tests.management_api import Posts, posts

__all__ = ["posts"]  # the fixture, used by name below


def _connect(principal: Principal, query: dict[str, str] | None = None) -> tuple[str, int]:
    """$connect of a new connection of `principal` with the query string `query`: its id and the status answered."""
    from functions.websocket import app

    connection_id = f"c-{uuid4().hex[:12]}"
    event: dict[str, Any] = direct_websocket_event("$connect", connection_id, authorizer_context(principal))
    if query is not None:
        event["queryStringParameters"] = query
    result = app.lambda_handler(event, LambdaContext("WebSocketFunction", 512, 10))
    return connection_id, int(result["statusCode"])


def _recorded(db: DatabaseUrls, connection_id: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db.admin) as conn:
        return conn.execute(
            "SELECT session_id FROM ws_connections WHERE connection_id = %s", (connection_id,)
        ).fetchall()


def _visitor(desk: Desk, visitor_id: str) -> Principal:
    return Principal(tenant_id=desk.tenant, role=Role.VISITOR, subject=visitor_id, visitor_id=visitor_id)


def _says(desk: Desk, visitor_id: str, session_id: UUID, text: str) -> None:
    message = ChatMessageCreate(sender_type=SenderType.CUSTOMER, message=text)
    chat.add_chat_message(_visitor(desk, visitor_id), session_id, message)


def _texts(posts: Posts, connection_id: str) -> list[str]:
    return [m["message"] for m in posts.of(connection_id, "message.new")]


def test_a_chats_own_connection_hears_that_chat_alone_and_the_main_connection_hears_all(
    db: DatabaseUrls, posts: Posts
) -> None:
    # Given an agent with two chats, their console's main connection and one window per chat
    desk = Desk()
    grace = desk.agent(capacity=2, status=AgentStatus.AVAILABLE)
    first, second = desk.start("v-1"), desk.start("v-2")
    assert first.assigned_agent_id == second.assigned_agent_id == grace.agent_id
    main, status = _connect(grace)
    assert status == 200
    window_1, status_1 = _connect(grace, {"sessionId": str(first.id)})
    window_2, status_2 = _connect(grace, {"sessionId": str(second.id)})
    assert (status_1, status_2) == (200, 200)
    assert _recorded(db, window_1) == [(first.id,)] and _recorded(db, main) == [(None,)]

    # When each visitor writes
    _says(desk, "v-1", first.id, "about my first order")
    _says(desk, "v-2", second.id, "about my second order")

    # Then each window got its own chat's message only, and the main connection both
    assert _texts(posts, window_1) == ["about my first order"]
    assert _texts(posts, window_2) == ["about my second order"]
    assert sorted(_texts(posts, main)) == ["about my first order", "about my second order"]


def test_a_chats_own_connection_hears_no_staff_broadcast(db: DatabaseUrls, posts: Posts) -> None:
    # Given an agent at capacity with one chat, their main connection and the chat's window
    desk = Desk()
    grace = desk.agent(capacity=1, status=AgentStatus.AVAILABLE)
    taken = desk.start("v-1")
    main, _ = _connect(grace)
    window, _ = _connect(grace, {"sessionId": str(taken.id)})

    # When a new chat has to wait (the staff broadcast tells the queue)
    desk.start("v-2")

    # Then the main connection hears the queue, the chat's window does not
    assert posts.of(main, "queue.updated")
    assert posts.of(window, "queue.updated") == []


@pytest.mark.parametrize("followed", ["not-a-uuid", "", "12345"])
def test_a_malformed_chat_id_refuses_the_connection(db: DatabaseUrls, posts: Posts, followed: str) -> None:
    desk = Desk()
    grace = desk.agent()
    connection_id, status = _connect(grace, {"sessionId": followed})
    assert status == 400
    assert _recorded(db, connection_id) == []


def test_a_chat_of_another_tenant_or_none_refuses_the_connection(db: DatabaseUrls, posts: Posts) -> None:
    # Given a chat of another desk
    other = Desk()
    other.agent(status=AgentStatus.AVAILABLE)
    theirs = other.start("v-9")
    desk = Desk()
    grace = desk.agent()

    # Then an agent of this desk cannot open a window on it (nor on a chat that does not exist): nothing recorded
    for followed in (theirs.id, uuid4()):
        connection_id, status = _connect(grace, {"sessionId": str(followed)})
        assert status == 403
        assert _recorded(db, connection_id) == []


def test_a_visitors_connection_follows_no_single_chat(db: DatabaseUrls, posts: Posts) -> None:
    # Given a visitor's chat (its connection opened with the widget key's connect token)
    desk = Desk()
    key = widgets.create_widget(desk.admin, WidgetCreate(name="Shop", allowed_origins=[SHOP])).widget_key
    context = _visitor_connects(desk.tenant, key, "v-1")
    desk.agent(status=AgentStatus.AVAILABLE)
    session = desk.start("v-1")

    # When it connects naming a chat (even a malformed one): a visitor hears its own chats only in any case
    from functions.websocket import app

    for followed in (str(session.id), "not-a-uuid"):
        connection_id = f"c-{uuid4().hex[:12]}"
        event = direct_websocket_event("$connect", connection_id, {**context, "principalId": "p"})
        event["queryStringParameters"] = {"sessionId": followed}
        result = app.lambda_handler(event, LambdaContext("WebSocketFunction", 512, 10))
        # Then the connection is opened as any visitor's, following no single chat
        assert result["statusCode"] == 200
        assert _recorded(db, connection_id) == [(None,)]
