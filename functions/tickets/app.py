"""Tickets endpoint group: tickets, their conversations and calls, assignment and feedback."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from support.http import (
    PageCursor,
    PageSize,
    TenantParam,
    create_resolver,
    created,
    current_principal,
    ok,
    page,
    with_storage_errors,
)
from support.idempotency import idempotent
from support.models.base import Category, SearchText
from support.models.envelopes import Envelope, PageEnvelope
from support.models.inbound import OriginalEmail
from support.models.tickets import (
    AssignRequest,
    CallCreate,
    Conversation,
    ConversationCreate,
    Feedback,
    FeedbackCreate,
    SlaState,
    Ticket,
    TicketChannel,
    TicketCreate,
    TicketPriority,
    TicketQuery,
    TicketStatus,
    TicketUpdate,
)
from support.observability import logger, metrics
from support.pagination import DEFAULT_PAGE_SIZE
from support.services import automations, email_in, tickets, webhooks

app = create_resolver()


@app.get("/api/support/tickets", summary="List tickets, newest first")
def list_tickets(
    user_id: TenantParam = None,
    status: Annotated[TicketStatus | None, Query()] = None,
    priority: Annotated[TicketPriority | None, Query()] = None,
    assigned_agent_id: Annotated[UUID | None, Query(alias="assignedAgentId")] = None,
    category: Annotated[Category | None, Query()] = None,
    channel: Annotated[TicketChannel | None, Query()] = None,
    search: Annotated[SearchText | None, Query()] = None,
    sla_state: Annotated[SlaState | None, Query(alias="slaState")] = None,
    limit: PageSize = DEFAULT_PAGE_SIZE,
    cursor: PageCursor = None,
) -> Response[PageEnvelope[Ticket]]:
    principal = current_principal(app)
    principal.require_tenant(user_id)
    query = TicketQuery(
        status=status,
        priority=priority,
        assigned_agent_id=assigned_agent_id,
        category=category,
        channel=channel,
        search=search,
        sla_state=sla_state,
        limit=limit,
        cursor=cursor,
    )
    return page(tickets.list_tickets(principal, query))


@app.post("/api/support/tickets", summary="Create a ticket", status_code=201, middlewares=[idempotent])
def create_ticket(data: TicketCreate, user_id: TenantParam = None) -> Response[Envelope[Ticket]]:
    principal = current_principal(app)
    principal.require_tenant(user_id)
    ticket = tickets.create_ticket(principal, data)
    metrics.add_metric(name="TicketsCreated", unit="Count", value=1)
    return created(ticket)


@app.get("/api/support/tickets/<ticket_id>", summary="Get one ticket")
def get_ticket(ticket_id: UUID) -> Response[Envelope[Ticket]]:
    return ok(tickets.get_ticket(current_principal(app), ticket_id))


@app.patch("/api/support/tickets/<ticket_id>", summary="Change a ticket's status, priority, agent, category or fields")
def update_ticket(ticket_id: UUID, changes: TicketUpdate) -> Response[Envelope[Ticket]]:
    return ok(tickets.update_ticket(current_principal(app), ticket_id, changes))


@app.post("/api/support/tickets/<ticket_id>/close", summary="Close a ticket")
def close_ticket(ticket_id: UUID) -> Response[Envelope[Ticket]]:
    return ok(tickets.close_ticket(current_principal(app), ticket_id))


@app.post("/api/support/tickets/<ticket_id>/assign", summary="Assign a ticket to an agent")
def assign_ticket(ticket_id: UUID, request: AssignRequest) -> Response[Envelope[Ticket]]:
    return ok(tickets.assign_ticket(current_principal(app), ticket_id, request.agent_id))


@app.get("/api/support/tickets/<ticket_id>/conversations", summary="List a ticket's thread, oldest first")
def list_conversations(
    ticket_id: UUID, limit: PageSize = DEFAULT_PAGE_SIZE, cursor: PageCursor = None
) -> Response[PageEnvelope[Conversation]]:
    return page(tickets.list_conversations(current_principal(app), ticket_id, limit=limit, cursor=cursor))


@app.post(
    "/api/support/tickets/<ticket_id>/conversations",
    summary="Reply on a ticket or add an internal note",
    status_code=201,
    middlewares=[idempotent],
    responses=with_storage_errors(201),  # its attachmentIds are checked with S3
)
def add_conversation(ticket_id: UUID, message: ConversationCreate) -> Response[Envelope[Conversation]]:
    return created(tickets.add_conversation(current_principal(app), ticket_id, message))


@app.post(
    "/api/support/tickets/<ticket_id>/calls",
    summary="Log a phone call on a ticket",
    status_code=201,
    middlewares=[idempotent],
)
def log_call(ticket_id: UUID, call: CallCreate) -> Response[Envelope[Conversation]]:
    return created(tickets.log_call(current_principal(app), ticket_id, call))


@app.get(
    "/api/support/tickets/<ticket_id>/conversations/<conversation_id>/original",
    summary="Get the raw mail a thread entry came in by",
)
def get_original_email(ticket_id: UUID, conversation_id: UUID) -> Response[Envelope[OriginalEmail]]:
    """The raw mail a conversation entry came in by (a short-lived presigned URL): 404 unless it came by email."""
    return ok(email_in.original_of(current_principal(app), ticket_id, conversation_id))


@app.get("/api/support/tickets/<ticket_id>/feedback", summary="Get a ticket's satisfaction feedback")
def get_feedback(ticket_id: UUID) -> Response[Envelope[Feedback]]:
    return ok(tickets.get_feedback(current_principal(app), ticket_id))


@app.post(
    "/api/support/tickets/<ticket_id>/feedback",
    summary="Give a ticket's satisfaction feedback (once)",
    status_code=201,
    middlewares=[idempotent],
)
def add_feedback(ticket_id: UUID, feedback: FeedbackCreate) -> Response[Envelope[Feedback]]:
    return created(tickets.add_feedback(current_principal(app), ticket_id, feedback))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    answer = app.resolve(event, context)
    # A change committed: the automation events its triggers wrote run now (asynchronously in AWS); the workflow
    # sweep runs whatever this misses.
    if event.get("requestContext", {}).get("http", {}).get("method") != "GET" and answer.get("statusCode", 500) < 300:
        claims = ((event["requestContext"].get("authorizer") or {}).get("jwt") or {}).get("claims") or {}
        if claims.get("tenant_id"):
            automations.kick(UUID(str(claims["tenant_id"])))
            webhooks.kick(UUID(str(claims["tenant_id"])))
    return answer
