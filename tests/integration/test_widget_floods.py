"""Floods through the public widget (issue 15): the chat settings, one open chat per visitor, the waiting queue's
cap, and the rate limits of the widget session route, of visitor $connect and of a connection's actions.

Everything runs through the real handlers in process (the widgets, settings and WebSocket functions and the
$connect authorizer) against the real database; the events a connection is sent are caught by a management API
over real HTTP, as API Gateway's would receive them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from local.gateway import (
    LambdaContext,
    build_http_event,
    build_websocket_authorizer_event,
    direct_websocket_event,
    websocket_request_context,
)
from local.sample_events import TENANT_ID
from support.auth import Principal, Role, authorizer_context
from support.services import connections, rate_limits, widgets
from support.services.rate_limits import Bucket, take_tokens_alone
from tests.http_events import HandlerClient, Reply, invoke_sample_event, route_key
from tests.integration.test_chat_concurrency import connection_per_thread, run_together
from tests.management_api import Posts, posts

SHOP = "https://shop.example"
SESSION = "/api/support/widget/session"
SETTINGS = "/api/support/settings/chat"
EVENTS = Path(__file__).resolve().parents[2] / "events" / "settings"
__all__ = ["connection_per_thread", "posts"]  # the fixtures, used by name below


# --- the harness: the handlers in process, the management API recording (tests.management_api) ------------------------


def _context(name: str) -> LambdaContext:
    return LambdaContext(function_name=name, memory_limit_in_mb=512, timeout_seconds=10)


class Connection:
    """A WebSocket connection as the WebSocket function sees it: its id and the authorizer's context."""

    def __init__(self, posts: Posts, authorizer: dict[str, Any], source_ip: str) -> None:
        self.id = f"conn-{uuid4()}"
        self.posts = posts
        self.authorizer = authorizer
        self.source_ip = source_ip
        self._count = 0
        assert self._event("$connect")["statusCode"] == 200

    def _event(self, route: str, body: str | None = None) -> dict[str, Any]:
        from functions.websocket import app

        event = direct_websocket_event(
            route,
            self.id,
            self.authorizer,
            body=body,
            source_ip=self.source_ip,
            user_agent="flood-test",
            message_id="m1",
        )
        return dict(app.lambda_handler(event, _context("WebSocketFunction")))

    def send(self, action: str, **fields: Any) -> list[dict[str, Any]]:
        """Send an action; what this connection was sent meanwhile (posts), then its answer (the route's response,
        which API Gateway sends once the function returns)."""
        self._count += 1
        result = self._event(action, json.dumps({"action": action, "requestId": f"r{self._count}", **fields}))
        posted = self.posts.take(self.id)
        assert not [e for e in posted if e.get("requestId") == f"r{self._count}"], posted  # the answer is not posted
        return posted + ([json.loads(result["body"])] if "body" in result else [])

    def answer(self, action: str, **fields: Any) -> dict[str, Any]:
        """The answer to one action (the event that carries its requestId)."""
        events = self.send(action, **fields)
        mine = [e for e in events if e.get("requestId") == f"r{self._count}"]
        assert len(mine) == 1, events
        return mine[0]


class Desk:
    """A tenant with a widget key, its admin over HTTP, and visitors that come through the widget."""

    def __init__(self, posts: Posts) -> None:
        from functions.settings import app as settings_app
        from functions.widgets import app as widgets_app

        self.tenant = uuid4()
        self.posts = posts
        self.admin_principal = Principal(tenant_id=self.tenant, role=Role.ADMIN, subject="admin")
        self.widgets = HandlerClient(widgets_app.lambda_handler, tenant=self.tenant)
        self.settings = HandlerClient(settings_app.lambda_handler, tenant=self.tenant)
        reply = self.widgets.post("/api/support/widgets", {"name": "Shop", "allowedOrigins": [SHOP]})
        assert reply.status == 201, reply.body
        self.widget_key = reply.data["widgetKey"]

    def session(self, source_ip: str, origin: str | None = SHOP, widget_key: str | None = None) -> Reply:
        """The public session route as a script calls it: any Origin it likes (a forged one binds nothing)."""
        return session_route(widget_key or self.widget_key, source_ip, origin)

    def authorize(self, connect_token: str, source_ip: str, origin: str = SHOP) -> dict[str, Any]:
        from functions.ws_authorizer import app

        context = websocket_request_context(
            route_key="$connect",
            event_type="CONNECT",
            connection_id="pending",
            connected_at=int(time.time() * 1000),
            source_ip=source_ip,
            user_agent="flood-test",
            host="localhost",
            stage="local",
        )
        event = build_websocket_authorizer_event(
            headers=[("origin", origin)],
            raw_query_string=f"visitorToken={connect_token}",
            request_context=context,
            api_id="local",
            stage="local",
        )
        return dict(app.lambda_handler(event, _context("WebSocketAuthorizerFunction")))

    def visitor(self, source_ip: str) -> Connection:
        """A new visitor: a session, an authorized $connect, the connection."""
        reply = self.session(source_ip)
        assert reply.status == 201, reply.body
        policy = self.authorize(reply.data["connectToken"], source_ip)
        assert effect(policy) == "Allow", policy
        return Connection(self.posts, policy["context"], source_ip)

    def staff(self) -> Connection:
        return Connection(self.posts, authorizer_context(self.admin_principal), "198.51.100.1")

    def agent(self, name: str, capacity: int = 1) -> Connection:
        from functions.agents import app

        agents = HandlerClient(app.lambda_handler, tenant=self.tenant)
        body = {"agentName": name, "agentEmail": f"{uuid4()}@desk.example", "maxConcurrentChats": capacity}
        reply = agents.post("/api/support/agents", {**body, "status": "available"})
        assert reply.status == 201, reply.body
        principal = Principal(tenant_id=self.tenant, role=Role.AGENT, subject=name, agent_id=reply.data["id"])
        return Connection(self.posts, authorizer_context(principal), "198.51.100.2")

    def sessions(self, db: DatabaseUrls) -> list[tuple[str, str]]:
        with psycopg.connect(db.admin) as conn:
            rows = conn.execute(
                "SELECT visitor_id, status FROM live_chat_sessions WHERE user_id = %s", (self.tenant,)
            ).fetchall()
        return [(row[0], row[1]) for row in rows]


def session_route(widget_key: str, source_ip: str, origin: str | None = SHOP) -> Reply:
    from functions.widgets import app

    event = build_http_event(
        route_key=route_key("POST", SESSION),
        method="POST",
        raw_path=SESSION,
        headers=[("content-type", "application/json")] + ([("origin", origin)] if origin else []),
        body=json.dumps({"widgetKey": widget_key}).encode(),
        claims=None,
        source_ip=source_ip,
    )
    result = app.lambda_handler(event, _context("WidgetsFunction"))
    return Reply(status=result["statusCode"], body=json.loads(result["body"]), headers=result.get("headers") or {})


def effect(policy: dict[str, Any]) -> str:
    return str(policy["policyDocument"]["Statement"][0]["Effect"])


def ip(n: int) -> str:
    return f"203.0.113.{n}" if n < 256 else f"198.18.{n // 256}.{n % 256}"


@pytest.fixture
def desk(posts: Posts) -> Desk:
    return Desk(posts)


@pytest.fixture
def other_desk(posts: Posts) -> Desk:
    return Desk(posts)


# --- settings per tenant ------------------------------------------------------------------------------------------


class TestChatSettings:
    def test_a_new_tenant_has_the_defaults(self, desk: Desk) -> None:
        reply = desk.settings.get(SETTINGS)

        assert reply.status == 200, reply.body
        assert reply.data == {"queueCap": 50, "webFormUrl": None}

    def test_an_admin_replaces_them_whole_and_only_that_tenant_changes(self, desk: Desk, other_desk: Desk) -> None:
        put = desk.settings.put(SETTINGS, {"queueCap": 3, "webFormUrl": "https://shop.example/contact"})
        assert put.status == 200, put.body
        assert put.data == {"queueCap": 3, "webFormUrl": "https://shop.example/contact"}
        assert desk.settings.get(SETTINGS).data == put.data
        assert other_desk.settings.get(SETTINGS).data == {"queueCap": 50, "webFormUrl": None}

        # A field left out takes its default again: the body is the whole model
        again = desk.settings.put(SETTINGS, {"queueCap": 4})
        assert again.data == {"queueCap": 4, "webFormUrl": None}
        assert desk.settings.get(SETTINGS).data == {"queueCap": 4, "webFormUrl": None}

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"queueCap": 0}, "body.queueCap"),
            ({"queueCap": 10_001}, "body.queueCap"),
            ({"queueCap": "many"}, "body.queueCap"),
            ({"webFormUrl": "http://shop.example/contact"}, "body.webFormUrl"),
            ({"webFormUrl": "javascript:alert(1)"}, "body.webFormUrl"),
            ({"queueCapp": 3}, "body.queueCapp"),
        ],
    )
    def test_invalid_settings_are_refused_and_nothing_changes(
        self, desk: Desk, body: dict[str, Any], field: str
    ) -> None:
        reply = desk.settings.put(SETTINGS, body)

        assert reply.status == 422, reply.body
        assert [d["field"] for d in reply.error["details"]] == [field]
        assert desk.settings.get(SETTINGS).data == {"queueCap": 50, "webFormUrl": None}

    def test_agents_read_them_and_only_admins_change_them(self, desk: Desk) -> None:
        agent = desk.settings.as_tenant(desk.tenant, role="agent")

        assert agent.get(SETTINGS).status == 200
        refused = agent.put(SETTINGS, {"queueCap": 1})
        assert refused.status == 403 and refused.error["code"] == "forbidden"
        assert desk.settings.get(SETTINGS).data["queueCap"] == 50

    def test_the_sample_events_succeed_against_the_handler(self, db: DatabaseUrls) -> None:
        from functions.settings import app

        for name, status in (("put_chat", 200), ("get_chat", 200)):
            result = invoke_sample_event(app.lambda_handler, EVENTS / f"{name}.json", "SettingsFunction")
            assert result["statusCode"] == status, result["body"]
        assert json.loads(result["body"])["data"] == {"queueCap": 20, "webFormUrl": "https://shop.example/contact"}
        with psycopg.connect(db.admin) as conn:
            row = conn.execute("SELECT updated_by FROM tenant_settings WHERE user_id = %s", (TENANT_ID,)).fetchone()
        assert row is not None and row[0]  # who changed it last


# --- one open chat per visitor, and the queue's cap ------------------------------------------------------------


def test_a_second_start_answers_the_open_chat_and_stores_and_announces_nothing(desk: Desk, db: DatabaseUrls) -> None:
    staff = desk.staff()
    visitor = desk.visitor(ip(1))

    first = visitor.answer("startChat", visitorName="Lin", clientStartId="a-1")["data"]
    assert first["status"] == "waiting"
    # (services called in process: the staff broadcast runs here, after the commit, one per change)
    assert [e["type"] for e in staff.posts.take(staff.id)] == ["queue.updated"]

    # Without an id, and with another attempt's id: the open chat again, nothing new
    for fields in ({}, {"clientStartId": "a-2"}):
        again = visitor.send("startChat", **fields)
        started = [e for e in again if e["type"] == "chat.started"]
        assert [e["data"]["id"] for e in started] == [first["id"]], again
        assert [e["data"]["position"] for e in again if e["type"] == "chat.queued"] == [1]
    assert desk.sessions(db) == [(first["visitorId"], "waiting")]
    assert staff.posts.take(staff.id) == []

    # Once it has ended, the visitor may start a new one
    assert visitor.answer("endChat", sessionId=first["id"])["type"] == "chat.ended"
    second = visitor.answer("startChat")["data"]
    assert second["id"] != first["id"] and second["status"] == "waiting"


def test_over_the_queue_cap_a_visitor_is_told_the_desk_is_busy_and_nothing_is_stored(
    desk: Desk, other_desk: Desk, db: DatabaseUrls
) -> None:
    assert desk.settings.put(SETTINGS, {"queueCap": 2, "webFormUrl": "https://shop.example/contact"}).status == 200
    staff = desk.staff()
    visitors = [desk.visitor(ip(n)) for n in range(1, 5)]

    answers = [v.answer("startChat", visitorName=f"V{n}") for n, v in enumerate(visitors)]

    assert [a["type"] for a in answers] == ["chat.started", "chat.started", "error", "error"]
    for busy in answers[2:]:
        assert busy["data"]["code"] == "desk_busy"
        assert busy["data"]["webFormUrl"] == "https://shop.example/contact"
        assert "web form" in busy["data"]["message"]
    assert sorted(status for _, status in desk.sessions(db)) == ["waiting", "waiting"]
    updates = staff.posts.take(staff.id)
    assert [e["type"] for e in updates] == ["queue.updated", "queue.updated"]
    assert [e["data"]["waiting"] for e in updates] == [1, 2]

    # Without a web form the answer says so (null); another tenant's queue is its own
    assert desk.settings.put(SETTINGS, {"queueCap": 2}).status == 200
    assert visitors[3].answer("startChat")["data"] | {"message": ""} == {
        "code": "desk_busy",
        "message": "",
        "details": [],
        "webFormUrl": None,
    }
    assert other_desk.visitor(ip(1)).answer("startChat")["type"] == "chat.started"

    # Room in the queue again (a waiting chat ended): the next visitor gets in
    assert visitors[0].answer("endChat", sessionId=answers[0]["data"]["id"])["type"] == "chat.ended"
    assert visitors[2].answer("startChat")["type"] == "chat.started"


# --- the public routes' limits --------------------------------------------------------------------------------


def test_the_widget_session_route_answers_an_unknown_key_and_a_foreign_origin_alike(desk: Desk) -> None:
    unknown = desk.session(ip(1), widget_key="wk_" + "u" * 32)
    foreign = desk.session(ip(1), origin="https://evil.example")
    without = desk.session(ip(1), origin=None)
    revoked_key = Desk(desk.posts)
    assert revoked_key.widgets.delete(f"/api/support/widgets/{revoked_key.widget_key}").status == 200
    revoked = revoked_key.session(ip(1))

    assert {r.status for r in (unknown, foreign, without, revoked)} == {403}
    assert foreign.body == unknown.body == without.body == revoked.body


def test_the_session_route_limits_each_address_per_tenant_with_retry_after(desk: Desk, other_desk: Desk) -> None:
    burst = rate_limits.SESSION_PER_IP.burst
    replies = [desk.session(ip(7)) for _ in range(burst)]
    assert {r.status for r in replies} == {201}

    over = desk.session(ip(7))

    assert over.status == 429, over.body
    assert over.error["code"] == "rate_limited"
    assert 1 <= int(over.headers["Retry-After"]) <= 2  # one token at 0.5 a second
    # Another address of the same tenant, and the same address on another tenant's widget, are not held back
    assert desk.session(ip(8)).status == 201
    assert other_desk.session(ip(7)).status == 201
    # A refused key from that address is answered as before (the limit counts only admitted requests)
    assert desk.session(ip(7), origin="https://evil.example").status == 403


def test_the_session_route_limits_each_key_across_addresses(
    desk: Desk, other_desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small key budget that refills slowly, so that the test does not race the refill
    monkeypatch.setattr(widgets, "SESSION_PER_KEY", Bucket("session-key", burst=5, per_second=0.01))

    assert [desk.session(ip(n)).status for n in range(1, 6)] == [201] * 5
    over = desk.session(ip(6))

    assert over.status == 429 and int(over.headers["Retry-After"]) >= 90
    assert other_desk.session(ip(6)).status == 201


def test_visitor_connect_is_limited_per_address_and_per_key_per_tenant(
    desk: Desk, other_desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support import ws_auth

    monkeypatch.setattr(ws_auth, "CONNECT_PER_IP", Bucket("connect-ip", burst=3, per_second=0.01))
    monkeypatch.setattr(ws_auth, "CONNECT_PER_KEY", Bucket("connect-key", burst=5, per_second=0.01))

    def token() -> str:  # a fresh connect token for each attempt: each is spent by its first use
        return str(desk.session(ip(9)).data["connectToken"])

    # Per address: three connections, then a refusal (Deny: API Gateway answers 403)
    assert [effect(desk.authorize(token(), ip(1))) for _ in range(4)] == ["Allow", "Allow", "Allow", "Deny"]
    # Per key: two more from other addresses fill the key's budget; the third address is refused too
    assert [effect(desk.authorize(token(), ip(n))) for n in (2, 3, 4)] == ["Allow", "Allow", "Deny"]
    # Another tenant's widget, from the same addresses, connects
    other_token = other_desk.session(ip(1)).data["connectToken"]
    assert effect(other_desk.authorize(other_token, ip(1))) == "Allow"


def test_a_connection_over_its_rate_gets_rate_limited_stays_open_and_is_served_after_the_refill(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bucket that refills slowly enough that no machine is too slow to empty it (the product's refills 5 a second)
    bucket = Bucket("connection", burst=10, per_second=2)
    monkeypatch.setattr(connections, "ACTIONS_PER_CONNECTION", bucket)
    visitor = desk.visitor(ip(1))

    answers = [visitor.answer("ping") for _ in range(bucket.burst + 30)]

    limited = [a for a in answers if a["type"] == "error"]
    assert answers[: bucket.burst - 1] == [a for a in answers[: bucket.burst - 1] if a["type"] == "pong"]
    assert limited, "the bucket never ran dry"
    assert {a["data"]["code"] for a in limited} == {"rate_limited"}
    assert all(a["data"]["retryAfter"] == 1 for a in limited)  # one token at 2 a second: within a second
    # Malformed messages count too, and are answered the same way while the bucket is dry
    malformed = visitor._event("$default", "{not json")
    assert json.loads(malformed["body"])["data"]["code"] == "rate_limited"
    assert visitor.posts.take(visitor.id) == []  # the answer is the route's response, not a post

    time.sleep(limited[-1]["data"]["retryAfter"])

    assert visitor.answer("ping")["type"] == "pong"
    assert visitor.answer("startChat")["type"] == "chat.started"


def test_the_review_flood_leaves_other_tenants_working_and_the_queue_at_its_cap(
    desk: Desk, other_desk: Desk, db: DatabaseUrls
) -> None:
    """A script with a live key and a forged Origin: many visitors from many addresses, many starts each."""
    assert desk.settings.put(SETTINGS, {"queueCap": 5}).status == 200
    staff = desk.staff()
    flood = [desk.visitor(ip(n)) for n in range(1, 13)]

    for _ in range(3):
        for visitor in flood:
            visitor.send("startChat", visitorName="flood")

    assert [status for _, status in desk.sessions(db)] == ["waiting"] * 5
    updates = [e["data"] for e in staff.posts.take(staff.id) if e["type"] == "queue.updated"]
    assert len(updates) == 5 and max(u["waiting"] for u in updates) == 5
    # From one address, the session route soon answers 429 with Retry-After
    replies = [desk.session(ip(99)) for _ in range(rate_limits.SESSION_PER_IP.burst + 1)]
    assert replies[-1].status == 429 and int(replies[-1].headers["Retry-After"]) >= 1

    # Meanwhile another tenant's widget works end to end: session, connect, start, message
    agent = other_desk.agent("Grace")
    customer = other_desk.visitor(ip(99))
    started = customer.answer("startChat", visitorName="Ada")["data"]
    assert started["status"] == "active"
    sent = customer.answer("sendMessage", sessionId=started["id"], message="hello", clientMessageId="m-1")
    assert sent["type"] == "message.new"
    assert [e["data"]["message"] for e in agent.posts.take(agent.id) if e["type"] == "message.new"] == ["hello"]


def test_counters_are_per_tenant_under_row_level_security(desk: Desk, other_desk: Desk, db: DatabaseUrls) -> None:
    desk.session(ip(1))
    other_desk.session(ip(1))

    with psycopg.connect(db.app) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(desk.tenant),))
        rows = conn.execute("SELECT user_id, scope, subject FROM rate_limit_counters").fetchall()

    # Only this tenant's buckets: its visitors' and its staff's API budget (the desk's set-up went through the API).
    expected = [(desk.tenant, "session-ip", ip(1)), (desk.tenant, "session-key", desk.widget_key)]
    assert sorted(rows) == sorted([*expected, (desk.tenant, "api", "tenant")])
    assert all(isinstance(row[0], UUID) for row in rows)


# --- the counters hold across execution environments ------------------------------------------------------------


def test_concurrent_takes_from_many_connections_never_admit_more_than_the_bucket(
    desk: Desk, connection_per_thread: None
) -> None:
    """Each thread has its own database connection, as each Lambda execution environment has: 8 of them take 10
    tokens each from one bucket of 30 at once, and exactly 30 are admitted; other tenants' buckets are untouched."""
    bucket = Bucket("session-ip", burst=30, per_second=0.001)
    checks = [(bucket, ip(1))]

    def take() -> list[int | None]:
        return [take_tokens_alone(desk.tenant, checks) for _ in range(10)]

    results = run_together([take] * 8)

    answers = [answer for per_thread in results for answer in per_thread]
    assert answers.count(None) == 30
    assert all(answer is not None and answer >= 900 for answer in answers if answer is not None)
