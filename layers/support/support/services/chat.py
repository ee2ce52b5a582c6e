"""Live chat over HTTP: sessions (start, list, end, transfer, rating) and their messages (post, list, read).

One function per operation, each taking the caller's `Principal`, so the WebSocket API reuses them as they are.

Lifecycle: a session starts `waiting` (no agent); a transfer to an agent assigns it (`active`), and a transfer
from one agent to another keeps it `active` with the new agent (`transferred_from_agent_id` records the previous
one); ending makes it `closed` for good. So `?status=active` lists exactly the chats an agent is handling, and a
session only ever moves forward (waiting, active, closed): totals kept per status, such as the dashboard's, then
always lock their rows in the same order. The API never sets `transferred` (see ChatStatus).

Counters, kept in the same transaction as the change they count:
* an agent's `current_chats` is the number of sessions assigned to them that are not closed, and never goes
  above their `max_concurrent_chats` (a full agent is a 409);
* a session's `total_messages` counts every message, `message_count` only the visitor's and the agents'
  (system messages excluded).

Lock order, to keep concurrent transfers and ends free of deadlocks: the session first, then the agents
involved in the order of their ids (FOR UPDATE for the session; FOR NO KEY UPDATE for agents, the lock the
database's own figure triggers take: it does not wait for the FOR KEY SHARE a foreign key check holds on an
agent, so two hand-overs in opposite directions cannot deadlock on it).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import sql

from support.auth import Principal
from support.db import tenant_transaction
from support.db.connection import Cursor
from support.errors import Conflict, NotFound, found
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
from support.models.tickets import SenderType
from support.pagination import Page, decode_cursor, page_of

SESSION_COLUMNS = """id, user_id, visitor_id, visitor_name, visitor_email, status, assigned_agent_id,
    transferred_from_agent_id, visitor_ip, visitor_browser, session_start_time, session_end_time, total_messages,
    message_count, duration, rating, feedback, created_at, updated_at"""
MESSAGE_COLUMNS = """id, session_id, user_id, sender_type, sender_name, message, attachment_url, attachment_type,
    is_read, read_at, created_at"""

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


def _require_session(cur: Cursor, principal: Principal, session_id: UUID) -> None:
    cur.execute("SELECT 1 FROM live_chat_sessions WHERE user_id = %s AND id = %s", (principal.tenant_id, session_id))
    found(cur.fetchone(), "chat session")


def _lock_agents(cur: Cursor, principal: Principal, agent_ids: set[UUID]) -> dict[UUID, dict[str, Any]]:
    """The agents' rows, locked in id order (the same order in every transaction, so no deadlock)."""
    cur.execute(
        """SELECT id, current_chats, max_concurrent_chats FROM support_agents
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


def start_chat_session(principal: Principal, data: ChatSessionStart, visitor: VisitorContext) -> ChatSession:
    """startChatSession: a new session, `waiting` for an agent. `visitor` is what the server saw of the
    connection (source IP, User-Agent), never what the client claims."""
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            f"""INSERT INTO live_chat_sessions
                (user_id, visitor_id, visitor_name, visitor_email, status, visitor_ip, visitor_browser)
            VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {SESSION_COLUMNS}""",  # noqa: S608
            (
                principal.tenant_id,
                data.visitor_id,
                data.visitor_name,
                data.visitor_email,
                ChatStatus.WAITING,
                visitor.ip,
                visitor.browser,
            ),
        )
        return _session(cur.fetchone())


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
        cur.execute(
            f"SELECT {SESSION_COLUMNS} FROM live_chat_sessions WHERE user_id = %s AND id = %s",  # noqa: S608
            (principal.tenant_id, session_id),
        )
        return _session(cur.fetchone())


def end_chat_session(principal: Principal, session_id: UUID) -> ChatSession:
    """endChatSession: `closed`, with the end time and the duration in whole seconds, both computed here from
    the start time. The assigned agent has one chat fewer."""
    with tenant_transaction(principal.tenant_id) as cur:
        current = _lock_session(cur, principal, session_id)
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
        return _session(cur.fetchone())


def transfer_chat_session(principal: Principal, session_id: UUID, to_agent_id: UUID) -> ChatSession:
    """Hand the session to another agent of the tenant, or assign a waiting one; either way it is `active`
    with the new agent. The previous agent is kept in `transferred_from_agent_id`; both agents'
    `current_chats` move by one; a full target agent is a 409."""
    with tenant_transaction(principal.tenant_id) as cur:
        current = _lock_session(cur, principal, session_id)
        if current["status"] == ChatStatus.CLOSED:
            raise Conflict("an ended chat session cannot be transferred")
        from_agent_id: UUID | None = current["assigned_agent_id"]
        if from_agent_id == to_agent_id:
            raise Conflict("the chat session is already assigned to this agent")
        agents = _lock_agents(cur, principal, {to_agent_id} | ({from_agent_id} if from_agent_id else set()))
        target = agents.get(to_agent_id)
        if target is None:
            raise NotFound("agent not found")
        if target["current_chats"] >= target["max_concurrent_chats"]:
            raise Conflict(
                f"the agent is at capacity: {target['current_chats']} of {target['max_concurrent_chats']} chats"
            )
        _change_current_chats(cur, principal, to_agent_id, +1)
        if from_agent_id is not None:
            _change_current_chats(cur, principal, from_agent_id, -1)
        cur.execute(
            f"""UPDATE live_chat_sessions
            SET assigned_agent_id = %s, transferred_from_agent_id = coalesce(%s, transferred_from_agent_id),
                status = %s
            WHERE user_id = %s AND id = %s RETURNING {SESSION_COLUMNS}""",  # noqa: S608
            (to_agent_id, from_agent_id, ChatStatus.ACTIVE, principal.tenant_id, session_id),
        )
        return _session(cur.fetchone())


def rate_chat_session(principal: Principal, session_id: UUID, data: ChatRating) -> ChatSession:
    """The visitor's rating (1 to 5) and feedback: once, after the session has ended."""
    with tenant_transaction(principal.tenant_id) as cur:
        current = _lock_session(cur, principal, session_id)
        if current["status"] != ChatStatus.CLOSED:
            raise Conflict("a chat session is rated after it has ended")
        if current["rating"] is not None:
            raise Conflict("this chat session has already been rated")
        cur.execute(
            f"""UPDATE live_chat_sessions SET rating = %s, feedback = %s
            WHERE user_id = %s AND id = %s RETURNING {SESSION_COLUMNS}""",  # noqa: S608
            (data.rating, data.feedback, principal.tenant_id, session_id),
        )
        return _session(cur.fetchone())


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
        _require_session(cur, principal, session_id)
        cur.execute(
            sql.SQL(
                "SELECT {columns} FROM chat_messages WHERE user_id = %(tenant)s AND session_id = %(session)s "
                "{after} ORDER BY created_at, id LIMIT %(limit)s"
            ).format(columns=sql.SQL(MESSAGE_COLUMNS), after=after),
            params,
        )
        rows = cur.fetchall()
    return page_of(rows, limit, ChatMessage.model_validate)


def add_chat_message(principal: Principal, session_id: UUID, data: ChatMessageCreate) -> ChatMessage:
    """addChatMessage: counted in the session's `total_messages` (and, unless a system message, in its
    `message_count`)."""
    with tenant_transaction(principal.tenant_id) as cur:
        current = _lock_session(cur, principal, session_id)
        if current["status"] == ChatStatus.CLOSED:
            raise Conflict("an ended chat session takes no new messages")
        # clock_timestamp() under the session lock: messages are stamped in the order they commit, so a
        # reader paging by (created_at, id) never finds an older message appear behind its cursor.
        cur.execute(
            f"""INSERT INTO chat_messages
                (session_id, user_id, sender_type, sender_name, message, attachment_url, attachment_type, created_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, clock_timestamp()) RETURNING {MESSAGE_COLUMNS}""",  # noqa: S608
            (
                session_id,
                principal.tenant_id,
                data.sender_type,
                data.sender_name,
                data.message,
                data.attachment_url,
                data.attachment_type,
            ),
        )
        created = cur.fetchone()
        cur.execute(
            """UPDATE live_chat_sessions
            SET total_messages = total_messages + 1, message_count = message_count + %s
            WHERE user_id = %s AND id = %s""",
            (int(data.sender_type in CONVERSATION_SENDERS), principal.tenant_id, session_id),
        )
    return ChatMessage.model_validate(created)


def _side_read_by(principal: Principal) -> SenderType:
    """Whose messages the caller reads. Every HTTP caller is desk staff (an admin or an agent), so they read
    the visitor's; system messages are addressed to no one and are never marked."""
    del principal  # the role does not matter yet: a visitor principal (WebSocket) would read the agents'
    return SenderType.CUSTOMER


def mark_chat_messages_read(principal: Principal, session_id: UUID, up_to_message_id: UUID) -> ChatReadReceipt:
    """Read receipts: the other side's unread messages up to and including `up_to_message_id` (by position in
    the session) become read now. Returns how many changed; already read ones keep their `read_at`."""
    with tenant_transaction(principal.tenant_id) as cur:
        _require_session(cur, principal, session_id)
        cur.execute(
            "SELECT created_at, id FROM chat_messages WHERE user_id = %s AND session_id = %s AND id = %s",
            (principal.tenant_id, session_id, up_to_message_id),
        )
        last = cur.fetchone()
        if last is None:
            raise NotFound("message not found in this chat session")
        cur.execute(
            """UPDATE chat_messages SET is_read = true, read_at = now()
            WHERE user_id = %s AND session_id = %s AND sender_type = %s AND NOT is_read
              AND (created_at, id) <= (%s, %s)""",
            (principal.tenant_id, session_id, _side_read_by(principal), last["created_at"], last["id"]),
        )
        return ChatReadReceipt(marked_count=cur.rowcount)
