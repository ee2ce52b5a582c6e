"""Contacts endpoint group: one customer across channels (list with search, read with their tickets and chats,
edit, merge two). Admins and agents of the tenant."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from support.http import PageCursor, PageSize, TenantParam, create_resolver, current_principal, ok, page
from support.models.base import SearchText
from support.models.contacts import (
    DEFAULT_HISTORY_PAGE,
    Contact,
    ContactDetails,
    ContactMerge,
    ContactQuery,
    ContactUpdate,
)
from support.models.envelopes import Envelope, PageEnvelope
from support.observability import logger, metrics
from support.pagination import DEFAULT_PAGE_SIZE
from support.services import contacts

app = create_resolver()


@app.get("/api/support/contacts", summary="List contacts")
def list_contacts(
    user_id: TenantParam = None,
    search: Annotated[SearchText | None, Query(description="a part of the name, an email or a phone number")] = None,
    limit: PageSize = DEFAULT_PAGE_SIZE,
    cursor: PageCursor = None,
) -> Response[PageEnvelope[Contact]]:
    principal = current_principal(app)
    principal.require_tenant(user_id)
    return page(contacts.list_contacts(principal, ContactQuery(search=search, limit=limit, cursor=cursor)))


@app.get("/api/support/contacts/<contact_id>", summary="Get one contact")
def get_contact(
    contact_id: UUID,
    limit: Annotated[int, Query(ge=1, le=100, description="tickets and chats per page (at most 100)")] = (
        DEFAULT_HISTORY_PAGE
    ),
    cursor: PageCursor = None,
) -> Response[Envelope[ContactDetails]]:
    return ok(contacts.get_contact(current_principal(app), contact_id, limit=limit, cursor=cursor))


@app.patch("/api/support/contacts/<contact_id>", summary="Change a contact")
def update_contact(contact_id: UUID, changes: ContactUpdate) -> Response[Envelope[ContactDetails]]:
    return ok(contacts.update_contact(current_principal(app), contact_id, changes))


@app.post("/api/support/contacts/<contact_id>/merge", summary="Merge another contact into this one")
def merge_contacts(contact_id: UUID, request: ContactMerge) -> Response[Envelope[ContactDetails]]:
    merged = contacts.merge_contacts(current_principal(app), contact_id, request.other_contact_id)
    metrics.add_metric(name="ContactsMerged", unit="Count", value=1)
    return ok(merged)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
