"""Settings endpoint group: a tenant's settings, one area per path (`/api/support/settings/<area>`), read by any
member of the desk (routing: admins only, issue 18) and written, whole, by admins. Chat, email, SLA (docs/sla.md),
routing and retention so far; the others will join in the same shape."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from support.http import create_resolver, current_principal, ok
from support.models.envelopes import Envelope
from support.models.settings import ChatSettings, EmailSettings, RetentionSettings, RoutingSettings, SlaSettings
from support.observability import logger, metrics
from support.services import retention, settings, sla

app = create_resolver()

BASE = "/api/support/settings"


@app.get(f"{BASE}/chat", summary="Get the chat settings")
def get_chat_settings() -> Response[Envelope[ChatSettings]]:
    return ok(settings.get_chat_settings(current_principal(app)))


@app.put(f"{BASE}/chat", summary="Replace the chat settings")
def put_chat_settings(data: ChatSettings) -> Response[Envelope[ChatSettings]]:
    return ok(settings.put_chat_settings(current_principal(app), data))


@app.get(f"{BASE}/email", summary="Get the email settings")
def get_email_settings() -> Response[Envelope[EmailSettings]]:
    return ok(settings.get_email_settings(current_principal(app)))


@app.put(f"{BASE}/email", summary="Replace the email settings")
def put_email_settings(data: EmailSettings) -> Response[Envelope[EmailSettings]]:
    return ok(settings.put_email_settings(current_principal(app), data))


@app.get(f"{BASE}/sla", summary="Get the SLA settings")
def get_sla_settings() -> Response[Envelope[SlaSettings]]:
    return ok(sla.get_sla_settings(current_principal(app)))


@app.put(f"{BASE}/sla", summary="Replace the SLA settings")
def put_sla_settings(data: SlaSettings) -> Response[Envelope[SlaSettings]]:
    return ok(sla.put_sla_settings(current_principal(app), data))


@app.get(f"{BASE}/routing", summary="Get the routing settings")
def get_routing_settings() -> Response[Envelope[RoutingSettings]]:
    return ok(settings.get_routing_settings(current_principal(app)))


@app.put(f"{BASE}/routing", summary="Replace the routing settings")
def put_routing_settings(data: RoutingSettings) -> Response[Envelope[RoutingSettings]]:
    return ok(settings.put_routing_settings(current_principal(app), data))


@app.get(f"{BASE}/retention", summary="Get the retention settings")
def get_retention_settings() -> Response[Envelope[RetentionSettings]]:
    return ok(retention.retention_settings(current_principal(app)))


@app.put(f"{BASE}/retention", summary="Replace the retention settings")
def put_retention_settings(data: RetentionSettings) -> Response[Envelope[RetentionSettings]]:
    return ok(retention.put_retention_settings(current_principal(app), data))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
