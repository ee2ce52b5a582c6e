"""Widgets endpoint group: the widget keys a merchant embeds (admins), and the public routes the chat widget calls
from the merchant's page (no JWT: the key, the browser's Origin and our signed tokens): the visitor session and
the web form. And, public too, the HTTP API's OpenAPI document (the stack's `OpenApiUrl` output)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from support.http import (
    PageCursor,
    PageSize,
    create_resolver,
    created,
    current_principal,
    ok,
    page,
    with_storage_errors,
)
from support.idempotency import idempotent
from support.models.attachments import (
    AttachmentDownload,
    AttachmentUpload,
    VisitorAttachmentDownloadRequest,
    VisitorAttachmentUploadRequest,
)
from support.models.envelopes import Envelope, PageEnvelope
from support.models.widgets import (
    WIDGET_KEY_PATTERN,
    WebFormTicket,
    WebFormTicketCreate,
    Widget,
    WidgetCreate,
    WidgetOriginsUpdate,
    WidgetSession,
    WidgetSessionRequest,
)
from support.observability import logger, metrics
from support.pagination import DEFAULT_PAGE_SIZE
from support.services import attachments, widgets
from support.visitors import signing_key

app = create_resolver()
signing_key()  # read the visitor key at cold start: a function without one fails here, not on a visitor

BASE = "/api/support/widgets"


@app.post(BASE, summary="Create a chat widget key", status_code=201, middlewares=[idempotent])
def create_widget(data: WidgetCreate) -> Response[Envelope[Widget]]:
    return created(widgets.create_widget(current_principal(app), data))


@app.get(BASE, summary="List the chat widget keys")
def list_widgets(limit: PageSize = DEFAULT_PAGE_SIZE, cursor: PageCursor = None) -> Response[PageEnvelope[Widget]]:
    return page(widgets.list_widgets(current_principal(app), limit=limit, cursor=cursor))


@app.patch(f"{BASE}/<widget_key>", summary="Change a widget key's allowed origins")
def update_widget_origins(
    widget_key: Annotated[str, Path(pattern=WIDGET_KEY_PATTERN)], data: WidgetOriginsUpdate
) -> Response[Envelope[Widget]]:
    return ok(widgets.update_widget_origins(current_principal(app), widget_key, data))


@app.delete(f"{BASE}/<widget_key>", summary="Revoke a chat widget key")
def revoke_widget(widget_key: Annotated[str, Path(pattern=WIDGET_KEY_PATTERN)]) -> Response[Envelope[Widget]]:
    return ok(widgets.revoke_widget(current_principal(app), widget_key))


@app.post("/api/support/widget/session", summary="Start a visitor's widget session (public)", status_code=201)
def start_visitor_session(request: WidgetSessionRequest) -> Response[Envelope[WidgetSession]]:
    origin = app.current_event.headers.get("origin")
    source_ip = app.current_event.request_context.http.source_ip
    session = widgets.start_visitor_session(request.widget_key, origin, request.resume_token, source_ip=source_ip)
    metrics.add_metric(name="VisitorSessionsStarted", unit="Count", value=1)
    return created(session)


@app.post("/api/support/widget/tickets", summary="Submit the public web form as a ticket", status_code=201)
def submit_web_form(form: WebFormTicketCreate) -> Response[Envelope[WebFormTicket]]:
    origin = app.current_event.headers.get("origin")
    source_ip = app.current_event.request_context.http.source_ip
    answer, stored = widgets.submit_web_form(form, origin, source_ip=source_ip)
    metrics.add_metric(name="WebFormTickets" if stored else "WebFormHoneypotHits", unit="Count", value=1)
    return created(answer)


@app.post(
    "/api/support/widget/attachments/upload-url",
    summary="Get an upload URL for a file of the visitor's own chat (public)",
    status_code=201,
    responses=with_storage_errors(201),
)
def create_visitor_upload_url(request: VisitorAttachmentUploadRequest) -> Response[Envelope[AttachmentUpload]]:
    origin = app.current_event.headers.get("origin")
    return created(attachments.visitor_upload_url(request, origin))


@app.post(
    "/api/support/widget/attachments/<attachment_id>/download-url",
    summary="Get a download URL of a file of the visitor's own chat (public)",
    responses=with_storage_errors(200),
)
def create_visitor_download_url(
    attachment_id: UUID, request: VisitorAttachmentDownloadRequest
) -> Response[Envelope[AttachmentDownload]]:
    origin = app.current_event.headers.get("origin")
    return ok(attachments.visitor_download_url(attachment_id, request, origin))


@cache
def _openapi_document() -> str:
    # Written by `python -m local.openapi --write` beside docs/openapi.json, the same document (a contract test
    # fails when either differs from what the code generates); shipped in the layer.
    return files("support").joinpath("openapi.json").read_text(encoding="utf-8")


# Not in the document itself: it answers the document, not an envelope.
@app.get("/api/support/openapi.json", include_in_schema=False)
def get_openapi_document() -> Response[str]:
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        body=_openapi_document(),
        headers={"Cache-Control": "public, max-age=300"},
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
