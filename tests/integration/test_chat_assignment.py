"""Automatic assignment and the queue, through the chat and agents services on the real database: fair, never
over capacity, never twice, and the queue moves whenever room frees."""

from __future__ import annotations

from uuid import UUID, uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from support.auth import Principal, Role
from support.errors import Conflict, Forbidden
from support.models.agents import AgentCreate, AgentStatus, AgentUpdate
from support.models.chat import ChatSession, ChatSessionStart, ChatStatus, VisitorContext
from support.services import agents, chat
from tests.integration.test_chat_concurrency import connection_per_thread, run_together

__all__ = ["connection_per_thread"]  # the fixture, used by name below


def admin(tenant: UUID) -> Principal:
    return Principal(tenant_id=tenant, role=Role.ADMIN, subject="test-admin")


def available_agent(tenant: UUID, name: str, capacity: int) -> UUID:
    data = AgentCreate(
        agent_name=name,
        agent_email=f"{uuid4()}@desk.example",
        max_concurrent_chats=capacity,
        status=AgentStatus.AVAILABLE,
    )
    return agents.create_agent(admin(tenant), data).id


def start(tenant: UUID) -> ChatSession:
    data = ChatSessionStart(visitor_id=f"visitor-{uuid4()}", visitor_name="Ada")
    return chat.start_chat_session(admin(tenant), data, VisitorContext())


def figures(db: DatabaseUrls, tenant: UUID) -> dict[str, object]:
    with psycopg.connect(db.admin) as conn:
        load = dict(
            conn.execute("SELECT id, current_chats FROM support_agents WHERE user_id = %s", (tenant,)).fetchall()
        )
        held = dict(
            conn.execute(
                "SELECT assigned_agent_id, count(*) FROM live_chat_sessions"
                " WHERE user_id = %s AND status <> 'closed' AND assigned_agent_id IS NOT NULL GROUP BY 1",
                (tenant,),
            ).fetchall()
        )
        waiting = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM live_chat_sessions WHERE user_id = %s AND status = 'waiting' ORDER BY created_at, id",
                (tenant,),
            )
        ]
    return {"load": load, "held": held, "waiting": waiting}


def positions(tenant: UUID) -> list[tuple[UUID, int]]:
    from support.db import tenant_transaction

    with tenant_transaction(tenant) as cur:
        cur.execute(
            """SELECT id, row_number() OVER (ORDER BY created_at, id) AS position FROM live_chat_sessions
            WHERE user_id = %s AND status = 'waiting' ORDER BY created_at, id""",
            (tenant,),
        )
        return [(row["id"], row["position"]) for row in cur.fetchall()]


@pytest.fixture
def tenant_with_agents(db: DatabaseUrls, tenant: UUID) -> tuple[UUID, list[UUID]]:
    return tenant, [available_agent(tenant, name, 2) for name in ("Ann", "Bob", "Cid")]


def test_twenty_concurrent_starts_fill_three_agents_of_two_and_queue_the_rest(
    db: DatabaseUrls, tenant_with_agents: tuple[UUID, list[UUID]], connection_per_thread: None
) -> None:
    tenant, team = tenant_with_agents

    # When 20 visitors start chats at once, each from its own execution environment
    results = run_together([lambda: start(tenant) for _ in range(20)])

    # Then exactly 6 were assigned, 2 per agent, the other 14 wait with positions 1 to 14
    assert not [r for r in results if isinstance(r, Exception)]
    sessions: list[ChatSession] = results
    assigned = [s for s in sessions if s.status is ChatStatus.ACTIVE]
    assert len(assigned) == 6
    assert sorted(str(s.assigned_agent_id) for s in assigned) == sorted(str(a) for a in team for _ in range(2))
    state = figures(db, tenant)
    assert state["load"] == dict.fromkeys(team, 2) == state["held"]
    queue = positions(tenant)
    assert [p for _, p in queue] == list(range(1, 15))
    assert {sid for sid, _ in queue} == {s.id for s in sessions if s.status is ChatStatus.WAITING}


def test_fewest_chats_first_then_the_agent_assigned_least_recently(db: DatabaseUrls, tenant: UUID) -> None:
    first = available_agent(tenant, "Ann", 3)
    second = available_agent(tenant, "Bob", 3)

    picks = [start(tenant).assigned_agent_id for _ in range(4)]

    # the first goes to whoever was never assigned (then id order), then always the one with fewer chats,
    # and between equals the one assigned longer ago
    assert picks[0] in (first, second)
    assert picks[1] != picks[0]
    assert picks[2] == picks[0]
    assert picks[3] == picks[1]


def test_room_freed_by_an_end_goes_to_the_oldest_waiting_session(db: DatabaseUrls, tenant: UUID) -> None:
    agent = available_agent(tenant, "Ann", 1)
    busy = start(tenant)
    older, newer = start(tenant), start(tenant)
    assert (busy.assigned_agent_id, older.status, newer.status) == (agent, ChatStatus.WAITING, ChatStatus.WAITING)

    chat.end_chat_session(admin(tenant), busy.id)

    assert chat.get_chat_session(admin(tenant), older.id).assigned_agent_id == agent
    assert chat.get_chat_session(admin(tenant), newer.id).status is ChatStatus.WAITING
    assert positions(tenant) == [(newer.id, 1)]


def test_an_agent_becoming_available_or_taking_more_chats_drains_the_queue(db: DatabaseUrls, tenant: UUID) -> None:
    agent = agents.create_agent(
        admin(tenant), AgentCreate(agent_name="Ann", agent_email=f"{uuid4()}@desk.example", max_concurrent_chats=1)
    ).id  # offline
    waiting = [start(tenant) for _ in range(3)]
    assert all(s.status is ChatStatus.WAITING for s in waiting)

    agents.update_agent_status(admin(tenant), agent, AgentStatus.AVAILABLE)
    assert figures(db, tenant)["waiting"] == [s.id for s in waiting[1:]]

    agents.update_agent(admin(tenant), agent, AgentUpdate(max_concurrent_chats=3))
    assert figures(db, tenant)["waiting"] == []
    assert figures(db, tenant)["load"] == {agent: 3}


def test_a_transfer_away_frees_room_for_the_queue(db: DatabaseUrls, tenant: UUID) -> None:
    ann = available_agent(tenant, "Ann", 1)
    bob = agents.create_agent(
        admin(tenant), AgentCreate(agent_name="Bob", agent_email=f"{uuid4()}@desk.example", max_concurrent_chats=2)
    ).id  # offline: takes chats only by transfer
    mine, queued = start(tenant), start(tenant)

    chat.transfer_chat_session(admin(tenant), mine.id, bob)

    assert chat.get_chat_session(admin(tenant), queued.id).assigned_agent_id == ann
    assert figures(db, tenant)["load"] == {ann: 1, bob: 1}


def test_claim_takes_a_waiting_session_once(db: DatabaseUrls, tenant: UUID, connection_per_thread: None) -> None:
    agent_ids = [
        agents.create_agent(
            admin(tenant), AgentCreate(agent_name=n, agent_email=f"{uuid4()}@desk.example", max_concurrent_chats=2)
        ).id
        for n in ("Ann", "Bob", "Cid", "Dee")
    ]
    waiting = start(tenant)
    claimants = [
        Principal(tenant_id=tenant, role=Role.AGENT, subject=f"a{i}", agent_id=a) for i, a in enumerate(agent_ids)
    ]

    results = run_together([lambda p=p: chat.claim_chat_session(p, waiting.id) for p in claimants])

    won = [r for r in results if isinstance(r, ChatSession)]
    assert len(won) == 1 and won[0].status is ChatStatus.ACTIVE
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, ChatSession))
    assert sum(figures(db, tenant)["load"].values()) == 1  # type: ignore[attr-defined]


def test_claims_need_an_agent_and_room(db: DatabaseUrls, tenant: UUID) -> None:
    full = agents.create_agent(
        admin(tenant), AgentCreate(agent_name="Ann", agent_email=f"{uuid4()}@desk.example", max_concurrent_chats=1)
    ).id
    first, second = start(tenant), start(tenant)
    ann = Principal(tenant_id=tenant, role=Role.AGENT, subject="ann", agent_id=full)
    chat.claim_chat_session(ann, first.id)

    with pytest.raises(Conflict, match="capacity"):
        chat.claim_chat_session(ann, second.id)
    with pytest.raises(Forbidden):
        chat.claim_chat_session(admin(tenant), second.id)  # an admin token acts as no agent


def test_assignment_can_be_turned_off(db: DatabaseUrls, tenant: UUID, monkeypatch: pytest.MonkeyPatch) -> None:
    from support.config import get_settings

    available_agent(tenant, "Ann", 5)
    monkeypatch.setenv("CHAT_AUTO_ASSIGN", "false")
    get_settings.cache_clear()
    try:
        assert start(tenant).status is ChatStatus.WAITING
    finally:
        monkeypatch.delenv("CHAT_AUTO_ASSIGN")
        get_settings.cache_clear()


def test_a_storm_of_starts_ends_transfers_and_status_changes_keeps_every_invariant(
    db: DatabaseUrls, tenant: UUID, connection_per_thread: None
) -> None:
    # Given three agents of capacity 2 and some chats already going
    team = [available_agent(tenant, name, 2) for name in ("Ann", "Bob", "Cid")]
    going = [start(tenant) for _ in range(8)]

    def toggle(agent: UUID) -> object:
        agents.update_agent_status(admin(tenant), agent, AgentStatus.AWAY)
        return agents.update_agent_status(admin(tenant), agent, AgentStatus.AVAILABLE)

    # When starts, ends, transfers and status changes all race
    calls = [lambda: start(tenant) for _ in range(8)]
    calls += [lambda s=s: chat.end_chat_session(admin(tenant), s.id) for s in going[:5]]
    calls += [
        lambda s=s, i=i: chat.transfer_chat_session(admin(tenant), s.id, team[i % 3]) for i, s in enumerate(going[5:])
    ]
    calls += [lambda a=a: toggle(a) for a in team]
    results = run_together(calls)

    # Then nothing failed but for refusals (a full agent, an agent who already has it), and afterwards every
    # agent's count is what it holds, none is over capacity, and a session waits only if no available agent
    # has room
    failures = [r for r in results if isinstance(r, Exception) and not isinstance(r, Conflict)]
    assert failures == []
    state = figures(db, tenant)
    load: dict[UUID, int] = state["load"]  # type: ignore[assignment]
    held: dict[UUID, int] = state["held"]  # type: ignore[assignment]
    assert {a: n for a, n in load.items() if n} == held
    assert all(n <= 2 for n in load.values())
    with psycopg.connect(db.admin) as conn:
        room = conn.execute(
            "SELECT count(*) FROM support_agents WHERE user_id = %s AND status = 'available'"
            " AND current_chats < max_concurrent_chats",
            (tenant,),
        ).fetchone()
    assert not (state["waiting"] and room and room[0]), (state["waiting"], room)
