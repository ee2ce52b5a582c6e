"""A WebSocket connection keeps only the rights it was opened with, through the real handlers in-process (the
$connect authorizer and the WebSocket function, with the events API Gateway builds) against the real database:
what the end-to-end tests (tests/e2e/test_connection_rights.py) cannot show because the server closes the
connection first, such as a message that races a revoke, and the bookkeeping of spent connect tokens."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import import_module
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from local.gateway import LambdaContext
from local.gateway.websocket_api import direct_websocket_event
from support import ws_auth
from support.auth import Principal, Role, authorizer_context
from support.models.agents import AgentCreate
from support.models.widgets import WidgetCreate
from support.services import agents, connections, widgets
from support.services.rate_limits import Bucket
from support.visitors import issue_connect_token

SHOP = "https://shop.example"
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:api/dev/$connect"


def _event(route: str, context: dict[str, str], connection_id: str, body: dict[str, Any] | None = None) -> Any:
    raw = json.dumps(body) if body is not None else None
    return direct_websocket_event(route, connection_id, {**context, "principalId": "p"}, body=raw, user_agent="test")


def _invoke(route: str, context: dict[str, str], connection_id: str, body: dict[str, Any] | None = None) -> Any:
    from functions.websocket import app

    return app.lambda_handler(_event(route, context, connection_id, body), LambdaContext("WebSocketFunction", 512, 10))


def _admin(tenant: UUID) -> Principal:
    return Principal(tenant_id=tenant, role=Role.ADMIN, subject="test-admin")


def _visitor_connects(tenant: UUID, widget_key: str, visitor_id: str = "visitor-1") -> dict[str, str]:
    """The authorizer's context for a visitor of `widget_key` (its connect token spent)."""
    token, _ = issue_connect_token(tenant, widget_key, visitor_id)
    policy = ws_auth.authorize(
        {"queryStringParameters": {"visitorToken": token}, "headers": {"Origin": SHOP}, "methodArn": METHOD_ARN}
    )
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    return dict(policy["context"])


def _rows(db: DatabaseUrls, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db.admin) as conn:
        return conn.execute(statement.encode(), params).fetchall()


@pytest.fixture
def widget_key(db: DatabaseUrls, tenant: UUID) -> str:
    return widgets.create_widget(_admin(tenant), WidgetCreate(name="Shop", allowed_origins=[SHOP])).widget_key


def test_a_visitor_message_after_the_key_is_revoked_is_refused(db: DatabaseUrls, tenant: UUID, widget_key: str) -> None:
    # Given a visitor's open connection
    context = _visitor_connects(tenant, widget_key)
    connection = f"c-{uuid4().hex[:12]}"
    assert _invoke("$connect", context, connection)["statusCode"] == 200
    # When the key is revoked, and a message the connection sent meanwhile arrives after it
    widgets.revoke_widget(_admin(tenant), widget_key)
    reply = _invoke("startChat", context, connection, {"action": "startChat", "visitorName": "Lin"})

    # Then it is refused (answered with an error event, the connection closed): no chat starts
    assert reply["statusCode"] == 200
    assert _rows(db, "SELECT count(*) FROM live_chat_sessions WHERE user_id = %s", tenant) == [(0,)]
    assert _rows(db, "SELECT count(*) FROM ws_connections WHERE user_id = %s", tenant) == [(0,)]


def test_a_connect_of_a_key_revoked_since_the_authorizer_ran_is_refused(
    db: DatabaseUrls, tenant: UUID, widget_key: str
) -> None:
    # Given a visitor the authorizer admitted, When the key is revoked before $connect records the connection
    context = _visitor_connects(tenant, widget_key)
    widgets.revoke_widget(_admin(tenant), widget_key)
    # Then $connect refuses it (a non-2xx makes API Gateway refuse the connection) and records nothing
    assert _invoke("$connect", context, f"c-{uuid4().hex[:12]}")["statusCode"] == 403
    assert _rows(db, "SELECT count(*) FROM ws_connections WHERE user_id = %s", tenant) == [(0,)]


def test_a_staff_connection_acts_until_its_token_expires_and_no_longer(db: DatabaseUrls, tenant: UUID) -> None:
    agent = agents.create_agent(_admin(tenant), AgentCreate(agent_name="Grace", agent_email=f"{uuid4()}@d.example"))
    principal = Principal(tenant_id=tenant, role=Role.AGENT, subject="grace", agent_id=agent.id)
    connection = f"c-{uuid4().hex[:12]}"
    soon = datetime.now(UTC) + timedelta(minutes=5)
    live = authorizer_context(principal.model_copy(update={"token_expires_at": soon}))
    assert _invoke("$connect", live, connection)["statusCode"] == 200
    recorded = _rows(db, "SELECT token_expires_at FROM ws_connections WHERE connection_id = %s", connection)
    assert recorded == [(soon.replace(microsecond=0),)]

    # While the token is valid, the agent's actions work
    _invoke("setStatus", live, connection, {"action": "setStatus", "status": "available"})
    assert agents.get_agent(_admin(tenant), agent.id).status == "available"

    # After its expiry, an action is refused: nothing changes, and the connection is forgotten
    expired = authorizer_context(principal.model_copy(update={"token_expires_at": datetime.now(UTC)}))
    assert _invoke("setStatus", expired, connection, {"action": "setStatus", "status": "away"})["statusCode"] == 200
    assert agents.get_agent(_admin(tenant), agent.id).status == "available"
    assert _rows(db, "SELECT count(*) FROM ws_connections WHERE connection_id = %s", connection) == [(0,)]


def test_the_authorizer_puts_the_staff_tokens_expiry_in_the_context() -> None:
    expires = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    principal = Principal(tenant_id=uuid4(), role=Role.ADMIN, subject="a", token_expires_at=expires)
    assert authorizer_context(principal)["tokenExpiresAt"] == str(int(expires.timestamp()))


def test_spent_connect_tokens_are_kept_only_until_they_expire(db: DatabaseUrls, tenant: UUID, widget_key: str) -> None:
    # Given a record of a token that expired a minute ago (as the owner, naming the tenant)
    old = uuid4()
    with psycopg.connect(db.owner) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        conn.execute(
            "INSERT INTO visitor_connect_tokens (token_id, user_id, expires_at)"
            " VALUES (%s, %s, now() - interval '1 minute')",
            (old, tenant),
        )
    # When a visitor of the tenant connects
    _visitor_connects(tenant, widget_key)
    # Then its token is recorded, and the expired record is gone
    kept = _rows(db, "SELECT token_id, expires_at > now() FROM visitor_connect_tokens WHERE user_id = %s", tenant)
    assert len(kept) == 1 and kept[0][0] != old and kept[0][1] is True


def test_a_connect_token_is_spent_once_whatever_happens_to_the_first_connection(tenant: UUID, widget_key: str) -> None:
    token, _ = issue_connect_token(tenant, widget_key, "visitor-1")
    event = {"queryStringParameters": {"visitorToken": token}, "headers": {"Origin": SHOP}, "methodArn": METHOD_ARN}
    assert ws_auth.authorize(event)["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    with pytest.raises(ws_auth.AuthorizerUnauthorized):
        ws_auth.authorize(event)


def test_a_connect_token_without_an_id_is_refused(tenant: UUID, widget_key: str) -> None:
    # A token signed before connect tokens had ids (or crafted without one) cannot be spent, so never connects
    import jwt

    from support.visitors import ALGORITHM, signing_key

    token, _ = issue_connect_token(tenant, widget_key, "visitor-1")
    claims = jwt.decode(token, options={"verify_signature": False})
    del claims["jti"]
    bare = jwt.encode(claims, signing_key(), algorithm=ALGORITHM)
    event = {"queryStringParameters": {"visitorToken": bare}, "headers": {"Origin": SHOP}, "methodArn": METHOD_ARN}
    with pytest.raises(ws_auth.AuthorizerUnauthorized):
        ws_auth.authorize(event)


# --- a message's token, taken in the action's own transaction (sendMessage, markRead) -------------------------------


def _started_chat(tenant: UUID, widget_key: str) -> tuple[dict[str, str], str, str]:
    """A visitor's open connection and the chat it started (waiting: no agent is available)."""
    context = _visitor_connects(tenant, widget_key)
    connection = f"c-{uuid4().hex[:12]}"
    assert _invoke("$connect", context, connection)["statusCode"] == 200
    started = json.loads(_invoke("startChat", context, connection, {"action": "startChat"})["body"])
    assert started["type"] == "chat.started"
    return context, connection, started["data"]["id"]


def _send(context: dict[str, str], connection: str, session_id: str, text: str, **extra: Any) -> dict[str, Any]:
    body = {"action": "sendMessage", "sessionId": session_id, "message": text, "clientMessageId": text, **extra}
    return json.loads(_invoke("sendMessage", context, connection, body)["body"])


@pytest.fixture
def no_management_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No management API to post to, as for every handler test here: a local stack an e2e test left running for
    the session would answer 410 for this test's made-up connection, and the desk would forget the connection
    (and its bucket) as gone."""
    from support.config import get_settings

    monkeypatch.delenv("WEBSOCKET_MANAGEMENT_ENDPOINT", raising=False)
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_messages_over_the_connections_rate_are_refused_and_stored_nowhere(
    db: DatabaseUrls,
    tenant: UUID,
    widget_key: str,
    monkeypatch: pytest.MonkeyPatch,
    no_management_api: None,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    # Given a visitor's chat and a bucket of 5 tokens that refills slowly (startChat took one; a token in 100 s, so
    # not even a loaded machine refills one mid-test)
    bucket = Bucket("connection", burst=5, per_second=0.01)
    # on the module the handler runs with now (an earlier test of the suite may have imported the layer afresh)
    handle = import_module("functions.websocket.app").handle
    for module in {connections, import_module("support.services.connections"), handle.__globals__["connections"]}:
        monkeypatch.setattr(module, "ACTIONS_PER_CONNECTION", bucket)
    context, connection, session_id = _started_chat(tenant, widget_key)
    logger = logging.getLogger(handle.__globals__["logger"].name)  # the layer's (Powertools: it does not propagate)
    logger.addHandler(caplog.handler)
    request.addfinalizer(lambda: logger.removeHandler(caplog.handler))

    # When the visitor sends 8 messages at once, a malformed one among them, and one to a session not theirs
    answers = [_send(context, connection, session_id, f"m-{n}") for n in range(3)]
    answers.append(_send(context, connection, session_id, "", sessionId="not-a-uuid"))
    answers += [_send(context, connection, session_id, f"m-{n}") for n in range(3, 7)]

    # Then the first messages are stored and answered, the malformed one answered as invalid (and counted), and
    # once the bucket is dry each message is refused with rate_limited and stored nowhere
    kinds = [a["type"] if a["type"] != "error" else a["data"]["code"] for a in answers]
    assert kinds == ["message.new"] * 3 + ["validation_error"] + ["rate_limited"] * 4, kinds
    assert all(a["data"]["retryAfter"] >= 1 for a in answers[4:])
    # a refusal is the desk working, not a failure of the action: nothing logged as an error
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    stored = _rows(db, "SELECT message FROM chat_messages WHERE user_id = %s ORDER BY created_at", tenant)
    assert stored == [("m-0",), ("m-1",), ("m-2",)]
    # and a refusal takes no token: the bucket is empty, not below it
    [(level,)] = _rows(db, "SELECT action_tokens FROM ws_connections WHERE connection_id = %s", connection)
    assert 0 <= level < 1


def test_a_message_after_the_key_is_revoked_is_refused_and_the_connection_closed(
    db: DatabaseUrls, tenant: UUID, widget_key: str
) -> None:
    # Given a visitor's chat
    context, connection, session_id = _started_chat(tenant, widget_key)
    assert _send(context, connection, session_id, "before")["type"] == "message.new"

    # When the key is revoked and a message arrives after it
    widgets.revoke_widget(_admin(tenant), widget_key)
    reply = _invoke(
        "sendMessage",
        context,
        connection,
        {"action": "sendMessage", "sessionId": session_id, "message": "after", "clientMessageId": "after"},
    )

    # Then nothing is stored, the answer is not a route response (the error was posted before the close), and the
    # connection is gone
    assert reply == {"statusCode": 200}
    assert _rows(db, "SELECT message FROM chat_messages WHERE user_id = %s", tenant) == [("before",)]
    assert _rows(db, "SELECT count(*) FROM ws_connections WHERE user_id = %s", tenant) == [(0,)]
