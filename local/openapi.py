"""The HTTP API's one OpenAPI document: every function's own document (its resolver's `get_openapi_schema()`),
merged, with the template's view on top (which routes are public, which function group a route belongs to).

    python -m local.openapi            # print it
    python -m local.openapi --write    # write docs/openapi.json and its compact copy in the layer (both
                                       # committed; tests/contract/test_openapi.py fails when either differs
                                       # from what the code generates)

Components are merged by name. Two functions may publish one name for two different models (tickets' and contacts'
`ConversationKind`): each such component is renamed after its function group (`TicketsConversationKind`,
`ContactsConversationKind`), with the references to it, so neither documents the other's model."""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

from local.template import REPO, HttpRoute, http_routes, load_module

DOCUMENT = REPO / "docs" / "openapi.json"
# The same document, compact, in the layer: the widgets function serves it at DOCUMENT_ROUTE (`OpenApiUrl`).
LAYER_DOCUMENT = REPO / "layers" / "support" / "support" / "openapi.json"
DOCUMENT_ROUTE = "GET /api/support/openapi.json"  # not in the document: it answers the document itself
TITLE = "Support desk HTTP API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Tickets, agents, live chat, canned responses, contacts, channels, widgets, settings, analytics and privacy "
    "requests of a multi-tenant support desk. Every route except the public ones (security `[]`) takes a JWT "
    "bearer token (claims `tenant_id`, `role`, `agent_id`). Answers are `{success: true, data}` (lists add "
    "`nextCursor`); errors are `{success: false, error: {code, message, details}}` (`ErrorEnvelope`). Prose: "
    "docs/api.md; the WebSocket protocol: docs/asyncapi.yaml."
)
BEARER = "bearerAuth"


class MergeError(ValueError):
    """Two functions publish the same path and method."""


def _environment() -> None:
    """What a function's module needs to import (its settings are read at cold start); nothing is connected."""
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "support")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SupportDesk")
    os.environ.setdefault("VISITOR_TOKEN_SECRET", "openapi-" + "x" * 32)
    os.environ.setdefault("DATABASE_URL", "postgresql://database-not-started.invalid/support")


def _tag(code_uri: str) -> str:
    """The function group a route belongs to: functions/canned_responses/ -> "canned responses"."""
    return Path(code_uri).name.replace("_", " ")


def _group(code_uri: str) -> str:
    """functions/canned_responses/ -> "CannedResponses", the prefix of a renamed component."""
    return "".join(part.capitalize() for part in Path(code_uri).name.split("_"))


def _without_clashes(documents: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The documents with every component name that stands for different schemas in different functions
    renamed after its function group, in its definition and in every reference to it."""
    variants: dict[tuple[str, str], set[str]] = {}
    for _, document in documents:
        for kind, named in document.get("components", {}).items():
            for name, component in named.items():
                variants.setdefault((kind, name), set()).add(json.dumps(component, sort_keys=True))
    clashes = {key for key, found in variants.items() if len(found) > 1}
    renamed = []
    for code_uri, document in documents:
        text = json.dumps(document)
        for kind, name in clashes:
            if name in document.get("components", {}).get(kind, {}):
                new = _group(code_uri) + name
                text = text.replace(f'"#/components/{kind}/{name}"', f'"#/components/{kind}/{new}"')
                document = json.loads(text)
                document["components"][kind][new] = document["components"][kind].pop(name)
                text = json.dumps(document)
        renamed.append((code_uri, json.loads(text)))
    return renamed


def function_documents() -> list[tuple[str, dict[str, Any]]]:
    """(code_uri, document) of every function that serves an /api/ route, in a stable order."""
    _environment()
    functions = sorted({(r.code_uri, r.handler) for r in documented_routes()})
    return [
        (code_uri, json.loads(load_module(code_uri, handler).app.get_openapi_json_schema()))
        for code_uri, handler in functions
    ]


def _shared_examples(paths: dict[str, Any], components: dict[str, dict[str, Any]]) -> None:
    """Every named example that several operations repeat (the error examples every route has) once, in
    `components.examples`, and referred to."""
    contents = [
        content
        for item in paths.values()
        for operation in item.values()
        for response in operation.get("responses", {}).values()
        for content in response.get("content", {}).values()
    ]
    seen: dict[str, list[str]] = {}
    for content in contents:
        for name, example in content.get("examples", {}).items():
            seen.setdefault(name, []).append(json.dumps(example, sort_keys=True))
    shared = {name for name, found in seen.items() if len(found) > 1 and len(set(found)) == 1}
    for content in contents:
        for name in shared & set(content.get("examples", {})):
            components.setdefault("examples", {})[name] = content["examples"][name]
            content["examples"][name] = {"$ref": f"#/components/examples/{name}"}


def _request_examples(paths: dict[str, Any]) -> None:
    """Each request body's example: the body of the route's sample event in events/ (local.sample_events), which
    tests/contract/test_template.py validates against the route's request model."""
    bodies: dict[str, tuple[str, Any]] = {}
    for file in sorted((REPO / "events").rglob("*.json")):
        event = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(event, dict) or "routeKey" not in event or not event.get("body"):
            continue
        body = base64.b64decode(event["body"]).decode() if event.get("isBase64Encoded") else event["body"]
        bodies.setdefault(event["routeKey"], (file.relative_to(REPO).as_posix(), json.loads(body)))
    for path, item in paths.items():
        for method, operation in item.items():
            found = bodies.get(f"{method.upper()} {path}")
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if found and content is not None:
                sample_file, sample_body = found
                content["examples"] = {"sample": {"summary": sample_file, "value": sample_body}}


def merged_document() -> dict[str, Any]:
    routes = {r.route_key: r for r in documented_routes()}
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, dict[str, Any]] = {}
    for code_uri, document in _without_clashes(function_documents()):
        for path, item in document.get("paths", {}).items():
            for method, operation in item.items():
                if method in paths.get(path, {}):
                    raise MergeError(f"{method.upper()} {path} is served by two functions")
                route = routes.get(f"{method.upper()} {path}")
                operation = {**operation, "tags": [_tag(code_uri)]}
                if route is not None and route.public:
                    operation["security"] = []  # no JWT: the route checks its own credentials
                paths.setdefault(path, {})[method] = operation
        for kind, named in document.get("components", {}).items():
            target = components.setdefault(kind, {})
            for name, component in named.items():
                target[name] = component  # the same in every function that has it (_without_clashes)
    _request_examples(paths)
    _shared_examples(paths, components)
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "API Gateway's JWT authorizer (locally the gateway's, `make token`)",
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "security": [{BEARER: []}],
        "tags": [{"name": tag} for tag in sorted({op["tags"][0] for item in paths.values() for op in item.values()})],
        "paths": {path: paths[path] for path in sorted(paths)},
        "components": {kind: dict(sorted(named.items())) for kind, named in sorted(components.items())},
    }


def documented_routes() -> list[HttpRoute]:
    """The template's API routes that the document describes: all but the one that serves it."""
    return [r for r in http_routes() if r.path.startswith("/api/") and r.route_key != DOCUMENT_ROUTE]


def render() -> str:
    return json.dumps(merged_document(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def render_compact(text: str) -> str:
    return json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":")) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"write {DOCUMENT.relative_to(REPO)}")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        DOCUMENT.write_text(text, encoding="utf-8")
        LAYER_DOCUMENT.write_text(render_compact(text), encoding="utf-8")
        print(f"wrote {DOCUMENT.relative_to(REPO)} and {LAYER_DOCUMENT.relative_to(REPO)}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
