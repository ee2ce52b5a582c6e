"""Agents endpoint group: the support team, their status, capacity and performance figures."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from support.http import PageCursor, PageSize, TenantParam, create_resolver, created, current_principal, ok, page
from support.idempotency import idempotent
from support.models.agents import Agent, AgentCreate, AgentStatus, AgentStatusUpdate, AgentUpdate, Department, Skill
from support.models.envelopes import Envelope, PageEnvelope
from support.observability import logger, metrics
from support.pagination import DEFAULT_PAGE_SIZE
from support.services import agents

app = create_resolver()


@app.get("/api/support/agents", summary="List the desk's agents")
def list_agents(
    user_id: TenantParam = None,
    status: Annotated[AgentStatus | None, Query()] = None,
    department: Annotated[Department | None, Query()] = None,
    skill: Annotated[Skill | None, Query()] = None,
    limit: PageSize = DEFAULT_PAGE_SIZE,
    cursor: PageCursor = None,
) -> Response[PageEnvelope[Agent]]:
    principal = current_principal(app)
    principal.require_tenant(user_id)
    return page(
        agents.list_agents(principal, limit=limit, cursor=cursor, status=status, department=department, skill=skill)
    )


@app.post("/api/support/agents", summary="Add an agent (admins only)", status_code=201, middlewares=[idempotent])
def create_agent(data: AgentCreate) -> Response[Envelope[Agent]]:
    return created(agents.create_agent(current_principal(app), data))


@app.get("/api/support/agents/<agent_id>", summary="Get one agent")
def get_agent(agent_id: UUID) -> Response[Envelope[Agent]]:
    return ok(agents.get_agent(current_principal(app), agent_id))


@app.patch("/api/support/agents/<agent_id>", summary="Change an agent's profile")
def update_agent(agent_id: UUID, changes: AgentUpdate) -> Response[Envelope[Agent]]:
    return ok(agents.update_agent(current_principal(app), agent_id, changes))


@app.patch("/api/support/agents/<agent_id>/status", summary="Set an agent's availability")
def update_agent_status(agent_id: UUID, request: AgentStatusUpdate) -> Response[Envelope[Agent]]:
    return ok(agents.update_agent_status(current_principal(app), agent_id, request.status))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
