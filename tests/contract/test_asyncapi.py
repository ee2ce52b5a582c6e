"""Contract: docs/asyncapi.yaml (local.asyncapi) is up to date and documents the whole WebSocket protocol: every
action of the websocket function's `ACTIONS`, every event type the code sends (`outbox.answer`, `outbox.tell`,
`realtime.event` with a literal type, anywhere in the layer or the functions) and every error code it answers."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import yaml

from local.asyncapi import DOCUMENT, ERROR_CODES, render
from local.template import REPO, load_module

SOURCES = sorted([*(REPO / "layers" / "support" / "support").rglob("*.py"), *(REPO / "functions").rglob("*.py")])
DOC: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
MESSAGES: dict[str, Any] = DOC["components"]["messages"]


def _calls(name_of: set[str]) -> list[tuple[Path, ast.Call]]:
    found = []
    for source in SOURCES:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
                if name in name_of:
                    found.append((source, node))
    return found


def _sent_event_types() -> set[str]:
    return {
        arg.value
        for _, call in _calls({"answer", "tell", "event"})
        for arg in call.args
        if isinstance(arg, ast.Constant)
        and isinstance(arg.value, str)
        and re.fullmatch(r"[a-z]+(\.[a-z_]+)?", arg.value)
    }


def _documented(kind: str, channel_operation: str) -> list[str]:
    refs = DOC["channels"]["/"][channel_operation]["message"]["oneOf"]
    names = [ref["$ref"].removeprefix("#/components/messages/") for ref in refs]
    assert all(name.startswith(f"{kind}.") for name in names)
    return [MESSAGES[name]["name"] for name in names]


def test_the_committed_document_is_what_the_code_generates() -> None:
    committed = DOCUMENT.read_text(encoding="utf-8")
    assert committed == render(), "docs/asyncapi.yaml is stale: run `python -m local.asyncapi --write` and commit it"


def test_every_action_is_documented_with_its_model() -> None:
    actions = load_module("functions/websocket/", "app.lambda_handler").ACTIONS
    assert _documented("action", "publish") == list(actions)
    for name, action in actions.items():
        schema_name = MESSAGES[f"action.{name}"]["payload"]["$ref"].rsplit("/", 1)[1]
        schema = DOC["components"]["schemas"][schema_name]
        assert schema_name == action.model.__name__
        assert schema["properties"]["action"]["const"] == name
        assert "action" in schema["required"]
        assert MESSAGES[f"action.{name}"]["summary"]


def test_every_event_the_code_sends_is_documented_and_no_other() -> None:
    sent = _sent_event_types()
    assert {"chat.started", "message.new", "queue.updated", "pong", "error"} <= sent  # the scan finds them
    documented = _documented("event", "subscribe")
    assert len(documented) == len(set(documented))
    assert set(documented) == sent
    for event_type in documented:
        payload = MESSAGES[f"event.{event_type}"]["payload"]
        assert payload["properties"]["type"]["const"] == event_type
        assert payload["required"] == ["type", "data"]


def test_every_error_code_the_websocket_answers_is_documented() -> None:
    codes = {
        arg.value
        for source, call in _calls({"_error", "_refuse_and_close"})
        if source.name == "websocket.py"
        for arg in call.args
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and re.fullmatch(r"[a-z_]+", arg.value)
    }
    assert {"bad_request", "unknown_action", "token_expired", "internal_error"} <= codes
    from support.errors import Conflict, DeskBusy, Forbidden, NotFound, RateLimited

    codes |= {error.code for error in (Conflict, DeskBusy, Forbidden, NotFound, RateLimited)}
    assert codes <= set(ERROR_CODES)


def test_every_reference_resolves() -> None:
    text = json.dumps(DOC)
    for kind, name in re.findall(r'"#/components/(\w+)/([^"]+)"', text):
        assert name in DOC["components"][kind], f"{kind}/{name}"
