"""The WebSocket API's protocol as an AsyncAPI 2.6 document, generated from the code that speaks it: every action
of functions/websocket/app.py's `ACTIONS` with its request model's schema, and every event the server sends
with the model of its `data`.

    python -m local.asyncapi            # print it
    python -m local.asyncapi --write    # write docs/asyncapi.yaml (committed; tests/contract/test_asyncapi.py
                                        # fails when it differs, or misses an action or an event the code sends)

docs/websocket.md tells the same protocol in prose: who may send what, and who hears what."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from local.openapi import _environment
from local.template import REPO, load_module

DOCUMENT = REPO / "docs" / "asyncapi.yaml"

# Who sends each action and what it answers (docs/websocket.md's table, in short).
ACTION_SUMMARIES = {
    "startChat": "visitor: start a chat (or get the open one); answers chat.started, and chat.queued while it waits",
    "sendMessage": "participant: send a message (clientMessageId makes a resend safe); answers message.new",
    "typing": "participant: a typing notice for the other side; answers nothing (an error is posted)",
    "markRead": "participant: mark messages read up to one; answers message.read",
    "endChat": "participant: end the chat; answers chat.ended",
    "rateChat": "visitor: rate an ended chat 1-5; answers chat.rated",
    "sync": "participant: the session and the messages after one (100 at most); answers sync",
    "setStatus": "agent: set availability; answers agent.status",
    "claimChat": "agent: take a waiting chat; answers chat.assigned",
    "transfer": "agent or admin: hand the chat to another agent; answers chat.transferred",
    "joinSession": "agent or admin: hear a session's events on this connection; answers sync",
    "ping": "anyone: keep the connection alive (send within 10 minutes of silence); answers pong",
    "leaveEmail": "visitor: the email for a chat that became a ticket; answers chat.ticketed",
}


def _event_models() -> dict[str, tuple[type[BaseModel] | None, str]]:
    """Every event type the server sends: (the model of its `data`, when it is sent)."""
    from support.models.chat import ChatMessage, ChatSession
    from support.models.realtime import (
        AgentStatusNotice,
        Pong,
        Queued,
        QueueUpdate,
        ReadNotice,
        SyncAnswer,
        TypingNotice,
    )
    from support.services.chat_expiry import ChatTicketed

    return {
        "chat.started": (ChatSession, "to the visitor who sent startChat: the session, waiting or active"),
        "chat.queued": (Queued, "to a waiting visitor: its queue position (keep the newest asOf)"),
        "chat.assigned": (ChatSession, "to the assigned agent and the visitor: an agent took the chat"),
        "chat.transferred": (ChatSession, "to the visitor and both agents: the chat has a new agent"),
        "chat.ended": (ChatSession, "to every participant: the chat ended"),
        "chat.rated": (ChatSession, "to the visitor and the agent: the visitor rated the chat"),
        "chat.ticketed": (ChatTicketed, "to the visitor: the chat waited too long and became a ticket"),
        "message.new": (ChatMessage, "to the session's connections: a message was stored"),
        "message.read": (ReadNotice, "to the session's connections: messages were read"),
        "typing": (TypingNotice, "to the other side: someone is (or stopped) typing; not stored"),
        "sync": (SyncAnswer, "the answer to sync and joinSession"),
        "agent.status": (AgentStatusNotice, "to the tenant's staff (a broadcast): an agent's availability changed"),
        "queue.updated": (QueueUpdate, "to the tenant's staff (a broadcast): the waiting queue"),
        "pong": (Pong, "the answer to ping"),
        "error": (None, "the answer to a request that failed; the connection stays open (but see token_expired)"),
    }


ERROR_CODES = [
    "bad_request",
    "unknown_action",
    "validation_error",
    "too_large",
    "not_found",
    "forbidden",
    "conflict",
    "desk_busy",
    "rate_limited",
    "token_expired",
    "widget_key_revoked",
    "internal_error",
]
ERROR_DATA = {
    "type": "object",
    "required": ["code", "message", "details"],
    "properties": {
        "code": {"type": "string", "enum": ERROR_CODES},
        "message": {"type": "string", "description": "for people"},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}, "type": {"type": "string"}},
            },
            "description": "validation_error: one per field (`sessionId`, `message`...)",
        },
        "retryAfter": {"type": "integer", "description": "rate_limited: seconds until one more message is admitted"},
        "webFormUrl": {"type": ["string", "null"], "description": "desk_busy: the web form to use instead"},
    },
}


def _schemas(models: list[tuple[type[BaseModel], JsonSchemaMode]]) -> tuple[dict[Any, Any], dict[str, Any]]:
    refs, top = models_json_schema(models, by_alias=True, ref_template="#/components/schemas/{model}")
    return dict(refs.items()), dict(top.get("$defs", {}))


def document() -> dict[str, Any]:
    _environment()
    actions = load_module("functions/websocket/", "app.lambda_handler").ACTIONS
    events = _event_models()
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(a.model, "validation") for a in actions.values()]
    models += [(model, "serialization") for model, _ in events.values() if model is not None]
    refs, schemas = _schemas(models)

    messages: dict[str, Any] = {}
    for name, action in actions.items():
        schema = schemas[refs[(action.model, "validation")]["$ref"].rsplit("/", 1)[1]]
        schema["properties"]["action"] = {"const": name, "type": "string"}
        schema["required"] = sorted({"action", *schema.get("required", [])})
        messages[f"action.{name}"] = {  # "typing" and "sync" are an action and an event both
            "name": name,
            "title": name,
            "summary": ACTION_SUMMARIES[name],
            "payload": refs[(action.model, "validation")],
            "x-answers": action.answers,
        }
    for event_type, (model, summary) in events.items():
        data = ERROR_DATA if model is None else refs[(model, "serialization")]
        messages[f"event.{event_type}"] = {
            "name": event_type,
            "title": event_type,
            "summary": summary,
            "payload": {
                "type": "object",
                "required": ["type", "data"],
                "properties": {
                    "type": {"const": event_type, "type": "string"},
                    "requestId": {"type": "string", "description": "the request's requestId, when it answers one"},
                    "data": data,
                },
            },
        }
    return {
        "asyncapi": "2.6.0",
        "info": {
            "title": "Support desk WebSocket API (live chat)",
            "version": "1.0.0",
            "description": (
                "A client sends `{action, requestId?, ...fields}`; the server sends `{type, requestId?, data}`. "
                "Staff connect with `?token=<JWT>` (optionally `&sessionId=` for a chat window), visitors with "
                "`?visitorToken=<connectToken>` from POST /api/support/widget/session and their page's Origin. "
                "Limits: 32 KB per frame, 128 KB per message, 10 minutes idle, 2 hours per connection. "
                "Prose, with who hears what: docs/websocket.md."
            ),
        },
        "servers": {
            "local": {"url": "127.0.0.1:3001", "protocol": "ws", "description": "make run (WS_PORT)"},
            "aws": {
                "url": "{apiId}.execute-api.{region}.amazonaws.com/{stage}",
                "protocol": "wss",
                "description": "the stack's WebSocketUrl output",
                "variables": {"apiId": {}, "region": {}, "stage": {}},
            },
        },
        "channels": {
            "/": {
                "bindings": {
                    "ws": {
                        "query": {
                            "type": "object",
                            "properties": {
                                "token": {"type": "string", "description": "staff: a JWT of the HTTP API"},
                                "visitorToken": {"type": "string", "description": "a visitor: a connect token"},
                                "sessionId": {"type": "string", "format": "uuid", "description": "a chat window"},
                            },
                        }
                    }
                },
                "publish": {
                    "operationId": "sendAction",
                    "summary": "what a client sends: one action per message",
                    "message": {"oneOf": [{"$ref": f"#/components/messages/action.{name}"} for name in actions]},
                },
                "subscribe": {
                    "operationId": "receiveEvent",
                    "summary": "what the server sends: answers and events",
                    "message": {"oneOf": [{"$ref": f"#/components/messages/event.{name}"} for name in events]},
                },
            }
        },
        "components": {"messages": messages, "schemas": dict(sorted(schemas.items()))},
    }


def render() -> str:
    header = "# Generated by `python -m local.asyncapi --write` from the code: do not edit by hand.\n"
    return header + yaml.safe_dump(document(), sort_keys=False, allow_unicode=True, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"write {DOCUMENT.relative_to(REPO)}")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        DOCUMENT.write_text(text, encoding="utf-8")
        print(f"wrote {DOCUMENT.relative_to(REPO)}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
