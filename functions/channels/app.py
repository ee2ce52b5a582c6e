"""Channels endpoint group: the social and other channels an admin configures (each with its signing secret, shown
once), and the public route their connectors post customer messages to (no JWT: an HMAC signature with the
channel's secret; support.services.channels)."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.models import (
    MediaType,
    OpenAPI,
    Parameter,
    ParameterInType,
    RequestBody,
    Schema,
)
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from support.errors import Unauthorized
from support.http import PageCursor, PageSize, create_resolver, created, current_principal, ok, page
from support.models.channels import Channel, ChannelCreate, ChannelDelivery, ChannelMessage, ChannelWithSecret
from support.models.envelopes import Envelope, PageEnvelope
from support.observability import logger, metrics
from support.pagination import DEFAULT_PAGE_SIZE
from support.services import channels

app = create_resolver()

BASE = "/api/support/channels"


@app.post(BASE, summary="Create an inbound channel", status_code=201)
def create_channel(data: ChannelCreate) -> Response[Envelope[ChannelWithSecret]]:
    return created(channels.create_channel(current_principal(app), data))


@app.get(BASE, summary="List the inbound channels")
def list_channels(limit: PageSize = DEFAULT_PAGE_SIZE, cursor: PageCursor = None) -> Response[PageEnvelope[Channel]]:
    return page(channels.list_channels(current_principal(app), limit=limit, cursor=cursor))


@app.get(f"{BASE}/<channel_id>", summary="Get one inbound channel")
def get_channel(channel_id: UUID) -> Response[Envelope[Channel]]:
    return ok(channels.get_channel(current_principal(app), channel_id))


@app.delete(f"{BASE}/<channel_id>", summary="Disable an inbound channel")
def disable_channel(channel_id: UUID) -> Response[Envelope[Channel]]:
    return ok(channels.disable_channel(current_principal(app), channel_id))


@app.post(f"{BASE}/<channel_id>/rotate-secret", summary="Rotate a channel's signing secret")
def rotate_secret(channel_id: UUID) -> Response[Envelope[ChannelWithSecret]]:
    return ok(channels.rotate_secret(current_principal(app), channel_id))


@app.post(
    f"{BASE}/<channel_id>/messages",
    summary="Deliver a signed message through a channel",
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


# The messages route reads its body raw (the signature is over the exact bytes, and is checked first), so the
# resolver cannot derive its request body and headers from a parameter: they are added to the document here.
_resolver_schema = app.get_openapi_schema
MESSAGES_PATH = f"{BASE}/{{channelId}}/messages"


def _schema_with_the_signed_body(**kwargs: Any) -> OpenAPI:
    schema = _resolver_schema(**kwargs)
    item = (schema.paths or {}).get(MESSAGES_PATH)
    if item is None or item.post is None:
        return schema
    body = ChannelMessage.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    if schema.components is not None:
        schema.components.schemas = {**(schema.components.schemas or {}), "ChannelMessage": Schema(**body)}
    item.post.requestBody = RequestBody(
        required=True,
        content={"application/json": MediaType(schema=Schema(**{"$ref": "#/components/schemas/ChannelMessage"}))},
    )
    item.post.parameters = [
        *(item.post.parameters or []),
        Parameter(
            name="X-Signature-Timestamp",
            **{"in": ParameterInType.header},
            required=True,
            description="the signing time, Unix seconds (at most 5 minutes from now)",
            schema=Schema(type="string", pattern=r"^[0-9]{1,12}$"),
        ),
        Parameter(
            name="X-Signature",
            **{"in": ParameterInType.header},
            required=True,
            description='v1=<hex HMAC-SHA256 of "{timestamp}.{raw body}" with the channel\'s secret>',
            schema=Schema(type="string", pattern=r"^v1=[0-9a-fA-F]{64}$"),
        ),
    ]
    return schema


app.get_openapi_schema = _schema_with_the_signed_body  # type: ignore[method-assign]


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
