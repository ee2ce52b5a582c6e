"""Staff broadcasts (support.services.broadcasts): coalesced, off the request path, O(n) queue positions.

Real database, real services and the real broadcast handler; the management API is a real HTTP stand-in that
records what each connection is sent, and, where the function is configured, Lambda's Invoke API is the local
gateway's (local/gateway/lambda_api.py) running the broadcast handler in process.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from local.database import DatabaseUrls
from local.gateway import LambdaContext, running_gateway
from local.gateway.lambda_api import lambda_routes
from support import invocations
from support.auth import Principal, Role
from support.config import get_settings
from support.db import tenant_transaction
from support.models.agents import AgentCreate, AgentStatus
from support.models.chat import ChatSession, ChatSessionStart, VisitorContext
from support.services import agents, broadcasts, chat, connections
from tests.integration.test_chat_concurrency import connection_per_thread, run_together
from tests.management_api import Posts, posts

__all__ = ["connection_per_thread", "posts"]  # the fixtures, used by name below


@dataclass
class Desk:
    tenant: UUID = field(default_factory=uuid4)

    @property
    def admin(self) -> Principal:
        return Principal(tenant_id=self.tenant, role=Role.ADMIN, subject="admin")

    def staff(self, count: int = 1) -> list[str]:
        ids = [f"staff-{uuid4().hex[:10]}" for _ in range(count)]
        for connection_id in ids:
            assert connections.open_connection(self.admin, connection_id)
        return ids

    def visitor_connection(self, visitor_id: str) -> str:
        connection_id = f"visitor-{uuid4().hex[:10]}"
        with tenant_transaction(self.tenant) as cur:
            cur.execute(
                """INSERT INTO ws_connections (connection_id, user_id, role, visitor_id, widget_key)
                VALUES (%s, %s, 'visitor', %s, %s)""",
                (connection_id, self.tenant, visitor_id, f"wk_{uuid4().hex}"),
            )
        return connection_id

    def agent(self, capacity: int = 1, status: AgentStatus = AgentStatus.OFFLINE) -> Principal:
        created = agents.create_agent(
            self.admin,
            AgentCreate(
                agent_name="Grace", agent_email=f"{uuid4()}@desk.example", max_concurrent_chats=capacity, status=status
            ),
        )
        return Principal(tenant_id=self.tenant, role=Role.AGENT, subject="grace", agent_id=created.id)

    def start(self, visitor_id: str | None = None) -> ChatSession:
        data = ChatSessionStart(visitor_id=visitor_id or f"v-{uuid4().hex[:8]}", visitor_name="Lin")
        return chat.start_chat_session(self.admin, data, VisitorContext())

    def waiting(self) -> list[UUID]:
        with tenant_transaction(self.tenant) as cur:
            cur.execute(
                "SELECT id FROM live_chat_sessions WHERE user_id = %s AND status = 'waiting' ORDER BY created_at, id",
                (self.tenant,),
            )
            return [row["id"] for row in cur.fetchall()]


def newest_queue(posts: Posts, connection_id: str) -> dict[str, Any]:
    updates = posts.of(connection_id, "queue.updated")
    assert updates, f"{connection_id} got no queue.updated"
    return max(updates, key=lambda u: u["asOf"])


def queue_ids(update: dict[str, Any]) -> list[UUID]:
    return [UUID(s["id"]) for s in update["sessions"]]


# --- the function configured: Lambda's Invoke API, the local gateway's -------------------------------------------


@dataclass
class LambdaApi:
    """The gateway's Invoke API in front of the broadcast handler (in process), recording each event; `hold` keeps
    the invocations from running until `release`."""

    events: list[dict[str, Any]] = field(default_factory=list)
    hold: threading.Event | None = None

    def invoke(self, function_id: str, event: dict[str, Any]) -> Any:
        from functions.broadcast import app

        self.events.append(event)
        if self.hold is not None:
            self.hold.wait(10)
        return app.lambda_handler(
            event, LambdaContext(function_name=function_id, memory_limit_in_mb=512, timeout_seconds=30)
        )

    def runs(self) -> list[dict[str, Any]]:
        return [e for e in self.events if "slice" not in e]


@pytest.fixture
def lambda_api(posts: Posts, monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaApi]:
    recorder = LambdaApi()
    app = Starlette(routes=lambda_routes({"BroadcastFunction": object()}, recorder.invoke))
    with running_gateway(app) as base:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", base)
        monkeypatch.setenv("BROADCAST_FUNCTION_NAME", "BroadcastFunction")
        monkeypatch.setenv("BROADCAST_COALESCE_MS", "150")
        get_settings.cache_clear()
        invocations.reset()
        try:
            yield recorder
        finally:
            if recorder.hold is not None:
                recorder.hold.set()
            invocations.reset()
            get_settings.cache_clear()


def wait_for(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_burst_of_starts_is_told_in_a_few_runs_and_every_staff_connection_ends_with_the_real_queue(
    posts: Posts, lambda_api: LambdaApi, connection_per_thread: None
) -> None:
    # Given a desk with no agent available and five staff connections
    desk = Desk()
    staff = desk.staff(5)

    # When 30 visitors start chats at once
    results = run_together([desk.start for _ in range(30)])
    assert not [r for r in results if isinstance(r, Exception)], results

    # Then every staff connection ends with the real queue, told in a few coalesced runs, not one per start
    queue = desk.waiting()
    assert len(queue) == 30
    wait_for(lambda: all(newest_queue_or_none(posts, c) == len(queue) for c in staff))
    for connection_id in staff:
        newest = newest_queue(posts, connection_id)
        assert newest["waiting"] == 30 and queue_ids(newest) == queue
        assert [s["position"] for s in newest["sessions"]] == list(range(1, 31))
        assert len(posts.of(connection_id, "queue.updated")) <= 5
    assert 1 <= len(lambda_api.runs()) <= 5


def newest_queue_or_none(posts: Posts, connection_id: str) -> int | None:
    updates = posts.of(connection_id, "queue.updated")
    return max(updates, key=lambda u: u["asOf"])["waiting"] if updates else None


def test_with_the_function_configured_the_request_path_posts_nothing_to_staff(
    posts: Posts, lambda_api: LambdaApi
) -> None:
    # Given staff online, and invocations that wait to run
    desk = Desk()
    staff = desk.staff(3)
    lambda_api.hold = threading.Event()
    visitor = "v-held"
    own = desk.visitor_connection(visitor)

    # When a visitor starts a chat
    session = desk.start(visitor)

    # Then the visitor has its own position at once, one broadcast was queued, and no staff connection was posted to
    assert posts.of(own, "chat.queued") == [
        {
            "sessionId": str(session.id),
            "position": 1,
            "asOf": posts.of(own, "chat.queued")[0]["asOf"],
            "expectedWaitSeconds": None,  # no agent could take it: no estimate
        }
    ]
    wait_for(lambda: len(lambda_api.events) == 1)
    assert lambda_api.events == [{"tenantId": str(desk.tenant)}]
    assert all(posts.of(c, "queue.updated") == [] for c in staff)

    # And once the invocation runs, every staff connection has the queue (and the visitor no second chat.queued)
    lambda_api.hold.set()
    wait_for(lambda: all(posts.of(c, "queue.updated") for c in staff))
    assert all(queue_ids(newest_queue(posts, c)) == [session.id] for c in staff)
    time.sleep(0.2)
    assert len(posts.of(own, "chat.queued")) == 1


# --- the run in the caller's process (no function configured) ------------------------------------------------------


def test_a_claim_removes_the_chat_from_every_other_staff_connections_queue(posts: Posts) -> None:
    desk = Desk()
    agent = desk.agent(capacity=2)
    others = desk.staff(3)
    first, second = desk.start(), desk.start()
    assert all(queue_ids(newest_queue(posts, c)) == [first.id, second.id] for c in others)

    chat.claim_chat_session(agent, first.id)

    for connection_id in others:
        newest = newest_queue(posts, connection_id)
        assert queue_ids(newest) == [second.id] and newest["waiting"] == 1
        assert newest["sessions"][0]["position"] == 1


def test_a_new_chat_at_the_end_re_tells_no_other_waiting_visitor(posts: Posts) -> None:
    desk = Desk()
    visitors = [f"v-{n}" for n in range(4)]
    own = {v: desk.visitor_connection(v) for v in visitors}
    for visitor in visitors[:3]:
        desk.start(visitor)
    told_before = {v: len(posts.of(own[v], "chat.queued")) for v in visitors[:3]}
    assert told_before == dict.fromkeys(visitors[:3], 1)  # each its own position, once

    desk.start(visitors[3])

    assert {v: len(posts.of(own[v], "chat.queued")) for v in visitors[:3]} == told_before
    assert [n["position"] for n in posts.of(own[visitors[3]], "chat.queued")] == [4]


def test_after_a_claim_of_the_head_each_remaining_visitor_is_told_its_new_position_once(posts: Posts) -> None:
    desk = Desk()
    agent = desk.agent()
    visitors = [f"v-{n}" for n in range(5)]
    own = {v: desk.visitor_connection(v) for v in visitors}
    sessions = [desk.start(v) for v in visitors]
    posts.clear()

    chat.claim_chat_session(agent, sessions[0].id)

    for position, visitor in enumerate(visitors[1:], start=1):
        assert [n["position"] for n in posts.of(own[visitor], "chat.queued")] == [position]
    assert posts.of(own[visitors[0]], "chat.queued") == []


def test_an_agents_status_reaches_every_staff_connection_in_the_broadcast(posts: Posts) -> None:
    desk = Desk()
    agent = desk.agent()
    staff = desk.staff(2)

    agents.update_agent_status(agent, agent.agent_id or uuid4(), AgentStatus.AWAY)

    for connection_id in staff:
        assert posts.of(connection_id, "agent.status") == [{"agentId": str(agent.agent_id), "status": "away"}]
        assert posts.of(connection_id, "queue.updated") == []  # the queue did not change


def test_a_change_committed_while_a_run_is_in_progress_is_told_by_the_next_run(
    posts: Posts, monkeypatch: pytest.MonkeyPatch, connection_per_thread: None
) -> None:
    # Given a run that has taken the tenant's request and is still in its transaction
    desk = Desk()
    staff = desk.staff(1)
    first = desk.start()
    with tenant_transaction(desk.tenant) as cur:
        broadcasts.request(cur, connections.Outbox(desk.tenant), queue=True)  # pending again; started by hand below
    inside, go_on = threading.Event(), threading.Event()
    read_queue = broadcasts._read_queue

    def paused(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name == "first-run":
            inside.set()
            go_on.wait(10)
        return read_queue(*args, **kwargs)

    monkeypatch.setattr(broadcasts, "_read_queue", paused)
    run = threading.Thread(target=broadcasts.run, args=(desk.tenant,), name="first-run")
    run.start()
    assert inside.wait(10)

    # When a chat starts meanwhile (its commit waits for the run's, then finds no request and starts the next run)
    started: list[ChatSession] = []
    later = threading.Thread(target=lambda: started.append(desk.start()))
    later.start()
    time.sleep(0.3)
    go_on.set()
    run.join(10)
    later.join(10)

    # Then the staff's newest queue holds both chats
    assert queue_ids(newest_queue(posts, staff[0])) == [first.id, started[0].id]
    with tenant_transaction(desk.tenant) as cur:
        cur.execute("SELECT count(*) AS n FROM broadcast_requests WHERE user_id = %s", (desk.tenant,))
        assert cur.fetchone() == {"n": 0}


def test_a_request_left_by_a_lost_start_is_recovered_once_stale(posts: Posts, db: DatabaseUrls) -> None:
    desk = Desk()
    staff = desk.staff(1)
    # Given a pending request whose run never came (a trigger lost), fresh: a change rides along and starts nothing
    with psycopg.connect(db.admin) as conn:
        conn.execute("INSERT INTO broadcast_requests (user_id, queue) VALUES (%s, true)", (desk.tenant,))
    first = desk.start()
    assert posts.of(staff[0], "queue.updated") == []

    # When it is older than the staleness bound, the next change starts a run, which tells both chats
    with psycopg.connect(db.admin) as conn:
        conn.execute(
            "UPDATE broadcast_requests SET requested_at = now() - make_interval(secs => %s) WHERE user_id = %s",
            (broadcasts.STALE_AFTER_SECONDS + 1, desk.tenant),
        )
    second = desk.start()
    assert queue_ids(newest_queue(posts, staff[0])) == [first.id, second.id]


def test_slices_reach_every_staff_connection(posts: Posts, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROADCAST_SLICE_SIZE", "2")
    get_settings.cache_clear()
    desk = Desk()
    staff = desk.staff(7)
    own = desk.visitor_connection("v-sliced")

    session = desk.start("v-sliced")

    assert all(queue_ids(newest_queue(posts, c)) == [session.id] for c in staff)
    assert len(posts.of(own, "chat.queued")) == 1


def test_slices_are_handed_to_further_invocations_of_the_function(posts: Posts, lambda_api: LambdaApi) -> None:
    # Given a slice size of 2 (set after the fixture's settings) and five staff connections
    import os

    os.environ["BROADCAST_SLICE_SIZE"] = "2"
    get_settings.cache_clear()
    try:
        desk = Desk()
        staff = desk.staff(5)
        session = desk.start()
        wait_for(lambda: all(posts.of(c, "queue.updated") for c in staff))
    finally:
        del os.environ["BROADCAST_SLICE_SIZE"]
        get_settings.cache_clear()
    # Then the run delivered one slice and handed on two, each to an invocation of its own
    assert all(queue_ids(newest_queue(posts, c)) == [session.id] for c in staff)
    sliced = [e for e in lambda_api.events if "slice" in e]
    assert len(sliced) == 2 and sorted(len(e["slice"]["recipients"]) for e in sliced) == [1, 2]


# --- the invocation itself ---------------------------------------------------------------------------------------


def test_an_invocation_is_the_request_botocore_signs_for_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[tuple[str, dict[str, str], bytes]] = []

    async def record(request: Request) -> Response:
        received.append((request.scope["raw_path"].decode(), dict(request.headers), await request.body()))
        return Response(status_code=202)

    app = Starlette(routes=[Route("/2015-03-31/functions/{name}/invocations", record, methods=["POST"])])
    credentials = Credentials("local", "local-secret", "session-token")
    with running_gateway(app) as base:
        invoker = invocations.LambdaInvoker(base, region="eu-west-1", credentials=credentials)
        invoker.invoke_async("support-dev-broadcast", {"tenantId": "t"})

    ((path, headers, body),) = received
    assert path == "/2015-03-31/functions/support-dev-broadcast/invocations"
    assert headers["x-amz-invocation-type"] == "Event" and json.loads(body) == {"tenantId": "t"}
    fields = dict(p.strip().split("=", 1) for p in headers["authorization"].partition(" ")[2].split(","))
    assert fields["Credential"].endswith("/eu-west-1/lambda/aws4_request")
    signed = fields["SignedHeaders"].split(";")
    assert "x-amz-invocation-type" in signed and "host" in signed
    request = AWSRequest(
        method="POST",
        url=f"http://{headers['host']}{path}",
        data=body,
        headers={name: headers[name] for name in signed if name != "host"},
    )
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(credentials.get_frozen_credentials(), "lambda", "eu-west-1")
    assert fields["Signature"] == signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )


def test_the_endpoint_is_botocores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_LAMBDA", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert invocations.endpoint_url("eu-west-1") == "https://lambda.eu-west-1.amazonaws.com"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert invocations.endpoint_url("eu-west-1") == "http://127.0.0.1:1"
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:2")
    assert invocations.endpoint_url("eu-west-1") == "http://127.0.0.1:2"
