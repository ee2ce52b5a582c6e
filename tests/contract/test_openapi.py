"""Contract: each function's OpenAPI document describes what it serves and answers, and the merged one
(docs/openapi.json, local.openapi) is up to date, has every route with a summary, its errors and their examples.

The paths and path parameter names are the template's; every operation documents its success status with
the schema of its envelope (what the fuzzer checks each answer against) and every error status with the
error envelope."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from typing import Any

import pytest

from local.gateway import LambdaContext
from local.openapi import (
    BEARER,
    DOCUMENT,
    DOCUMENT_ROUTE,
    LAYER_DOCUMENT,
    documented_routes,
    merged_document,
    render,
    render_compact,
)
from local.template import REPO, http_routes, load_module
from support.http import ERROR_EXAMPLES, ERROR_STATUSES, STORAGE_ERROR_EXAMPLES, STORAGE_ERROR_STATUSES
from support.models.envelopes import ErrorEnvelope

ROUTES = documented_routes()  # every /api/ route but the one that serves the document
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
    "POST /api/support/webhooks",
    "POST /api/support/attachments/upload-url",
    "POST /api/support/widget/attachments/upload-url",
}
# The routes that call S3 (support.services.attachments) document its 502 and 503 too.
STORAGE_ROUTES = {
    "POST /api/support/attachments/upload-url",
    "GET /api/support/attachments/{attachmentId}",
    "POST /api/support/widget/attachments/upload-url",
    "POST /api/support/widget/attachments/{attachmentId}/download-url",
    "POST /api/support/tickets/{ticketId}/conversations",
    "POST /api/support/chat/sessions/{sessionId}/messages",
    # a done privacy export's files, listed from its prefix (support.services.privacy)
    "GET /api/support/privacy/exports/{exportId}",
}


def _error_statuses(key: str) -> set[int]:
    return set(ERROR_STATUSES) | (set(STORAGE_ERROR_STATUSES) if key in STORAGE_ROUTES else set())


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
    "GET /api/support/webhooks",
    "GET /api/support/webhooks/{webhookId}/deliveries",
    "GET /api/support/audit",
}

# Requests for work done later (answered 202 with the request: its id and state).
ACCEPTS = {"POST /api/support/privacy/exports", "POST /api/support/privacy/erasures"}


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
    successes = (
        {"201", "200"} if key in CREATES_ONCE else {"201"} if key in CREATES else {"202"} if key in ACCEPTS else {"200"}
    )
    responses = operation["responses"]
    assert {code for code in responses if code.startswith("2")} == successes
    assert len({_schema(document, responses[code])["title"] for code in successes}) == 1
    envelope = _schema(document, responses[min(successes)])
    assert envelope["required"] == (["success", "data", "nextCursor"] if key in LISTS else ["success", "data"])
    assert envelope["properties"]["success"]["const"] is True
    data = envelope["properties"]["data"]
    assert "$ref" in data or "items" in data, data  # a model (or a list of models), not "any"

    assert {int(code) for code in responses if not code.startswith("2")} == _error_statuses(key)
    for code in _error_statuses(key):
        error = _schema(document, responses[str(code)])
        assert error["title"] == "ErrorEnvelope"
        assert error["properties"]["success"]["const"] is False
    assert not {"HTTPValidationError", "ValidationError"} & set(document["components"]["schemas"])


# --- the merged document (local.openapi), committed as docs/openapi.json ---------------------------------------

MERGED = merged_document()
MERGED_OPERATIONS = [
    (f"{method.upper()} {path}", operation)
    for path, item in MERGED["paths"].items()
    for method, operation in item.items()
]


def test_the_committed_document_is_what_the_code_generates() -> None:
    committed = DOCUMENT.read_text(encoding="utf-8") if DOCUMENT.is_file() else ""
    assert committed == render(), "docs/openapi.json is stale: run `python -m local.openapi --write` and commit it"
    assert LAYER_DOCUMENT.read_text(encoding="utf-8") == render_compact(committed), "the layer's copy is stale"


def test_the_stack_serves_the_committed_document_without_a_token() -> None:
    (route,) = [route for route in http_routes() if route.route_key == DOCUMENT_ROUTE]
    assert route.public
    event = json.loads((REPO / "events" / "widgets" / "get_openapi_document.json").read_text())
    answer = load_module(route.code_uri, route.handler).lambda_handler(event, LambdaContext("WidgetsFunction", 512, 10))
    assert answer["statusCode"] == 200
    assert answer["headers"]["Content-Type"] == "application/json"
    assert json.loads(answer["body"]) == json.loads(DOCUMENT.read_text(encoding="utf-8"))


def test_the_merged_document_has_every_templates_route_once() -> None:
    assert {key for key, _ in MERGED_OPERATIONS} == {route.route_key for route in ROUTES}
    assert len(MERGED_OPERATIONS) == len(ROUTES)


def test_every_reference_of_the_merged_document_resolves() -> None:
    text = json.dumps(MERGED)
    for kind, name in re.findall(r'"#/components/(\w+)/([^"]+)"', text):
        assert name in MERGED["components"].get(kind, {}), f"{kind}/{name}"


def test_a_component_name_two_functions_use_for_two_models_is_renamed_for_each() -> None:
    schemas = MERGED["components"]["schemas"]
    assert "ConversationKind" not in schemas
    assert schemas["TicketsConversationKind"]["enum"] != schemas["ContactsConversationKind"]["enum"]


@pytest.mark.parametrize(("key", "operation"), MERGED_OPERATIONS, ids=[key for key, _ in MERGED_OPERATIONS])
def test_every_route_has_a_summary_its_errors_and_their_examples(key: str, operation: dict[str, Any]) -> None:
    method, path = key.split(" ", 1)
    summary = operation.get("summary", "")
    assert summary and summary != key and summary != f"{method} {path}", "no summary of its own (summary=...)"
    assert operation["tags"], "its function group"
    responses = operation["responses"]
    client_errors = {int(code) for code in responses if code.startswith("4")}
    assert client_errors == {status for status in ERROR_STATUSES if 400 <= status < 500}
    for code, response in responses.items():
        if code.startswith("2"):
            continue
        content = response["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}
        assert content["examples"], code
        for reference in content["examples"].values():
            example = MERGED["components"]["examples"][reference["$ref"].rsplit("/", 1)[1]]
            answer = ErrorEnvelope.model_validate(example["value"])
            assert {**ERROR_EXAMPLES, **STORAGE_ERROR_EXAMPLES}[int(code)][answer.error.code] == example


@pytest.mark.parametrize(("key", "operation"), MERGED_OPERATIONS, ids=[key for key, _ in MERGED_OPERATIONS])
def test_every_required_request_body_has_its_sample_events_body_as_example(key: str, operation: dict[str, Any]) -> None:
    body = operation.get("requestBody")
    if not body or not body.get("required"):
        return  # no body, or an optional one (ending a chat, making a ticket of it)
    (example,) = body["content"]["application/json"]["examples"].values()
    event = json.loads((REPO / example["summary"]).read_text(encoding="utf-8"))
    assert event["routeKey"] == key
    assert example["value"] == json.loads(event["body"])  # which test_template validates against the route's model


def test_public_routes_need_no_token_and_the_others_a_bearer_token() -> None:
    assert MERGED["security"] == [{BEARER: []}]
    assert MERGED["components"]["securitySchemes"][BEARER]["scheme"] == "bearer"
    public = {route.route_key for route in ROUTES if route.public}
    assert public, "the widget's public routes"
    assert {key for key, operation in MERGED_OPERATIONS if operation.get("security") == []} == public
