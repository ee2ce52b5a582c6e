"""Each widgets sample event in events/ (what `sam local invoke -e` would send) through the real handler."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from local.database import DatabaseUrls
from local.sample_events import TENANT_ID, WIDGET_KEY, WIDGET_ORIGIN
from tests.http_events import invoke_sample_event

EVENTS = Path(__file__).resolve().parents[2] / "events" / "widgets"

# The visitor session, the web form and the new origins before the revocation, all on the key the events name (made
# below).
JOURNEY = [
    ("create", 201),
    ("list", 200),
    ("start_visitor_session", 201),
    ("submit_web_form", 201),
    ("update_origins", 200),
    ("revoke", 200),
]


# Not part of the widget journey: the API's OpenAPI document, which answers the document rather than an envelope
# (tests/contract/test_openapi.py sends this event through the handler), and a visitor's upload and download URLs,
# which need the file store (S3) and an uploaded file: tests/integration/test_attachments.py (TestVisitors) runs those
# routes against moto, and tests/contract/test_template.py checks these events' routes and bodies.
OUTSIDE_THE_JOURNEY = {"get_openapi_document", "visitor_upload_url", "visitor_download_url"}


def test_the_journey_covers_every_sample_event() -> None:
    names = sorted(p.stem for p in EVENTS.glob("*.json"))
    assert sorted([*(name for name, _ in JOURNEY), *OUTSIDE_THE_JOURNEY]) == names


def test_every_widget_sample_event_succeeds_against_the_handler(db: DatabaseUrls) -> None:
    from functions.widgets import app

    with psycopg.connect(db.owner) as conn:  # the key the events name, live again
        conn.execute("DELETE FROM widget_keys WHERE widget_key = %s", (WIDGET_KEY,))
        conn.execute(
            "INSERT INTO widget_keys (user_id, widget_key, name, allowed_origins) VALUES (%s, %s, 'Sample', %s)",
            (TENANT_ID, WIDGET_KEY, [WIDGET_ORIGIN]),
        )

    answers = {}
    for name, _ in JOURNEY:
        result = invoke_sample_event(app.lambda_handler, EVENTS / f"{name}.json", "WidgetsFunction")
        answers[name] = (result["statusCode"], json.loads(result["body"]))
        assert answers[name][1]["success"] is True, (name, result["body"])

    assert {name: status for name, (status, _) in answers.items()} == dict(JOURNEY)
    assert answers["start_visitor_session"][1]["data"]["connectToken"]
    reference = answers["submit_web_form"][1]["data"]["reference"]
    assert answers["submit_web_form"][1]["data"] == {"reference": reference}
    with psycopg.connect(db.admin) as conn:
        row = conn.execute(
            "SELECT channel, subject FROM support_tickets WHERE user_id = %s AND reference = %s",
            (TENANT_ID, int(reference.lstrip("#"))),
        ).fetchone()
    assert row == ("web_form", "Where is my order?")
    assert answers["update_origins"][1]["data"]["allowedOrigins"] == [WIDGET_ORIGIN, "https://www.shop.example"]
    assert answers["revoke"][1]["data"]["revokedAt"] is not None
