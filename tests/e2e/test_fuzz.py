"""Property-based: whatever a client sends that the OpenAPI schemas allow (and much they do not), the API
over HTTP never answers with a server error, and every answer is one the OpenAPI document describes (its
status, content type, headers and body schema). Schemathesis generates the requests from the schema each
function's resolver publishes; every function of template.yaml is covered.

Cursors are opaque to clients, but the server decodes them: random text only ever tests the base64 and
JSON layers. So `format: cursor` (which the cursor parameters declare) is generated as base64url of JSON
values of every shape, many of them near-misses of a real cursor ([datetime or count, id] with one part
wrong), and a separate property sends such cursors to every paginated route."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from local.openapi import merged_document


def _cursor_text(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    _json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)
_offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
_datetimes = st.datetimes(timezones=st.none() | st.just(UTC) | _offsets).map(datetime.isoformat)
_counts = st.integers(min_value=-(2**40), max_value=2**40)
_ids = st.uuids().map(str)
# The key and the id of a cursor, each either right or a JSON value of any shape.
_keys = st.one_of(_datetimes, _counts, json_values)
_row_ids = st.one_of(_ids, json_values)
cursor_shapes = st.one_of(
    st.tuples(_keys, _row_ids).map(list),
    st.lists(st.one_of(_keys, _row_ids), max_size=4),
    json_values,
)
crafted_cursors = cursor_shapes.map(_cursor_text).filter(lambda text: len(text) <= 512)
cursors = st.one_of(crafted_cursors, st.text(max_size=40))

schemathesis.openapi.format("cursor", cursors)


def _fuzzed_document() -> dict[str, Any]:
    """The one document of the whole HTTP API (docs/openapi.json), each function serving its own paths, without
    its security requirements: the test sends its own bearer token (with them, schemathesis sends tokens of its
    own making, which API Gateway's authorizer answers in its own shape, before any function runs)."""
    document = merged_document()
    del document["security"], document["components"]["securitySchemes"]
    for item in document["paths"].values():
        for operation in item.values():
            operation.pop("security", None)
    return document


schema = schemathesis.openapi.from_dict(_fuzzed_document())

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def bearer(tenant: UUID) -> dict[str, str]:
    from local.token import mint_token

    return {"Authorization": f"Bearer {mint_token(str(tenant), 'admin')}"}


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_documented_and_none_is_a_server_error(
    case: schemathesis.Case, gateway_url: str, bearer: dict[str, str]
) -> None:
    # Not a path with a line feed in it: the local gateway's Starlette catch-all route (`/{path:path}`, whose
    # pattern `.*` stops at a line feed) does not match one, and Starlette answers its own text/plain 404, where
    # API Gateway would pass the request to the function (to be refused as a malformed id). A gap of local/,
    # reported; until it is fixed, the fuzzer leaves those paths alone rather than test the test server.
    # (Schemathesis hands path parameters over percent-encoded: %0A.)
    assume(not any("%0a" in str(value).lower() for value in (case.path_parameters or {}).values()))
    response = case.call(base_url=gateway_url, headers=bearer)
    case.validate_response(response, checks=CHECKS)


@pytest.fixture
def paginated_paths(
    client_for: Callable[..., httpx.Client], tenant: UUID
) -> tuple[httpx.Client, list[tuple[str, dict[str, str]]]]:
    """A client of a tenant with a ticket and a chat session, and every paginated list of the API."""
    client = client_for(tenant)
    ticket = client.post(
        "/api/support/tickets", json={"customerName": "Ada", "customerEmail": "a@example.com", "subject": "Hi"}
    )
    session = client.post("/api/support/chat/sessions", json={"visitorId": "visitor-1"})
    assert ticket.status_code == 201 and session.status_code == 201, (ticket.text, session.text)
    ticket_id, session_id = ticket.json()["data"]["id"], session.json()["data"]["id"]
    return client, [
        ("/api/support/tickets", {}),
        (f"/api/support/tickets/{ticket_id}/conversations", {}),
        ("/api/support/agents", {}),
        ("/api/support/chat/sessions", {}),
        (f"/api/support/chat/sessions/{session_id}/messages", {}),
        ("/api/support/canned-responses", {"sort": "newest"}),
        ("/api/support/canned-responses", {"sort": "usage"}),
    ]


@given(cursor=crafted_cursors)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_a_crafted_cursor_is_never_a_server_error_on_any_paginated_route(
    paginated_paths: tuple[httpx.Client, list[tuple[str, dict[str, str]]]], cursor: str
) -> None:
    """A cursor the API did not issue is refused on query.cursor (422), or, if it happens to be well formed
    (an aware datetime or a count, and an id), serves a page: nothing else."""
    client, paths = paginated_paths
    for path, query in paths:
        response = client.get(path, params={**query, "cursor": cursor})
        assert response.status_code in (200, 422), (path, query, cursor, response.status_code, response.text)
        if response.status_code == 422:
            assert [d["field"] for d in response.json()["error"]["details"]] == ["query.cursor"], response.text
