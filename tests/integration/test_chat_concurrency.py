"""Chat services under concurrent requests, each on its own connection, as separate Lambda environments are.

Capacity holds when many assignments race for one agent, and crosswise transfers between two agents never
deadlock (rows are locked session first, then agents in id order).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest

from local.database import DatabaseUrls
from support.auth import Principal, Role
from support.config import get_settings
from support.db import connection
from support.errors import Conflict
from support.models.chat import ChatMessageCreate, ChatSession, ChatSessionStart, VisitorContext
from support.services import chat
from tests.integration.test_chat_api import assert_chats, new_agent


@pytest.fixture
def connection_per_thread(db: DatabaseUrls, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every thread gets its own connection (the services find theirs through get_connection)."""
    local = threading.local()
    opened: list[connection.Connection] = []
    lock = threading.Lock()

    def get_connection() -> connection.Connection:
        if getattr(local, "conn", None) is None:
            local.conn = connection._connect(get_settings())
            with lock:
                opened.append(local.conn)
        conn: connection.Connection = local.conn
        return conn

    monkeypatch.setattr(connection, "get_connection", get_connection)
    yield
    for conn in opened:
        conn.close()


def run_together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run each call in its own thread, released at once; returns each one's result or exception."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def admin(tenant: UUID) -> Principal:
    return Principal(tenant_id=tenant, role=Role.ADMIN, subject="test-admin")


def as_sender(principal: Principal, session: UUID, sender: str) -> Principal:
    """Who writes a `sender` message: the session's visitor for `customer` (staff post only as `agent`)."""
    if sender != "customer":
        return principal
    visitor = chat.get_chat_session(principal, session).visitor_id
    return Principal(
        tenant_id=principal.tenant_id,
        role=Role.VISITOR,
        subject=f"visitor:{visitor}",
        visitor_id=visitor,
        widget_key="wk",
    )


def waiting_sessions(principal: Principal, count: int) -> list[UUID]:
    return [
        chat.start_chat_session(principal, ChatSessionStart(visitor_id=f"v{i}"), VisitorContext()).id
        for i in range(count)
    ]


@pytest.mark.usefixtures("connection_per_thread")
def test_racing_assignments_never_exceed_the_agents_capacity(db: DatabaseUrls, tenant: UUID) -> None:
    principal = admin(tenant)
    agent = new_agent(tenant, max_chats=3)
    sessions = waiting_sessions(principal, 12)

    results = run_together([lambda s=s: chat.transfer_chat_session(principal, s, UUID(agent)) for s in sessions])

    assigned = [r for r in results if isinstance(r, ChatSession)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert (len(assigned), len(refused)) == (3, 9), [r for r in results if isinstance(r, Exception)]
    assert_chats(db, agent, 3)


@pytest.mark.usefixtures("connection_per_thread")
def test_crosswise_transfers_do_not_deadlock_and_keep_counts_true(db: DatabaseUrls, tenant: UUID) -> None:
    principal = admin(tenant)
    first, second = UUID(new_agent(tenant, max_chats=50)), UUID(new_agent(tenant, max_chats=50))
    with_first, with_second = waiting_sessions(principal, 8), waiting_sessions(principal, 8)
    for session in with_first:
        chat.transfer_chat_session(principal, session, first)
    for session in with_second:
        chat.transfer_chat_session(principal, session, second)

    for _ in range(3):  # each round swaps every session to the other agent, all at once
        calls = [lambda s=s: chat.transfer_chat_session(principal, s, second) for s in with_first]
        calls += [lambda s=s: chat.transfer_chat_session(principal, s, first) for s in with_second]
        results = run_together(calls)
        assert [r for r in results if isinstance(r, Exception)] == []
        with_first, with_second = with_second, with_first

    assert_chats(db, str(first), 8)
    assert_chats(db, str(second), 8)


@pytest.mark.usefixtures("connection_per_thread")
def test_concurrent_messages_are_all_counted(db: DatabaseUrls, tenant: UUID) -> None:
    principal = admin(tenant)
    (session,) = waiting_sessions(principal, 1)
    senders = ["customer", "agent"] * 9

    results = run_together(
        [
            lambda sender=sender: chat.add_chat_message(
                as_sender(principal, session, sender),
                session,
                ChatMessageCreate.model_validate({"senderType": sender, "message": "hi"}),
            )
            for sender in senders
        ]
    )

    assert [r for r in results if isinstance(r, Exception)] == []
    with psycopg.connect(db.admin) as conn:
        row = conn.execute(
            "SELECT total_messages, message_count FROM live_chat_sessions WHERE id = %s", (session,)
        ).fetchone()
        stored = conn.execute("SELECT count(*) FROM chat_messages WHERE session_id = %s", (session,)).fetchone()
    assert row == (len(senders), len(senders))
    assert stored == (len(senders),)


@pytest.mark.usefixtures("connection_per_thread")
def test_a_mixed_burst_of_chat_operations_keeps_every_counter_true(db: DatabaseUrls, tenant: UUID) -> None:
    """Starts, assignments, transfers both ways, messages and ends on one tenant at once: none fails (no
    deadlock, with whatever triggers the tables carry), and every counter matches the rows afterwards."""
    principal = admin(tenant)
    first, second = UUID(new_agent(tenant, max_chats=50)), UUID(new_agent(tenant, max_chats=50))
    to_assign, to_end_waiting = waiting_sessions(principal, 6), waiting_sessions(principal, 4)
    on_first, on_second, chatting, to_end = (waiting_sessions(principal, 6) for _ in range(4))
    for session in on_first + chatting:
        chat.transfer_chat_session(principal, session, first)
    for session in on_second + to_end:
        chat.transfer_chat_session(principal, session, second)

    def message(session: UUID, sender: str) -> Callable[[], Any]:
        data = ChatMessageCreate.model_validate({"senderType": sender, "message": "hi"})
        sender_principal = as_sender(principal, session, sender)
        return lambda: chat.add_chat_message(sender_principal, session, data)

    calls: list[Callable[[], Any]] = []
    calls += [
        lambda s=s, i=i: chat.transfer_chat_session(principal, s, (first, second)[i % 2])
        for i, s in enumerate(to_assign)
    ]
    calls += [lambda s=s: chat.transfer_chat_session(principal, s, second) for s in on_first]
    calls += [lambda s=s: chat.transfer_chat_session(principal, s, first) for s in on_second]
    calls += [message(s, sender) for s in chatting for sender in ("customer", "agent", "agent")]
    calls += [lambda s=s: chat.end_chat_session(principal, s) for s in to_end + to_end_waiting]
    calls += [
        lambda i=i: chat.start_chat_session(principal, ChatSessionStart(visitor_id=f"new{i}"), VisitorContext())
        for i in range(4)
    ]

    results = run_together(calls)

    assert [r for r in results if isinstance(r, Exception)] == []
    # first: 3 assigned + 6 from second + 6 chatting; second: 3 assigned + 6 from first (its 6 to_end ended)
    assert_chats(db, str(first), 15)
    assert_chats(db, str(second), 9)
    with psycopg.connect(db.admin) as conn:
        mismatched = conn.execute(
            """SELECT s.id FROM live_chat_sessions s
            LEFT JOIN LATERAL (SELECT count(*) AS total, count(*) FILTER (WHERE sender_type <> 'system') AS talk
                               FROM chat_messages m WHERE m.session_id = s.id) m ON true
            WHERE s.user_id = %s AND (s.total_messages, s.message_count) <> (m.total, m.talk)""",
            (tenant,),
        ).fetchall()
        statuses = dict(
            conn.execute(
                "SELECT status, count(*) FROM live_chat_sessions WHERE user_id = %s GROUP BY status", (tenant,)
            ).fetchall()
        )
    assert mismatched == []
    assert statuses == {"active": 24, "closed": 10, "waiting": 4}


@pytest.mark.usefixtures("connection_per_thread")
def test_the_queue_actions_in_the_database_wait_for_the_queue_lock_the_services_take(
    db: DatabaseUrls, tenant: UUID
) -> None:
    # The queue's actions take the tenant's queue lock inside their SQL functions (chat_start, chat_claim, chat_end,
    # chat_transfer, agent_set_status), and update_agent takes it from Python (lock_queue): one lock, one key, or
    # the two could drain the queue at once. While a transaction holds it through lock_queue, each action waits.
    from support.db import tenant_transaction
    from support.models.agents import AgentStatus
    from support.services import agents

    principal = admin(tenant)
    agent = UUID(new_agent(tenant, max_chats=5))
    waiting, to_claim, to_end = waiting_sessions(principal, 3)
    claimer = Principal(tenant_id=tenant, role=Role.AGENT, subject="agent", agent_id=agent)
    actions: list[Callable[[], Any]] = [
        lambda: chat.start_chat_session(principal, ChatSessionStart(visitor_id="late"), VisitorContext()),
        lambda: chat.claim_chat_session(claimer, to_claim),
        lambda: chat.end_chat_session(principal, to_end),
        lambda: chat.transfer_chat_session(principal, waiting, agent),
        lambda: agents.update_agent_status(principal, agent, AgentStatus.AWAY),
    ]
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with tenant_transaction(tenant) as cur:
            chat.lock_queue(cur, principal)
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    done: list[Any] = [None] * len(actions)

    def act(index: int) -> None:
        done[index] = actions[index]()

    threads = [threading.Thread(target=act, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    threads[0].join(0.5)
    assert done == [None] * len(actions), "a queue action ran while another transaction held the queue lock"
    release.set()
    holder.join(10)
    for thread in threads:
        thread.join(30)
    assert all(result is not None for result in done), done
