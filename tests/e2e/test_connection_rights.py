"""A WebSocket connection keeps only the rights it was opened with, end to end through the local gateway (the
template's routes, the production authorizer and WebSocket function in worker processes, the local management
API, real WebSocket clients): a staff token must name an agent of its tenant, a connection ends with its staff
token's expiry and with its widget key, a connect token connects once, and a clientMessageId is its sender's."""

from __future__ import annotations

import time
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from local.database import DatabaseUrls
from local.token import mint_token
from tests.e2e import test_live_chat as live
from tests.e2e.test_live_chat import SHOP, WAIT, ChatClient, Desk

pytestmark = pytest.mark.e2e

# The live chat tests' fixtures: WebSocket clients closed after each test, and a fresh desk (tenant, widget key).
clients = live.clients
desk = live.desk


def _refused_status(url: str, origin: str | None = None) -> int:
    with pytest.raises(InvalidStatus) as refused:
        connect(url, additional_headers={"Origin": origin} if origin else None, ping_interval=None, open_timeout=WAIT)
    return int(refused.value.response.status_code)


def _closed_by_the_server(client: ChatClient) -> list[dict[str, Any]]:
    """What arrives before the server closes the connection (which it must, within WAIT)."""
    got: list[dict[str, Any]] = list(client.seen)
    client.seen.clear()
    deadline = time.monotonic() + WAIT
    while (left := deadline - time.monotonic()) > 0:
        try:
            got.append(client.receive(timeout=left))
        except TimeoutError:
            break
        except ConnectionClosed:
            return got
    raise AssertionError(f"the server left the connection open; it sent {got}")


def _connections(db: DatabaseUrls, desk: Desk) -> list[tuple[str, Any]]:
    with psycopg.connect(db.admin) as conn:
        return conn.execute(
            "SELECT role, token_expires_at FROM ws_connections WHERE user_id = %s ORDER BY role", (desk.tenant,)
        ).fetchall()


def _wait_for(condition: Any) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# --- 1. a staff token whose agent_id is not an agent of its tenant ------------------------------------------


def test_a_staff_token_naming_no_agent_of_its_tenant_is_refused_not_a_500(desk: Desk, db: DatabaseUrls) -> None:
    # Given an agent of another tenant, and a random id
    other = Desk(desk.gateway_url, desk.chat, desk.open_client)
    theirs, _ = other.agent("Mallory")
    for agent_id in (str(uuid4()), theirs):
        token = mint_token(str(desk.tenant), "agent", agent_id=agent_id)
        # When a token of this tenant names it, Then the authorizer refuses the connection (403), cleanly
        assert _refused_status(f"{desk.chat.websocket_url}/?token={token}") == 403
    assert _connections(db, desk) == []
    # while this tenant's own agent connects
    _, agent = desk.agent("Grace")
    assert agent.ask("ping", "pong")["type"] == "pong"
    other.admin.close()


# --- 2. a staff connection ends with its token --------------------------------------------------------------


def test_a_staff_connection_is_refused_and_closed_once_its_token_expires(desk: Desk, db: DatabaseUrls) -> None:
    # Given a staff connection whose token expires in a few seconds
    lifetime = 4
    token = mint_token(str(desk.tenant), "admin", expires_in=lifetime)
    expires = int(time.time()) + lifetime
    staff = desk.open_client(f"{desk.chat.websocket_url}/?token={token}")
    assert staff.ask("ping", "pong")["type"] == "pong"  # working while the token is valid
    # its expiry is recorded on the connection
    (row,) = _connections(db, desk)
    assert row[0] == "admin" and abs(row[1].timestamp() - expires) <= 2

    # When it sends anything after the expiry
    time.sleep(max(0.0, expires - time.time()) + 1.5)
    request_id = staff.send("ping")

    # Then it gets an error event saying so, and the server closes the connection (its row goes)
    got = _closed_by_the_server(staff)
    errors = [e for e in got if e["type"] == "error"]
    assert [(e.get("requestId"), e["data"]["code"]) for e in errors] == [(request_id, "token_expired")]
    assert "reconnect" in errors[0]["data"]["message"]
    assert not [e for e in got if e["type"] == "pong"]
    _wait_for(lambda: _connections(db, desk) == [])


# --- 2. a revoked widget key closes its visitors' connections -----------------------------------------------


def test_revoking_a_widget_key_closes_its_visitors_connections(desk: Desk, db: DatabaseUrls) -> None:
    # Given two visitors of the key in a chat, and a staff connection
    _, agent = desk.agent("Grace")
    _, visitor = desk.visitor()
    _, idle = desk.visitor()
    chat = visitor.ask("startChat", "chat.started")["data"]
    agent.expect("chat.assigned")

    # When an admin revokes the key
    assert desk.admin.delete(f"/api/support/widgets/{desk.widget_key}").status_code == 200

    # Then both visitors' connections are closed by the server, and their rows are gone; the agent's stays
    _closed_by_the_server(visitor)
    _closed_by_the_server(idle)
    _wait_for(lambda: [r[0] for r in _connections(db, desk)] == ["agent"])
    assert agent.ask("ping", "pong")["type"] == "pong"
    # and nothing the visitor sent got in
    with psycopg.connect(db.admin) as conn:
        count = conn.execute("SELECT count(*) FROM chat_messages WHERE session_id = %s", (chat["id"],)).fetchone()
    assert count == (0,)


# --- 7. a connect token connects once -----------------------------------------------------------------------


def test_a_visitor_connect_token_connects_once(desk: Desk) -> None:
    session, first = desk.visitor()
    assert first.ask("ping", "pong")["type"] == "pong"
    url = f"{desk.chat.websocket_url}/?visitorToken={session['connectToken']}"

    # A second connection with the same connect token is refused, even while the first is open, and after
    assert _refused_status(url, SHOP) == 401
    first.ws.close()
    assert _refused_status(url, SHOP) == 401
    # while a fresh token of the same visitor (the widget's reconnect) connects
    again = desk.visitor_session(resume_token=session["resumeToken"])
    _, back = desk.visitor(again)
    assert back.ask("ping", "pong")["type"] == "pong"


# --- 3. a clientMessageId is its sender's -------------------------------------------------------------------


def test_a_client_message_id_is_the_senders_and_a_foreign_one_is_a_conflict(desk: Desk, db: DatabaseUrls) -> None:
    _, agent = desk.agent("Grace")
    _, visitor = desk.visitor()
    chat = visitor.ask("startChat", "chat.started")["data"]
    agent.expect("chat.assigned")

    # Given the visitor used an id the agent's client will use
    mine = visitor.ask("sendMessage", "message.new", sessionId=chat["id"], message="first", clientMessageId="m-1")
    agent.expect("message.new")

    # When the agent sends a message with that id, Then it is a conflict, not the visitor's message answered back
    refused = agent.ask("sendMessage", "error", sessionId=chat["id"], message="Hello!", clientMessageId="m-1")
    assert refused["data"]["code"] == "conflict"
    assert "clientMessageId" in refused["data"]["message"]
    # and with another id it goes through
    sent = agent.ask("sendMessage", "message.new", sessionId=chat["id"], message="Hello!", clientMessageId="m-2")
    assert sent["data"]["senderType"] == "agent"
    assert visitor.expect("message.new")["data"]["id"] == sent["data"]["id"]

    # A resend by the sender itself is still answered with its stored message, once, to it alone
    resent = visitor.ask("sendMessage", "message.new", sessionId=chat["id"], message="first", clientMessageId="m-1")
    assert resent["data"]["id"] == mine["data"]["id"]
    # and the visitor cannot take the agent's id either
    taken = visitor.ask("sendMessage", "error", sessionId=chat["id"], message="x", clientMessageId="m-2")
    assert taken["data"]["code"] == "conflict"
    with psycopg.connect(db.admin) as conn:
        stored = conn.execute(
            "SELECT sender_type, message FROM chat_messages WHERE session_id = %s ORDER BY created_at", (chat["id"],)
        ).fetchall()
    assert stored == [("customer", "first"), ("agent", "Hello!")]
    assert not [e for e in agent.quiet(0.3) if e["type"] == "message.new"]
