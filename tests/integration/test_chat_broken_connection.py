"""A message (and a chat) is stored once whatever the connection does: sendMessage is one pipeline (BEGIN, the
binding, chat_send_message, COMMIT), startChat one of chat_start, and a pipeline found broken may be run again.
Through a proxy in front of the real PostgreSQL that cuts the connection at the worst moment (after the server
committed, before the client heard) or the first (the client's next request never arrives), the service runs as a
Lambda's would: the stored rows show what happened."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from local.database import DatabaseUrls, connected_as
from local.pg_proxy import RoundTripProxy
from support.auth import Principal, Role
from support.db import tenant_transaction
from support.models.chat import ChatMessageCreate, ChatSessionStart, VisitorContext
from support.services import chat
from support.services.connections import Caller


@pytest.fixture
def proxy(db: DatabaseUrls) -> Iterator[RoundTripProxy]:
    """The layer's connection goes through the proxy for the test (as the runtime role)."""
    params = conninfo_to_dict(db.app)
    proxy = RoundTripProxy(str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))
    url = make_conninfo(db.app, host="127.0.0.1", hostaddr="127.0.0.1", port=str(proxy.port))
    with connected_as(url):
        yield proxy
    proxy.close()


def _session(tenant: UUID) -> tuple[Principal, UUID]:
    visitor = Principal(tenant_id=tenant, role=Role.VISITOR, subject="visitor:v-1", visitor_id="v-1", widget_key="k")
    session = chat.start_chat_session(visitor, ChatSessionStart(visitor_id="v-1"), VisitorContext())
    with tenant_transaction(tenant) as cur:  # warm: the cached connection has answered before the cut
        cur.execute("SELECT 1")
    return visitor, session.id


def _stored(db: DatabaseUrls, session_id: UUID) -> tuple[list[tuple[Any, ...]], tuple[Any, ...] | None]:
    with psycopg.connect(db.admin) as conn:
        messages = conn.execute(
            "SELECT id, client_message_id, message FROM chat_messages WHERE session_id = %s", (session_id,)
        ).fetchall()
        counters = conn.execute(
            "SELECT total_messages, message_count FROM live_chat_sessions WHERE id = %s", (session_id,)
        ).fetchone()
    return messages, counters


def test_a_send_whose_commit_was_not_heard_is_run_again_and_answers_the_stored_message(
    db: DatabaseUrls, tenant: UUID, proxy: RoundTripProxy
) -> None:
    # Given a visitor's session, and a connection that breaks right after the server commits the next write
    visitor, session_id = _session(tenant)
    proxy.cut_after_commit()

    # When the visitor's WebSocket send (with its clientMessageId) goes out on it
    data = ChatMessageCreate(sender_type="customer", message="Where is my parcel?")
    answered = chat.add_chat_message(visitor, session_id, data, caller=Caller("conn-1"), client_message_id="c-1")

    # Then the pipeline ran twice (the cut happened), the second run found the first one's message: one stored,
    # counted once, and it is the one answered
    assert proxy.cuts == 1
    messages, counters = _stored(db, session_id)
    assert messages == [(answered.id, "c-1", "Where is my parcel?")]
    assert counters == (1, 1)


def test_a_send_without_a_client_message_id_is_never_sent_twice(
    db: DatabaseUrls, tenant: UUID, proxy: RoundTripProxy
) -> None:
    # Given a session, and a connection that breaks right after the server commits the next write
    _, session_id = _session(tenant)
    admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="admin")
    proxy.cut_after_commit()

    # When staff post over HTTP (no clientMessageId: nothing would tell a second run from a new message)
    data = ChatMessageCreate(sender_type="agent", message="Here is the label")
    with pytest.raises(psycopg.OperationalError):
        chat.add_chat_message(admin, session_id, data)

    # Then the error is raised as it is (the outcome is unknown to the client, as with any lost COMMIT), and the
    # message was stored by the one run there was, once
    messages, counters = _stored(db, session_id)
    assert [m[2] for m in messages] == ["Here is the label"]
    assert counters == (1, 1)


def test_a_send_on_a_connection_found_dead_is_made_on_a_new_one(
    db: DatabaseUrls, tenant: UUID, proxy: RoundTripProxy
) -> None:
    # Given a session, and a cached connection that turns out dead when next used (the server never hears)
    _, session_id = _session(tenant)
    admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="admin")
    proxy.cut_next_request()

    # When staff post over HTTP
    message = chat.add_chat_message(admin, session_id, ChatMessageCreate(sender_type="agent", message="Hi"))

    # Then the post is made once, on a new connection (BEGIN and the binding went first, alone: nothing had been
    # written when the old connection failed)
    assert proxy.cuts == 1
    messages, counters = _stored(db, session_id)
    assert messages == [(message.id, None, "Hi")]
    assert counters == (1, 1)


def _sessions_of(db: DatabaseUrls, tenant: UUID, visitor_id: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db.admin) as conn:
        return conn.execute(
            "SELECT id, client_start_id, status FROM live_chat_sessions WHERE user_id = %s AND visitor_id = %s",
            (tenant, visitor_id),
        ).fetchall()


def test_a_start_whose_commit_was_not_heard_is_run_again_and_answers_the_started_session(
    db: DatabaseUrls, tenant: UUID, proxy: RoundTripProxy
) -> None:
    # Given a warm connection that breaks right after the server commits the next write
    _session(tenant)
    visitor = Principal(tenant_id=tenant, role=Role.VISITOR, subject="visitor:v-2", visitor_id="v-2", widget_key="k")
    proxy.cut_after_commit()

    # When a visitor's WebSocket startChat (with its clientStartId: one call of chat_start) goes out on it
    started = chat.start_chat_session(
        visitor, ChatSessionStart(visitor_id="v-2"), VisitorContext(), caller=Caller("conn-2"), client_start_id="s-1"
    )

    # Then the pipeline ran twice, and the second run answered the session the first one started: one session
    assert proxy.cuts == 1
    assert _sessions_of(db, tenant, "v-2") == [(started.id, "s-1", "waiting")]


def test_a_start_without_a_client_start_id_is_never_sent_twice(
    db: DatabaseUrls, tenant: UUID, proxy: RoundTripProxy
) -> None:
    # Given a warm connection that breaks right after the server commits the next write
    _session(tenant)
    admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="admin")
    proxy.cut_after_commit()

    # When staff start a chat over HTTP (no clientStartId, and staff may hold several: a second run would start
    # another)
    with pytest.raises(psycopg.OperationalError):
        chat.start_chat_session(admin, ChatSessionStart(visitor_id="v-3"), VisitorContext())

    # Then the error is raised as it is, and the one run there was started one session
    assert [row[2] for row in _sessions_of(db, tenant, "v-3")] == ["waiting"]
