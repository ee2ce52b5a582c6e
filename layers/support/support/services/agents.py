"""Agents: the team of a support desk, their availability, capacity and performance figures.

The performance figures (`total_tickets_resolved`, `average_resolution_time`, `average_rating`,
`response_time_average`) are kept true by the database itself (running sums per agent, sql/0009 and sql/0010),
so every path that changes a ticket or its feedback updates them, and the runtime role cannot write them;
`current_chats` is kept by the chat service.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import errors, sql
from psycopg.types.json import Jsonb

from support.auth import Principal, Role
from support.config import get_settings
from support.db import pipelined, tenant_transaction
from support.db.statements import admit_under_cap, equals_placeholders
from support.errors import Conflict, Forbidden, found
from support.models.agents import Agent, AgentCreate, AgentStatus, AgentUpdate
from support.models.realtime import AgentStatusNotice, Queued
from support.pagination import Page, decode_cursor, page_of
from support.services import automations, broadcasts, chat, routing
from support.services.connections import Caller, Outbox

MAX_AGENTS_PER_TENANT = 500  # the seed's "Agents: Up to 500 per organization"

AGENT_COLUMNS = """id, user_id, agent_name, agent_email, department, skills, status, current_chats,
    max_concurrent_chats, total_tickets_resolved, average_resolution_time, average_rating,
    response_time_average, created_at, updated_at, last_activity_at"""


def _agent(row: dict[str, Any] | None) -> Agent:
    return Agent.model_validate(found(row, "agent"))


def create_agent(principal: Principal, data: AgentCreate) -> Agent:
    principal.require_admin("add agents")
    with tenant_transaction(principal.tenant_id) as cur:
        admit_under_cap(
            cur,
            principal.tenant_id,
            "support_agents",
            MAX_AGENTS_PER_TENANT,
            f"a tenant may have at most {MAX_AGENTS_PER_TENANT} agents",
        )
        try:
            cur.execute(
                f"""INSERT INTO support_agents
                    (user_id, agent_name, agent_email, department, skills, status, max_concurrent_chats)
                VALUES (%s, %s, %s, %s, %s, %s, %s)
                RETURNING {AGENT_COLUMNS}""",  # noqa: S608
                (
                    principal.tenant_id,
                    data.agent_name,
                    data.agent_email,
                    data.department,
                    Jsonb(data.skills),
                    data.status,
                    data.max_concurrent_chats,
                ),
            )
        except errors.UniqueViolation as exc:
            raise Conflict("an agent with this email already exists") from exc
        return _agent(cur.fetchone())


def get_agent(principal: Principal, agent_id: UUID) -> Agent:
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            f"SELECT {AGENT_COLUMNS} FROM support_agents WHERE user_id = %s AND id = %s",  # noqa: S608
            (principal.tenant_id, agent_id),
        )
        return _agent(cur.fetchone())


def list_agents(
    principal: Principal,
    *,
    limit: int,
    cursor: str | None = None,
    status: AgentStatus | None = None,
    department: str | None = None,
    skill: str | None = None,
) -> Page[Agent]:
    """getAgents: newest first; `department` matches exactly, ignoring case; `skill` is one of the skills."""
    conditions: list[sql.Composable] = [sql.SQL("user_id = %(tenant)s")]
    params: dict[str, Any] = {"tenant": principal.tenant_id, "limit": limit + 1}
    if status is not None:
        conditions.append(sql.SQL("status = %(status)s"))
        params["status"] = status
    if department is not None:
        conditions.append(sql.SQL("lower(department) = lower(%(department)s)"))
        params["department"] = department
    if skill is not None:
        conditions.append(sql.SQL("skills @> %(skill)s"))
        params["skill"] = Jsonb([skill])
    if cursor:
        params["after_at"], params["after_id"] = decode_cursor(cursor)
        conditions.append(sql.SQL("(created_at, id) < (%(after_at)s, %(after_id)s)"))
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            sql.SQL(
                "SELECT {columns} FROM support_agents WHERE {conditions} "
                "ORDER BY created_at DESC, id DESC LIMIT %(limit)s"
            ).format(columns=sql.SQL(AGENT_COLUMNS), conditions=sql.SQL(" AND ").join(conditions)),
            params,
        )
        rows = cur.fetchall()
    return page_of(rows, limit, Agent.model_validate)


def update_agent(principal: Principal, agent_id: UUID, changes: AgentUpdate) -> Agent:
    """An admin edits an agent's profile and capacity. Capacity cannot drop below the chats they hold. An available
    agent given more capacity or other skills takes what they now can from the chat queue, and (other skills) from the
    ticket queue (support.services.routing)."""
    principal.require_admin("edit agents")
    fields = changes.model_dump(exclude_unset=True)
    for not_nullable in ("agent_name", "agent_email", "skills", "max_concurrent_chats"):
        if fields.get(not_nullable, "") is None:
            del fields[not_nullable]
    outbox = Outbox(principal.tenant_id)
    with tenant_transaction(principal.tenant_id) as cur:
        chat.lock_queue(cur, principal)  # a higher capacity, or new skills, may take chats from the queue
        if "skills" in fields:  # new skills may take waiting tickets: the routing lock before the agent's row
            routing.lock_for_change(cur, principal)
        cur.execute(
            f"SELECT {AGENT_COLUMNS} FROM support_agents WHERE user_id = %s AND id = %s FOR NO KEY UPDATE",  # noqa: S608
            (principal.tenant_id, agent_id),
        )
        current = _agent(cur.fetchone())
        if not fields:
            return current
        if fields.get("max_concurrent_chats", current.max_concurrent_chats) < current.current_chats:
            raise Conflict(f"the agent is in {current.current_chats} chats now; end or transfer some first")
        if "skills" in fields:
            fields["skills"] = Jsonb(fields["skills"])
        assignments = sql.SQL(", ").join(equals_placeholders(fields))
        try:
            cur.execute(
                sql.SQL(
                    "UPDATE support_agents SET {assignments} WHERE user_id = %(tenant)s AND id = %(id)s "
                    "RETURNING {columns}"
                ).format(assignments=assignments, columns=sql.SQL(AGENT_COLUMNS)),
                {**fields, "tenant": principal.tenant_id, "id": agent_id},
            )
        except errors.UniqueViolation as exc:
            raise Conflict("an agent with this email already exists") from exc
        updated = _agent(cur.fetchone())
        more = updated.max_concurrent_chats > current.max_concurrent_chats or updated.skills != current.skills
        if more and updated.status is AgentStatus.AVAILABLE and chat.rebalance_queue(cur, principal, outbox):
            broadcasts.request(cur, outbox, queue=True)
        if updated.skills != current.skills and updated.status is AgentStatus.AVAILABLE:
            routing.drain_tickets(cur, principal, [agent_id])
            # tickets routed to the agent: their events run after the commit
            automations.start_after(outbox, automations.pending(cur, principal.tenant_id))
    outbox.send()
    return updated


def update_agent_status(
    principal: Principal, agent_id: UUID, status: AgentStatus, *, caller: Caller | None = None
) -> Agent:
    """updateAgentStatus: an admin sets anyone's; an agent sets their own. Records the activity. The caller's
    answer is agent.status; the tenant's staff connections hear it in the next staff broadcast (support.services.
    broadcasts), with the queue when an agent who became available took waiting chats from it. One call of
    agent_set_status (sql/definitions/chat.sql: the queue lock, the update, the drain, the broadcast request), sent
    only once: two round trips, the queue lock held for the server's work alone.

    Routing (issue 18): an agent going `away` or `offline` hands their unanswered chats back to the queue (each
    visitor still waiting hears chat.queued with its position and expected wait; one the drain gave to another agent
    hears chat.assigned), and their open tickets too when the routing settings say so; an agent becoming available
    takes the oldest waiting tickets they can (support.services.routing)."""
    if principal.role is not Role.ADMIN and principal.agent_id != agent_id:
        raise Forbidden("an agent may change only their own status")
    outbox = Outbox(principal.tenant_id, caller)
    params = (principal.tenant_id, agent_id, status, get_settings().chat_auto_assign, broadcasts.STALE_AFTER_SECONDS)
    statements = [(_SET_STATUS, params), (automations.PENDING, (principal.tenant_id,))]
    [rows, events] = pipelined(principal.tenant_id, statements, once=True)
    [own] = [row for row in rows if row["outcome"] not in ("assigned", "queued")]
    agent = _agent({name: own[f"agent:{name}"] for name in _AGENT_FIELDS} if own["outcome"] == "agent" else None)
    notice = AgentStatusNotice(agent_id=agent.id, status=agent.status)
    outbox.answer("agent.status", notice)
    chat.announce_assignments(outbox, [row for row in rows if row["outcome"] == "assigned"])
    for row in rows:  # chats handed back to the queue by an agent going away or offline, still waiting
        if row["outcome"] == "queued":
            queued = Queued(
                session_id=row["id"],
                position=row["queue_position"],
                as_of=row["as_of"],
                expected_wait_seconds=row["expected_wait"],
            )
            outbox.tell(row["connection_ids"] or [], "chat.queued", queued)
    if own["start_broadcast"]:
        broadcasts.start_after(outbox)
    automations.start_after(outbox, events)  # tickets handed back or routed: their events run after the commit
    outbox.send()
    return agent


# agent_set_status's rows: the agent's (AGENT_COLUMNS, each named `agent:<column>`), a session the drain assigned
# (chat's SESSION_COLUMNS' names and more, with its participants' connections), or a session handed back to the queue
# and still waiting (`queued`: its position, when it was read, the expected wait and its visitor's connections).
_AGENT_FIELDS = [name.strip() for name in AGENT_COLUMNS.split(",")]
_SET_STATUS = f"""SELECT f.outcome, f.start_broadcast, f.connection_ids, f.agent_name AS assigned_agent_name,
    f.queue_position, f.as_of, f.expected_wait, (f.session).*,
    {", ".join(f'(f.agent).{name} AS "agent:{name}"' for name in _AGENT_FIELDS)}
FROM agent_set_status(%s, %s, %s, %s, %s) f"""  # noqa: S608 (fixed text; every value is bound)
