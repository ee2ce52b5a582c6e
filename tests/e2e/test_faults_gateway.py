"""A database failover under the local stack (issue 20, "Faults"): the server ends every function's connection at
once (the workers of the local gateway, each an execution environment with its cached connection), and the next HTTP
request and the next WebSocket action through the gateway are served, on new connections, with nothing lost."""

from __future__ import annotations

import psycopg
import pytest

from local.database import DatabaseUrls
from support.db.connection import APPLICATION_NAME
from tests.e2e.test_live_chat import Desk, clients, desk

__all__ = ["clients", "desk"]  # fixtures, used by name below

pytestmark = pytest.mark.e2e


def _end_every_function_connection(db: DatabaseUrls) -> int:
    """As a failover does: every backend of the functions (and of this process's layer) ended; answers how many."""
    with psycopg.connect(db.admin, autocommit=True) as admin:
        ended = admin.execute(
            """SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = %s AND pid <> pg_backend_pid()""",
            (APPLICATION_NAME,),
        ).fetchall()
    return len(ended)


def test_after_every_function_connection_is_ended_the_next_requests_and_actions_are_served(
    desk: Desk, db: DatabaseUrls
) -> None:
    # Given a live chat between a visitor and an agent, and a ticket, each served by the gateway's workers
    _, agent = desk.agent("Grace")
    _, visitor = desk.visitor()
    chat = visitor.ask("startChat", "chat.started")["data"]
    agent.expect("chat.assigned")
    visitor.ask("sendMessage", "message.new", sessionId=chat["id"], message="Hello?", clientMessageId="c-1")
    agent.expect("message.new")
    body = {"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "Late", "description": "Where?"}
    assert desk.admin.post("/api/support/tickets", json=body).status_code == 201

    # When the database ends every function's connection
    assert _end_every_function_connection(db) >= 2  # the HTTP API's worker and the WebSocket API's, at least

    # Then the next HTTP requests are served
    made = desk.admin.post("/api/support/tickets", json={**body, "subject": "Later"})
    assert made.status_code == 201, made.text
    listed = desk.admin.get("/api/support/tickets")
    assert listed.status_code == 200 and len(listed.json()["data"]) == 2
    # and the next WebSocket actions: stored once, told to the other side
    sent = agent.ask("sendMessage", "message.new", sessionId=chat["id"], message="On its way", clientMessageId="a-1")
    assert visitor.expect("message.new")["data"]["id"] == sent["data"]["id"]
    synced = visitor.ask("sync", "sync", sessionId=chat["id"])["data"]["messages"]
    assert [m["message"] for m in synced] == ["Hello?", "On its way"]
