"""Dashboard and analytics reads: the support dashboard's KPIs, the daily analytics rows and a range's summary."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from support.http import TenantParam, create_resolver, current_principal, ok
from support.models.analytics import AnalyticsSummary, SupportAnalytics
from support.models.dashboard import SupportDashboard
from support.models.envelopes import Envelope
from support.observability import logger, metrics
from support.services import analytics, dashboard

app = create_resolver()


@app.get("/api/support/dashboard", summary="The desk's figures: today and the last 7 days")
def get_dashboard(user_id: TenantParam = None) -> Response[Envelope[SupportDashboard]]:
    principal = current_principal(app)
    principal.require_tenant(user_id)
    return ok(dashboard.get_dashboard(principal))


@app.get("/api/support/analytics", summary="Daily analytics rows")
def list_analytics(
    start: Annotated[date, Query(alias="from")],
    end: Annotated[date, Query(alias="to")],
    user_id: TenantParam = None,
) -> Response[Envelope[list[SupportAnalytics]]]:
    principal = current_principal(app)
    principal.require_tenant(user_id)
    return ok(dashboard.list_analytics(principal, start, end))


@app.get("/api/support/analytics/summary", summary="Analytics summed over a period")
def summarize_analytics(
    start: Annotated[date, Query(alias="from")],
    end: Annotated[date, Query(alias="to")],
    by_agent: Annotated[bool, Query(alias="byAgent")] = False,
    user_id: TenantParam = None,
) -> Response[Envelope[AnalyticsSummary]]:
    principal = current_principal(app)
    principal.require_tenant(user_id)
    return ok(analytics.summarize(principal, start, end, by_agent=by_agent))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
