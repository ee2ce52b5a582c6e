"""Faults (issue 20): the database connection killed between invocations or cut in the middle of a request, the
database failing in the middle of a transaction, the WebSocket fan-out failing for some connections, SES failing.
What survives each, and the test that proves it, is listed in docs/ARCHITECTURE.md ("Faults and what survives them").

Real parts only: the real handlers in-process with the events API Gateway builds, the real PostgreSQL, the server
ending the function's backend (`pg_terminate_backend` from the superuser's connection, as a failover or a restart
would), a TCP proxy in front of it that cuts the function's connection just before a chosen statement or just after a
chosen commit (local/pg_proxy.py), a row lock held by another session so that a statement waits (and then is killed,
or reaches its `statement_timeout`), a management API over real HTTP that answers 410, 500 or nothing, and SES (moto
in server mode) behind a small HTTP server that throttles, fails or hangs up before letting requests through.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.rows import dict_row
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from local import ses as local_ses
from local.database import DatabaseUrls
from local.pg_proxy import RoundTripProxy
from support import realtime
from support.auth import Principal, Role, authorizer_context
from support.config import get_settings
from support.db import connection
from support.models.agents import AgentCreate
from support.models.chat import ChatMessageCreate, ChatSessionStart, VisitorContext
from support.models.widgets import WidgetCreate
from support.services import agents, chat, email_outbox, widgets
from tests import recount
from tests.http_events import HandlerClient, Reply
from tests.integration.test_chat_broken_connection import proxy
from tests.integration.test_email_outbox import configure, mails_of, make_due, outbox, sender, ses, settings_api
from tests.integration.test_tickets_api import BASE, new_agent, new_ticket
from tests.integration.test_websocket_route_response import Connection
from tests.management_api import Posts, management_api_serving, posts

__all__ = ["posts", "proxy", "sender", "ses", "settings_api"]  # fixtures, used by name below

TICKET = {
    "customerName": "Ada Lovelace",
    "customerEmail": "ada@example.com",
    "subject": "Order arrived damaged",
    "description": "The box was crushed.",
}


# --- the parts --------------------------------------------------------------------------------------------------


@pytest.fixture
def chat_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.chat import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


@pytest.fixture
def dashboard_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.dashboard import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


def terminate(db: DatabaseUrls, pid: int) -> None:
    """The server ends a backend (as a failover, a restart or an idle timeout would), and has when this returns."""
    with psycopg.connect(db.admin, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone() == (True,)


def kill_the_functions_connection(db: DatabaseUrls) -> int:
    """Between invocations: the execution environment's cached connection is ended by the server; the function does
    not know until it next uses it. Answers the backend's pid."""
    pid = connection.get_connection().info.backend_pid
    terminate(db, pid)
    return pid


def count(db: DatabaseUrls, table: str, tenant: UUID, where: str = "true", params: tuple[Any, ...] = ()) -> int:
    with psycopg.connect(db.admin) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM {table} WHERE user_id = %s AND {where}".encode(),  # tests' own constants
            (tenant, *params),
        ).fetchone()
    assert row is not None
    return int(row[0])


def assert_figures_match_a_recount(db: DatabaseUrls, tenant: UUID) -> None:
    """Every running total, day total and agent figure the triggers keep is what the rows say (tests/recount.py)."""
    assert recount.stored_ticket_totals(db, tenant) == recount.recount_ticket_totals(db, tenant)
    assert recount.stored_chat_totals(db, tenant) == recount.recount_chat_totals(db, tenant)
    assert recount.stored_feedback_totals(db, tenant) == recount.recount_feedback_totals(db, tenant)
    assert recount.stored_day_totals(db, tenant) == recount.recount_day_totals(db, tenant)
    assert recount.stored_agent_figures(db, tenant) == recount.recount_agent_figures(db, tenant)
    assert recount.stored_current_chats(db, tenant) == recount.recount_current_chats(db, tenant)


def assert_clean_500(reply: Reply) -> None:
    """The error envelope, never a traceback: the caller may retry (with its Idempotency-Key for a create)."""
    assert reply.status == 500, reply.body
    assert reply.body == {
        "success": False,
        "error": {"code": "internal_error", "message": "an internal error occurred; it has been logged", "details": []},
    }


class LockHolder:
    """Another session holds a row lock (`lock`, a SELECT ... FOR UPDATE as the superuser) so that the function's
    next statement that needs the row waits on it: the function is then stopped in the middle of its transaction,
    after its earlier statements ran, at a statement the test chose. `backend_waiting()` is the function's backend
    once it waits there (its pid and the statement), for the test to terminate; `release()` ends the lock."""

    def __init__(self, db: DatabaseUrls, lock: str, params: tuple[Any, ...]) -> None:
        self._db = db
        self._conn = psycopg.connect(db.admin, row_factory=dict_row)
        assert self._conn.execute(lock.encode(), params).fetchall(), "nothing to lock"

    def backend_waiting(self, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with psycopg.connect(self._db.admin, autocommit=True, row_factory=dict_row) as watcher:
            while time.monotonic() < deadline:
                row = watcher.execute(
                    """SELECT pid, query FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'
                    AND %s = ANY(pg_blocking_pids(pid))""",
                    (connection.APPLICATION_NAME, self._conn.info.backend_pid),
                ).fetchone()
                if row is not None:
                    return row
                time.sleep(0.01)
        raise AssertionError("the function never waited on the lock")

    def release(self) -> None:
        self._conn.rollback()
        self._conn.close()


def in_thread[T](work: Callable[[], T]) -> Callable[[], T]:
    """Start `work` in a thread; the returned function waits for it and answers its result (or raises its error)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as exc:  # handed to the caller
            outcome.append((False, exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def result() -> T:
        thread.join(30)
        assert outcome, "the work did not finish"
        done, value = outcome[0]
        if not done:
            raise value
        return value  # type: ignore[no-any-return]

    return result


# --- 1. the connection killed between invocations ---------------------------------------------------------------


def _chat_session(chat_api: HandlerClient) -> str:
    reply = chat_api.post("/api/support/chat/sessions", {"visitorId": f"v-{uuid4().hex[:8]}"})
    assert reply.status == 201, reply.body
    return str(reply.data["id"])


# Each HTTP route kind takes another path to the database (support/db/connection.py): a transaction, an
# Idempotency-Key's claim alone on the connection, a snapshot read in a pipeline, a chat message's pipeline sent once.
HTTP_REQUESTS: dict[str, Callable[[HandlerClient, HandlerClient, HandlerClient], Reply]] = {
    "a create (a transaction)": lambda tickets, chats, dashboard: tickets.post(BASE, TICKET),
    "a create with an Idempotency-Key (its claim first)": lambda tickets, chats, dashboard: tickets.post(
        BASE, TICKET, headers={"Idempotency-Key": str(uuid4())}
    ),
    "the dashboard (a snapshot read)": lambda tickets, chats, dashboard: dashboard.get("/api/support/dashboard"),
    "a chat message over HTTP (a pipeline sent once)": lambda tickets, chats, dashboard: chats.post(
        f"/api/support/chat/sessions/{_chat_session(chats)}/messages", {"senderType": "agent", "message": "Hello"}
    ),
}


@pytest.mark.parametrize("kind", list(HTTP_REQUESTS))
def test_an_http_request_after_the_database_killed_the_connection_succeeds_on_a_new_one(
    db: DatabaseUrls,
    tenant: UUID,
    tickets_api: HandlerClient,
    chat_api: HandlerClient,
    dashboard_api: HandlerClient,
    kind: str,
) -> None:
    # Given a function whose cached connection has served a request, and then was ended by the server
    assert HTTP_REQUESTS[kind](tickets_api, chat_api, dashboard_api).status in (200, 201)
    tickets_before = count(db, "support_tickets", tenant)
    killed = kill_the_functions_connection(db)

    # When the next request comes
    reply = HTTP_REQUESTS[kind](tickets_api, chat_api, dashboard_api)

    # Then it is served on a new connection, which is kept for the next ones; a create made one row
    assert reply.status in (200, 201), reply.body
    assert connection.get_connection().info.backend_pid != killed
    if kind.startswith("a create"):
        assert count(db, "support_tickets", tenant) == tickets_before + 1
    assert_figures_match_a_recount(db, tenant)


@pytest.fixture
def chat_desk(db: DatabaseUrls, tenant: UUID) -> tuple[Connection, Connection, UUID]:
    """An available agent's WebSocket connection and a visitor's, of one tenant (and the agent's id)."""
    admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="admin")
    agent = agents.create_agent(
        admin,
        AgentCreate.model_validate(
            {"agentName": "Grace", "agentEmail": f"{uuid4()}@desk.example", "status": "available"}
        ),
    )
    staff = Principal(tenant_id=tenant, role=Role.AGENT, subject="grace", agent_id=agent.id)
    key = widgets.create_widget(admin, WidgetCreate(name="Shop", allowed_origins=["https://shop.example"])).widget_key
    visitor = Principal(tenant_id=tenant, role=Role.VISITOR, subject="visitor:v-1", visitor_id="v-1", widget_key=key)
    return Connection(authorizer_context(staff)), Connection(authorizer_context(visitor)), agent.id


def _answer(result: dict[str, Any]) -> dict[str, Any]:
    assert result["statusCode"] == 200, result
    return dict(json.loads(result["body"]))


def test_a_websocket_action_after_the_database_killed_the_connection_is_served_and_stored_once(
    db: DatabaseUrls, tenant: UUID, chat_desk: tuple[Connection, Connection, UUID], posts: Posts
) -> None:
    # Given a visitor's chat, assigned to the agent, and the WebSocket function's connection ended by the server
    agent, visitor, _ = chat_desk
    _, started = visitor.send("startChat")
    session_id = _answer(started)["data"]["id"]
    killed = kill_the_functions_connection(db)

    # When the visitor sends a message (a pipeline that may run twice: it carries a clientMessageId)
    _, sent = visitor.send("sendMessage", sessionId=session_id, message="Where is my parcel?", clientMessageId="c-1")

    # Then the visitor is answered, the message is stored once and the agent hears of it
    answer = _answer(sent)
    assert answer["type"] == "message.new" and answer["data"]["message"] == "Where is my parcel?"
    assert connection.get_connection().info.backend_pid != killed
    assert count(db, "chat_messages", tenant) == 1
    assert [m["message"] for m in posts.of(agent.id, "message.new")] == ["Where is my parcel?"]

    # And so is the agent's answer, after another kill
    kill_the_functions_connection(db)
    _, replied = agent.send("sendMessage", sessionId=session_id, message="On its way", clientMessageId="a-1")
    assert _answer(replied)["data"]["message"] == "On its way"
    assert count(db, "chat_messages", tenant) == 2
    assert_figures_match_a_recount(db, tenant)


class SweepContext:
    function_name = "WorkflowSweepFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:WorkflowSweepFunction"
    aws_request_id = "faults-sweep"


def _expired_key(db: DatabaseUrls, tenant: UUID) -> str:
    """An Idempotency-Key past its 24 hours: the workflow sweep's `idempotency` step deletes it."""
    key = f"expired-{uuid4()}"
    with psycopg.connect(db.admin) as conn:
        conn.execute(
            """INSERT INTO idempotency_keys (user_id, route, key, request_hash, claim_id, lease_expires_at,
                expires_at)
            VALUES (%s, 'POST /api/support/tickets', %s, %s, %s, now() - interval '1 day',
                now() - interval '1 hour')""",
            (tenant, key, bytes(32), uuid4()),
        )
    return key


def test_the_workflow_sweep_after_the_database_killed_the_connection_runs_every_step(
    db: DatabaseUrls, tenant: UUID
) -> None:
    from functions.workflow_sweep import app

    # Given a key for the sweep to delete, and the sweep's environment whose connection was ended by the server
    _expired_key(db, tenant)
    app.run_steps(datetime.now(UTC))  # warm: the cached connection has served a run
    killed = kill_the_functions_connection(db)

    # When the schedule invokes it
    result = app.lambda_handler({"scheduledTime": datetime.now(UTC).isoformat()}, SweepContext())  # type: ignore[arg-type]

    # Then every step ran, on a new connection, and did its work
    assert result["ok"] is True and result["failed"] == []
    assert connection.get_connection().info.backend_pid != killed
    assert count(db, "idempotency_keys", tenant) == 0


# --- the connection cut in the middle of a request --------------------------------------------------------------


def test_an_http_create_whose_connection_is_cut_midway_answers_a_clean_500_and_its_retry_creates_one(
    db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient, proxy: RoundTripProxy
) -> None:
    # Given a function whose connection will break just as it sends the ticket's INSERT (its claim of the key and the
    # transaction's first statements went through)
    new_ticket(tickets_api)
    proxy.cut_request_holding(b"INSERT INTO support_tickets")
    key = {"Idempotency-Key": str(uuid4())}

    # When a create with an Idempotency-Key is sent
    reply = tickets_api.post(BASE, TICKET, headers=key)

    # Then the caller gets the error envelope, nothing was written, and the key was released (on a new connection)
    assert proxy.cuts == 1
    assert_clean_500(reply)
    assert count(db, "support_tickets", tenant) == 1
    assert count(db, "idempotency_keys", tenant) == 0
    assert_figures_match_a_recount(db, tenant)

    # And the retry with the same key creates the ticket, once; a second retry answers it again
    retried = tickets_api.post(BASE, TICKET, headers=key)
    assert retried.status == 201, retried.body
    again = tickets_api.post(BASE, TICKET, headers=key)
    assert (again.status, again.data, again.headers.get("Idempotent-Replayed")) == (201, retried.data, "true")
    assert count(db, "support_tickets", tenant) == 2
    assert_figures_match_a_recount(db, tenant)


def test_a_websocket_message_whose_commit_is_not_heard_is_answered_and_stored_once(
    db: DatabaseUrls, tenant: UUID, chat_desk: tuple[Connection, Connection, UUID], posts: Posts, proxy: RoundTripProxy
) -> None:
    # Given a chat, and a connection that breaks right after the server commits the agent's next message (the worst
    # moment: stored, and the function does not know)
    agent, visitor, _ = chat_desk
    _, started = visitor.send("startChat")
    session_id = _answer(started)["data"]["id"]
    proxy.cut_after_commit(of_request_holding=b"chat_send_message")

    # When the agent sends it (its clientMessageId lets the pipeline run again)
    _, sent = agent.send("sendMessage", sessionId=session_id, message="On its way", clientMessageId="a-1")

    # Then it ran again on a new connection, found the stored message and answered it: stored once, told once
    assert proxy.cuts == 1
    answer = _answer(sent)
    assert (answer["type"], answer["data"]["message"]) == ("message.new", "On its way")
    assert count(db, "chat_messages", tenant) == 1
    assert [m["id"] for m in posts.of(visitor.id, "message.new")] == [answer["data"]["id"]]
    assert_figures_match_a_recount(db, tenant)


def test_a_websocket_start_whose_commit_is_not_heard_is_answered_and_its_agent_told_once(
    db: DatabaseUrls, tenant: UUID, chat_desk: tuple[Connection, Connection, UUID], posts: Posts, proxy: RoundTripProxy
) -> None:
    # Given an available agent, and a connection that breaks right after the server commits the visitor's start
    agent, visitor, agent_id = chat_desk
    proxy.cut_after_commit(of_request_holding=b"chat_start")

    # When the visitor starts a chat (its clientStartId lets the pipeline run again)
    _, started = visitor.send("startChat", clientStartId="s-1")

    # Then it ran again, found the session the first run started and assigned, and answered it: one session, and the
    # agent is told of the assignment once
    assert proxy.cuts == 1
    answer = _answer(started)
    assert (answer["type"], answer["data"]["status"], answer["data"]["assignedAgentId"]) == (
        "chat.started",
        "active",
        str(agent_id),
    )
    assert count(db, "live_chat_sessions", tenant) == 1
    assert [s["id"] for s in posts.of(agent.id, "chat.assigned")] == [answer["data"]["id"]]
    assert_figures_match_a_recount(db, tenant)


def test_a_websocket_action_whose_connection_is_cut_midway_answers_an_error_event_and_the_next_is_served(
    db: DatabaseUrls, tenant: UUID, chat_desk: tuple[Connection, Connection, UUID], proxy: RoundTripProxy
) -> None:
    # Given a chat with the visitor's message, and the agent's read receipt whose connection breaks as its statement is
    # sent (a receipt is sent once: its transaction was begun, and nothing says whether a second run is harmless)
    agent, visitor, _ = chat_desk
    _, started = visitor.send("startChat")
    session_id = _answer(started)["data"]["id"]
    _, sent = visitor.send("sendMessage", sessionId=session_id, message="Hello?", clientMessageId="c-1")
    message_id = _answer(sent)["data"]["id"]
    proxy.cut_request_holding(b"chat_mark_read")

    # When the agent marks it read
    request_id, result = agent.send("markRead", sessionId=session_id, upToMessageId=message_id)

    # Then the agent gets the error event of its request (it may send it again), and nothing was marked
    assert proxy.cuts == 1
    error = _answer(result)
    assert (error["type"], error["requestId"], error["data"]["code"]) == ("error", request_id, "internal_error")
    assert count(db, "chat_messages", tenant, "is_read") == 0

    # And the next action is served on a new connection
    _, again = agent.send("markRead", sessionId=session_id, upToMessageId=message_id)
    assert _answer(again)["type"] != "error"
    assert count(db, "chat_messages", tenant, "is_read") == 1
    assert_figures_match_a_recount(db, tenant)


def test_a_sweep_step_whose_connection_is_cut_midway_fails_alone_and_the_next_run_does_its_work(
    db: DatabaseUrls, tenant: UUID, proxy: RoundTripProxy
) -> None:
    from functions.workflow_sweep import app

    # Given a key to delete, and a connection that breaks as the idempotency step sends its statement
    _expired_key(db, tenant)
    proxy.cut_request_holding(b"idempotency_keys_purge")

    # When the schedule invokes the sweep
    with pytest.raises(app.WorkflowSweepFailed, match="idempotency"):
        app.lambda_handler({"scheduledTime": datetime.now(UTC).isoformat()}, SweepContext())  # type: ignore[arg-type]

    # Then that step failed (the invocation fails, so the error shows) and the key is still there; the next run
    # deletes it
    assert proxy.cuts == 1
    assert count(db, "idempotency_keys", tenant) == 1
    result = app.lambda_handler({"scheduledTime": datetime.now(UTC).isoformat()}, SweepContext())  # type: ignore[arg-type]
    assert result["ok"] is True
    assert count(db, "idempotency_keys", tenant) == 0


# --- 2. the database failing in the middle of a transaction -----------------------------------------------------


def _assigned_ticket(tickets_api: HandlerClient, tenant: UUID) -> tuple[dict[str, Any], dict[str, Any]]:
    agent = new_agent(tickets_api)
    ticket = new_ticket(tickets_api)
    reply = tickets_api.post(f"{BASE}/{ticket['id']}/assign", {"agentId": agent["id"]})
    assert reply.status == 200, reply.body
    return agent, dict(reply.data)


def test_a_reply_whose_backend_is_killed_after_its_insert_leaves_nothing_and_its_retry_makes_one(
    db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient
) -> None:
    # Given an assigned ticket with no response yet, and the agent's row locked by another session: the first public
    # reply inserts its entry, then waits to record the first response time (whose trigger updates the agent's figures)
    agent, ticket = _assigned_ticket(tickets_api, tenant)
    lock = LockHolder(db, "SELECT 1 FROM support_agents WHERE id = %s FOR UPDATE", (agent["id"],))
    key = {"Idempotency-Key": str(uuid4())}
    body = {"senderType": "agent", "senderName": "Grace", "message": "We are sending a new one."}
    try:
        reply = in_thread(lambda: tickets_api.post(f"{BASE}/{ticket['id']}/conversations", body, headers=key))
        # When the database ends the function's backend there, in the middle of its transaction
        waiting = lock.backend_waiting()
        assert "first_response_time" in waiting["query"]  # after the INSERT of the entry
        terminate(db, waiting["pid"])
        answered = reply()
    finally:
        lock.release()

    # Then the caller gets the error envelope; no entry, no first response, and every figure as the rows say
    assert_clean_500(answered)
    assert count(db, "ticket_conversations", tenant) == 0
    assert tickets_api.get(f"{BASE}/{ticket['id']}").data["firstResponseTime"] is None
    assert count(db, "idempotency_keys", tenant) == 0
    assert_figures_match_a_recount(db, tenant)

    # And its retry with the same key makes the reply once, with the first response recorded
    retried = tickets_api.post(f"{BASE}/{ticket['id']}/conversations", body, headers=key)
    assert retried.status == 201, retried.body
    assert tickets_api.post(f"{BASE}/{ticket['id']}/conversations", body, headers=key).data == retried.data
    assert count(db, "ticket_conversations", tenant) == 1
    assert tickets_api.get(f"{BASE}/{ticket['id']}").data["firstResponseTime"] is not None
    assert_figures_match_a_recount(db, tenant)


@pytest.fixture
def short_statement_timeout(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "300")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_a_create_that_reaches_its_statement_timeout_midway_leaves_nothing_and_its_retry_makes_one(
    db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient, short_statement_timeout: None
) -> None:
    # Given a tenant with a ticket today, and its day's total locked by another session: the next create inserts its
    # ticket (numbered, counted in the running totals) and then waits for the day's row, until its statement timeout
    first = new_ticket(tickets_api)
    today = datetime.now(UTC).date()
    lock = LockHolder(db, "SELECT 1 FROM ticket_day_totals WHERE user_id = %s AND day = %s FOR UPDATE", (tenant, today))
    key = {"Idempotency-Key": str(uuid4())}
    try:
        started = time.monotonic()
        reply = tickets_api.post(BASE, {**TICKET, "subject": "Second"}, headers=key)
        waited = time.monotonic() - started
    finally:
        lock.release()

    # Then the statement was cancelled at its timeout, the caller gets the error envelope, and nothing remains: no
    # ticket, no reference used, every total as the rows say
    assert 0.3 <= waited < 4.5  # its own 300 ms, not the default 5 s
    assert_clean_500(reply)
    assert count(db, "support_tickets", tenant) == 1
    assert count(db, "idempotency_keys", tenant) == 0
    assert_figures_match_a_recount(db, tenant)

    # And the retry with the same key makes one ticket, with the next reference
    retried = tickets_api.post(BASE, {**TICKET, "subject": "Second"}, headers=key)
    assert retried.status == 201, retried.body
    assert int(retried.data["reference"].lstrip("#")) == int(first["reference"].lstrip("#")) + 1
    assert count(db, "support_tickets", tenant) == 2
    assert_figures_match_a_recount(db, tenant)


def test_a_chat_made_into_a_ticket_whose_connection_is_cut_before_its_last_statement_leaves_nothing(
    db: DatabaseUrls, tenant: UUID, chat_api: HandlerClient, proxy: RoundTripProxy
) -> None:
    # Given a chat with three messages, and a connection that breaks as the make's last statement (the session's
    # ticket_id) is sent: the ticket, its contact's email and the thread's three entries were written by then
    admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="admin")
    visitor = Principal(tenant_id=tenant, role=Role.VISITOR, subject="visitor:v-9", visitor_id="v-9", widget_key="k")
    session = chat.start_chat_session(visitor, ChatSessionStart(visitor_id="v-9"), VisitorContext())
    for side, text in (("customer", "My parcel is late"), ("agent", "Let me look"), ("customer", "Thanks")):
        who = visitor if side == "customer" else admin
        message = ChatMessageCreate.model_validate({"senderType": side, "message": text})
        chat.add_chat_message(who, session.id, message)
    proxy.cut_request_holding(b"UPDATE live_chat_sessions SET ticket_id")
    path = f"/api/support/chat/sessions/{session.id}/ticket"

    # When staff make it a ticket
    reply = chat_api.post(path, {"customerEmail": "late@example.com"})

    # Then the error envelope, and nothing of the make remains
    assert proxy.cuts == 1
    assert_clean_500(reply)
    assert count(db, "support_tickets", tenant) == 0
    assert count(db, "ticket_conversations", tenant) == 0
    assert count(db, "contact_identities", tenant, "kind = 'email'") == 0
    assert chat_api.get(f"/api/support/chat/sessions/{session.id}").data.get("ticketId") is None
    assert_figures_match_a_recount(db, tenant)

    # And the retry makes one ticket with the whole thread; another answers the same ticket
    made = chat_api.post(path, {"customerEmail": "late@example.com"})
    assert made.status == 201, made.body
    again = chat_api.post(path, {"customerEmail": "late@example.com"})
    assert (again.status, again.data["id"]) == (200, made.data["id"])
    assert count(db, "support_tickets", tenant) == 1
    assert count(db, "ticket_conversations", tenant) == 3
    assert_figures_match_a_recount(db, tenant)


# --- 3. the fan-out failing for some connections ----------------------------------------------------------------


class FlakyManagementApi:
    """API Gateway's management API as it fails: `gone-*` answers 410 GoneException (the client vanished without a
    goodbye), `broken-*` 500 every time, `hung-*` nothing until the test ends; the others 200, each event recorded."""

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()
        self.delivered: dict[str, list[dict[str, Any]]] = {}
        self.release = threading.Event()

    async def post(self, request: Request) -> Response:
        connection_id = request.path_params["connection_id"]
        body = json.loads(await request.body())
        self.attempts[connection_id] += 1
        if connection_id.startswith("gone-"):
            return JSONResponse({"message": None}, status_code=410, headers={"x-amzn-errortype": "GoneException"})
        if connection_id.startswith("broken-"):
            return JSONResponse({"message": "Internal server error"}, status_code=500)
        if connection_id.startswith("hung-"):
            while not self.release.is_set():
                await asyncio.sleep(0.02)
            return Response(status_code=200)
        self.delivered.setdefault(connection_id, []).append(body)
        return Response(status_code=200)


@pytest.fixture
def flaky_management_api(db: DatabaseUrls, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlakyManagementApi]:
    api = FlakyManagementApi()
    monkeypatch.setattr(realtime, "POST_TIMEOUT_SECONDS", 0.2)  # a hung post gives up sooner than AWS's 3 s
    with management_api_serving(api.post, monkeypatch):
        try:
            yield api
        finally:
            api.release.set()


def _more_connections_like(db: DatabaseUrls, connection_id: str, others: list[str]) -> None:
    """Rows of more connections of the same caller (its other tabs), as $connect would have stored them."""
    with psycopg.connect(db.admin) as conn:
        for other in others:
            conn.execute(
                """INSERT INTO ws_connections (connection_id, user_id, role, visitor_id, widget_key)
                SELECT %s, user_id, role, visitor_id, widget_key FROM ws_connections WHERE connection_id = %s""",
                (other, connection_id),
            )


def _connection_ids(db: DatabaseUrls, tenant: UUID) -> set[str]:
    with psycopg.connect(db.admin) as conn:
        return {
            row[0] for row in conn.execute("SELECT connection_id FROM ws_connections WHERE user_id = %s", (tenant,))
        }


def test_a_message_whose_fan_out_fails_for_some_connections_is_stored_and_delivered_to_the_others(
    db: DatabaseUrls,
    tenant: UUID,
    chat_desk: tuple[Connection, Connection, UUID],
    flaky_management_api: FlakyManagementApi,
) -> None:
    # Given a chat whose visitor has three more connections: one gone, one whose posts fail, one whose posts hang
    agent, visitor, _ = chat_desk
    _, started = visitor.send("startChat")
    session_id = _answer(started)["data"]["id"]
    gone, broken, hung = (f"{kind}-{uuid4().hex[:8]}" for kind in ("gone", "broken", "hung"))
    _more_connections_like(db, visitor.id, [gone, broken, hung])

    # When the agent sends a message
    began = time.monotonic()
    _, sent = agent.send("sendMessage", sessionId=session_id, message="On its way", clientMessageId="a-1")
    took = time.monotonic() - began

    # Then the agent is answered, the message is stored once, and the visitor's live connection got it
    answer = _answer(sent)
    assert (answer["type"], answer["data"]["message"]) == ("message.new", "On its way")
    assert count(db, "chat_messages", tenant) == 1
    assert [e["data"]["id"] for e in flaky_management_api.delivered[visitor.id] if e["type"] == "message.new"] == [
        answer["data"]["id"]
    ]
    # the gone connection was posted once (a 410 is final) and forgotten; the failing ones were retried (4 attempts,
    # the hung one timing out each time) and kept: a failure is no proof the connection is gone
    attempts = flaky_management_api.attempts
    assert (attempts[gone], attempts[broken], attempts[hung]) == (1, realtime.MAX_ATTEMPTS, realtime.MAX_ATTEMPTS)
    assert _connection_ids(db, tenant) == {agent.id, visitor.id, broken, hung}
    assert took < 5  # four timeouts of 0.2 s and short backoffs, not a wait for the hung answer

    # And the next message is not posted to the forgotten connection at all
    _, again = agent.send("sendMessage", sessionId=session_id, message="Tracking: 123", clientMessageId="a-2")
    assert _answer(again)["type"] == "message.new"
    assert attempts[gone] == 1
    assert len(flaky_management_api.delivered[visitor.id]) == 2
    assert count(db, "chat_messages", tenant) == 2


# --- 4. SES failing ---------------------------------------------------------------------------------------------

_SES_ERROR = """<ErrorResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/"><Error><Type>{side}</Type>
<Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request}</RequestId></ErrorResponse>"""

# What SES answers when it fails: a throttle, its own failures, and a connection it drops without an answer.
FAILURES = {
    "throttled": (400, "Sender", "Throttling", "Maximum sending rate exceeded."),
    "internal": (500, "Receiver", "InternalFailure", "An internal error occurred."),
    "unavailable": (503, "Receiver", "ServiceUnavailable", "Service unavailable."),
    "hung up": (0, "", "", ""),
}


class FailingSes:
    """SES's endpoint (AWS_ENDPOINT_URL_SES) for the test: the next `fail_next` requests fail, in turn, in every way of
    FAILURES; the others are passed to SES (moto) as they came, and its answer back. Counts both."""

    def __init__(self, ses_endpoint: str) -> None:
        self.failures = 0
        self.passed = 0
        self.failed: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._turn = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                failure = owner._next_failure()
                if failure == "hung up":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)  # no answer at all: the client's connection breaks
                    return
                if failure is not None:
                    status, side, code, message = FAILURES[failure]
                    answer = _SES_ERROR.format(side=side, code=code, message=message, request=uuid4()).encode()
                    content_type = "text/xml"
                else:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                    forwarded = urllib.request.Request(ses_endpoint + self.path, data=body, headers=headers)  # noqa: S310
                    with urllib.request.urlopen(forwarded, timeout=30) as reply:  # noqa: S310
                        status, answer, content_type = reply.status, reply.read(), reply.headers["Content-Type"]
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def _next_failure(self) -> str | None:
        with self._lock:
            if self.failures <= 0:
                self.passed += 1
                return None
            self.failures -= 1
            kind = list(FAILURES)[self._turn % len(FAILURES)]
            self._turn += 1
            self.failed[kind] += 1
            return kind

    def fail_next(self, requests: int) -> None:
        with self._lock:
            self.failures = requests

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def failing_ses(ses: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FailingSes]:
    server = FailingSes(ses)
    monkeypatch.setenv(local_ses.ENDPOINT_VARIABLE, server.endpoint)
    yield server
    server.close()


SES_FAILURE_CODES = {"Throttling", "InternalFailure", "ServiceUnavailable", "ConnectionClosedError"}


def test_email_while_ses_fails_is_retried_and_once_ses_recovers_each_notice_is_sent_once(
    db: DatabaseUrls,
    tenant: UUID,
    tickets_api: HandlerClient,
    settings_api: HandlerClient,
    sender: str,
    failing_ses: FailingSes,
) -> None:
    # Given a desk that mails its customers, four new tickets (four notices), and SES failing every request: throttled,
    # failing (500, 503) and dropping connections, in turn
    configure(settings_api, sender)
    tickets = [new_ticket(tickets_api, customerEmail=f"customer{n}@example.com") for n in range(4)]
    failing_ses.fail_next(1000)

    # When the outbox drains; Then every notice waits for a later try (the client's own retry failed too), none sent
    email_outbox.drain(time_budget_seconds=30)
    rows = outbox(db, tenant)
    assert [(r["state"], r["attempts"]) for r in rows] == [("pending", 1)] * 4
    assert all(r["next_attempt_at"] > r["updated_at"] for r in rows)
    assert {r["last_error"].split(":")[0] for r in rows} <= SES_FAILURE_CODES
    assert set(failing_ses.failed) == set(FAILURES)  # every kind of failure was met
    assert failing_ses.passed == 0
    assert [m for t in tickets for m in mails_of(t["id"])] == []

    # When SES recovers, partly at first (the next three requests still fail), and the notices come due again
    failing_ses.fail_next(3)
    for _ in range(5):
        make_due(db, tenant)
        email_outbox.drain(time_budget_seconds=30)
        if all(r["state"] == "sent" for r in outbox(db, tenant)):
            break

    # Then each notice was sent exactly once (nothing lost, nothing doubled), and a drain after that sends nothing
    rows = outbox(db, tenant)
    assert [r["state"] for r in rows] == ["sent"] * 4
    assert all(r["last_error"] is None and r["ses_message_id"] for r in rows)
    make_due(db, tenant)
    email_outbox.drain(time_budget_seconds=30)
    for ticket in tickets:
        assert len(mails_of(ticket["id"])) == 1, ticket["id"]
    assert len({r["ses_message_id"] for r in rows}) == 4
