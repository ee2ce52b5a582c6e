"""The HTTP edge on its own: a real resolver from `create_resolver()`, real payload 2.0 events, no database.

What it proves: an answer that does not match its route's published model is our bug (500, logged), not the
caller's (422); the cursor codec round-trips what it issues; the envelope models are what the document says."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from aws_lambda_powertools.event_handler import Response

from local.gateway import LambdaContext, build_http_event
from support.errors import InvalidInput
from support.http import create_resolver, ok
from support.models.envelopes import Envelope
from support.models.tickets import Feedback
from support.pagination import decode_count_cursor, decode_cursor, encode_cursor


def _call(app: Any, path: str) -> tuple[int, dict[str, Any]]:
    event = build_http_event(
        route_key=f"GET {path}",
        method="GET",
        raw_path=path,
        raw_query_string="",
        headers=[],
        body=b"",
        claims={"sub": "u", "tenant_id": str(uuid4()), "role": "admin"},
        source_ip="127.0.0.1",
    )
    result = app.resolve(event, LambdaContext("Test", 128, 3))
    return result["statusCode"], json.loads(result["body"])


def test_an_answer_that_does_not_match_its_model_is_a_500_not_the_callers_422() -> None:
    app = create_resolver()

    @app.get("/wrong")
    def wrong() -> Response[Envelope[Feedback]]:
        return ok({"not": "a feedback"})  # type: ignore[arg-type]

    status, body = _call(app, "/wrong")
    assert status == 500, body
    assert body == {
        "success": False,
        "error": {"code": "internal_error", "message": "an internal error occurred; it has been logged", "details": []},
    }


def test_an_answer_that_matches_is_serialised_by_alias() -> None:
    app = create_resolver()
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    feedback = Feedback(
        id=uuid4(),
        ticket_id=uuid4(),
        user_id=uuid4(),
        rating=5,
        recommendation=None,
        feedback="  kept\n",
        resolved_issue=True,
        agent_rating=None,
        response_time_rating=None,
        communication_rating=None,
        created_at=now,
    )

    @app.get("/right")
    def right() -> Response[Envelope[Feedback]]:
        return ok(feedback)

    status, body = _call(app, "/right")
    assert status == 200, body
    assert body["success"] is True
    assert body["data"]["ticketId"] == str(feedback.ticket_id)
    assert body["data"]["feedback"] == "  kept\n"
    assert datetime.fromisoformat(body["data"]["createdAt"]) == now


@pytest.mark.parametrize(
    "position",
    [
        datetime(2025, 1, 1, tzinfo=UTC),
        datetime.fromisoformat("2025-06-30T23:59:59.999999-09:30"),
        datetime.fromisoformat("0001-01-01T00:00:00+14:00"),
        datetime.fromisoformat("9999-12-31T23:59:59.999999-14:00"),
    ],
)
def test_a_created_at_cursor_round_trips(position: datetime) -> None:
    row_id = uuid4()
    assert decode_cursor(encode_cursor(position, row_id)) == (position, row_id)


@pytest.mark.parametrize("count", [0, 1, 2**31 - 1])
def test_a_count_cursor_round_trips_and_is_not_a_created_at_cursor(count: int) -> None:
    row_id = uuid4()
    cursor = encode_cursor(count, row_id)
    assert decode_count_cursor(cursor) == (count, row_id)
    with pytest.raises(InvalidInput) as refused:
        decode_cursor(cursor)
    assert refused.value.details[0]["field"] == "query.cursor"
