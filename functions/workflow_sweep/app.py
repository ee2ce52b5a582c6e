"""The workflow sweep (issue 18): every minute, for every tenant, the time-based work of the desk's workflow.

EventBridge Scheduler invokes it with `{"scheduledTime": "<aws.scheduler.scheduled-time>"}` (template.yaml,
WorkflowSweepFunction). The handler runs STEPS in order, each given the same clock (`now`: the schedule's time, so a
late invocation judges what was due when it was meant to run, and every step agrees). A step is a service function
`step(now) -> list | int` that covers all tenants itself and commits its own work; what it answers is counted in
the result and the metrics. A step that fails is logged and counted and the others still run (the next minute runs
it again: every step records what it did, so a rerun repeats nothing); the invocation fails if any step failed, so
the failure shows in the function's error metric and alarm.

Steps:
* `sla`: support.services.sla.sweep: records each SLA warning and breach once (docs/sla.md); each recorded event
  becomes the ticket's `sla_at_risk` or `sla_breached` automation event (automations.record_sla_event, subscribed
  below), once.
* `automations`: support.services.automations.sweep: fires the time-based events that are due (a ticket in a status
  for N hours, idle chats, the auto-close rules) and runs every pending event of every tenant, the SLA's among them
  (docs/automations.md).
* `chat_expiry`: support.services.chat_expiry.expire_waiting_chats: a chat still waiting after the tenant's wait
  limit (routing settings) becomes a ticket with its messages, and its visitor is told (docs/api.md, Routing).
* `idempotency`: support.idempotency.purge_expired: deletes the Idempotency-Keys past their 24 hours, of every tenant
  (docs/api.md, Retry-safe writes).
* `privacy`: support.services.privacy.sweep: starts again the privacy exports and erasures whose run was lost (a
  lease that ended: a crash midway; or never started), each from its last committed batch, at most a bounded number
  of attempts (docs/api.md, Privacy requests).
* `webhooks`: support.services.webhooks.sweep: hands to SQS the webhook deliveries whose dispatch after the commit
  was lost, and re-sends the messages of queued ones long past due (docs/webhooks.md).
* `webhook_log`: support.services.webhooks.prune_log: deletes the deliveries that finished (delivered or failed) more
  than 30 days ago, per tenant in bounded batches, within a budget (tenants and seconds) a run; pending and queued
  ones stay (docs/webhooks.md).
* `retention`: support.services.retention.sweep_step: the closed tickets and ended chats past their tenant's retention
  policy written to the archive bucket (mode archive) and then deleted, in bounded batches (docs/ARCHITECTURE.md,
  "Retention and archives").
* `uploads`: support.services.attachments.sweep_unclaimed: deletes the uploads no message claimed within the bucket
  lifecycle's day and a margin (their pending rows, and their objects, best effort), per tenant in bounded batches,
  within a budget (tenants and seconds) a run (docs/ARCHITECTURE.md, "Attachments").
* `audit`: support.services.audit.seal: chains the audit entries written since the last run, per tenant (last, so the
  entries of the steps before it are chained in the same run).
* `audit_check`: support.services.audit.check: verifies the next stretch of the audit chains; its count (the tenants
  whose chain is broken, WorkflowSweep_audit_check) raises the AuditChainBrokenAlarm.
Other steps join this list in the same shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from support import audit_actor, idempotency
from support.observability import logger, metrics
from support.services import attachments, audit, automations, chat_expiry, privacy, retention, sla, webhooks

type Step = Callable[[datetime], Sequence[Any] | int]

# The steps, in the order they run: (name, function of the clock).
STEPS: list[tuple[str, Step]] = [
    ("sla", sla.sweep),
    ("automations", automations.sweep_step),
    ("chat_expiry", lambda now: chat_expiry.expire_waiting_chats(now).ticketed),
    ("idempotency", idempotency.purge_expired),
    ("privacy", privacy.sweep),
    ("webhooks", webhooks.sweep),
    ("webhook_log", webhooks.prune_log),
    ("retention", retention.sweep_step),
    ("uploads", attachments.sweep_unclaimed),
    ("audit", audit.seal),
    ("audit_check", audit.check),
]

# An SLA warning or breach the sla step records is an automation event, run by the automations step that follows.
if automations.record_sla_event not in sla.EVENT_HANDLERS:
    sla.EVENT_HANDLERS.append(automations.record_sla_event)


def scheduled_time(event: dict[str, Any]) -> datetime:
    """The schedule's time (ISO 8601, `Z` or an offset), or now for an event without one (a run by hand)."""
    raw = event.get("scheduledTime") if isinstance(event, dict) else None
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            logger.warning("unreadable scheduledTime, using now", extra={"scheduledTime": raw[:64]})
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


def run_steps(now: datetime, steps: Sequence[tuple[str, Step]] = STEPS) -> dict[str, Any]:
    """Every step with the clock `now`: {"ok", "steps": {name: count}, "failed": [names]}."""
    counts: dict[str, int] = {}
    failed: list[str] = []
    for name, step in steps:
        try:
            done = step(now)
        except Exception:
            logger.exception("workflow sweep step failed", extra={"step": name})
            failed.append(name)
            continue
        counts[name] = done if isinstance(done, int) else len(done)
    return {"ok": not failed, "at": now.isoformat(), "steps": counts, "failed": failed}


class WorkflowSweepFailed(RuntimeError):
    pass


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    audit_actor.bind(audit_actor.job("workflow_sweep"))
    result = run_steps(scheduled_time(event))
    for name, count in result["steps"].items():
        metrics.add_metric(name=f"WorkflowSweep_{name}", unit=MetricUnit.Count, value=count)
    metrics.add_metric(name="WorkflowSweepStepsFailed", unit=MetricUnit.Count, value=len(result["failed"]))
    if any(result["steps"].values()):
        logger.info("workflow sweep", extra=result)
    if result["failed"]:
        raise WorkflowSweepFailed(f"workflow sweep steps failed: {', '.join(result['failed'])}")
    return result
