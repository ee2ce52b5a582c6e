"""Channels endpoint group: the social and other channels an admin configures (each with its signing secret, shown
once), and the public route their connectors post customer messages to (no JWT: an HMAC signature with the
channel's secret; support.services.channels)."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from support.errors import Unauthorized
from support.http import PageCursor, PageSize, create_resolver, created, current_principal, ok, page
from support.models.channels import Channel, ChannelCreate, ChannelDelivery, ChannelWithSecret
from support.models.envelopes import Envelope, PageEnvelope
from support.observability import logger, metrics
from support.pagination import DEFAULT_PAGE_SIZE
from support.services import channels

app = create_resolver()

BASE = "/api/support/channels"


@app.post(BASE, status_code=201)
def create_channel(data: ChannelCreate) -> Response[Envelope[ChannelWithSecret]]:
    return created(channels.create_channel(current_principal(app), data))


@app.get(BASE)
def list_channels(limit: PageSize = DEFAULT_PAGE_SIZE, cursor: PageCursor = None) -> Response[PageEnvelope[Channel]]:
    return page(channels.list_channels(current_principal(app), limit=limit, cursor=cursor))


@app.get(f"{BASE}/<channel_id>")
def get_channel(channel_id: UUID) -> Response[Envelope[Channel]]:
    return ok(channels.get_channel(current_principal(app), channel_id))


@app.delete(f"{BASE}/<channel_id>")
def disable_channel(channel_id: UUID) -> Response[Envelope[Channel]]:
    return ok(channels.disable_channel(current_principal(app), channel_id))


@app.post(f"{BASE}/<channel_id>/rotate-secret")
def rotate_secret(channel_id: UUID) -> Response[Envelope[ChannelWithSecret]]:
    return ok(channels.rotate_secret(current_principal(app), channel_id))


@app.post(
    f"{BASE}/<channel_id>/messages",
    description="Public (no JWT): a connector's normalised message (externalSenderId, senderName, text, "
    "externalMessageId, sentAt), signed: X-Signature-Timestamp (unix seconds) and X-Signature "
    '(v1=<hex HMAC-SHA256 of "{timestamp}.{raw body}" with the channel\'s secret). Read raw, after the signature: '
    "docs/api.md, Channels.",
)
def post_message(channel_id: str) -> Response[Envelope[ChannelDelivery]]:
    # The raw body, exactly as signed; the channel id is checked as part of the signature (a malformed one is
    # refused as an unknown one is: one answer for every channel the caller holds no secret for).
    event = app.current_event
    try:
        channel = UUID(channel_id)
        body = base64.b64decode(event.body or "") if event.is_base64_encoded else (event.body or "").encode()
    except (ValueError, binascii.Error) as exc:
        raise Unauthorized(channels.NOT_ADMITTED) from exc
    delivery, stored = channels.deliver(
        channel, event.headers.get("x-signature-timestamp"), event.headers.get("x-signature"), body
    )
    if stored:
        metrics.add_metric(name="ChannelMessagesStored", unit="Count", value=1)
    return ok(delivery)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
