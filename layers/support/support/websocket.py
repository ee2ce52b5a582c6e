"""The WebSocket edge shared by the WebSocket function: events in, actions dispatched, errors as events.

API Gateway calls the function with `$connect`, `$disconnect` and one route per action (chosen by the body's
`action`; anything else goes to `$default`). Every message route but `typing` is two-way (template.yaml gives it
a route response): the caller's answer is what the function returns, `{"statusCode": 200, "body": "<the answer
event>"}`, and API Gateway sends that body to the caller when the invocation ends, so after every event the action
posted (to the caller's own connection too, such as `chat.queued`). `typing`, which answers nothing when it
succeeds, is one-way (no route response, so no empty message per notice): its result has no body and its error,
if any, is posted. Services answer through their Outbox, which puts the answer into the request's `Reply`
(support.services.connections) instead of posting it.

Errors never close the connection and never fail the invocation: they are the answer, `{"type": "error",
"requestId", "data": {"code", "message", "details"}}`, with the HTTP API's codes (`bad_request` for a body that is
not JSON, `unknown_action`, `validation_error` with field paths, `too_large` over 50 KB, `not_found`, `forbidden`,
`conflict`, ...).

Two refusals do close the connection, after their error event: a staff connection whose token has expired
(`token_expired`: reconnect with a fresh token), and a visitor's whose widget key has been revoked
(`widget_key_revoked`). Their error is posted, not returned: the server closes the connection before the function
returns, and a route response would come too late. A connection acts only with the rights it was opened with
(support.services.connections). A connection over its rate (support.services.rate_limits) gets `rate_limited` with
`retryAfter` (seconds), and the message is not acted on; the connection stays open and is served again once its
bucket refills.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ValidationError

from support import audit_actor
from support.auth import Principal, Role, principal_from_context
from support.errors import DomainError, RateLimited, Unauthorized
from support.observability import logger
from support.realtime import encode
from support.services import connections
from support.services.connections import Caller, Outbox, Reply

CONNECT, DISCONNECT, DEFAULT = "$connect", "$disconnect", "$default"
# Pydantic error types that mean "too big": `too_large` (the HTTP API's 413).
_TOO_LARGE = {"payload_too_large"}
_WS_CODES = {413: "too_large"}


@dataclass(frozen=True)
class Action:
    """A message route's model and service call. `answers`: the route is two-way (template.yaml gives it a route
    response) and its answer is the function's result; a one-way route (`typing`: it answers nothing when it
    succeeds) has none, so its rare answer (an error) is posted. `checked_in_transaction`: the connection's token
    is taken by the first statement of the action's own write transaction (an action whose first database work is
    a pipelined write: sendMessage, markRead), not in a transaction of its own before it."""

    model: type[BaseModel]
    run: Callable[[Principal, Any, Caller], None]
    answers: bool = True
    checked_in_transaction: bool = False  # its first database work is a pipelined write (connections.action_checked)


def _error(
    principal: Principal,
    caller: Caller,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    outbox = Outbox(principal.tenant_id, caller)
    outbox.answer("error", {"code": code, "message": message, "details": details or [], **(extra or {})})
    outbox.send()


def _token_expired(principal: Principal) -> bool:
    return principal.token_expires_at is not None and datetime.now(UTC) >= principal.token_expires_at


def _refuse_and_close(principal: Principal, caller: Caller, code: str, message: str) -> None:
    """The error event, posted (a caller without a reply), then the close: it must reach the client first."""
    outbox = Outbox(principal.tenant_id, replace(caller, reply=None))
    outbox.answer("error", {"code": code, "message": message, "details": []})
    outbox.close([caller.connection_id])
    outbox.send()


def _request_id(body: Any) -> str | None:
    value = body.get("requestId") if isinstance(body, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 128 else None


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _route_response(caller: Caller) -> dict[str, Any]:
    """What a message route returns: the answer as the body of the route's response, or no body."""
    answer = caller.reply.event if caller.reply is not None else None
    return {"statusCode": 200} if answer is None else {"statusCode": 200, "body": encode(answer)}


def handle(event_: Mapping[str, Any], actions: Mapping[str, Action]) -> dict[str, Any]:
    """One WebSocket event. Always answers 200 to API Gateway once the connection exists (a refusal of $connect
    is the authorizer's, or a non-2xx here when the connection cannot be recorded); a message's answer is the
    body."""
    context = event_.get("requestContext") or {}
    route = str(context.get("routeKey") or DEFAULT)
    connection_id = str(context.get("connectionId") or "")
    audit_actor.bind(None)
    try:
        principal = principal_from_context(context.get("authorizer"))
    except Unauthorized:
        logger.warning("websocket event without a valid authorizer context", extra={"route": route})
        return {"statusCode": 401}
    who = principal.agent_id if principal.agent_id else principal.visitor_id or principal.subject or None
    audit_actor.bind(audit_actor.Actor(str(principal.role), str(who) if who else None, context.get("requestId")))
    if route == CONNECT:
        return _connect(principal, connection_id, event_.get("queryStringParameters") or {})
    if route == DISCONNECT:
        connections.close_connection(principal, connection_id)
        return {"statusCode": 200}

    raw = event_.get("body") or ""
    try:
        body = json.loads(raw)
        readable = True
    except (json.JSONDecodeError, RecursionError, TypeError):
        body, readable = None, False
    identity = context.get("identity") or {}
    routed = actions.get(route)
    reply = Reply() if routed is None or routed.answers else None  # $default and the two-way routes answer
    caller = Caller(connection_id, _request_id(body), identity.get("sourceIp"), identity.get("userAgent"), reply)
    _serve(principal, caller, actions, body, readable)
    return _route_response(caller)


def _connect(principal: Principal, connection_id: str, query: Mapping[str, Any]) -> dict[str, Any]:
    """$connect: record the connection (403 refuses it: a revoked widget key, a chat not of the tenant). A staff
    connection opened with `?sessionId=` follows that chat alone (connections.open_connection); a malformed id is
    400, and refuses the connection too."""
    session_id = None
    followed = query.get("sessionId")
    if followed is not None and principal.role is not Role.VISITOR:
        try:
            session_id = UUID(str(followed))
        except ValueError:
            return {"statusCode": 400}
    return {"statusCode": 200 if connections.open_connection(principal, connection_id, session_id) else 403}


def _serve(principal: Principal, caller: Caller, actions: Mapping[str, Action], body: Any, readable: bool) -> None:
    """Check the message, then run its action: what it answers is in `caller.reply` (nothing when the connection
    was refused and closed: that error was posted)."""
    connection_id = caller.connection_id
    if _token_expired(principal):
        _refuse_and_close(principal, caller, "token_expired", "your token has expired: reconnect with a fresh token")
        return
    name = body.get("action") if readable and isinstance(body, dict) else None
    action = actions.get(name) if isinstance(name, str) else None
    # Every message counts against the connection's bucket, whatever it holds (malformed ones too): on its own
    # first, or, for an action that writes first, in the action's own transaction (one round trip fewer).
    try:
        if action is not None and action.checked_in_transaction:
            with connections.action_checked(principal, connection_id):
                _run(principal, caller, action, body)
            return
        check = connections.check_action(principal, connection_id)
        if check.retry_after is not None or not check.key_live:
            raise connections.ActionRefused(check)
    except connections.ActionRefused as refused:
        if caller.reply is not None:  # the refusal is the answer, not what an action that did nothing said
            caller.reply.event = None
        if not refused.check.key_live:
            _refuse_and_close(principal, caller, "widget_key_revoked", "this chat is no longer available on this site")
            return
        limited = RateLimited(
            "too many messages on this connection; wait and send again", retry_after=refused.check.retry_after or 1
        )
        _error(principal, caller, limited.code, limited.message, extra=limited.extra)
        return
    if not readable:
        _error(principal, caller, "bad_request", "the message is not valid JSON")
        return
    if not isinstance(body, dict):
        _error(principal, caller, "bad_request", 'a message is a JSON object with an "action"')
        return
    if action is None:
        _error(principal, caller, "unknown_action", f"unknown action {name!r}; known: {', '.join(sorted(actions))}")
        return
    _run(principal, caller, action, body)


def _run(principal: Principal, caller: Caller, action: Action, body: dict[str, Any]) -> None:
    """The action, its errors as the answer (a refusal of the connection's check passes through)."""
    try:
        request = action.model.model_validate(body)
        action.run(principal, request, caller)
    except ValidationError as exc:
        errors = exc.errors()
        details = [{"field": _field(e["loc"]), "message": e.get("msg", ""), "type": e["type"]} for e in errors]
        if any(e["type"] in _TOO_LARGE for e in errors):
            _error(principal, caller, "too_large", "a field is over its size limit", details)
        else:
            _error(principal, caller, "validation_error", "the message is not valid", details)
    except DomainError as exc:
        _error(principal, caller, _WS_CODES.get(exc.status, exc.code), exc.message, exc.details, exc.extra)
    except connections.ActionRefused:
        raise
    except Exception as exc:
        if connections.is_refusal(exc):  # the connection's check refused in the action's transaction: not a bug
            raise
        logger.exception("unhandled error in a websocket action", extra={"action": body.get("action")})
        _error(principal, caller, "internal_error", "an internal error occurred; it has been logged")
