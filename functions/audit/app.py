"""Audit endpoint group: the tenant's audit trail (issue 19), read by admins only (support.services.audit).

Every change of the desk's data is captured by the database in the change's own transaction (sql/definitions/
audit.sql); this function only reads the entries, newest first, with the filters of GET /api/support/audit."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AwareDatetime

from support.http import PageCursor, PageSize, create_resolver, current_principal, page
from support.models.audit import AuditAction, AuditEntity, AuditEntry, AuditQuery
from support.models.envelopes import PageEnvelope
from support.observability import logger, metrics
from support.pagination import DEFAULT_PAGE_SIZE
from support.services import audit

app = create_resolver()


@app.get(
    "/api/support/audit",
    summary="List the audit trail, newest first",
    description="Who changed what and when: one entry per row a change touched (table, row id, action, the changed "
    "fields before and after; texts and personal values are named as changed, never copied), with the actor (role, "
    "agent, visitor, job or automation rule, and the request id). Filters: `entity` (ticket, chat_session, agent, ... "
    "see docs/api.md) with `id` for one row's history, `actor` (an agent's id, a visitor's, a job's name), `action`, "
    "`from` (inclusive) and `to` (exclusive). Admins only.",
)
def list_audit_entries(
    entity: Annotated[AuditEntity | None, Query(description="what the row is: its table (docs/api.md)")] = None,
    id: Annotated[str | None, Query(min_length=1, max_length=200, description="the row's id")] = None,
    actor: Annotated[str | None, Query(min_length=1, max_length=200, description="the actor's id or name")] = None,
    action: Annotated[AuditAction | None, Query()] = None,
    from_: Annotated[AwareDatetime | None, Query(alias="from", description="from this time (inclusive)")] = None,
    to: Annotated[AwareDatetime | None, Query(description="before this time (exclusive)")] = None,
    limit: PageSize = DEFAULT_PAGE_SIZE,
    cursor: PageCursor = None,
) -> Response[PageEnvelope[AuditEntry]]:
    query = AuditQuery(entity=entity, id=id, actor=actor, action=action, from_=from_, to=to)
    return page(audit.list_entries(current_principal(app), query, limit=limit, cursor=cursor))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
