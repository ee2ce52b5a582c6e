"""WebSocket connections of a tenant and who hears what happens in a chat session.

A connection row is written on $connect (the caller as the authorizer saw it) and deleted on $disconnect, or
when a post to it answers 410 Gone (the client vanished without a goodbye). Who hears about a chat session and who
may act on it are the database's rules (chat_participants and chat_refusal, sql/definitions/chat.sql), which the
chat service calls.

`Outbox` collects what a service wants to announce while its transaction runs, and sends it after the commit
(support.realtime): everyone else's events, then closes the connections that lost their right to stay open (a
revoked widget key's, an expired staff token's). The caller's own answer (with its requestId) is not posted: it goes
into the caller's `Reply`, which the WebSocket function returns as the route's response (support.websocket), so
API Gateway sends it to the caller after the function returns, after every post the action made. A `Caller`
without a `Reply` (an answer given outside the route's own invocation, or one that must arrive before the server
closes the connection) is answered by a post, with the outbox's other deliveries and before its closes.

A connection keeps only the rights it was opened with: a staff connection records its token's expiry
(`token_expires_at`, from the authorizer's context) and acts until then; a visitor's connection lives while its
widget key does (a revoke closes it, and every message checks the key); a visitor's connect token opens one
connection (`spend_connect_token`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from pydantic import BaseModel

from support.auth import Principal, Role
from support.db import Prelude, pipelined, prelude, tenant_transaction, write_one
from support.db.connection import Cursor
from support.observability import logger
from support.realtime import Delivery, deliver, disconnect, event
from support.services.rate_limits import ACTIONS_PER_CONNECTION, STAFF_ACTIONS_PER_CONNECTION, Bucket, level_sql
from support.visitors import VisitorClaims

# The sides of a chat session's connections, as chat_participants (sql/definitions/chat.sql) names them.
VISITOR_SIDE = "visitor"
STAFF_SIDE = "staff"


class Reply:
    """The answer to one WebSocket request, held until the function returns it as the route's response: one event
    at most (API Gateway sends one route response per message)."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event: dict[str, Any] | None = None


@dataclass(frozen=True)
class Caller:
    """The WebSocket connection a request came on, to answer it there: into `reply` (the route's response) when
    the request is being served by its route's invocation, else by a post to the connection."""

    connection_id: str
    request_id: str | None = None
    # What API Gateway saw of the connection (requestContext.identity), for a visitor's session record.
    source_ip: str | None = None
    user_agent: str | None = None
    reply: Reply | None = field(default=None, compare=False, repr=False)


def _wire(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json", by_alias=True)
    return data


@dataclass
class Outbox:
    tenant_id: UUID
    caller: Caller | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    closing: list[str] = field(default_factory=list)
    answered: dict[str, Any] | None = None  # the caller's answer, given after the commit by `send`
    follow_ups: list[Callable[[], None]] = field(default_factory=list)

    def answer(self, event_type: str, data: Any) -> None:
        """The caller's own answer (only over WebSocket: an HTTP caller has its response). Held until `send`, so a
        transaction that fails after it answers nothing."""
        if self.caller is not None:
            self.answered = event(event_type, _wire(data), request_id=self.caller.request_id)

    def tell(self, connection_ids: Iterable[str], event_type: str, data: Any, *, caller_too: bool = False) -> None:
        """Everyone named, but the caller's own connection only with `caller_too`: the caller already gets the
        answer to its request, and is told separately only of what else happened (an assignment, the queue)."""
        wire = event(event_type, _wire(data))
        mine = None if caller_too or self.caller is None else self.caller.connection_id
        for connection_id in dict.fromkeys(connection_ids):
            if connection_id != mine:
                self.deliveries.append(Delivery(connection_id, wire))

    def close(self, connection_ids: Iterable[str]) -> None:
        """Close these connections once everything else is sent (so an error event reaches them first)."""
        self.closing.extend(connection_ids)

    def after_send(self, follow_up: Callable[[], None]) -> None:
        """Run `follow_up` after the commit once everything else is sent (a staff broadcast's start: the caller's
        answer never waits for it)."""
        self.follow_ups.append(follow_up)

    def send(self) -> None:
        """After the commit: post everything, forget the connections that turned out to be gone, then close (and
        forget) those to be closed: their $disconnect would delete their rows too, but not before more fan-out
        could find them. Then the follow-ups (a staff broadcast's start). The caller's answer goes into its `Reply`
        (the route's response, sent when the function returns, after all this); without one, or when the reply
        already holds an answer, it is posted with the rest."""
        answered, self.answered = self.answered, None
        if answered is not None and self.caller is not None:
            reply = self.caller.reply
            if reply is not None and reply.event is None:
                reply.event = answered
            else:
                if reply is not None:  # no action answers twice; should one, the second is posted, not lost
                    logger.warning("a second answer to one request is posted", extra={"type": answered["type"]})
                self.deliveries.insert(0, Delivery(self.caller.connection_id, answered))
        gone = deliver(self.deliveries)
        self.deliveries = []
        closing, self.closing = list(dict.fromkeys(self.closing)), []
        if closing:
            disconnect(closing)
        if gone or closing:
            forget_connections(self.tenant_id, gone | set(closing))
        follow_ups, self.follow_ups = self.follow_ups, []
        for follow_up in follow_ups:
            follow_up()


def open_connection(principal: Principal, connection_id: str, session_id: UUID | None = None) -> bool:
    """Record the connection; False (refuse it) for a visitor whose widget key was revoked since the authorizer
    admitted it, or for a staff connection that would follow (`session_id`) a chat that is not its tenant's. The
    key's row is read FOR SHARE, so a revoke (which updates it) waits for this insert to commit and then finds the
    connection to close, or this waits for the revoke and sees the key revoked: no connection slips between the
    two. One statement in one pipeline (one round trip); run twice on a broken connection, it finds its row there
    and adds nothing.

    A staff connection with a `session_id` is a chat's own (a console's chat window): it hears that session's
    events only (chat_participants, sql/definitions/chat.sql), and no staff broadcast. A visitor's connection
    follows no single chat (it hears its own chats only in any case): its `session_id` is ignored."""
    visitor = principal.role is Role.VISITOR
    params = {
        "connection": connection_id,
        "tenant": principal.tenant_id,
        "role": principal.role,
        "agent": principal.agent_id,
        "visitor": principal.visitor_id if visitor else None,
        "widget_key": principal.widget_key if visitor else None,
        "expires": principal.token_expires_at,
        "check_key": visitor,
        "session": None if visitor else session_id,
    }
    [[row]] = pipelined(principal.tenant_id, [(_OPEN_CONNECTION, params)])
    return bool(row["admitted"])


# A visitor's connection only while its widget key is live (its row held FOR SHARE until the commit); staff's always,
# but one that follows a chat only when the chat is its tenant's (row-level security hides another's).
_OPEN_CONNECTION = """WITH key AS (
    SELECT revoked_at IS NULL AS live FROM widget_keys
    WHERE %(check_key)s AND user_id = %(tenant)s AND widget_key = %(widget_key)s FOR SHARE),
admitted AS (SELECT (NOT %(check_key)s OR coalesce((SELECT live FROM key), false))
    AND (%(session)s::uuid IS NULL
         OR EXISTS (SELECT FROM live_chat_sessions WHERE user_id = %(tenant)s AND id = %(session)s::uuid)) AS yes),
recorded AS (
    INSERT INTO ws_connections
        (connection_id, user_id, role, agent_id, visitor_id, widget_key, token_expires_at, session_id)
    SELECT %(connection)s, %(tenant)s, %(role)s, %(agent)s, %(visitor)s, %(widget_key)s, %(expires)s, %(session)s
    FROM admitted WHERE admitted.yes
    ON CONFLICT (connection_id) DO NOTHING)
SELECT yes AS admitted FROM admitted"""


def key_connections(cur: Cursor, tenant_id: UUID, widget_key: str) -> list[str]:
    """The open visitor connections that came in through a widget key."""
    cur.execute(
        "SELECT connection_id FROM ws_connections WHERE user_id = %s AND role = 'visitor' AND widget_key = %s",
        (tenant_id, widget_key),
    )
    return [row["connection_id"] for row in cur.fetchall()]


def is_agent_of_tenant(principal: Principal) -> bool:
    """Whether the agent a staff token names is one of its tenant's (the authorizer's check: a connection row
    names its agent, and a token naming none of the tenant's would be a foreign key violation on $connect)."""
    if principal.agent_id is None:
        return True
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            "SELECT 1 FROM support_agents WHERE user_id = %s AND id = %s", (principal.tenant_id, principal.agent_id)
        )
        return cur.fetchone() is not None


def spend_connect_token(cur: Cursor, claims: VisitorClaims) -> bool:
    """Record a visitor connect token's first use; False if it was used before (or carries no id). In the
    authorizer's transaction of the token's tenant, which also deletes the tenant's records of tokens that have
    expired (they can no longer verify, so they need no record): the table holds the last five minutes."""
    if claims.token_id is None:
        return False
    cur.execute("DELETE FROM visitor_connect_tokens WHERE user_id = %s AND expires_at < now()", (claims.tenant_id,))
    cur.execute(
        """INSERT INTO visitor_connect_tokens (token_id, user_id, expires_at) VALUES (%s, %s, %s)
        ON CONFLICT (token_id) DO NOTHING""",
        (claims.token_id, claims.tenant_id, claims.expires_at),
    )
    return cur.rowcount == 1


_ACTION_LEVEL = level_sql("action_tokens", "action_refilled_at", "%(burst)s", "%(rate)s")
# One statement, the only one a message costs before its action: take a token if the connection's bucket holds one,
# else read its level (from the snapshot before the update, which is the level the update refused); and, for a
# visitor, whether the widget key is still live, so that a revoke stops a connection the revoke could not close. No
# row: a connection this desk did not record, served as before (nothing to count it against).
_CHECK_ACTION = f"""WITH took AS (
    UPDATE ws_connections SET action_tokens = {_ACTION_LEVEL} - 1, action_refilled_at = statement_timestamp()
    WHERE user_id = %(tenant)s AND connection_id = %(connection)s AND {_ACTION_LEVEL} >= 1
    RETURNING 1)
SELECT EXISTS (SELECT FROM took) AS admitted,
    (SELECT {_ACTION_LEVEL} FROM ws_connections WHERE user_id = %(tenant)s AND connection_id = %(connection)s) AS level,
    (SELECT revoked_at IS NULL FROM widget_keys WHERE user_id = %(tenant)s AND widget_key = %(widget_key)s) AS key_live
"""  # noqa: S608 (fixed text; every value is bound)


@dataclass(frozen=True)
class ActionCheck:
    """What a connection's message may do: `retry_after` None to go ahead, else the whole seconds to wait;
    `key_live` False when a visitor's widget key has been revoked (staff: always True)."""

    retry_after: int | None
    key_live: bool


def _action_params(principal: Principal, connection_id: str) -> tuple[Bucket, dict[str, Any]]:
    visitor = principal.role is Role.VISITOR
    bucket = ACTIONS_PER_CONNECTION if visitor else STAFF_ACTIONS_PER_CONNECTION
    params = {"tenant": principal.tenant_id, "connection": connection_id, "burst": bucket.burst}
    params |= {"rate": bucket.per_second, "widget_key": principal.widget_key if visitor else None}
    return bucket, params


def check_action(principal: Principal, connection_id: str) -> ActionCheck:
    """A WebSocket action's token from its connection's bucket (ACTIONS_PER_CONNECTION for a visitor's,
    STAFF_ACTIONS_PER_CONNECTION for staff), kept on the connection's row so that it holds across execution
    environments, and a visitor's widget key still live: one round trip."""
    bucket, params = _action_params(principal, connection_id)
    row = write_one(principal.tenant_id, _CHECK_ACTION, params)
    key_live = principal.role is not Role.VISITOR or bool(row and row["key_live"])
    if row is None or row["admitted"] or row["level"] is None:
        return ActionCheck(None, key_live)
    return ActionCheck(bucket.retry_after(float(row["level"])), key_live)


# The same check as the first statement of the action's own write transaction (db.prelude): it takes the token, or
# refuses by raising (ws_refuse, sql/definitions/chat.sql: SQLSTATE WSR29 with the bucket's level, WSK10 for a
# revoked widget key), which aborts the transaction, so the action does nothing and no token is taken.
_TAKE_ACTION = f"""WITH took AS (
    UPDATE ws_connections SET action_tokens = {_ACTION_LEVEL} - 1, action_refilled_at = statement_timestamp()
    WHERE user_id = %(tenant)s AND connection_id = %(connection)s AND {_ACTION_LEVEL} >= 1
    RETURNING 1),
state AS (SELECT EXISTS (SELECT FROM took) AS admitted,
    (SELECT {_ACTION_LEVEL} FROM ws_connections WHERE user_id = %(tenant)s AND connection_id = %(connection)s) AS level,
    (SELECT revoked_at IS NULL FROM widget_keys WHERE user_id = %(tenant)s AND widget_key = %(widget_key)s) AS key_live)
SELECT CASE
    WHEN %(widget_key)s::text IS NOT NULL AND key_live IS NOT TRUE THEN public.ws_refuse('WSK10', '')
    WHEN NOT admitted AND level IS NOT NULL THEN public.ws_refuse('WSR29', level::text)
    END AS refused
FROM state
"""  # noqa: S608 (fixed text; every value is bound)
_RATE_LIMITED, _KEY_REVOKED = "WSR29", "WSK10"


def is_refusal(error: BaseException) -> bool:
    """Whether `error` is the connection check's refusal raised inside an action's transaction (action_checked
    turns it into ActionRefused): not the action's failure, so the action's own error handling lets it through."""
    return isinstance(error, psycopg.Error) and error.diag.sqlstate in (_RATE_LIMITED, _KEY_REVOKED)


class ActionRefused(Exception):
    """The connection may not act now: over its rate (`retry_after` seconds) or its widget key revoked."""

    def __init__(self, check: ActionCheck) -> None:
        super().__init__("action refused")
        self.check = check


@contextmanager
def action_checked(principal: Principal, connection_id: str) -> Iterator[None]:
    """check_action for an action that writes first (sendMessage, markRead): the token is taken by the first
    statement of the action's own write transaction instead of a transaction of its own, one round trip fewer per
    message. Raises ActionRefused when the check refuses (the action did nothing). If the action made no pipelined
    write (it failed validation, or was refused before writing), the check is made on its own afterwards, so every
    message still counts, and a refusal then overrides the action's own error."""
    bucket, params = _action_params(principal, connection_id)
    pending = Prelude(principal.tenant_id, _TAKE_ACTION, params)
    try:
        with prelude(pending):
            yield
    except psycopg.Error as error:
        state = error.diag.sqlstate
        if state == _KEY_REVOKED:
            raise ActionRefused(ActionCheck(None, key_live=False)) from None
        if state == _RATE_LIMITED:
            retry_after = bucket.retry_after(float(error.diag.message_detail or 0))
            raise ActionRefused(ActionCheck(retry_after, key_live=True)) from None
        raise
    except BaseException:
        if not pending.committed:
            _check_alone(principal, connection_id)
        raise
    if not pending.committed:
        _check_alone(principal, connection_id)


def _check_alone(principal: Principal, connection_id: str) -> None:
    check = check_action(principal, connection_id)
    if check.retry_after is not None or not check.key_live:
        raise ActionRefused(check)


def close_connection(principal: Principal, connection_id: str) -> None:
    forget_connections(principal.tenant_id, [connection_id])


def forget_connections(tenant_id: UUID, connection_ids: Iterable[str]) -> None:
    """Delete the connections' rows (and so their joins): one round trip, harmless to run twice."""
    statement = "DELETE FROM ws_connections WHERE user_id = %s AND connection_id = ANY(%s)"
    pipelined(tenant_id, [(statement, (tenant_id, list(connection_ids)))])


def visitor_connections(cur: Cursor, tenant_id: UUID, visitor_ids: Iterable[str]) -> dict[str, list[str]]:
    cur.execute(
        """SELECT visitor_id, connection_id FROM ws_connections
        WHERE user_id = %s AND role = 'visitor' AND visitor_id = ANY(%s)""",
        (tenant_id, list(set(visitor_ids))),
    )
    found: dict[str, list[str]] = {}
    for row in cur.fetchall():
        found.setdefault(row["visitor_id"], []).append(row["connection_id"])
    return found


def staff_connections(cur: Cursor, tenant_id: UUID) -> list[str]:
    """The staff connections that hear the staff broadcasts: all but a chat's own (which follow one chat)."""
    cur.execute(
        "SELECT connection_id FROM ws_connections WHERE user_id = %s AND role <> 'visitor' AND session_id IS NULL",
        (tenant_id,),
    )
    return [row["connection_id"] for row in cur.fetchall()]
