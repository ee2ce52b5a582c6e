"""Each sample event in events/ (what `sam local invoke -e` would send) through the real handler."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from local.database import DatabaseUrls
from tests.http_events import invoke_sample_event

EVENTS = Path(__file__).resolve().parents[2] / "events" / "tickets"
TENANT = "11111111-1111-4111-8111-111111111111"
TICKET = "22222222-2222-4222-8222-222222222222"
AGENT = "33333333-3333-4333-8333-333333333333"

# In an order that makes every one succeed against the ticket and agent the events name.
JOURNEY = [
    ("create", 201),
    ("create_phone", 201),
    ("list", 200),
    ("list_by_channel", 200),
    ("get", 200),
    ("update", 200),
    ("add_conversation", 201),
    ("log_call", 201),
    ("list_conversations", 200),
    ("assign", 200),
    ("close", 200),
    ("add_feedback", 201),
    ("get_feedback", 200),
]


def seed_event_rows(db: DatabaseUrls) -> None:
    """The rows the ticket sample events refer to, by their fixed ids (again from scratch on every call)."""
    with psycopg.connect(db.admin) as conn:
        # Writes by hand name the tenant: the triggers that keep the totals run as the owner, under RLS.
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(TENANT),))
        conn.execute("DELETE FROM support_tickets WHERE user_id = %s", (TENANT,))
        conn.execute("DELETE FROM support_agents WHERE user_id = %s", (TENANT,))
        conn.execute(
            "INSERT INTO support_agents (id, user_id, agent_name, agent_email) "
            "VALUES (%s, %s, 'Seed', 'seed@x.example')",
            (AGENT, TENANT),
        )
        conn.execute(
            "INSERT INTO support_tickets (id, user_id, customer_name, customer_email, subject) "
            "VALUES (%s, %s, 'Ada', 'ada@example.com', 'Sample')",
            (TICKET, TENANT),
        )


def test_the_journey_covers_every_sample_event() -> None:
    assert sorted(name for name, _ in JOURNEY) == sorted(p.stem for p in EVENTS.glob("*.json"))


def test_every_sample_event_succeeds_against_the_handler(db: DatabaseUrls) -> None:
    from functions.tickets import app

    seed_event_rows(db)

    statuses = {}
    for name, _ in JOURNEY:
        result = invoke_sample_event(app.lambda_handler, EVENTS / f"{name}.json", "TicketsFunction")
        statuses[name] = result["statusCode"]
        assert json.loads(result["body"])["success"] is True, (name, result["body"])

    assert statuses == dict(JOURNEY)
