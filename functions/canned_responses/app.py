"""Canned responses endpoint group: the tenant's library of reusable replies, found by shortcut, counted in use, and
suggested for a ticket's or a chat's reply box (support.services.suggestions)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from support.http import PageCursor, PageSize, TenantParam, create_resolver, created, current_principal, ok, page
from support.idempotency import idempotent
from support.models.base import Category, SearchText
from support.models.canned import (
    SHORTCUT_KEY_PATTERN,
    CannedResponse,
    CannedResponseCreate,
    CannedResponseQuery,
    CannedResponseSort,
    CannedResponseUpdate,
    SuggestedResponse,
)
from support.models.envelopes import Envelope, PageEnvelope
from support.observability import logger, metrics
from support.pagination import DEFAULT_PAGE_SIZE
from support.services import canned_responses, suggestions

app = create_resolver()

BASE = "/api/support/canned-responses"


@app.get(BASE, summary="List canned responses")
def list_canned_responses(
    user_id: TenantParam = None,
    category: Annotated[Category | None, Query()] = None,
    search: Annotated[SearchText | None, Query()] = None,
    sort: Annotated[CannedResponseSort, Query()] = CannedResponseSort.NEWEST,
    limit: PageSize = DEFAULT_PAGE_SIZE,
    cursor: PageCursor = None,
) -> Response[PageEnvelope[CannedResponse]]:
    principal = current_principal(app)
    principal.require_tenant(user_id)
    query = CannedResponseQuery(category=category, search=search, sort=sort, limit=limit, cursor=cursor)
    return page(canned_responses.list_canned_responses(principal, query))


@app.post(BASE, summary="Create a canned response", status_code=201, middlewares=[idempotent])
def create_canned_response(
    data: CannedResponseCreate, user_id: TenantParam = None
) -> Response[Envelope[CannedResponse]]:
    principal = current_principal(app)
    principal.require_tenant(user_id)
    return created(canned_responses.create_canned_response(principal, data))


# A key that does not match the pattern cannot exist: 422 as for a malformed id, before any lookup.
@app.get(f"{BASE}/by-shortcut/<shortcut_key>", summary="Get a canned response by its shortcut key")
def get_canned_response_by_shortcut(
    shortcut_key: Annotated[str, Path(min_length=1, max_length=32, pattern=SHORTCUT_KEY_PATTERN)],
) -> Response[Envelope[CannedResponse]]:
    return ok(canned_responses.get_canned_response_by_shortcut(current_principal(app), shortcut_key))


@app.patch(f"{BASE}/<response_id>", summary="Change a canned response")
def update_canned_response(response_id: UUID, changes: CannedResponseUpdate) -> Response[Envelope[CannedResponse]]:
    return ok(canned_responses.update_canned_response(current_principal(app), response_id, changes))


@app.delete(f"{BASE}/<response_id>", summary="Delete a canned response")
def delete_canned_response(response_id: UUID) -> Response[Envelope[CannedResponse]]:
    return ok(canned_responses.delete_canned_response(current_principal(app), response_id))


@app.post(f"{BASE}/<response_id>/use", summary="Record a use of a canned response")
def use_canned_response(response_id: UUID) -> Response[Envelope[CannedResponse]]:
    response = canned_responses.use_canned_response(current_principal(app), response_id)
    metrics.add_metric(name="CannedResponsesUsed", unit="Count", value=1)
    return ok(response)


@app.get("/api/support/tickets/<ticket_id>/suggested-responses", summary="Suggest canned responses for a ticket")
def suggest_for_ticket(ticket_id: UUID) -> Response[Envelope[list[SuggestedResponse]]]:
    return ok(suggestions.suggest_for_ticket(current_principal(app), ticket_id))


@app.get("/api/support/chat/sessions/<session_id>/suggested-responses", summary="Suggest canned responses for a chat")
def suggest_for_chat(session_id: UUID) -> Response[Envelope[list[SuggestedResponse]]]:
    return ok(suggestions.suggest_for_chat(current_principal(app), session_id))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
