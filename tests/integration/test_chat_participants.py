"""The chat's participant rules (chat_refusal and chat_participants, sql/definitions/chat.sql) on the lifecycle's
paths over WebSocket: end, transfer and rate act only for the session's own (its visitor, its agent, staff that
joined it, an admin), and both ends of a transfer hear of it.

Real database and services; the management API records what each connection is sent (tests.management_api).
"""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from support.auth import Principal, Role
from support.db import tenant_transaction
from support.errors import Forbidden, NotFound
from support.models.agents import AgentCreate, AgentStatus
from support.models.chat import ChatRating, ChatSessionStart, VisitorContext
from support.services import agents, chat, connections
from tests.management_api import Posts, posts

__all__ = ["posts"]  # the fixture, used by name below


def _agent(admin: Principal, name: str) -> Principal:
    created = agents.create_agent(
        admin,
        AgentCreate(agent_name=name, agent_email=f"{uuid4()}@desk.example", status=AgentStatus.OFFLINE),
    )
    agent = Principal(tenant_id=admin.tenant_id, role=Role.AGENT, subject=name.lower(), agent_id=created.id)
    assert connections.open_connection(agent, f"{name.lower()}-conn")
    return agent


def _visitor(tenant: UUID, visitor_id: str) -> Principal:
    with tenant_transaction(tenant) as cur:
        cur.execute(
            """INSERT INTO ws_connections (connection_id, user_id, role, visitor_id, widget_key)
            VALUES (%s, %s, 'visitor', %s, 'wk_test')""",
            (f"{visitor_id}-conn", tenant, visitor_id),
        )
    return Principal(tenant_id=tenant, role=Role.VISITOR, subject=visitor_id, visitor_id=visitor_id)


def _caller(principal: Principal) -> connections.Caller:
    return connections.Caller(f"{principal.visitor_id or principal.subject}-conn")


def test_only_the_sessions_own_end_transfer_and_rate_it_and_both_ends_of_a_transfer_hear_of_it(
    posts: Posts, tenant: UUID
) -> None:
    # Given a chat of Lin's that Ann took, Bob and Cy on the desk (not in it), and another visitor
    admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="admin")
    ann, bob, cy = (_agent(admin, name) for name in ("Ann", "Bob", "Cy"))
    lin, kim = _visitor(tenant, "lin"), _visitor(tenant, "kim")
    session = chat.start_chat_session(admin, ChatSessionStart(visitor_id="lin", visitor_name="Lin"), VisitorContext())
    chat.claim_chat_session(ann, session.id)

    # Cy's connection, neither assigned nor joined, may neither end nor transfer it; the other visitor learns nothing
    with pytest.raises(Forbidden):
        chat.end_chat_session(cy, session.id, caller=_caller(cy))
    assert bob.agent_id is not None and cy.agent_id is not None
    with pytest.raises(Forbidden):
        chat.transfer_chat_session(cy, session.id, bob.agent_id, caller=_caller(cy))
    with pytest.raises(NotFound):
        chat.end_chat_session(kim, session.id, caller=_caller(kim))

    # Once Cy joins, Cy hands it to Bob: Lin, Bob and Ann (whom it left) hear of it
    chat.join_session(cy, session.id, caller=_caller(cy))
    posts.clear()
    moved = chat.transfer_chat_session(cy, session.id, bob.agent_id, caller=_caller(cy))
    assert (moved.assigned_agent_id, moved.transferred_from_agent_id) == (bob.agent_id, ann.agent_id)
    for told in (lin, bob, ann):
        assert [e["id"] for e in posts.of(_caller(told).connection_id, "chat.transferred")] == [str(session.id)]

    # Ann, no longer its agent, may not end it; Bob may, and the staff in it hear; only Lin rates it
    with pytest.raises(Forbidden):
        chat.end_chat_session(ann, session.id, caller=_caller(ann))
    chat.end_chat_session(bob, session.id, caller=_caller(bob))
    assert posts.of(_caller(cy).connection_id, "chat.ended") != []
    with pytest.raises(NotFound):
        chat.rate_chat_session(kim, session.id, ChatRating(rating=1), caller=_caller(kim))
    chat.rate_chat_session(lin, session.id, ChatRating(rating=5), caller=_caller(lin))
    assert [e["rating"] for e in posts.of(_caller(bob).connection_id, "chat.rated")] == [5]
    assert posts.of(_caller(ann).connection_id, "chat.rated") == []
