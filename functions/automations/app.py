"""Automations endpoint group: a tenant's automation rules (admins), the runs recorded on a ticket, and the
asynchronous run of a tenant's pending events after a change committed (support.services.automations).

Two kinds of invocation:

* API Gateway's (payload 2.0): the routes below;
* `{"tenantId": "..."}`, an asynchronous invocation (InvocationType Event) by the functions whose changes write
  automation events (the tickets function): one run of the tenant's pending events. A failure raises, so that Lambda
  retries it; a retry never acts twice (one run per event and rule), and the workflow sweep runs whatever is left.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from support import audit_actor
from support.http import PageCursor, PageSize, create_resolver, created, current_principal, ok, page
from support.idempotency import idempotent
from support.models.automations import AutomationRun, Rule, RuleCreate, RuleUpdate
from support.models.envelopes import Envelope, PageEnvelope
from support.observability import logger, metrics
from support.pagination import DEFAULT_PAGE_SIZE
from support.services import automations

app = create_resolver()

BASE = "/api/support/automations"


@app.get(
    BASE,
    summary="List the automation rules",
    description="The tenant's rules in the order they run (at most 200: one page). Admins only.",
)
def list_rules() -> Response[Envelope[list[Rule]]]:
    return ok(automations.list_rules(current_principal(app)))


@app.post(BASE, summary="Create an automation rule", status_code=201, middlewares=[idempotent])
def create_rule(data: RuleCreate) -> Response[Envelope[Rule]]:
    return created(automations.create_rule(current_principal(app), data))


@app.get(f"{BASE}/<rule_id>", summary="Get one automation rule")
def get_rule(rule_id: UUID) -> Response[Envelope[Rule]]:
    return ok(automations.get_rule(current_principal(app), rule_id))


@app.patch(f"{BASE}/<rule_id>", summary="Change an automation rule")
def update_rule(rule_id: UUID, changes: RuleUpdate) -> Response[Envelope[Rule]]:
    return ok(automations.update_rule(current_principal(app), rule_id, changes))


@app.delete(f"{BASE}/<rule_id>", summary="Delete an automation rule")
def delete_rule(rule_id: UUID) -> Response[Envelope[Rule]]:
    return ok(automations.delete_rule(current_principal(app), rule_id))


@app.get("/api/support/tickets/<ticket_id>/automation-runs", summary="List the automation runs on a ticket")
def list_ticket_runs(
    ticket_id: UUID, limit: PageSize = DEFAULT_PAGE_SIZE, cursor: PageCursor = None
) -> Response[PageEnvelope[AutomationRun]]:
    return page(automations.list_ticket_runs(current_principal(app), ticket_id, limit=limit, cursor=cursor))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    audit_actor.bind(None if "requestContext" in event else audit_actor.job("automations"))
    if "requestContext" not in event and "tenantId" in event:
        report = automations.run_pending(UUID(str(event["tenantId"])))
        metrics.add_metric(name="AutomationEvents", unit="Count", value=report.events)
        logger.info("automation run", extra={"events": report.events, "runs": report.runs})
        return {"events": report.events, "runs": report.runs}
    return app.resolve(event, context)
