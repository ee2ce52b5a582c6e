"""Each sample event in events/ (what `sam local invoke -e` would send) through the real handler."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from local.database import DatabaseUrls
from tests.http_events import invoke_sample_event

EVENTS = Path(__file__).resolve().parents[2] / "events" / "tickets"
TENANT = "11111111-1111-4111-8111-111111111111"
TICKET = "22222222-2222-4222-8222-222222222222"
AGENT = "33333333-3333-4333-8333-333333333333"
EMAILED_ENTRY = "88888888-8888-4888-8888-888888888888"  # get_original_email's conversation

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
    ("get_original_email", 200),
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
        # a message that came by email, as the email function records one (sql/0028)
        conn.execute(
            "INSERT INTO ticket_conversations (id, ticket_id, user_id, sender_type, sender_name, message)"
            " VALUES (%s, %s, %s, 'customer', 'Ada', 'By email')",
            (EMAILED_ENTRY, TICKET, TENANT),
        )
        conn.execute(
            "INSERT INTO inbound_emails (user_id, message_id, ses_message_id, s3_key, recipient, size_bytes, outcome,"
            " ticket_id, conversation_id) VALUES (%s, 'sample@example.com', 'ses-sample', 'inbound/ses-sample',"
            " 'support@shop.example', 1234, 'threaded', %s, %s)",
            (TENANT, TICKET, EMAILED_ENTRY),
        )


def test_the_journey_covers_every_sample_event() -> None:
    assert sorted(name for name, _ in JOURNEY) == sorted(p.stem for p in EVENTS.glob("*.json"))


def test_every_sample_event_succeeds_against_the_handler(db: DatabaseUrls, monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.tickets import app

    # the original of an emailed message is a presigned URL of the inbound bucket (signed offline)
    monkeypatch.setenv("INBOUND_EMAIL_BUCKET", "desk-inbound-sample")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "sample")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    seed_event_rows(db)

    statuses = {}
    for name, _ in JOURNEY:
        result = invoke_sample_event(app.lambda_handler, EVENTS / f"{name}.json", "TicketsFunction")
        statuses[name] = result["statusCode"]
        assert json.loads(result["body"])["success"] is True, (name, result["body"])

    assert statuses == dict(JOURNEY)
