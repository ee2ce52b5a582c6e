"""Agents: the minimum tickets need (create, list, look up). The agents endpoint group extends this."""

from __future__ import annotations

from uuid import UUID

from psycopg import errors
from psycopg.types.json import Jsonb

from support.auth import Principal, Role
from support.db import tenant_transaction
from support.errors import Conflict, Forbidden, NotFound
from support.models.agents import Agent, AgentCreate
from support.pagination import Page, decode_cursor, page_of

MAX_AGENTS_PER_TENANT = 500  # the seed's "Agents: Up to 500 per organization"

AGENT_COLUMNS = """id, user_id, agent_name, agent_email, department, skills, status, current_chats,
    max_concurrent_chats, total_tickets_resolved, average_resolution_time, average_rating,
    response_time_average, created_at, updated_at, last_activity_at"""


def create_agent(principal: Principal, data: AgentCreate) -> Agent:
    if principal.role is not Role.ADMIN:
        raise Forbidden("only an admin may add agents")
    with tenant_transaction(principal.tenant_id) as cur:
        # Serialise agent creation per tenant so the cap holds under concurrent requests.
        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended('agents:' || %s, 0))", (str(principal.tenant_id),))
        cur.execute("SELECT count(*) AS n FROM support_agents WHERE user_id = %s", (principal.tenant_id,))
        row = cur.fetchone()
        if row is not None and row["n"] >= MAX_AGENTS_PER_TENANT:
            raise Conflict(f"a tenant may have at most {MAX_AGENTS_PER_TENANT} agents")
        try:
            cur.execute(
                f"""INSERT INTO support_agents
                    (user_id, agent_name, agent_email, department, skills, status, max_concurrent_chats)
                VALUES (%s, %s, %s, %s, %s, %s, %s)
                RETURNING {AGENT_COLUMNS}""",
                (
                    principal.tenant_id,
                    data.agent_name,
                    str(data.agent_email),
                    data.department,
                    Jsonb(data.skills),
                    data.status,
                    data.max_concurrent_chats,
                ),
            )
        except errors.UniqueViolation as exc:
            raise Conflict("an agent with this email already exists") from exc
        created = cur.fetchone()
    return Agent.model_validate(created)


def get_agent(principal: Principal, agent_id: UUID) -> Agent:
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            f"SELECT {AGENT_COLUMNS} FROM support_agents WHERE user_id = %s AND id = %s",
            (principal.tenant_id, agent_id),
        )
        row = cur.fetchone()
    if row is None:
        raise NotFound("agent not found")
    return Agent.model_validate(row)


def list_agents(principal: Principal, *, limit: int, cursor: str | None = None) -> Page[Agent]:
    after = decode_cursor(cursor) if cursor else None
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            f"""SELECT {AGENT_COLUMNS} FROM support_agents
            WHERE user_id = %(tenant)s
              AND (%(after_at)s::timestamptz IS NULL OR (created_at, id) < (%(after_at)s, %(after_id)s))
            ORDER BY created_at DESC, id DESC LIMIT %(limit)s""",
            {
                "tenant": principal.tenant_id,
                "after_at": after[0] if after else None,
                "after_id": after[1] if after else None,
                "limit": limit + 1,
            },
        )
        rows = cur.fetchall()
    return page_of(rows, limit, Agent.model_validate)
