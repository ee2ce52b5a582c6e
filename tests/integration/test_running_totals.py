"""Running totals and agent figures under concurrent writes, each checked against a recount of the rows.

Each writer has its own connection, as separate Lambda environments do: the services run in threads with a
connection per thread, or raw statements run as the runtime role on connections of their own. Where an
interleaving matters, the test drives it step by step: one party holds its transaction open, the other is
started in a thread and watched (pg_blocking_pids) until it waits on a lock or finishes, then the first
commits. After every storm the kept figures (ticket_totals, chat_totals, feedback_totals, the agents'
sums and averages, current_chats) must equal what tests/recount.py counts from the rows.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from support.auth import Principal, Role
from support.db import connection
from support.db.connection import SET_TENANT
from support.errors import Conflict
from support.models.agents import AgentCreate
from support.models.chat import ChatMessageCreate, ChatSessionStart, VisitorContext
from support.models.tickets import ConversationCreate, FeedbackCreate, TicketCreate, TicketUpdate
from support.services import agents, chat, tickets
from support.services.tickets import SECONDS_SINCE_CREATED
from tests import recount
from tests.http_events import HandlerClient
from tests.integration.test_chat_concurrency import connection_per_thread, run_together

TICKETS = "/api/support/tickets"


__all__ = ["connection_per_thread"]  # the fixture, used by name below


def unexpected(results: list[Any]) -> list[Exception]:
    """Failures other than the 409s a request may rightly get when another one changed the row first."""
    return [r for r in results if isinstance(r, Exception) and not isinstance(r, Conflict)]


class Background:
    """One request in a thread on its own connection (connection_per_thread), watched from the test."""

    def __init__(self, call: Callable[[], Any], *, on: psycopg.Connection[Any] | None = None) -> None:
        """`on`: the connection the call runs its statements on, if not the thread's own (a raw one)."""
        self._call = call
        self._pid: int | None = None if on is None else on.info.backend_pid
        self._started = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            if self._pid is None:
                self._pid = connection.get_connection().info.backend_pid
            self._started.set()
            self._result = self._call()
        except BaseException as exc:
            self._error = exc
        finally:
            self._started.set()

    def settle(self, db: DatabaseUrls, timeout: float = 10) -> bool:
        """Wait until the request waits on a lock (True) or has finished (False)."""
        assert self._started.wait(timeout)
        deadline = time.monotonic() + timeout
        with psycopg.connect(db.admin, autocommit=True) as watcher:
            while self._thread.is_alive():
                row = watcher.execute("SELECT cardinality(pg_blocking_pids(%s)) > 0", (self._pid,)).fetchone()
                if row and row[0] and self._thread.is_alive():
                    return True
                assert time.monotonic() < deadline, "the request neither finished nor waited on a lock"
                time.sleep(0.005)
        return False

    def result(self, timeout: float = 10) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the request did not finish"
        if self._error is not None:
            raise self._error
        return self._result


@contextmanager
def runtime_connection(db: DatabaseUrls) -> Iterator[psycopg.Connection[Any]]:
    """A connection of the runtime role (support_app, under RLS), as another Lambda environment's."""
    with psycopg.connect(db.app) as conn:
        yield conn
        conn.rollback()  # whatever the test did not commit


def begin(conn: psycopg.Connection[Any], tenant: UUID) -> None:
    """Start a tenant transaction, as tenant_transaction does (the setting is transaction-local)."""
    conn.execute(SET_TENANT, (str(tenant),))


def admin(tenant: UUID) -> Principal:
    return Principal(tenant_id=tenant, role=Role.ADMIN, subject="test-admin")


def new_agent(tenant: UUID, name: str = "Grace", max_chats: int = 50) -> UUID:
    data = AgentCreate(agent_name=name, agent_email=f"{uuid4()}@desk.example", max_concurrent_chats=max_chats)
    return agents.create_agent(admin(tenant), data).id


def new_ticket(tenant: UUID, **fields: Any) -> UUID:
    body = {"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "Help", **fields}
    return tickets.create_ticket(admin(tenant), TicketCreate.model_validate(body)).id


def resolved_ticket(tenant: UUID, agent: UUID, **fields: Any) -> UUID:
    """A ticket assigned to `agent`, with a first response, then resolved."""
    principal = admin(tenant)
    ticket = new_ticket(tenant, **fields)
    tickets.assign_ticket(principal, ticket, agent)
    tickets.add_conversation(principal, ticket, reply("agent"))
    tickets.update_ticket(principal, ticket, TicketUpdate.model_validate({"status": "resolved"}))
    return ticket


def reply(sender: str, text: str = "On it") -> ConversationCreate:
    return ConversationCreate.model_validate({"senderType": sender, "senderName": sender, "message": text})


def feedback(rating: int, agent_rating: int | None = None) -> FeedbackCreate:
    return FeedbackCreate.model_validate({"rating": rating, "agentRating": agent_rating})


def change(**fields: Any) -> TicketUpdate:
    return TicketUpdate.model_validate(fields)


def assert_ticket_figures_match_a_recount(db: DatabaseUrls, tenant: UUID) -> None:
    assert recount.stored_ticket_totals(db, tenant) == recount.recount_ticket_totals(db, tenant)
    assert recount.stored_feedback_totals(db, tenant) == recount.recount_feedback_totals(db, tenant)
    assert recount.stored_day_totals(db, tenant) == recount.recount_day_totals(db, tenant)
    assert recount.stored_agent_figures(db, tenant) == recount.recount_agent_figures(db, tenant)


# --- storms: many requests at once, then every kept figure against the rows --------------------------------


@pytest.mark.usefixtures("connection_per_thread")
def test_ticket_totals_and_agent_figures_survive_a_storm_of_ticket_changes(db: DatabaseUrls, tenant: UUID) -> None:
    # Given agents and tickets in every state: open, assigned, resolved with feedback, with first responses
    principal = admin(tenant)
    crew = [new_agent(tenant, name) for name in ("Ann", "Bob", "Cid")]
    rng = random.Random(7)
    categories = ["billing", "shipping", None]
    priorities = ["low", "medium", "high", "urgent"]
    open_tickets = [new_ticket(tenant, priority=rng.choice(priorities)) for _ in range(8)]
    resolved = [resolved_ticket(tenant, crew[i % 3], category="billing") for i in range(9)]
    for i, ticket in enumerate(resolved[:4]):
        tickets.add_feedback(principal, ticket, feedback(1 + i % 5, 1 + (i * 2) % 5))
    every = open_tickets + resolved

    # When rounds of creates, edits, assignments, resolutions, reopenings, replies, closes and feedback run at once
    failures: list[Exception] = []
    for round_ in range(3):
        calls: list[Callable[[], Any]] = []
        for _ in range(6):
            fields = {"priority": rng.choice(priorities), **({"category": c} if (c := rng.choice(categories)) else {})}
            calls.append(lambda f=fields: new_ticket(tenant, **f))
        for ticket in rng.sample(every, 8):
            fields = rng.choice(
                [
                    {"priority": rng.choice(priorities)},
                    {"category": rng.choice(categories)},
                    {"status": rng.choice(["open", "in_progress", "waiting_customer", "resolved"])},
                    {"status": "resolved", "category": rng.choice(categories)},
                    {"assignedAgentId": str(rng.choice(crew))},
                ]
            )
            calls.append(lambda t=ticket, f=fields: tickets.update_ticket(principal, t, change(**f)))
        for ticket in rng.sample(every, 5):
            calls.append(lambda t=ticket: tickets.assign_ticket(principal, t, rng.choice(crew)))
        for ticket in rng.sample(every, 5):
            calls.append(lambda t=ticket: tickets.add_conversation(principal, t, reply("agent")))
        for ticket in rng.sample(resolved, 4):
            calls.append(lambda t=ticket: tickets.update_ticket(principal, t, change(status="open")))
        for ticket in rng.sample(resolved, 5):
            calls.append(lambda t=ticket: tickets.add_feedback(principal, t, feedback(rng.randint(1, 5), 4)))
        if round_ == 2:
            calls += [lambda t=t: tickets.close_ticket(principal, t) for t in rng.sample(every, 3)]
        failures += unexpected(run_together(calls))

    # Then every total, and every agent's sums and averages, equal a recount of the rows
    assert_ticket_figures_match_a_recount(db, tenant)
    assert sum(t[0] for t in recount.stored_ticket_totals(db, tenant).values()) == len(every) + 18
    # and no request failed but for a 409 (no deadlock among them)
    assert failures == []


@pytest.mark.usefixtures("connection_per_thread")
def test_chat_totals_and_current_chats_survive_a_storm_of_chat_changes(db: DatabaseUrls, tenant: UUID) -> None:
    # Given waiting chats, and chats with each of two agents
    principal = admin(tenant)
    first, second = new_agent(tenant, "Ann"), new_agent(tenant, "Bob")

    def start(i: int) -> UUID:
        return chat.start_chat_session(principal, ChatSessionStart(visitor_id=f"v{i}"), VisitorContext()).id

    waiting = [start(i) for i in range(8)]
    with_first, with_second = [start(i) for i in range(8)], [start(i) for i in range(8)]
    for session in with_first:
        chat.transfer_chat_session(principal, session, first)
    for session in with_second:
        chat.transfer_chat_session(principal, session, second)
    rng = random.Random(11)

    # When starts, assignments, transfers both ways, messages and ends (some of the same chat) run at once
    calls: list[Callable[[], Any]] = [lambda i=i: start(100 + i) for i in range(6)]
    calls += [lambda s=s: chat.transfer_chat_session(principal, s, rng.choice((first, second))) for s in waiting[:5]]
    calls += [lambda s=s: chat.end_chat_session(principal, s) for s in waiting[3:]]
    calls += [lambda s=s: chat.transfer_chat_session(principal, s, second) for s in with_first[:5]]
    calls += [lambda s=s: chat.transfer_chat_session(principal, s, first) for s in with_second[:5]]
    calls += [lambda s=s: chat.end_chat_session(principal, s) for s in with_first[3:] + with_second[3:]]
    message = ChatMessageCreate.model_validate({"senderType": "agent", "message": "hi"})
    calls += [lambda s=s: chat.add_chat_message(principal, s, message) for s in with_first + with_second]
    results = run_together(calls)

    # Then the chat totals per status, and each agent's current chats, equal a recount of the sessions
    assert recount.stored_chat_totals(db, tenant) == recount.recount_chat_totals(db, tenant)
    assert recount.stored_current_chats(db, tenant) == recount.recount_current_chats(db, tenant)
    assert sum(s[0] for s in recount.stored_chat_totals(db, tenant).values()) == 30
    # and no request failed but for a 409
    assert unexpected(results) == []


@pytest.mark.usefixtures("connection_per_thread")
def test_feedback_totals_and_agent_ratings_survive_concurrent_feedback_and_reassignment(
    db: DatabaseUrls, tenant: UUID
) -> None:
    # Given resolved tickets across three agents
    principal = admin(tenant)
    crew = [new_agent(tenant, name) for name in ("Ann", "Bob", "Cid")]
    resolved = [resolved_ticket(tenant, crew[i % 3]) for i in range(15)]
    rng = random.Random(5)

    # When feedback arrives twice for each ticket at once (one of the two is a 409), while an admin moves
    # some of the same tickets to other agents through the API (which locks the ticket first)
    calls: list[Callable[[], Any]] = []
    for ticket in resolved:
        calls += [
            lambda t=ticket: tickets.add_feedback(principal, t, feedback(rng.randint(1, 5), rng.randint(1, 5)))
            for _ in range(2)
        ]
    for ticket in rng.sample(resolved, 8):
        calls.append(
            lambda t=ticket: tickets.update_ticket(principal, t, change(assignedAgentId=str(rng.choice(crew))))
        )
    results = run_together(calls)

    # Then the totals and agent figures equal a recount, and exactly one feedback per ticket was taken
    assert_ticket_figures_match_a_recount(db, tenant)
    assert unexpected(results) == []  # no request failed but for a 409 (no deadlock among them)
    assert recount.recount_feedback_totals(db, tenant)[0] == len(resolved)
    assert sum(isinstance(r, Conflict) for r in results) == len(resolved)


@pytest.mark.usefixtures("connection_per_thread")
def test_crosswise_reassignments_do_not_deadlock_and_keep_agent_figures_true(db: DatabaseUrls, tenant: UUID) -> None:
    # Given resolved tickets with Ann and with Bob
    principal = admin(tenant)
    ann, bob = new_agent(tenant, "Ann"), new_agent(tenant, "Bob")
    with_ann = [resolved_ticket(tenant, ann) for _ in range(3)]
    with_bob = [resolved_ticket(tenant, bob) for _ in range(3)]

    # When every ticket is handed to the other agent through the API (PATCH assignedAgentId), all at once
    calls = [lambda t=t: tickets.update_ticket(principal, t, change(assignedAgentId=str(bob))) for t in with_ann]
    calls += [lambda t=t: tickets.update_ticket(principal, t, change(assignedAgentId=str(ann))) for t in with_bob]
    results = run_together(calls)

    # Then the figures equal a recount, and no reassignment failed (none deadlocked)
    assert_ticket_figures_match_a_recount(db, tenant)
    assert [r for r in results if isinstance(r, Exception)] == []


# --- an agent change by a plain statement, racing feedback with an agent rating -----------------------------
# The feedback trigger reads the ticket's agent from its snapshot and only then locks the agents: a concurrent
# reassignment that did not lock the ticket first (an admin's UPDATE) moves the ticket's figures without the
# uncommitted rating, and the rating then lands on the agent the ticket has left.

REASSIGN = "UPDATE support_tickets SET assigned_agent_id = %s WHERE user_id = %s AND id = %s"
# What tickets.add_feedback runs, statement by statement.
FEEDBACK_STATUS = "SELECT id, status FROM support_tickets WHERE user_id = %s AND id = %s"
FEEDBACK_INSERT = "INSERT INTO ticket_feedback (ticket_id, user_id, rating, agent_rating) VALUES (%s, %s, %s, %s)"


def assert_ratings_follow_the_tickets(db: DatabaseUrls, tenant: UUID) -> None:
    figures = ("rating_sum", "rating_count", "average_rating")
    stored = {a: {k: v[k] for k in figures} for a, v in recount.stored_agent_figures(db, tenant).items()}
    counted = {a: {k: v[k] for k in figures} for a, v in recount.recount_agent_figures(db, tenant).items()}
    assert stored == counted
    assert_ticket_figures_match_a_recount(db, tenant)


@pytest.mark.usefixtures("connection_per_thread")
def test_feedback_during_an_uncommitted_reassignment_rates_the_new_agent(db: DatabaseUrls, tenant: UUID) -> None:
    # Given a resolved ticket of Ann's
    ann, bob = new_agent(tenant, "Ann"), new_agent(tenant, "Bob")
    ticket = resolved_ticket(tenant, ann)
    api = HandlerClient(_tickets_handler(), tenant=tenant)

    with runtime_connection(db) as admin_session:
        # When an admin's plain UPDATE gives it to Bob (not yet committed)
        begin(admin_session, tenant)
        admin_session.execute(REASSIGN, (bob, tenant, ticket))
        # and the customer's feedback with an agent rating of 5 comes in meanwhile
        request = Background(lambda: api.post(f"{TICKETS}/{ticket}/feedback", {"rating": 4, "agentRating": 5}))
        request.settle(db)
        admin_session.commit()
        reply = request.result()

    # Then the rating is Bob's, whose ticket it is, and not Ann's
    assert reply.status == 201, reply.body
    figures = recount.stored_agent_figures(db, tenant)
    assert (figures[bob]["rating_sum"], figures[bob]["rating_count"]) == (5, 1)
    assert (figures[ann]["rating_sum"], figures[ann]["rating_count"]) == (0, 0)
    assert_ratings_follow_the_tickets(db, tenant)


@pytest.mark.usefixtures("connection_per_thread")
def test_a_reassignment_during_uncommitted_feedback_takes_the_rating_along(db: DatabaseUrls, tenant: UUID) -> None:
    # Given a resolved ticket of Ann's
    ann, bob = new_agent(tenant, "Ann"), new_agent(tenant, "Bob")
    ticket = resolved_ticket(tenant, ann)

    with runtime_connection(db) as customer:
        # When the feedback service's statements have run (rating 5 for the agent), not yet committed
        begin(customer, tenant)
        status = customer.execute(FEEDBACK_STATUS, (tenant, ticket)).fetchone()
        assert status is not None and status[1] == "resolved"
        customer.execute(FEEDBACK_INSERT, (ticket, tenant, 4, 5))

        # and an admin's plain UPDATE gives the ticket to Bob meanwhile, committing as soon as it can
        with runtime_connection(db) as admin_session:

            def reassign() -> None:
                begin(admin_session, tenant)
                admin_session.execute(REASSIGN, (bob, tenant, ticket))
                admin_session.commit()

            request = Background(reassign, on=admin_session)
            request.settle(db)
            customer.commit()
            request.result()

    # Then the rating went with the ticket to Bob
    figures = recount.stored_agent_figures(db, tenant)
    assert (figures[bob]["rating_sum"], figures[bob]["rating_count"]) == (5, 1)
    assert (figures[ann]["rating_sum"], figures[ann]["rating_count"]) == (0, 0)
    assert_ratings_follow_the_tickets(db, tenant)


def test_reassignments_racing_feedback_keep_every_agents_ratings_true(db: DatabaseUrls, tenant: UUID) -> None:
    # Given 40 resolved tickets, each with one of two agents
    ann, bob = new_agent(tenant, "Ann"), new_agent(tenant, "Bob")
    rounds = [resolved_ticket(tenant, (ann, bob)[i % 2]) for i in range(40)]
    rng = random.Random(3)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def reassign(conn: psycopg.Connection[Any], ticket: UUID, to: UUID, pause: float) -> None:
        barrier.wait()
        begin(conn, tenant)
        conn.execute(REASSIGN, (to, tenant, ticket))
        time.sleep(pause)
        conn.commit()

    def rate(conn: psycopg.Connection[Any], ticket: UUID, agent_rating: int, pause: float) -> None:
        barrier.wait()
        begin(conn, tenant)
        conn.execute(FEEDBACK_STATUS, (tenant, ticket))
        conn.execute(FEEDBACK_INSERT, (ticket, tenant, 3, agent_rating))
        time.sleep(pause)
        conn.commit()

    def guarded(step: Callable[..., None], *args: Any) -> Callable[[], None]:
        def run() -> None:
            try:
                step(*args)
            except BaseException as exc:
                errors.append(exc)
                barrier.abort()

        return run

    # When, round after round, an admin's plain UPDATE moves a ticket to the other agent just as feedback with
    # an agent rating is added to it, started together, either one committing first
    with runtime_connection(db) as mover, runtime_connection(db) as customer:
        for i, ticket in enumerate(rounds):
            to = bob if i % 2 == 0 else ann
            pauses = (0.004, 0.0) if i % 4 < 2 else (0.0, 0.004)
            threads = [
                threading.Thread(target=guarded(reassign, mover, ticket, to, pauses[0])),
                threading.Thread(target=guarded(rate, customer, ticket, rng.randint(1, 5), pauses[1])),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            assert errors == []
            barrier.reset()

    # Then each agent's rating sum and count are those of the feedback on the tickets they hold now
    assert_ratings_follow_the_tickets(db, tenant)


def _tickets_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    from functions.tickets import app

    return app.lambda_handler


# --- a request that checks a ticket's status, racing a change of that status --------------------------------


@pytest.mark.usefixtures("connection_per_thread")
def test_feedback_waits_for_a_concurrent_reopening_and_is_refused(db: DatabaseUrls, tenant: UUID) -> None:
    # Given a resolved ticket
    ticket = resolved_ticket(tenant, new_agent(tenant))
    api = HandlerClient(_tickets_handler(), tenant=tenant)
    before = recount.stored_feedback_totals(db, tenant)

    with runtime_connection(db) as agent_session:
        # When an agent reopens it (update_ticket's statements: lock, then update), not yet committed
        begin(agent_session, tenant)
        agent_session.execute(
            "SELECT id FROM support_tickets WHERE user_id = %s AND id = %s FOR UPDATE", (tenant, ticket)
        )
        agent_session.execute(
            "UPDATE support_tickets SET status = 'open', resolved_at = NULL, resolution_time = NULL"
            " WHERE user_id = %s AND id = %s",
            (tenant, ticket),
        )
        # and the customer's feedback request comes in meanwhile; then the reopening commits
        request = Background(lambda: api.post(f"{TICKETS}/{ticket}/feedback", {"rating": 5, "agentRating": 5}))
        request.settle(db)
        agent_session.commit()
        reply = request.result()

    # Then the feedback is refused (the ticket it would rate is open again), and nothing was recorded
    assert reply.status == 409, reply.body
    assert recount.rows(db, tenant, "ticket_feedback") == []
    assert recount.stored_feedback_totals(db, tenant) == before == (0, 0)
    assert_ticket_figures_match_a_recount(db, tenant)


@pytest.mark.usefixtures("connection_per_thread")
def test_a_message_waits_for_a_concurrent_close_and_is_refused(db: DatabaseUrls, tenant: UUID) -> None:
    # Given a ticket in progress
    ticket = new_ticket(tenant)
    tickets.assign_ticket(admin(tenant), ticket, new_agent(tenant))
    api = HandlerClient(_tickets_handler(), tenant=tenant)

    with runtime_connection(db) as agent_session:
        # When an agent closes it (close_ticket's statements: lock, then update), not yet committed
        begin(agent_session, tenant)
        agent_session.execute(
            "SELECT id FROM support_tickets WHERE user_id = %s AND id = %s FOR UPDATE", (tenant, ticket)
        )
        agent_session.execute(
            "UPDATE support_tickets SET status = 'closed', resolved_at = coalesce(resolved_at, now()),"
            f" resolution_time = coalesce(resolution_time, {SECONDS_SINCE_CREATED}) WHERE user_id = %s AND id = %s",
            (tenant, ticket),
        )
        # and the customer's message comes in meanwhile; then the close commits
        request = Background(
            lambda: api.post(
                f"{TICKETS}/{ticket}/conversations", {"senderType": "agent", "senderName": "Ada", "message": "hi"}
            )
        )
        request.settle(db)
        agent_session.commit()
        reply = request.result()

    # Then the message is refused, as for any closed ticket, and the thread stays empty
    assert reply.status == 409, reply.body
    assert recount.rows(db, tenant, "ticket_conversations") == []


@pytest.mark.usefixtures("connection_per_thread")
def test_conversation_pages_never_skip_a_message_that_commits_late(db: DatabaseUrls, tenant: UUID) -> None:
    # Given a ticket without messages
    principal = admin(tenant)
    ticket = new_ticket(tenant)
    api = HandlerClient(_tickets_handler(), tenant=tenant)
    path = f"{TICKETS}/{ticket}/conversations"

    with runtime_connection(db) as agent_session:
        # When an agent's reply is inserted (add_conversation's statements for a first public agent reply),
        # its transaction still open, so its created_at (now(): its start) is older than what follows
        begin(agent_session, tenant)
        row = agent_session.execute(
            "INSERT INTO ticket_conversations (ticket_id, user_id, sender_type, sender_name, message)"
            " VALUES (%s, %s, 'agent', 'Grace', 'late reply') RETURNING id",
            (ticket, tenant),
        ).fetchone()
        assert row is not None
        late = str(row[0])
        agent_session.execute(
            f"UPDATE support_tickets SET first_response_time = {SECONDS_SINCE_CREATED}"
            " WHERE user_id = %s AND id = %s AND first_response_time IS NULL",
            (tenant, ticket),
        )
        # and two more messages are added through the service meanwhile (each commits, or waits)
        customer = [
            Background(lambda n=n: tickets.add_conversation(principal, ticket, reply("agent", n))) for n in "12"
        ]
        for request in customer:
            request.settle(db)
        # and a reader takes the first page of one message
        first = api.get(path, query={"limit": 1})
        assert first.status == 200, first.body
        # and then the agent's reply commits
        agent_session.commit()
        written = [late] + [str(request.result().id) for request in customer]

    # Then reading on from the first page's cursor (or from the start, if it had none) brings every message
    seen = [m["id"] for m in first.data]
    cursor = first.body.get("nextCursor")
    if cursor is None:
        seen = []
    for _ in range(10):
        page = api.get(path, query={"limit": 1, **({"cursor": cursor} if cursor else {})})
        assert page.status == 200, page.body
        seen += [m["id"] for m in page.data]
        cursor = page.body.get("nextCursor")
        if cursor is None:
            break
    assert sorted(seen) == sorted(written), {"late reply": late, "seen": seen}


def test_day_totals_follow_creates_corrections_and_deletes(db: DatabaseUrls, tenant: UUID) -> None:
    # Given tickets created through the service, two of them rated
    principal = admin(tenant)
    agent = new_agent(tenant)
    rated = [resolved_ticket(tenant, agent) for _ in range(2)]
    for ticket, rating in zip(rated, (5, 2), strict=True):
        tickets.add_feedback(principal, ticket, feedback(rating))
    plain = [new_ticket(tenant) for _ in range(3)]
    # When the owner moves a ticket and a rating to other days, changes a rating, and deletes a ticket and feedback
    with psycopg.connect(db.owner) as conn:
        begin(conn, tenant)
        conn.execute(
            "UPDATE support_tickets SET created_at = created_at - interval '3 days' WHERE id = %s", (plain[0],)
        )
        conn.execute("UPDATE support_tickets SET subject = 'Edited' WHERE user_id = %s", (tenant,))  # moves nothing
        conn.execute(
            "UPDATE ticket_feedback SET created_at = created_at - interval '1 day', rating = 4 WHERE ticket_id = %s",
            (rated[0],),
        )
        conn.execute("DELETE FROM ticket_feedback WHERE ticket_id = %s", (rated[1],))
        conn.execute("DELETE FROM support_tickets WHERE id = %s", (plain[1],))
    # Then the day totals equal a recount of the rows, day by day
    stored = recount.stored_day_totals(db, tenant)
    assert stored == recount.recount_day_totals(db, tenant)
    assert sum(n for (n,) in stored["tickets"].values()) == 4
    assert sorted(stored["feedback"].values()) == [(1, 4)]


def test_the_day_totals_start_true_on_a_database_with_history(db: DatabaseUrls, tmp_path: Path) -> None:
    # Given a database at the migration before sql/0021, with tickets and feedback on several days of two tenants
    from local.database import MIGRATIONS, create_database
    from support.db.migrations import migrate

    urls = create_database(db.admin, "support_upgrade", recreate=True, quiet=True)
    with psycopg.connect(db.admin.replace("dbname=support_test", "dbname=postgres"), autocommit=True) as conn:
        conn.execute("DROP DATABASE support_upgrade WITH (FORCE)")
        conn.execute("CREATE DATABASE support_upgrade OWNER support_owner")
    for path in MIGRATIONS.glob("*.sql"):
        if path.name < "0021":
            shutil.copy(path, tmp_path / path.name)
    migrate(urls.owner, tmp_path, log=lambda _: None)
    tenants = [uuid4(), uuid4()]
    with psycopg.connect(urls.owner) as conn:
        for n, tenant in enumerate(tenants, 1):
            begin(conn, tenant)
            conn.execute(
                "WITH t AS (INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, created_at)"
                " SELECT %s, 'C', 'c@example.com', 'S', timestamptz '2026-03-01 23:30Z' + i * interval '5 hours'"
                " FROM generate_series(1, 10 * %s) i RETURNING id, user_id, created_at)"
                " INSERT INTO ticket_feedback (user_id, ticket_id, rating, created_at)"
                " SELECT user_id, id, 1 + (extract(hour FROM created_at)::int %% 5), created_at + interval '1 hour'"
                " FROM t",
                (tenant, n),
            )
            conn.commit()

    # When sql/0021 is applied
    assert migrate(urls.owner, MIGRATIONS, log=lambda _: None)[0].startswith("0021")

    # Then every tenant's day totals are what its rows say, day by day
    with psycopg.connect(urls.owner) as conn:
        for n, tenant in enumerate(tenants, 1):
            assert conn.execute("SELECT * FROM recount_tenant_day_totals(%s)", (tenant,)).fetchall() == []
            begin(conn, tenant)
            row = conn.execute(
                "SELECT (SELECT sum(tickets) FROM ticket_day_totals), (SELECT count(*) FROM ticket_day_totals),"
                " (SELECT sum(ratings) FROM feedback_day_totals)"
            ).fetchone()
            conn.commit()
            assert row is not None
            assert (row[0], row[2]) == (10 * n, 10 * n)
            assert row[1] > 1  # several days
