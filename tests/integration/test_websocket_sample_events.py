"""Each WebSocket sample event in events/ (what `sam local invoke -e` would send) through the real handlers: the
WebSocket function for every route, in an order in which each succeeds, and the $connect authorizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from local.database import DatabaseUrls
from local.sample_events import AGENT_ID, CHAT_MESSAGE_ID, CHAT_SESSION_ID, TENANT_ID, WIDGET_KEY, WIDGET_ORIGIN
from tests.http_events import invoke_sample_event

EVENTS = Path(__file__).resolve().parents[2] / "events"
# The agent of the samples connects, takes the waiting session, works it, hands it on and ends it; the visitor
# only actions (startChat, rateChat, leaveEmail) answer an error event to an agent, which is still a 200 to API
# Gateway.
JOURNEY = [
    "connect",
    "ping",
    "set_status",
    "claim_chat",
    "join_session",
    "sync",
    "send_message",
    "typing",
    "mark_read",
    "transfer",
    "end_chat",
    "start_chat",
    "rate_chat",
    "leave_email",
    "default",
    "disconnect",
]


def test_the_journey_covers_every_sample_event() -> None:
    assert sorted(JOURNEY) == sorted(p.stem for p in (EVENTS / "websocket").glob("*.json"))


@pytest.fixture
def sample_rows(db: DatabaseUrls) -> None:
    """The rows the samples name by their fixed ids: the agent (available, room for two), a waiting session and
    a visitor's message in it, written by hand as the owner (naming the tenant, as every manual write must)."""
    with psycopg.connect(db.owner) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (TENANT_ID,))
        conn.execute("DELETE FROM live_chat_sessions WHERE id = %s", (CHAT_SESSION_ID,))
        conn.execute(
            "INSERT INTO support_agents (id, user_id, agent_name, agent_email, status, max_concurrent_chats)"
            " VALUES (%s, %s, 'Seed', 'ws-seed@x.example', 'offline', 2)"
            " ON CONFLICT (id) DO UPDATE SET status = 'offline', current_chats = 0",
            (AGENT_ID, TENANT_ID),
        )
        conn.execute(
            "INSERT INTO live_chat_sessions (id, user_id, visitor_id) VALUES (%s, %s, 'visitor-sample')",
            (CHAT_SESSION_ID, TENANT_ID),
        )
        conn.execute(
            "INSERT INTO chat_messages (id, session_id, user_id, sender_type, sender_name, message)"
            " VALUES (%s, %s, %s, 'customer', 'Lin', 'Where is my parcel?')",
            (CHAT_MESSAGE_ID, CHAT_SESSION_ID, TENANT_ID),
        )


def test_every_websocket_sample_event_succeeds_against_the_handler(db: DatabaseUrls, sample_rows: None) -> None:
    from functions.websocket import app

    statuses = {}
    for name in JOURNEY:
        result = invoke_sample_event(app.lambda_handler, EVENTS / "websocket" / f"{name}.json", "WebSocketFunction")
        statuses[name] = result["statusCode"]

    assert statuses == dict.fromkeys(JOURNEY, 200)
    with psycopg.connect(db.admin) as conn:
        session = conn.execute(
            "SELECT status, assigned_agent_id, message_count FROM live_chat_sessions WHERE id = %s",
            (CHAT_SESSION_ID,),
        ).fetchone()
        read = conn.execute("SELECT is_read FROM chat_messages WHERE id = %s", (CHAT_MESSAGE_ID,)).fetchone()
        connection = conn.execute("SELECT count(*) FROM ws_connections WHERE connection_id = 'L0SM9cOFvHcCIhw='")
        assert connection.fetchone() == (0,)  # written by $connect, gone after $disconnect
    assert session is not None and session[0] == "closed" and str(session[1]) == AGENT_ID
    assert session[2] == 1  # the agent's sendMessage (the seeded visitor message was written by hand)
    assert read == (True,)


def _with_query(event: dict[str, Any], query: str) -> dict[str, Any]:
    name, _, value = query.partition("=")
    return {**event, "queryStringParameters": {name: value}, "multiValueQueryStringParameters": {name: [value]}}


def test_the_authorizer_sample_admits_a_visitor_with_a_live_token(db: DatabaseUrls, tmp_path: Path) -> None:
    from functions.ws_authorizer import app
    from support.visitors import issue_connect_token

    with psycopg.connect(db.owner) as conn:
        conn.execute("DELETE FROM widget_keys WHERE widget_key = %s", (WIDGET_KEY,))
        conn.execute(
            "INSERT INTO widget_keys (user_id, widget_key, name, allowed_origins) VALUES (%s, %s, 'Sample', %s)",
            (TENANT_ID, WIDGET_KEY, [WIDGET_ORIGIN]),
        )
    sample = json.loads((EVENTS / "ws_authorizer" / "connect_visitor.json").read_text())
    token, _ = issue_connect_token(TENANT_ID, WIDGET_KEY, "visitor-sample")  # type: ignore[arg-type]
    live = tmp_path / "connect_visitor.json"
    live.write_text(json.dumps(_with_query(sample, f"visitorToken={quote(token)}")))

    policy = invoke_sample_event(app.lambda_handler, live, "WebSocketAuthorizerFunction")

    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert policy["policyDocument"]["Statement"][0]["Resource"] == sample["methodArn"]
    assert policy["context"] == {
        "tenantId": TENANT_ID,
        "role": "visitor",
        "subject": "visitor:visitor-sample",
        "visitorId": "visitor-sample",
        "widgetKey": WIDGET_KEY,
    }
    # and the sample as stored (a placeholder, not a token) is refused as API Gateway's 401
    with pytest.raises(Exception, match="Unauthorized"):
        invoke_sample_event(app.lambda_handler, EVENTS / "ws_authorizer" / "connect_visitor.json", "Authorizer")
