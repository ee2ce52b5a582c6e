"""Contract: each function's OpenAPI document describes what it serves and answers.

The paths and path parameter names are the template's; every operation documents its success status with
the schema of its envelope (what the fuzzer checks each answer against) and every error status with the
error envelope."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest

from local.template import http_routes, load_module
from support.http import ERROR_STATUSES

ROUTES = [route for route in http_routes() if route.path.startswith("/api/")]
FUNCTIONS = sorted({(route.code_uri, route.handler) for route in ROUTES})
# The routes that create something answer 201.
CREATES = {
    "POST /api/support/tickets",
    "POST /api/support/tickets/{ticketId}/conversations",
    "POST /api/support/tickets/{ticketId}/calls",
    "POST /api/support/tickets/{ticketId}/feedback",
    "POST /api/support/agents",
    "POST /api/support/canned-responses",
    "POST /api/support/chat/sessions",
    "POST /api/support/chat/sessions/{sessionId}/messages",
    "POST /api/support/widgets",
    "POST /api/support/widget/session",
    "POST /api/support/widget/tickets",
    "POST /api/support/channels",
    "POST /api/support/automations",
}
# The routes that answer 201 for a thing made now and 200 for the one made before (idempotent per resource).
CREATES_ONCE = {
    "POST /api/support/chat/sessions/{sessionId}/ticket",
}
LISTS = {
    "GET /api/support/tickets",
    "GET /api/support/tickets/{ticketId}/conversations",
    "GET /api/support/agents",
    "GET /api/support/canned-responses",
    "GET /api/support/chat/sessions",
    "GET /api/support/chat/sessions/{sessionId}/messages",
    "GET /api/support/widgets",
    "GET /api/support/contacts",
    "GET /api/support/channels",
    "GET /api/support/tickets/{ticketId}/automation-runs",
}


def _document(code_uri: str, handler: str) -> dict[str, Any]:
    return dict(json.loads(load_module(code_uri, handler).app.get_openapi_json_schema()))


def _operations() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(route key, operation, the function's document) for every template route."""
    found = []
    for code_uri, handler in FUNCTIONS:
        document = _document(code_uri, handler)
        for route in ROUTES:
            if (route.code_uri, route.handler) == (code_uri, handler):
                operation = document["paths"].get(route.path, {}).get(route.method.lower())
                found.append((route.route_key, operation or {}, document))
    return found


OPERATIONS = _operations()


@pytest.mark.parametrize(("code_uri", "handler"), FUNCTIONS)
def test_the_document_has_the_templates_paths_and_parameter_names(code_uri: str, handler: str) -> None:
    document = _document(code_uri, handler)
    documented = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}
    declared = {r.route_key for r in ROUTES if (r.code_uri, r.handler) == (code_uri, handler)}
    assert documented == declared
    names: dict[str, set[str]] = defaultdict(set)
    for path, item in document["paths"].items():
        for operation in item.values():
            names[path] |= {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
    for path, found in names.items():
        assert found == {part[1:-1] for part in path.split("/") if part.startswith("{")}, path


def _schema(document: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    ref = response["content"]["application/json"]["schema"]["$ref"]
    return dict(document["components"]["schemas"][ref.rsplit("/", 1)[1]])


@pytest.mark.parametrize(("key", "operation", "document"), OPERATIONS, ids=[key for key, _, _ in OPERATIONS])
def test_every_answer_is_documented_with_its_envelope(
    key: str, operation: dict[str, Any], document: dict[str, Any]
) -> None:
    successes = {"201", "200"} if key in CREATES_ONCE else {"201"} if key in CREATES else {"200"}
    responses = operation["responses"]
    assert {code for code in responses if code.startswith("2")} == successes
    assert len({_schema(document, responses[code])["title"] for code in successes}) == 1
    envelope = _schema(document, responses[min(successes)])
    assert envelope["required"] == (["success", "data", "nextCursor"] if key in LISTS else ["success", "data"])
    assert envelope["properties"]["success"]["const"] is True
    data = envelope["properties"]["data"]
    assert "$ref" in data or "items" in data, data  # a model (or a list of models), not "any"

    assert {int(code) for code in responses if not code.startswith("2")} == set(ERROR_STATUSES)
    for code in ERROR_STATUSES:
        error = _schema(document, responses[str(code)])
        assert error["title"] == "ErrorEnvelope"
        assert error["properties"]["success"]["const"] is False
    assert not {"HTTPValidationError", "ValidationError"} & set(document["components"]["schemas"])
