"""Each chat sample event in events/chat (what `sam local invoke -e` would send) through the real handler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg

from local import sample_events
from local.database import DatabaseUrls
from tests.http_events import invoke_sample_event

EVENTS = Path(__file__).resolve().parents[2] / "events" / "chat"
TENANT = sample_events.TENANT_ID
AGENT = sample_events.AGENT_ID
SESSION = sample_events.CHAT_SESSION_ID
MESSAGE = sample_events.CHAT_MESSAGE_ID

# In an order that makes every one succeed against the session, message and agent the events name.
JOURNEY = [
    ("start", 201),
    ("list", 200),
    ("get", 200),
    ("transfer", 200),
    ("add_message", 201),
    ("list_messages", 200),
    ("read", 200),
    ("end", 200),
    ("make_ticket", 201),
    # A chat's rating is the visitor's (the WebSocket's rateChat): the HTTP API's callers are staff, refused.
    ("rating", 403),
]


def test_the_journey_covers_every_chat_sample_event() -> None:
    assert sorted(name for name, _ in JOURNEY) == sorted(p.stem for p in EVENTS.glob("*.json"))


def test_every_chat_sample_event_succeeds_against_the_handler(db: DatabaseUrls) -> None:
    from functions.chat import app

    with psycopg.connect(db.admin) as conn:  # the rows the events refer to, by their fixed ids
        # Writes by hand name the tenant: the triggers that keep the totals run as the owner, under RLS.
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(TENANT),))
        conn.execute("DELETE FROM live_chat_sessions WHERE user_id = %s", (TENANT,))
        conn.execute(
            "INSERT INTO support_agents (id, user_id, agent_name, agent_email) "
            "VALUES (%s, %s, 'Seed', 'chat-seed@x.example')"
            " ON CONFLICT (id) DO UPDATE SET current_chats = 0, status = 'offline'",
            (AGENT, TENANT),
        )
        conn.execute(
            "INSERT INTO live_chat_sessions (id, user_id, visitor_id) VALUES (%s, %s, 'visitor-sample')",
            (SESSION, TENANT),
        )
        conn.execute(
            "INSERT INTO chat_messages (id, session_id, user_id, sender_type, sender_name, message) "
            "VALUES (%s, %s, %s, 'customer', 'Ada', 'My mug arrived broken')",
            (MESSAGE, SESSION, TENANT),
        )

    replies: dict[str, dict[str, Any]] = {}
    statuses = {}
    for name, _ in JOURNEY:
        result = invoke_sample_event(app.lambda_handler, EVENTS / f"{name}.json", "ChatFunction")
        statuses[name] = result["statusCode"]
        replies[name] = json.loads(result["body"])
        assert replies[name]["success"] is (result["statusCode"] < 400), (name, result["body"])

    assert statuses == dict(JOURNEY)
    started = replies["start"]["data"]
    assert (started["visitorIp"], started["visitorBrowser"]) == ("203.0.113.10", "curl/8.5.0")
    assert replies["transfer"]["data"]["assignedAgentId"] == AGENT
    assert replies["read"]["data"] == {"markedCount": 1}
    assert replies["rating"]["error"]["code"] == "forbidden"
    made = replies["make_ticket"]["data"]
    assert (made["channel"], made["subject"], made["customerEmail"]) == (
        "chat",
        "Order 1042 arrived damaged",
        "ada@example.com",
    )
    assert made["reference"].startswith("#")
