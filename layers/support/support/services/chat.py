"""Live chat: sessions (start, list, end, transfer, claim, rating), their messages (post, list, read, sync),
automatic assignment with a queue, and the real-time events all of these announce. HTTP and the WebSocket API
call the same functions; a WebSocket caller passes its `Caller` to be answered on its connection.

Lifecycle: a session starts `waiting` (no agent); an assignment (automatic, a claim, or a transfer to an agent)
makes it `active` with that agent, and a transfer from one agent to another keeps it `active` with the new agent
(`transferred_from_agent_id` records the previous one); ending makes it `closed` for good. So `?status=active`
lists exactly the chats an agent is handling, and a session only ever moves forward (waiting, active, closed).
The API never sets `transferred` (see ChatStatus).

Assignment (CHAT_AUTO_ASSIGN, on by default): a waiting session goes to an `available` agent with spare capacity
(`current_chats` below `max_concurrent_chats`), fewest current chats first, then the one assigned least
recently; the oldest waiting session first. The queue is drained whenever a session starts, capacity frees (an
end, a transfer away) or an agent becomes available or takes more chats. Every operation that can change the
queue first takes the tenant's queue lock (a transaction-level advisory lock), so drains never overlap: no
agent is ever above capacity and no session is assigned twice, under any concurrency.

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
waiting session and then agents holds the queue lock.

Events are announced after the commit (connections.Outbox): nothing is announced that is not stored. What the
whole staff hears (the queue, agents' presence) and the queue positions of other waiting visitors are not told
here: a change records itself for the tenant's next staff broadcast (support.services.broadcasts, last in its
transaction), which coalesces a burst and runs off the request path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from psycopg import sql

from support.auth import Principal, Role
from support.config import get_settings
from support.db import pipelined, tenant_transaction
from support.db.connection import Cursor, Statement
from support.db.statements import lock_for_tenant
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
from support.models.tickets import SenderType
from support.pagination import Page, decode_cursor, page_of
from support.services import broadcasts, settings
from support.services.connections import (
    STAFF_SIDE,
    VISITOR_SIDE,
    Caller,
    Outbox,
    visitor_connections,
)

# The assigned agent's display name (and nothing else of theirs) is read in the same statement as the session,
# by its primary key: every SELECT, INSERT and UPDATE ... RETURNING of a session carries it, so the visitor's
# chat.started / chat.assigned / chat.transferred / sync name the agent without another round trip. (The
# (user_id, assigned_agent_id) foreign key keeps the agent in the session's tenant.)
SESSION_COLUMNS = """id, user_id, visitor_id, visitor_name, visitor_email, status, assigned_agent_id,
    transferred_from_agent_id, visitor_ip, visitor_browser, session_start_time, session_end_time, total_messages,
    message_count, duration, rating, feedback, created_at, updated_at,
    (SELECT named.agent_name FROM support_agents named WHERE named.id = assigned_agent_id) AS assigned_agent_name"""
MESSAGE_COLUMNS = """id, session_id, user_id, sender_type, sender_name, message, attachment_url, attachment_type,
    is_read, read_at, created_at, client_message_id"""

# Senders whose messages are the conversation proper (counted in `message_count`).
CONVERSATION_SENDERS = (SenderType.CUSTOMER, SenderType.AGENT)


def _session(row: dict[str, Any] | None) -> ChatSession:
    return ChatSession.model_validate(found(row, "chat session"))


def _lock_session(cur: Cursor, principal: Principal, session_id: UUID) -> dict[str, Any]:
    cur.execute(
        f"SELECT {SESSION_COLUMNS} FROM live_chat_sessions WHERE user_id = %s AND id = %s FOR UPDATE",  # noqa: S608
        (principal.tenant_id, session_id),
    )
    return found(cur.fetchone(), "chat session")


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
    """The tenant's queue lock, first in every transaction that can change who waits or who is free (here, and
    in the agents service before it changes an agent's status or capacity)."""
    lock_for_tenant(cur, principal.tenant_id, "chat-queue")


def _lock_agents(cur: Cursor, principal: Principal, agent_ids: set[UUID]) -> dict[UUID, dict[str, Any]]:
    """The agents' rows, locked in id order (the same order in every transaction, so no deadlock)."""
    cur.execute(
        """SELECT id, agent_name, status, current_chats, max_concurrent_chats FROM support_agents
        WHERE user_id = %s AND id = ANY(%s) ORDER BY id FOR NO KEY UPDATE""",
        (principal.tenant_id, sorted(agent_ids)),
    )
    return {row["id"]: row for row in cur.fetchall()}


def _change_current_chats(cur: Cursor, principal: Principal, agent_id: UUID, delta: int) -> None:
    # No clamp at zero: a double decrement is a bug, and the column's CHECK (>= 0) makes it fail loudly.
    cur.execute(
        "UPDATE support_agents SET current_chats = current_chats + %s WHERE user_id = %s AND id = %s",
        (delta, principal.tenant_id, agent_id),
    )


# --- Assignment and the queue --------------------------------------------------------------------------------


def _drain_queue(cur: Cursor, principal: Principal) -> list[dict[str, Any]]:
    """Assign waiting sessions, oldest first, to available agents with spare capacity (fewest chats first, then
    least recently assigned). Called with the queue lock held. Returns the sessions assigned, as updated."""
    if not get_settings().chat_auto_assign:
        return []
    cur.execute(
        """SELECT id, current_chats, max_concurrent_chats, last_assigned_at FROM support_agents
        WHERE user_id = %s AND status = 'available' AND current_chats < max_concurrent_chats
        ORDER BY id FOR NO KEY UPDATE""",
        (principal.tenant_id,),
    )
    agents = cur.fetchall()
    spare = sum(a["max_concurrent_chats"] - a["current_chats"] for a in agents)
    if spare == 0:
        return []
    cur.execute(
        """SELECT id FROM live_chat_sessions WHERE user_id = %s AND status = 'waiting'
        ORDER BY created_at, id LIMIT %s FOR UPDATE""",
        (principal.tenant_id, spare),
    )
    waiting = [row["id"] for row in cur.fetchall()]
    if not waiting:
        return []
    # Each agent's place in line: fewest chats, then least recently assigned (never assigned first), then id.
    # An agent who takes a session here becomes the most recently assigned of all, in the order of the picks.
    never = datetime.min.replace(tzinfo=UTC)
    chats = {a["id"]: a["current_chats"] for a in agents}
    most = {a["id"]: a["max_concurrent_chats"] for a in agents}
    recency: dict[UUID, tuple[int, datetime | int]] = {a["id"]: (0, a["last_assigned_at"] or never) for a in agents}
    picks: list[tuple[UUID, UUID]] = []
    for order, session_id in enumerate(waiting):
        agent_id = min((a for a in chats if chats[a] < most[a]), key=lambda a: (chats[a], recency[a], a))
        chats[agent_id] += 1
        recency[agent_id] = (1, order)
        picks.append((session_id, agent_id))
    cur.execute(
        f"""UPDATE live_chat_sessions SET status = 'active', assigned_agent_id = p.agent_id
        FROM unnest(%s::uuid[], %s::uuid[]) AS p(session_id, agent_id)
        WHERE live_chat_sessions.user_id = %s AND live_chat_sessions.id = p.session_id
        RETURNING {SESSION_COLUMNS}""",  # noqa: S608
        ([p[0] for p in picks], [p[1] for p in picks], principal.tenant_id),
    )
    assigned = cur.fetchall()
    counts: dict[UUID, int] = {}
    for _, agent_id in picks:
        counts[agent_id] = counts.get(agent_id, 0) + 1
    cur.execute(
        """UPDATE support_agents a SET current_chats = a.current_chats + c.n, last_assigned_at = clock_timestamp()
        FROM unnest(%s::uuid[], %s::int[]) AS c(agent_id, n)
        WHERE a.user_id = %s AND a.id = c.agent_id""",
        (list(counts), list(counts.values()), principal.tenant_id),
    )
    return assigned


def _tell_own_position(cur: Cursor, principal: Principal, outbox: Outbox, session: ChatSession) -> None:
    """chat.queued to the waiting session's visitor, on the request path (startChat's own answer), with its
    position (1 = next; a count over the queue's index, under the queue lock), recorded as told so that the
    broadcast run does not tell it again. Positions carry `asOf`: events from two transactions may arrive out of
    order, and a client keeps the newest. Everyone else's position is the broadcast's (support.services.
    broadcasts): only the visitors whose position changed hear it, once per burst."""
    cur.execute(
        """SELECT count(*) AS position, clock_timestamp() AS as_of FROM live_chat_sessions
        WHERE user_id = %s AND status = 'waiting' AND (created_at, id) <= (%s, %s)""",
        (principal.tenant_id, session.created_at, session.id),
    )
    row = found(cur.fetchone(), "queue position")
    broadcasts.told(cur, principal.tenant_id, session.id, row["position"])
    connections = visitor_connections(cur, principal.tenant_id, [session.visitor_id])
    notice = Queued(session_id=session.id, position=row["position"], as_of=row["as_of"])
    outbox.tell(connections.get(session.visitor_id, []), "chat.queued", notice, caller_too=True)


def _announce_assignments(cur: Cursor, principal: Principal, outbox: Outbox, assigned: list[dict[str, Any]]) -> None:
    for row in assigned:
        session = ChatSession.model_validate(row)
        outbox.tell(_connections(_participants(cur, principal, session.id)), "chat.assigned", session, caller_too=True)


def rebalance_queue(cur: Cursor, principal: Principal, outbox: Outbox) -> bool:
    """After capacity may have freed (an end, a transfer away; for the agents service an agent becoming available
    or taking more chats), with the queue lock held: drain, and tell the assigned. True when the queue changed:
    the caller then asks for a staff broadcast (broadcasts.request, last in its transaction)."""
    assigned = _drain_queue(cur, principal)
    if assigned:
        _announce_assignments(cur, principal, outbox, assigned)
    return bool(assigned)


# The connections that hear about a session, and their sides (the third argument: an agent who hears as well).
_PARTICIPANTS = "SELECT connection_id, side FROM chat_participants(%s, %s, %s)"


# --- Sessions --------------------------------------------------------------------------------------------------


def _started_before(cur: Cursor, principal: Principal, visitor_id: str, client_start_id: str) -> ChatSession | None:
    """The session this visitor's attempt `client_start_id` already started, if any (read under the queue lock,
    which every start takes: no concurrent start of the same attempt can race it)."""
    cur.execute(
        f"""SELECT {SESSION_COLUMNS} FROM live_chat_sessions
        WHERE user_id = %s AND visitor_id = %s AND client_start_id = %s""",  # noqa: S608
        (principal.tenant_id, visitor_id, client_start_id),
    )
    row = cur.fetchone()
    return ChatSession.model_validate(row) if row else None


def _open_session_of(cur: Cursor, principal: Principal, visitor_id: str) -> ChatSession | None:
    """The visitor's open (waiting or active) session, if any: a visitor holds at most one, so a second start
    answers it. Read under the queue lock, which every start takes."""
    cur.execute(
        f"""SELECT {SESSION_COLUMNS} FROM live_chat_sessions
        WHERE user_id = %s AND visitor_id = %s AND status <> 'closed' ORDER BY created_at DESC LIMIT 1""",  # noqa: S608
        (principal.tenant_id, visitor_id),
    )
    row = cur.fetchone()
    return ChatSession.model_validate(row) if row else None


def _admit_to_queue(cur: Cursor, principal: Principal) -> None:
    """DeskBusy when the tenant's waiting queue is at its cap (the chat settings' `queueCap`), under the queue
    lock, so concurrent starts cannot overshoot it. Counts at most `cap` rows of the queue's index."""
    chat_settings = settings.chat_settings(cur, principal.tenant_id)
    cur.execute(
        """SELECT count(*) AS waiting FROM (SELECT 1 FROM live_chat_sessions
        WHERE user_id = %s AND status = 'waiting' LIMIT %s) queue""",
        (principal.tenant_id, chat_settings.queue_cap),
    )
    row = cur.fetchone()
    if row is not None and row["waiting"] >= chat_settings.queue_cap:
        raise DeskBusy(
            "every agent is busy and the queue is full; try again later"
            + (", or leave a message with the web form" if chat_settings.web_form_url else ""),
            web_form_url=chat_settings.web_form_url,
        )


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
    HTTP (on a customer's behalf) are trusted members of the desk and are held to neither rule."""
    outbox = Outbox(principal.tenant_id, caller)
    with tenant_transaction(principal.tenant_id) as cur:
        lock_queue(cur, principal)
        before = _started_before(cur, principal, data.visitor_id, client_start_id) if client_start_id else None
        if before is None and principal.role is Role.VISITOR:
            before = _open_session_of(cur, principal, data.visitor_id)
            if before is None:
                _admit_to_queue(cur, principal)
        if before is not None:
            session = before
            outbox.answer("chat.started", session)
            if session.status is ChatStatus.WAITING:
                _tell_own_position(cur, principal, outbox, session)
        else:
            session = _start(cur, principal, data, visitor, outbox, client_start_id)
    outbox.send()
    return session


def _start(
    cur: Cursor,
    principal: Principal,
    data: ChatSessionStart,
    visitor: VisitorContext,
    outbox: Outbox,
    client_start_id: str | None,
) -> ChatSession:
    """The new session of start_chat_session, with the queue lock held, and what it announces."""
    cur.execute(
        # Stamped with a clock read under the queue lock: the queue's order is the order sessions joined it.
        f"""INSERT INTO live_chat_sessions (user_id, visitor_id, visitor_name, visitor_email, status, visitor_ip,
            visitor_browser, created_at, session_start_time, client_start_id)
        SELECT %s, %s, %s, %s, %s, %s, %s, stamp.at, stamp.at, %s FROM (SELECT clock_timestamp() AS at) stamp
        RETURNING {SESSION_COLUMNS}""",  # noqa: S608
        (
            principal.tenant_id,
            data.visitor_id,
            data.visitor_name,
            data.visitor_email,
            ChatStatus.WAITING,
            visitor.ip,
            visitor.browser,
            client_start_id,
        ),
    )
    created = found(cur.fetchone(), "chat session")
    assigned = _drain_queue(cur, principal)
    mine = [row for row in assigned if row["id"] == created["id"]]
    others = [row for row in assigned if row["id"] != created["id"]]
    session = ChatSession.model_validate(mine[0] if mine else created)
    outbox.answer("chat.started", session)
    if mine:
        outbox.tell(_connections(_participants(cur, principal, session.id)), "chat.assigned", session)
    if others:
        _announce_assignments(cur, principal, outbox, others)
    if session.status is ChatStatus.WAITING:
        _tell_own_position(cur, principal, outbox, session)
    if others or session.status is ChatStatus.WAITING:  # the queue changed (a chat joined it, or others left it)
        broadcasts.request(cur, outbox, queue=True)
    return session


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


def end_chat_session(principal: Principal, session_id: UUID, *, caller: Caller | None = None) -> ChatSession:
    """endChatSession: `closed`, with the end time and the duration in whole seconds, both computed here from
    the start time. The assigned agent has one chat fewer, and the queue moves on. Every participant gets
    chat.ended."""
    outbox = Outbox(principal.tenant_id, caller)
    with tenant_transaction(principal.tenant_id) as cur:
        lock_queue(cur, principal)
        current = _lock_session_to_act(cur, principal, session_id, caller)
        if current["status"] == ChatStatus.CLOSED:
            raise Conflict("the chat session has already ended")
        if current["assigned_agent_id"] is not None:
            _lock_agents(cur, principal, {current["assigned_agent_id"]})
            _change_current_chats(cur, principal, current["assigned_agent_id"], -1)
        # clock_timestamp(), not now(): the transaction may have started a moment before the one that
        # created the session committed, and an end before the start is refused by the table.
        cur.execute(
            f"""UPDATE live_chat_sessions s
            SET status = 'closed', session_end_time = e.at,
                duration = round(extract(epoch FROM e.at - s.session_start_time))::integer
            FROM (SELECT greatest(clock_timestamp(), %s) AS at) e
            WHERE s.user_id = %s AND s.id = %s
            RETURNING {SESSION_COLUMNS}""",  # noqa: S608
            (current["session_start_time"], principal.tenant_id, session_id),
        )
        ended = _session(cur.fetchone())
        outbox.answer("chat.ended", ended)
        outbox.tell(_connections(_participants(cur, principal, session_id)), "chat.ended", ended)
        # A waiting chat left the queue (everyone behind it moved up); an active one freed capacity for it.
        if current["status"] == ChatStatus.WAITING or rebalance_queue(cur, principal, outbox):
            broadcasts.request(cur, outbox, queue=True)
    outbox.send()
    return ended


def transfer_chat_session(
    principal: Principal, session_id: UUID, to_agent_id: UUID, *, caller: Caller | None = None
) -> ChatSession:
    """Hand the session to another agent of the tenant, or assign a waiting one; either way it is `active`
    with the new agent. The previous agent is kept in `transferred_from_agent_id`; both agents'
    `current_chats` move by one; a full target agent is a 409. The visitor and both agents get
    chat.transferred; the capacity freed goes to the queue."""
    if principal.role is Role.VISITOR:
        raise Forbidden("only staff transfer chat sessions")
    outbox = Outbox(principal.tenant_id, caller)
    with tenant_transaction(principal.tenant_id) as cur:
        lock_queue(cur, principal)
        current = _lock_session_to_act(cur, principal, session_id, caller)
        if current["status"] == ChatStatus.CLOSED:
            raise Conflict("an ended chat session cannot be transferred")
        from_agent_id: UUID | None = current["assigned_agent_id"]
        if from_agent_id == to_agent_id:
            raise Conflict("the chat session is already assigned to this agent")
        transferred = _assign(cur, principal, current, to_agent_id)
        outbox.answer("chat.transferred", transferred)
        people = _participants(cur, principal, session_id, also=from_agent_id)  # the new agent's and the previous
        outbox.tell(_connections(people), "chat.transferred", transferred)
        drained = rebalance_queue(cur, principal, outbox)
        if current["status"] == ChatStatus.WAITING or drained:
            broadcasts.request(cur, outbox, queue=True)
    outbox.send()
    return transferred


def _assign(cur: Cursor, principal: Principal, current: dict[str, Any], to_agent_id: UUID) -> ChatSession:
    """Move the locked session `current` to `to_agent_id` (capacity checked), from its agent if it has one."""
    from_agent_id: UUID | None = current["assigned_agent_id"]
    agents = _lock_agents(cur, principal, {to_agent_id} | ({from_agent_id} if from_agent_id else set()))
    target = agents.get(to_agent_id)
    if target is None:
        raise NotFound("agent not found")
    if target["current_chats"] >= target["max_concurrent_chats"]:
        raise Conflict(f"the agent is at capacity: {target['current_chats']} of {target['max_concurrent_chats']} chats")
    cur.execute(
        """UPDATE support_agents SET current_chats = current_chats + 1, last_assigned_at = clock_timestamp()
        WHERE user_id = %s AND id = %s""",
        (principal.tenant_id, to_agent_id),
    )
    if from_agent_id is not None:
        _change_current_chats(cur, principal, from_agent_id, -1)
    cur.execute(
        f"""UPDATE live_chat_sessions
        SET assigned_agent_id = %s, transferred_from_agent_id = coalesce(%s, transferred_from_agent_id), status = %s
        WHERE user_id = %s AND id = %s RETURNING {SESSION_COLUMNS}""",  # noqa: S608
        (to_agent_id, from_agent_id, ChatStatus.ACTIVE, principal.tenant_id, current["id"]),
    )
    return _session(cur.fetchone())


def claim_chat_session(principal: Principal, session_id: UUID, *, caller: Caller | None = None) -> ChatSession:
    """An agent takes a waiting session for themself (capacity checked): chat.assigned to them and the visitor;
    every staff connection's queue loses it in the next staff broadcast."""
    if principal.agent_id is None:
        raise Forbidden("only an agent (a token with agent_id) claims chat sessions")
    outbox = Outbox(principal.tenant_id, caller)
    with tenant_transaction(principal.tenant_id) as cur:
        lock_queue(cur, principal)
        current = _lock_session(cur, principal, session_id)
        if current["status"] != ChatStatus.WAITING:
            raise Conflict("this chat session is not waiting: someone has it already, or it has ended")
        claimed = _assign(cur, principal, current, principal.agent_id)
        outbox.answer("chat.assigned", claimed)
        outbox.tell(_connections(_participants(cur, principal, session_id)), "chat.assigned", claimed)
        broadcasts.request(cur, outbox, queue=True)
    outbox.send()
    return claimed


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
    outbox.send()
    return rated


# --- Messages --------------------------------------------------------------------------------------------------


def list_chat_messages(
    principal: Principal, session_id: UUID, *, limit: int, cursor: str | None = None
) -> Page[ChatMessage]:
    """getChatMessages: oldest first, keyset-paginated."""
    params: dict[str, Any] = {"tenant": principal.tenant_id, "session": session_id, "limit": limit + 1}
    after = sql.SQL("")
    if cursor:
        params["after_at"], params["after_id"] = decode_cursor(cursor)
        after = sql.SQL("AND (created_at, id) > (%(after_at)s, %(after_id)s)")
    with tenant_transaction(principal.tenant_id) as cur:
        _read_session(cur, principal, session_id)
        cur.execute(
            sql.SQL(
                "SELECT {columns} FROM chat_messages WHERE user_id = %(tenant)s AND session_id = %(session)s "
                "{after} ORDER BY created_at, id LIMIT %(limit)s"
            ).format(columns=sql.SQL(MESSAGE_COLUMNS), after=after),
            params,
        )
        rows = cur.fetchall()
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
    stored (`resent`), never a second copy; without one (the HTTP route) the call is sent only once (`once`)."""
    principal.require_own_sender_type(data.sender_type)
    outbox = Outbox(principal.tenant_id, caller)
    params = (
        *_access_params(principal, session_id, caller),
        principal.subject,
        data.sender_type,
        data.sender_name,
        data.message,
        data.attachment_url,
        data.attachment_type,
        client_message_id,
    )
    [[row]] = pipelined(principal.tenant_id, [(_SEND_MESSAGE, params)], once=client_message_id is None)
    _refuse(row["outcome"])
    message = ChatMessage.model_validate(row)
    outbox.answer("message.new", message)
    if row["outcome"] == "new":  # a resend is answered to the caller only
        outbox.tell(row["connection_ids"] or [], "message.new", message)
    outbox.send()
    return message


# The message's columns are those of MESSAGE_COLUMNS and more (client_sender, which ChatMessage ignores).
_SEND_MESSAGE = """SELECT outcome, connection_ids, (message).*
FROM chat_send_message(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"""

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
