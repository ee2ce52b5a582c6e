"""Each canned responses sample event in events/ (what `sam local invoke -e` would send) through the real handler."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from local.database import DatabaseUrls
from local.sample_events import CANNED_RESPONSE_ID, CHAT_SESSION_ID, TENANT_ID, TICKET_ID
from tests.http_events import invoke_sample_event

EVENTS = Path(__file__).resolve().parents[2] / "events" / "canned_responses"

# In an order that makes every one succeed against the response the events name by id (made below) and
# the one `create` makes (which `get_by_shortcut` and `list` then find).
JOURNEY = [
    ("create", 201),
    ("suggest_for_ticket", 200),
    ("suggest_for_chat", 200),
    ("get_by_shortcut", 200),
    ("list", 200),
    ("update", 200),
    ("use", 200),
    ("delete", 200),
]


def test_the_journey_covers_every_sample_event() -> None:
    assert sorted(name for name, _ in JOURNEY) == sorted(p.stem for p in EVENTS.glob("*.json"))


def test_every_sample_event_succeeds_against_the_handler(db: DatabaseUrls) -> None:
    from functions.canned_responses import app

    with psycopg.connect(db.admin) as conn:
        conn.execute("DELETE FROM canned_responses WHERE user_id = %s", (TENANT_ID,))
        conn.execute(
            "INSERT INTO canned_responses (id, user_id, response_title, response_content, shortcut_key) "
            "VALUES (%s, %s, 'Late parcel', 'Sorry, your parcel is late.', 'late-parcel')",
            (CANNED_RESPONSE_ID, TENANT_ID),
        )
        # the ticket and the chat the suggestion events name, in the customer's words and made afresh (another sample
        # event test may have made them with other words and messages); the totals' triggers want the tenant bound,
        # as in every transaction of the services
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (TENANT_ID,))
        conn.execute("DELETE FROM support_tickets WHERE user_id = %s AND id = %s", (TENANT_ID, TICKET_ID))
        conn.execute("DELETE FROM live_chat_sessions WHERE user_id = %s AND id = %s", (TENANT_ID, CHAT_SESSION_ID))
        conn.execute(
            "INSERT INTO support_tickets (id, user_id, customer_name, customer_email, subject) "
            "VALUES (%s, %s, 'Ada', 'ada@example.com', 'Refund for a late parcel')",
            (TICKET_ID, TENANT_ID),
        )
        conn.execute(
            "INSERT INTO live_chat_sessions (id, user_id, visitor_id) VALUES (%s, %s, 'visitor-5f2c')",
            (CHAT_SESSION_ID, TENANT_ID),
        )

    answers = {}
    for name, _ in JOURNEY:
        result = invoke_sample_event(app.lambda_handler, EVENTS / f"{name}.json", "CannedResponsesFunction")
        answers[name] = (result["statusCode"], json.loads(result["body"]))
        assert answers[name][1]["success"] is True, (name, result["body"])

    assert {name: status for name, (status, _) in answers.items()} == dict(JOURNEY)
    assert [r["shortcutKey"] for r in answers["list"][1]["data"]] == ["refund-policy"]
    assert answers["use"][1]["data"]["usageCount"] == 1
    # the ticket's subject names a refund and a parcel: both responses share a word with it
    assert {r["shortcutKey"] for r in answers["suggest_for_ticket"][1]["data"]} == {"refund-policy", "late-parcel"}
    assert answers["suggest_for_chat"][1]["data"] == []  # the chat has no customer message yet
