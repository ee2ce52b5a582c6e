"""Live chat over HTTP: sessions (start, list, get, end, transfer, rating, make a ticket) and their messages (list,
add, read)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
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
    success_and_errors,
    with_storage_errors,
)
from support.idempotency import idempotent
from support.models.chat import (
    ChatMessage,
    ChatMessageCreate,
    ChatRating,
    ChatReadReceipt,
    ChatReadRequest,
    ChatSession,
    ChatSessionEnd,
    ChatSessionStart,
    ChatStatus,
    ChatTransfer,
    VisitorContext,
)
from support.models.envelopes import Envelope, PageEnvelope
from support.models.tickets import ChatTicketCreate, Ticket
from support.observability import logger, metrics
from support.pagination import DEFAULT_PAGE_SIZE
from support.services import chat, tickets

app = create_resolver()


@app.post("/api/support/chat/sessions", summary="Start a chat session", status_code=201, middlewares=[idempotent])
def start_session(data: ChatSessionStart, user_id: TenantParam = None) -> Response[Envelope[ChatSession]]:
    principal = current_principal(app)
    principal.require_tenant(user_id)
    event = app.current_event
    visitor = VisitorContext.from_request(event.request_context.http.source_ip, event.headers.get("user-agent"))
    session = chat.start_chat_session(principal, data, visitor)
    metrics.add_metric(name="ChatSessionsStarted", unit="Count", value=1)
    return created(session)


@app.get("/api/support/chat/sessions", summary="List chat sessions")
def list_sessions(
    user_id: TenantParam = None,
    status: Annotated[ChatStatus | None, Query()] = None,
    limit: PageSize = DEFAULT_PAGE_SIZE,
    cursor: PageCursor = None,
) -> Response[PageEnvelope[ChatSession]]:
    principal = current_principal(app)
    principal.require_tenant(user_id)
    return page(chat.list_chat_sessions(principal, status=status, limit=limit, cursor=cursor))


@app.get("/api/support/chat/sessions/<session_id>", summary="Get one chat session")
def get_session(session_id: UUID) -> Response[Envelope[ChatSession]]:
    return ok(chat.get_chat_session(current_principal(app), session_id))


@app.post("/api/support/chat/sessions/<session_id>/end", summary="End a chat session")
def end_session(
    session_id: UUID, request: Annotated[ChatSessionEnd | None, Body()] = None
) -> Response[Envelope[ChatSession]]:
    # The body is optional and takes nothing: the model only refuses a client-supplied duration.
    return ok(chat.end_chat_session(current_principal(app), session_id))


@app.post("/api/support/chat/sessions/<session_id>/transfer", summary="Transfer a chat to another agent")
def transfer_session(session_id: UUID, request: ChatTransfer) -> Response[Envelope[ChatSession]]:
    return ok(chat.transfer_chat_session(current_principal(app), session_id, request.to_agent_id))


@app.post("/api/support/chat/sessions/<session_id>/rating", summary="Rate a chat session")
def rate_session(session_id: UUID, rating: ChatRating) -> Response[Envelope[ChatSession]]:
    return ok(chat.rate_chat_session(current_principal(app), session_id, rating))


@app.get("/api/support/chat/sessions/<session_id>/messages", summary="List a chat's messages")
def list_messages(
    session_id: UUID, limit: PageSize = DEFAULT_PAGE_SIZE, cursor: PageCursor = None
) -> Response[PageEnvelope[ChatMessage]]:
    return page(chat.list_chat_messages(current_principal(app), session_id, limit=limit, cursor=cursor))


@app.post(
    "/api/support/chat/sessions/<session_id>/messages",
    summary="Send a chat message",
    status_code=201,
    middlewares=[idempotent],
    responses=with_storage_errors(201),  # its attachmentIds are checked with S3
)
def add_message(session_id: UUID, message: ChatMessageCreate) -> Response[Envelope[ChatMessage]]:
    return created(chat.add_chat_message(current_principal(app), session_id, message))


@app.post("/api/support/chat/sessions/<session_id>/read", summary="Mark a chat's messages read")
def mark_read(session_id: UUID, request: ChatReadRequest) -> Response[Envelope[ChatReadReceipt]]:
    return ok(chat.mark_chat_messages_read(current_principal(app), session_id, request.up_to_message_id))


@app.post(
    "/api/support/chat/sessions/<session_id>/ticket",
    summary="Turn a chat into a ticket",
    status_code=201,
    responses=success_and_errors(
        {
            201: {"description": "the ticket made from the chat"},
            200: {
                "description": "the ticket the chat already had",
                "content": {"application/json": {"model": Envelope[Ticket]}},
            },
        }
    ),
)
def make_ticket(
    session_id: UUID, request: Annotated[ChatTicketCreate | None, Body()] = None
) -> Response[Envelope[Ticket]]:
    """The console's "Make a ticket": 201 with the ticket made from the chat, or 200 with the one it already has."""
    ticket, made = tickets.ticket_from_chat(current_principal(app), session_id, request or ChatTicketCreate())
    if made:
        metrics.add_metric(name="TicketsFromChats", unit="Count", value=1)
        return created(ticket)
    return ok(ticket)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
