"""Live chat: sessions (start, list, end, transfer, claim, rating), their messages (post, list, read, sync),
automatic assignment with a queue, and the real-time events all of these announce. HTTP and the WebSocket API
call the same functions; a WebSocket caller passes its `Caller` to be answered on its connection.

Lifecycle: a session starts `waiting` (no agent); an assignment (automatic, a claim, or a transfer to an agent)
makes it `active` with that agent, and a transfer from one agent to another keeps it `active` with the new agent
(`transferred_from_agent_id` records the previous one); ending makes it `closed` for good. So `?status=active`
lists exactly the chats an agent is handling, and a session only ever moves forward (waiting, active, closed).
The API never sets `transferred` (see ChatStatus).

Assignment (CHAT_AUTO_ASSIGN, on by default, and the tenant's routing settings' `autoAssignChats`: support.services.
routing): a waiting session goes to an `available` agent with spare capacity (`current_chats` below
`max_concurrent_chats`) whose skills cover those the routing rules require of chats, fewest current chats first, then
the one assigned least recently; the oldest waiting session first. An agent going away or offline hands their
unanswered sessions back to the queue (agent_set_status). The queue is drained whenever a session starts, capacity
frees (an end, a transfer away) or an agent becomes available or takes more chats. Every operation that can change the
queue first takes the tenant's queue lock (a transaction-level advisory lock), so drains never overlap: no agent is
ever above capacity and no session is assigned twice, under any concurrency.

Counters, kept in the same transaction as the change they count:
* an agent's `current_chats` is the number of sessions assigned to them that are not closed, and never goes
  above their `max_concurrent_chats` (a full agent is a 409 on a transfer);
* a session's `total_messages` counts every message, `message_count` only the visitor's and the agents'
  (system messages excluded).

Lock order, to keep concurrent operations free of deadlocks: the tenant's queue lock first (where taken), then
the session(s), then the agents involved in the order of their ids (FOR UPDATE for the session; FOR NO KEY
UPDATE for agents, the lock the database's own figure triggers take: it does not wait for the FOR KEY SHARE a
foreign key check holds on an agent, so two hand-overs in opposite directions cannot deadlock on it). The drain
locks agents before the waiting sessions it assigns, which is safe because every other transaction that locks a
waiting session and then agents holds the queue lock. The staff broadcast's request row comes last of all.

The queue's actions run in the database, each one call of a function in sql/definitions/chat.sql that takes the
queue lock first (the key lock_queue takes) and keeps this order: start (chat_start), claim (chat_claim), end
(chat_end), transfer (chat_transfer), an agent's status (agent_set_status, for the agents service), and the drain
they share (chat_drain_queue). Each is sent with BEGIN, the tenant binding and COMMIT in one pipeline, so the queue
lock, which serialises a tenant's queue actions, is held for the database's work alone and never across a round
trip to this process: a burst of starts no longer waits on each other's round trips. A refusal is an outcome
(nothing written), mapped here to the same NotFound / Forbidden / Conflict / DeskBusy as ever.

Events are announced after the commit (connections.Outbox): nothing is announced that is not stored. What the
whole staff hears (the queue, agents' presence) and the queue positions of other waiting visitors are not told
here: a change records itself for the tenant's next staff broadcast (support.services.broadcasts, last in its
transaction), which coalesces a burst and runs off the request path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg.errors
from psycopg import sql

from support.auth import Principal, Role
from support.config import get_settings
from support.db import pipelined, tenant_transaction
from support.db.connection import Cursor, Statement
from support.db.statements import lock_for_tenant, oldest_first
from support.errors import Conflict, DeskBusy, DomainError, Forbidden, NotFound, found
from support.models.chat import (
    ChatMessage,
    ChatMessageCreate,
    ChatRating,
    ChatReadReceipt,
    ChatSession,
    ChatSessionStart,
    ChatStatus,
    VisitorContext,
)
from support.models.realtime import SYNC_PAGE, Queued, ReadNotice, SyncAnswer, TypingNotice
from support.models.settings import DEFAULT_QUEUE_CAP, ChatSettings
from support.models.tickets import SenderType
from support.pagination import Page, decode_cursor, page_of
from support.services import attachments, automations, broadcasts, webhooks
from support.services.connections import (
    STAFF_SIDE,
    VISITOR_SIDE,
    Caller,
    Outbox,
)

# The assigned agent's display name (and nothing else of theirs) is read in the same statement as the session,
# by its primary key: every SELECT, INSERT and UPDATE ... RETURNING of a session carries it, so the visitor's
# chat.started / chat.assigned / chat.transferred / sync name the agent without another round trip. (The
# (user_id, assigned_agent_id) foreign key keeps the agent in the session's tenant.)
SESSION_COLUMNS = """id, user_id, visitor_id, visitor_name, visitor_email, status, assigned_agent_id,
    transferred_from_agent_id, visitor_ip, visitor_browser, session_start_time, session_end_time, total_messages,
    message_count, duration, rating, feedback, created_at, updated_at, contact_id, ticket_id,
    (SELECT named.agent_name FROM support_agents named WHERE named.id = assigned_agent_id) AS assigned_agent_name"""
MESSAGE_COLUMNS = """id, session_id, user_id, sender_type, sender_name, message, attachment_url, attachment_type,
    is_read, read_at, created_at, client_message_id, attachments"""

# Senders whose messages are the conversation proper (counted in `message_count`).
CONVERSATION_SENDERS = (SenderType.CUSTOMER, SenderType.AGENT)


def _session(row: dict[str, Any] | None) -> ChatSession:
    return ChatSession.model_validate(found(row, "chat session"))


def _lock_session_to_act(cur: Cursor, principal: Principal, session_id: UUID, caller: Caller | None) -> dict[str, Any]:
    """The session, locked, once the caller may act on it (chat_refusal, sql/definitions/chat.sql, in the same
    statement): NotFound / Forbidden otherwise."""
    statement, params = _session_access(principal, session_id, caller)
    cur.execute(statement + " FOR UPDATE", params)
    return _accessible(cur.fetchall())


def _participants(
    cur: Cursor, principal: Principal, session_id: UUID, also: UUID | None = None
) -> list[dict[str, Any]]:
    """The connections that hear about the session as it is now, each with its side (`visitor` or `staff`), and
    the connections of `also` (an agent: the one a transfer took it from): chat_participants,
    sql/definitions/chat.sql."""
    cur.execute(_PARTICIPANTS, (principal.tenant_id, session_id, also))
    return cur.fetchall()


def _connections(people: list[dict[str, Any]], side: str | None = None) -> list[str]:
    return [p["connection_id"] for p in people if side is None or p["side"] == side]


def _read_session(cur: Cursor, principal: Principal, session_id: UUID) -> dict[str, Any]:
    cur.execute(
        f"SELECT {SESSION_COLUMNS} FROM live_chat_sessions WHERE user_id = %s AND id = %s",  # noqa: S608
        (principal.tenant_id, session_id),
    )
    return found(cur.fetchone(), "chat session")


def lock_queue(cur: Cursor, principal: Principal) -> None:
    """The tenant's queue lock, first in every transaction that can change who waits or who is free (the agents
    service's before it changes an agent's capacity). The queue's functions in sql/definitions/chat.sql take the
    same lock themselves: `hashtextextended('chat-queue' || ':' || tenant, 0)`, lock_for_tenant's key."""
    lock_for_tenant(cur, principal.tenant_id, "chat-queue")


# --- Assignment and the queue --------------------------------------------------------------------------------


# The drain (chat_drain_queue, sql/definitions/chat.sql): the sessions assigned, as updated, with SESSION_COLUMNS'
# names, and each one's participants' connections.
_DRAIN = """SELECT (d.session).*, d.agent_name AS assigned_agent_name, d.connection_ids
FROM chat_drain_queue(%s) d"""


def _drain_queue(cur: Cursor, principal: Principal) -> list[dict[str, Any]]:
    """Assign waiting sessions, oldest first, to available agents with spare capacity (fewest chats first, then
    least recently assigned): chat_drain_queue, one statement. Called with the queue lock held. Returns the
    sessions assigned, as updated, each with its participants' `connection_ids`."""
    if not get_settings().chat_auto_assign:
        return []
    cur.execute(_DRAIN, (principal.tenant_id,))
    return cur.fetchall()


def announce_assignments(outbox: Outbox, assigned: list[dict[str, Any]]) -> None:
    """chat.assigned to each assigned session's participants (read by the drain), the caller too."""
    for row in assigned:
        outbox.tell(row["connection_ids"] or [], "chat.assigned", ChatSession.model_validate(row), caller_too=True)


def rebalance_queue(cur: Cursor, principal: Principal, outbox: Outbox) -> bool:
    """After capacity may have freed (an end, a transfer away; for the agents service an agent becoming available
    or taking more chats), with the queue lock held: drain, and tell the assigned. True when the queue changed:
    the caller then asks for a staff broadcast (broadcasts.request, last in its transaction)."""
    assigned = _drain_queue(cur, principal)
    announce_assignments(outbox, assigned)
    return bool(assigned)


# The connections that hear about a session, and their sides (the third argument: an agent who hears as well).
_PARTICIPANTS = "SELECT connection_id, side FROM chat_participants(%s, %s, %s)"


# --- Sessions --------------------------------------------------------------------------------------------------


def start_chat_session(
    principal: Principal,
    data: ChatSessionStart,
    visitor: VisitorContext,
    *,
    caller: Caller | None = None,
    client_start_id: str | None = None,
) -> ChatSession:
    """startChatSession: a new session, `waiting`, then assigned if an agent is free. `visitor` is what the server
    saw of the connection (source IP, User-Agent), never what the client claims. The caller gets chat.started
    (and chat.queued while it waits); the assigned agent chat.assigned; if it waits, the tenant's staff hear of
    it in the next staff broadcast (queue.updated, support.services.broadcasts). With a `client_start_id` this
    visitor already started a session with (a retry after a lost answer), nothing new is started: the caller gets
    that session, as it is now, again (and its queue position while it waits), and no one else is told anything.

    A visitor (the public widget's caller) holds at most one open chat: while one is waiting or active, a start
    answers it in the same way. A visitor's new chat while the tenant's queue is at its cap (the chat settings) is
    DeskBusy (`desk_busy`, with the web form's URL): nothing is stored or announced. Staff starting a chat over
    HTTP (on a customer's behalf) are trusted members of the desk and are held to neither rule.

    All of it is one call of chat_start (sql/definitions/chat.sql: the queue lock, the retry and open-session
    checks, the cap, the insert, the drain, the position, the participants, the broadcast request), sent with
    BEGIN, the tenant binding and COMMIT in one pipeline, so the queue lock is held for the server's work alone,
    never across a round trip. With a `client_start_id` the pipeline may run again on a connection found broken,
    and a second run answers the session the first one started (as a retry would), and tells its agent (the first
    run's commit was not heard, so no one was told); without one the call is sent only once (`once`: two round
    trips), so that a broken connection never starts a second chat."""
    outbox = Outbox(principal.tenant_id, caller)
    params = (
        principal.tenant_id,
        data.visitor_id,
        data.visitor_name,
        data.visitor_email,
        visitor.ip,
        visitor.browser,
        client_start_id,
        principal.role is Role.VISITOR,
        DEFAULT_QUEUE_CAP,
        get_settings().chat_auto_assign,
        broadcasts.STALE_AFTER_SECONDS,
    )
    statements = [(_START, params), (automations.PENDING, (principal.tenant_id,))]
    reran: list[bool] = []
    [rows, events] = pipelined(
        principal.tenant_id, statements, once=client_start_id is None, on_rerun=lambda: reran.append(True)
    )
    [own] = [row for row in rows if row["outcome"] != "assigned"]
    if own["outcome"] == "busy":
        chat_settings = ChatSettings.model_validate(own["settings"])
        raise DeskBusy(
            "every agent is busy and the queue is full; try again later"
            + (", or leave a message with the web form" if chat_settings.web_form_url else ""),
            web_form_url=chat_settings.web_form_url,
        )
    session = ChatSession.model_validate(own)
    outbox.answer("chat.started", session)
    if own["outcome"] == "started" and session.status is ChatStatus.ACTIVE:  # the drain assigned it
        outbox.tell(own["connection_ids"] or [], "chat.assigned", session)
    elif reran and own["outcome"] == "again":
        # This call's own second run found the session its first run started: that commit was never heard, so no one
        # was told; its agent is now, and the staff broadcast (which the first run may have left to this call) runs.
        if session.status is ChatStatus.ACTIVE:
            [people] = pipelined(principal.tenant_id, [(_PARTICIPANTS, (principal.tenant_id, session.id, None))])
            outbox.tell(_connections(people), "chat.assigned", session)
        broadcasts.start_after(outbox)
    announce_assignments(outbox, [row for row in rows if row["outcome"] == "assigned"])
    if session.status is ChatStatus.WAITING:
        # Its own position, on the request path; everyone else's is the broadcast's. Positions carry `asOf`: events
        # from two transactions may arrive out of order, and a client keeps the newest.
        notice = Queued(
            session_id=session.id,
            position=own["queue_position"],
            as_of=own["as_of"],
            expected_wait_seconds=own["expected_wait"],
        )
        outbox.tell(own["connection_ids"] or [], "chat.queued", notice, caller_too=True)
    if own["start_broadcast"]:
        broadcasts.start_after(outbox)
    automations.start_after(outbox, events)  # a new session's chat_started event runs after the commit
    webhooks.start_after(outbox)  # its webhook deliveries are dispatched after the commit
    outbox.send()
    return session


# The session's columns are those of SESSION_COLUMNS and more (client_start_id, which ChatSession ignores).
_START = """SELECT c.outcome, (c.session).*, c.agent_name AS assigned_agent_name, c.connection_ids, c.queue_position,
    c.as_of, c.start_broadcast, c.settings, c.expected_wait
FROM chat_start(%s, %s, %s, %s, %s::inet, %s, %s, %s, %s, %s, %s) c"""


def list_chat_sessions(
    principal: Principal, *, status: ChatStatus | None = None, limit: int, cursor: str | None = None
) -> Page[ChatSession]:
    """getActiveChatSessions (with `status=active`): newest first, keyset-paginated."""
    params: dict[str, Any] = {"tenant": principal.tenant_id, "status": status, "limit": limit + 1}
    conditions: list[sql.Composable] = [sql.SQL("user_id = %(tenant)s")]
    if status is not None:
        conditions.append(sql.SQL("status = %(status)s"))
    if cursor:
        params["after_at"], params["after_id"] = decode_cursor(cursor)
        conditions.append(sql.SQL("(created_at, id) < (%(after_at)s, %(after_id)s)"))
    statement = sql.SQL(
        "SELECT {columns} FROM live_chat_sessions WHERE {conditions} ORDER BY created_at DESC, id DESC LIMIT %(limit)s"
    ).format(columns=sql.SQL(SESSION_COLUMNS), conditions=sql.SQL(" AND ").join(conditions))
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(statement, params)
        rows = cur.fetchall()
    return page_of(rows, limit, ChatSession.model_validate)


def get_chat_session(principal: Principal, session_id: UUID) -> ChatSession:
    with tenant_transaction(principal.tenant_id) as cur:
        return ChatSession.model_validate(_read_session(cur, principal, session_id))


def end_chat_session(
    principal: Principal, session_id: UUID, *, caller: Caller | None = None, by_system: bool = False
) -> ChatSession:
    """endChatSession: `closed`, with the end time and the duration in whole seconds, both computed from the start
    time. The assigned agent has one chat fewer, and the queue moves on. Every participant gets chat.ended. One call
    of chat_end (sql/definitions/chat.sql), sent only once: two round trips, the queue lock held for the server's
    work alone. `by_system`: the desk itself ends it (an automation's end_chat), recorded as ended_by 'system'
    (sql/0035) rather than the principal's role."""
    outbox = Outbox(principal.tenant_id, caller)
    tenant, session, role, *who = _access_params(principal, session_id, caller)
    params = (tenant, session, "system" if by_system else role, *who, get_settings().chat_auto_assign, _STALE)
    ended, assigned = _queue_action(
        principal, _END, params, "ended", closed="the chat session has already ended", probe=True
    )
    outbox.answer("chat.ended", ended.session)
    outbox.tell(ended.connection_ids, "chat.ended", ended.session)
    announce_assignments(outbox, assigned)
    ended.start_broadcast(outbox)
    automations.start_after(outbox, ended.events_pending)  # its chat_ended event runs after the commit
    webhooks.start_after(outbox)  # its webhook deliveries are dispatched after the commit
    outbox.send()
    return ended.session


def transfer_chat_session(
    principal: Principal, session_id: UUID, to_agent_id: UUID, *, caller: Caller | None = None
) -> ChatSession:
    """Hand the session to another agent of the tenant, or assign a waiting one; either way it is `active`
    with the new agent. The previous agent is kept in `transferred_from_agent_id`; both agents'
    `current_chats` move by one; a full target agent is a 409. The visitor and both agents get
    chat.transferred; the capacity freed goes to the queue. One call of chat_transfer (sql/definitions/chat.sql),
    sent only once: two round trips."""
    if principal.role is Role.VISITOR:
        raise Forbidden("only staff transfer chat sessions")
    outbox = Outbox(principal.tenant_id, caller)
    tenant, session, *who = _access_params(principal, session_id, caller)
    params = (tenant, session, to_agent_id, *who, get_settings().chat_auto_assign, _STALE)
    closed = "an ended chat session cannot be transferred"
    transferred, assigned = _queue_action(principal, _TRANSFER, params, "transferred", closed=closed)
    outbox.answer("chat.transferred", transferred.session)
    # the session's participants (the new agent's among them) and the previous agent's
    outbox.tell(transferred.connection_ids, "chat.transferred", transferred.session)
    announce_assignments(outbox, assigned)
    transferred.start_broadcast(outbox)
    outbox.send()
    return transferred.session


def claim_chat_session(principal: Principal, session_id: UUID, *, caller: Caller | None = None) -> ChatSession:
    """An agent takes a waiting session for themself (capacity checked): chat.assigned to them and the visitor;
    every staff connection's queue loses it in the next staff broadcast. One call of chat_claim
    (sql/definitions/chat.sql), sent only once: two round trips."""
    if principal.agent_id is None:
        raise Forbidden("only an agent (a token with agent_id) claims chat sessions")
    outbox = Outbox(principal.tenant_id, caller)
    params = (principal.tenant_id, session_id, principal.agent_id, _STALE)
    claimed, _ = _queue_action(principal, _CLAIM, params, "claimed")
    outbox.answer("chat.assigned", claimed.session)
    outbox.tell(claimed.connection_ids, "chat.assigned", claimed.session)
    claimed.start_broadcast(outbox)
    outbox.send()
    return claimed.session


@dataclass(frozen=True)
class _Changed:
    """A queue action's own row: the session as changed, its participants' connections, whether it starts the
    staff broadcast run, whether it left automation events pending (asked only with `probe`)."""

    session: ChatSession
    connection_ids: list[str]
    starts: bool
    events_pending: bool = False

    def start_broadcast(self, outbox: Outbox) -> None:
        if self.starts:
            broadcasts.start_after(outbox)


def _queue_action(
    principal: Principal, statement: str, params: tuple[Any, ...], done: str, *, closed: str = "", probe: bool = False
) -> tuple[_Changed, list[dict[str, Any]]]:
    """Run a queue action's function (chat_claim, chat_end, chat_transfer) once, in one pipeline after BEGIN: its
    own row (outcome `done`, else the refusal raised; `closed`: the action's message for an ended session) and the
    sessions its drain assigned. `probe`: whether it left automation events pending, asked in the same pipeline."""
    statements = [(statement, params)]
    if probe:
        statements.append((automations.PENDING, (principal.tenant_id,)))
    [rows, *events] = pipelined(principal.tenant_id, statements, once=True)
    [own] = [row for row in rows if row["outcome"] != "assigned"]
    outcome = own["outcome"]
    if outcome == "closed":
        raise Conflict(closed)
    if outcome != done:
        raise _queue_refusal(outcome, own)
    changed = _Changed(
        ChatSession.model_validate(own),
        own["connection_ids"] or [],
        bool(own["start_broadcast"]),
        bool(events and events[0] and events[0][0]["pending"]),
    )
    return changed, [row for row in rows if row["outcome"] == "assigned"]


def _queue_refusal(outcome: str, row: dict[str, Any]) -> DomainError:
    """The error of a queue action's refusal (the messages the services always answered)."""
    if outcome in _REFUSALS:
        refusal = _REFUSALS[outcome]
        return type(refusal)(refusal.message)
    if outcome == "full":
        return Conflict(f"the agent is at capacity: {row['agent_chats']} of {row['agent_most']} chats")
    return _QUEUE_REFUSALS[outcome]()


_QUEUE_REFUSALS: dict[str, Callable[[], DomainError]] = {
    "no_agent": lambda: NotFound("agent not found"),
    "not_waiting": lambda: Conflict("this chat session is not waiting: someone has it already, or it has ended"),
    "same_agent": lambda: Conflict("the chat session is already assigned to this agent"),
}

_STALE = broadcasts.STALE_AFTER_SECONDS
# Each function's rows: the outcome, the session (SESSION_COLUMNS' names and more, which ChatSession ignores), its
# participants' connections, whether it starts a broadcast run, and (claim, transfer) the target agent's figures.
_CLAIM = """SELECT f.outcome, (f.session).*, f.agent_name AS assigned_agent_name, f.connection_ids, f.start_broadcast,
    f.agent_chats, f.agent_most FROM chat_claim(%s, %s, %s, %s) f"""
_END = """SELECT f.outcome, (f.session).*, f.agent_name AS assigned_agent_name, f.connection_ids, f.start_broadcast
FROM chat_end(%s, %s, %s, %s, %s, %s, %s, %s) f"""
_TRANSFER = """SELECT f.outcome, (f.session).*, f.agent_name AS assigned_agent_name, f.connection_ids,
    f.start_broadcast, f.agent_chats, f.agent_most FROM chat_transfer(%s, %s, %s, %s, %s, %s, %s, %s, %s) f"""


def rate_chat_session(
    principal: Principal, session_id: UUID, data: ChatRating, *, caller: Caller | None = None
) -> ChatSession:
    """The visitor's rating (1 to 5) and feedback: once, after the session has ended. The agent gets chat.rated.
    Only the visitor rates: staff (the HTTP API's callers) would be marking their own work, a 403."""
    if principal.role is not Role.VISITOR:
        raise Forbidden("a chat's rating is the visitor's: staff cannot rate a chat")
    outbox = Outbox(principal.tenant_id, caller)
    with tenant_transaction(principal.tenant_id) as cur:
        current = _lock_session_to_act(cur, principal, session_id, caller)
        if current["status"] != ChatStatus.CLOSED:
            raise Conflict("a chat session is rated after it has ended")
        if current["rating"] is not None:
            raise Conflict("this chat session has already been rated")
        cur.execute(
            f"""UPDATE live_chat_sessions SET rating = %s, feedback = %s
            WHERE user_id = %s AND id = %s RETURNING {SESSION_COLUMNS}""",  # noqa: S608
            (data.rating, data.feedback, principal.tenant_id, session_id),
        )
        rated = _session(cur.fetchone())
        outbox.answer("chat.rated", rated)
        outbox.tell(_connections(_participants(cur, principal, session_id), STAFF_SIDE), "chat.rated", rated)
    webhooks.start_after(outbox)  # its webhook deliveries are dispatched after the commit
    outbox.send()
    return rated


# --- Messages --------------------------------------------------------------------------------------------------


def list_chat_messages(
    principal: Principal, session_id: UUID, *, limit: int, cursor: str | None = None
) -> Page[ChatMessage]:
    """getChatMessages: oldest first, keyset-paginated."""
    with tenant_transaction(principal.tenant_id) as cur:
        _read_session(cur, principal, session_id)
        rows = oldest_first(
            cur,
            principal.tenant_id,
            "chat_messages",
            MESSAGE_COLUMNS,
            ("session_id", session_id),
            limit=limit,
            cursor=cursor,
        )
    return page_of(rows, limit, ChatMessage.model_validate)


def add_chat_message(
    principal: Principal,
    session_id: UUID,
    data: ChatMessageCreate,
    *,
    caller: Caller | None = None,
    client_message_id: str | None = None,
) -> ChatMessage:
    """addChatMessage: stored first, then announced as message.new to every participant. Counted in the
    session's `total_messages` (and, unless a system message, in its `message_count`). The sender type is the
    caller's own (staff `agent`, a visitor `customer`; else 403). With a `client_message_id` the caller already
    stored in the session (a resend after a drop), nothing new is stored and the stored message is answered
    again, to the caller only; another sender's message under that id is a 409 (the id is the sender's own).

    All of it is one call of chat_send_message (sql/definitions/chat.sql: the session's lock, the participant
    check, the resend check, the closed check, the insert, the counters, the participants), sent with BEGIN, the
    tenant binding and COMMIT in one pipeline: one round trip. With a `client_message_id` (every WebSocket send)
    the pipeline may run again on a connection found broken, and a second run answers the message the first one
    stored (`resent`), never a second copy, and tells the participants of it (the first run's commit was not heard,
    so they were not told); without one (the HTTP route) the call is sent only once (`once`). The same statement
    answers whether the message's transaction wrote webhook deliveries (webhooks.WRITTEN): then, and only then, their
    dispatch starts after the commit, with no round trip more (a run after a broken connection probes instead)."""
    principal.require_own_sender_type(data.sender_type)
    outbox = Outbox(principal.tenant_id, caller)
    params: tuple[Any, ...] = (
        *_access_params(principal, session_id, caller),
        principal.subject,
        data.sender_type,
        data.sender_name,
        data.message,
        data.attachment_url,
        data.attachment_type,
        client_message_id,
    )
    reran: list[bool] = []
    statement = _SEND_MESSAGE
    prepared = attachments.prepare_claim(principal, [], session_id=session_id)
    if data.attachment_ids:
        # Uploaded files: checked with S3 before the transaction, claimed in it with the message, or neither
        # (support.services.attachments; chat_send_message_with_attachments, sql/definitions/attachments.sql).
        with tenant_transaction(principal.tenant_id) as cur:
            cur.execute(*_session_access(principal, session_id, caller))
            _accessible(cur.fetchall())  # not the caller's chat: 404 / 403 before anything is asked of S3
        prepared = attachments.prepare_claim(principal, data.attachment_ids, session_id=session_id)
        statement, params = _SEND_WITH_ATTACHMENTS, (*params, prepared.ids, prepared.keys)
    with attachments.discarded_on_failure(prepared):
        try:
            [[row]] = pipelined(
                principal.tenant_id,
                [(statement, params)],
                once=client_message_id is None,
                on_rerun=lambda: reran.append(True),
            )
        except psycopg.errors.RaiseException as exc:
            if exc.diag.message_primary != "attachment_unavailable":
                raise
            raise Conflict("an attachment was claimed by another message meanwhile") from exc
        _refuse(row["outcome"])
    message = ChatMessage.model_validate(row)
    outbox.answer("message.new", message)
    if row["webhooks_written"]:
        webhooks.start_after(outbox, written=True)  # its deliveries are dispatched after the commit, unprobed
    elif reran:
        webhooks.start_after(outbox)  # a first run's commit unheard may have written some: probed
    if row["outcome"] == "new":
        outbox.tell(row["connection_ids"] or [], "message.new", message)
    elif reran:
        # This call's own second run found what its first run stored: that commit was never heard, so no one was
        # told of the message; they are now (a client's resend, a later call, is answered to the caller only).
        [people] = pipelined(principal.tenant_id, [(_PARTICIPANTS, (principal.tenant_id, session_id, None))])
        outbox.tell(_connections(people), "message.new", message)
    outbox.send()
    return message


# The message's columns are those of MESSAGE_COLUMNS and more (client_sender, which ChatMessage ignores), and
# whether the message's transaction wrote webhook deliveries (webhooks.WRITTEN: the function in FROM runs, and its
# capture trigger with it, before the select list is computed), so that their dispatch starts after the commit
# without another round trip.
_SEND_MESSAGE = f"""SELECT outcome, connection_ids, (message).*, {webhooks.WRITTEN}
FROM chat_send_message(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"""  # noqa: S608 (a constant)

_SEND_WITH_ATTACHMENTS = f"""SELECT outcome, connection_ids, (message).*, {webhooks.WRITTEN}
FROM chat_send_message_with_attachments(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"""  # noqa: S608

# What the database's chat functions answer instead of a row, as the errors the services raise.
_REFUSALS: dict[str, DomainError] = {
    "not_found": NotFound("chat session not found"),
    "forbidden": Forbidden("this chat session is not assigned to you; join it first (joinSession)"),
    "taken": Conflict("this clientMessageId is taken in this chat session: send the message with a new one"),
    "closed": Conflict("an ended chat session takes no new messages"),
    "no_message": NotFound("message not found in this chat session"),
}


def _refuse(outcome: str | None) -> None:
    refusal = _REFUSALS.get(outcome or "")
    if refusal is not None:
        raise type(refusal)(refusal.message)


def _access_params(principal: Principal, session_id: UUID, caller: Caller | None) -> tuple[Any, ...]:
    """The arguments by which chat_refusal (sql/definitions/chat.sql) decides whether the caller may act on the
    session: tenant, session, role, visitor id, agent id, connection (None over HTTP)."""
    connection = caller.connection_id if caller is not None else None
    return (principal.tenant_id, session_id, principal.role, principal.visitor_id, principal.agent_id, connection)


# The session as _read_session reads it, and why the caller may not act on it (NULL: it may).
_SESSION_ACCESS = f"""SELECT {SESSION_COLUMNS},
    chat_refusal(user_id, id, visitor_id, assigned_agent_id, %s, %s, %s, %s) AS refusal
FROM live_chat_sessions WHERE user_id = %s AND id = %s"""  # noqa: S608 (fixed text; every value is bound)


def _session_access(principal: Principal, session_id: UUID, caller: Caller | None) -> tuple[str, tuple[Any, ...]]:
    tenant, session, *who = _access_params(principal, session_id, caller)
    return _SESSION_ACCESS, (*who, tenant, session)


def _accessible(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The session row of a _session_access statement, or the refusal raised (NotFound for no row)."""
    session = found(rows[0] if rows else None, "chat session")
    _refuse(session["refusal"])
    return session


def _side_read_by(principal: Principal) -> SenderType:
    """Whose messages the caller reads: a visitor reads the agents'; desk staff read the visitor's. System
    messages are addressed to no one and are never marked."""
    return SenderType.AGENT if principal.role is Role.VISITOR else SenderType.CUSTOMER


_MARK_READ = "SELECT * FROM chat_mark_read(%s, %s, %s, %s, %s, %s, %s, %s)"


def mark_chat_messages_read(
    principal: Principal, session_id: UUID, up_to_message_id: UUID, *, caller: Caller | None = None
) -> ChatReadReceipt:
    """Read receipts: the other side's unread messages up to and including `up_to_message_id` (by position in
    the session) become read now. Returns how many changed; already read ones keep their `read_at`. Every
    participant gets message.read. One call of chat_mark_read (the checks, the update, the participants), sent
    only once (a second run would mark nothing): two round trips."""
    outbox = Outbox(principal.tenant_id, caller)
    params = (*_access_params(principal, session_id, caller), up_to_message_id, _side_read_by(principal))
    [[row]] = pipelined(principal.tenant_id, [(_MARK_READ, params)], once=True)
    _refuse(row["outcome"])
    receipt = ChatReadReceipt(marked_count=row["marked_count"])
    notice = ReadNotice(  # now() is the transaction's time: the read_at the UPDATE wrote
        session_id=session_id,
        up_to_message_id=up_to_message_id,
        read_at=row["read_at"],
        marked_count=receipt.marked_count,
    )
    outbox.answer("message.read", notice)
    outbox.tell(row["connection_ids"] or [], "message.read", notice)
    outbox.send()
    return receipt


# --- WebSocket-only actions --------------------------------------------------------------------------------------


def typing(principal: Principal, session_id: UUID, is_typing: bool, *, caller: Caller) -> None:
    """Not stored: the other side of the session hears that the caller is (or stopped) typing. The session (with
    the caller's right to it) and its participants are read together, in one round trip: the participants are
    used only once the right is checked."""
    outbox = Outbox(principal.tenant_id, caller)
    mine = VISITOR_SIDE if principal.role is Role.VISITOR else STAFF_SIDE
    statements = [
        _session_access(principal, session_id, caller),
        (_PARTICIPANTS, (principal.tenant_id, session_id, None)),
    ]
    session, people = pipelined(principal.tenant_id, statements, snapshot=True)
    _accessible(session)
    sender = SenderType.CUSTOMER if mine == VISITOR_SIDE else SenderType.AGENT
    notice = TypingNotice(session_id=session_id, sender_type=sender, is_typing=is_typing)
    outbox.tell([p["connection_id"] for p in people if p["side"] != mine], "typing", notice)
    outbox.send()


_AFTER = "SELECT created_at, id FROM chat_messages WHERE user_id = %s AND session_id = %s AND id = %s"


def _sync_statements(principal: Principal, session_id: UUID, after_message_id: UUID | None) -> list[Statement]:
    """The statements of a sync's messages after the session's: the message to start after (if any), then the
    page, which finds that message's place by itself (nothing if it is not the session's: the first statement
    says so)."""
    params: dict[str, Any] = {"tenant": principal.tenant_id, "session": session_id, "limit": SYNC_PAGE + 1}
    after = ""
    statements: list[Statement] = []
    if after_message_id is not None:
        statements.append((_AFTER, (principal.tenant_id, session_id, after_message_id)))
        params["after"] = after_message_id
        after = """AND (created_at, id) > (SELECT m.created_at, m.id FROM chat_messages m
            WHERE m.user_id = %(tenant)s AND m.session_id = %(session)s AND m.id = %(after)s)"""
    page = f"""SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE user_id = %(tenant)s AND session_id = %(session)s
        {after} ORDER BY created_at, id LIMIT %(limit)s"""  # noqa: S608
    return [*statements, (page, params)]


def _sync_answer(session: dict[str, Any], results: list[list[dict[str, Any]]]) -> SyncAnswer:
    """The answer from _sync_statements' results (NotFound when the message to start after is not the session's)."""
    if len(results) == 2 and not results[0]:
        raise NotFound("message not found in this chat session")
    rows = results[-1]
    return SyncAnswer(
        session=ChatSession.model_validate(session),
        messages=[ChatMessage.model_validate(row) for row in rows[:SYNC_PAGE]],
        has_more=len(rows) > SYNC_PAGE,
    )


def sync(principal: Principal, session_id: UUID, after_message_id: UUID | None, *, caller: Caller) -> SyncAnswer:
    """The session and its messages after `after_message_id` (all from the start without it), oldest first, at
    most 100 at a time (`hasMore`): what a client missed while it was away. One snapshot, one round trip: the
    session with the caller's right to it, and the messages, answered only once the right is checked."""
    outbox = Outbox(principal.tenant_id, caller)
    statements = [
        _session_access(principal, session_id, caller),
        *_sync_statements(principal, session_id, after_message_id),
    ]
    session, *messages = pipelined(principal.tenant_id, statements, snapshot=True)
    answer = _sync_answer(_accessible(session), messages)
    outbox.answer("sync", answer)
    outbox.send()
    return answer


_SESSION = f"SELECT {SESSION_COLUMNS} FROM live_chat_sessions WHERE user_id = %s AND id = %s"  # noqa: S608
_JOIN = """INSERT INTO session_watchers (connection_id, session_id, user_id)
SELECT %s, s.id, s.user_id FROM live_chat_sessions s WHERE s.user_id = %s AND s.id = %s
ON CONFLICT (connection_id, session_id) DO NOTHING"""


def join_session(principal: Principal, session_id: UUID, *, caller: Caller) -> SyncAnswer:
    """Staff follow a session on this connection from now on (until it closes), and get a `sync` of it. The
    session, the join (only of a session that exists: nothing for an unknown id) and the messages in one pipeline:
    one round trip (run again on a connection found broken, the join is already there and adds nothing)."""
    if not principal.is_staff:
        raise Forbidden("only staff join chat sessions")
    outbox = Outbox(principal.tenant_id, caller)
    statements: list[Statement] = [
        (_SESSION, (principal.tenant_id, session_id)),
        (_JOIN, (caller.connection_id, principal.tenant_id, session_id)),
        *_sync_statements(principal, session_id, None),
    ]
    session, _, *messages = pipelined(principal.tenant_id, statements)
    answer = _sync_answer(found(session[0] if session else None, "chat session"), messages)
    outbox.answer("sync", answer)
    outbox.send()
    return answer
