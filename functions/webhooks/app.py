"""Webhooks endpoint group (admins): a tenant's endpoints subscribed to the desk's events, each with its signing
secret (shown once, on create and on rotation), and the log of their deliveries (support.services.webhooks,
docs/webhooks.md)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from support.http import PageCursor, PageSize, create_resolver, created, current_principal, ok, page
from support.models.envelopes import Envelope, PageEnvelope
from support.models.webhooks import Webhook, WebhookCreate, WebhookDelivery, WebhookUpdate, WebhookWithSecret
from support.observability import logger, metrics
from support.pagination import DEFAULT_PAGE_SIZE
from support.services import webhooks

app = create_resolver()

BASE = "/api/support/webhooks"


@app.post(
    BASE,
    summary="Create a webhook endpoint",
    description="An https URL whose host resolves to public addresses only (422 otherwise) and the events it "
    "receives (ticket.created, ticket.status_changed, ticket.assigned, ticket.message_created, chat.message_created, "
    "chat.started, chat.ended, feedback.received). Answers the signing secret, once. Admins only: docs/webhooks.md.",
    status_code=201,
)
def create_webhook(data: WebhookCreate) -> Response[Envelope[WebhookWithSecret]]:
    return created(webhooks.create_endpoint(current_principal(app), data))


@app.get(BASE, summary="List the webhook endpoints")
def list_webhooks(limit: PageSize = DEFAULT_PAGE_SIZE, cursor: PageCursor = None) -> Response[PageEnvelope[Webhook]]:
    return page(webhooks.list_endpoints(current_principal(app), limit=limit, cursor=cursor))


@app.get(f"{BASE}/<webhook_id>", summary="Get one webhook endpoint")
def get_webhook(webhook_id: UUID) -> Response[Envelope[Webhook]]:
    return ok(webhooks.get_endpoint(current_principal(app), webhook_id))


@app.patch(f"{BASE}/<webhook_id>", summary="Change a webhook endpoint")
def update_webhook(webhook_id: UUID, changes: WebhookUpdate) -> Response[Envelope[Webhook]]:
    return ok(webhooks.update_endpoint(current_principal(app), webhook_id, changes))


@app.delete(f"{BASE}/<webhook_id>", summary="Delete a webhook endpoint and its delivery log")
def delete_webhook(webhook_id: UUID) -> Response[Envelope[Webhook]]:
    return ok(webhooks.delete_endpoint(current_principal(app), webhook_id))


@app.post(
    f"{BASE}/<webhook_id>/secret/rotate",
    summary="Rotate a webhook endpoint's signing secret",
    description="Answers the new secret, once. For 24 hours every delivery carries two signatures (v1= with the new "
    "secret first, then the previous one), so the receiver can switch at its own pace.",
)
def rotate_webhook_secret(webhook_id: UUID) -> Response[Envelope[WebhookWithSecret]]:
    return ok(webhooks.rotate_secret(current_principal(app), webhook_id))


@app.get(f"{BASE}/<webhook_id>/deliveries", summary="List a webhook endpoint's deliveries")
def list_webhook_deliveries(
    webhook_id: UUID, limit: PageSize = DEFAULT_PAGE_SIZE, cursor: PageCursor = None
) -> Response[PageEnvelope[WebhookDelivery]]:
    return page(webhooks.list_deliveries(current_principal(app), webhook_id, limit=limit, cursor=cursor))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
