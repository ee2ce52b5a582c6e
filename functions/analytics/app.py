"""The daily analytics rollup (support.services.analytics), run by EventBridge Scheduler and by hand.

Two events:
* the schedule's, `{"scheduledTime": "<aws.scheduler.scheduled-time>"}` (template.yaml): rolls up the two UTC
  days before the scheduled time (yesterday, and the day before once more for late activity), for every tenant
  with activity in them. Derived from the scheduled time, not the clock, so a retried run does the same days;
* a backfill, `{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD", "tenantId"?: "..."}`: those days (at most 366),
  of that tenant or of every tenant with activity in them.
A bad event answers `{"ok": false, "error": ...}` (retrying it would not help). If any tenant fails, the others
are still rolled up, the failures are logged and counted (metric AnalyticsRollupFailedTenants), and the
invocation then raises, so that the schedule's retry policy and dead-letter queue see it.
"""

from __future__ import annotations

from datetime import UTC, date, timedelta
from typing import Any
from uuid import UUID

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from support import audit_actor
from support.observability import logger, metrics
from support.services import analytics


class ScheduledRun(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    scheduled_time: AwareDatetime = Field(alias="scheduledTime")


class Backfill(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    start: date = Field(alias="from")
    end: date = Field(alias="to")
    tenant_id: UUID | None = Field(default=None, alias="tenantId")

    @model_validator(mode="after")
    def _a_bounded_range(self) -> Backfill:
        if self.end < self.start:
            raise ValueError("`to` is before `from`")
        if (self.end - self.start).days + 1 > analytics.MAX_DAYS:
            raise ValueError(f"a range covers at most {analytics.MAX_DAYS} days")
        return self


class RollupFailed(RuntimeError):
    """Some tenants' rollups failed (the others were stored): raised so that the retry policy sees it."""


def _range(event: dict[str, Any]) -> tuple[date, date, UUID | None]:
    if "scheduledTime" in event:
        run = ScheduledRun.model_validate(event)
        yesterday = run.scheduled_time.astimezone(UTC).date() - timedelta(days=1)
        return yesterday - timedelta(days=1), yesterday, None
    backfill = Backfill.model_validate(event)
    return backfill.start, backfill.end, backfill.tenant_id


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    audit_actor.bind(audit_actor.job("analytics_rollup"))
    try:
        if not isinstance(event, dict):
            raise TypeError("the event is not a JSON object")
        start, end, tenant_id = _range(event)
    except (ValidationError, TypeError) as exc:
        message = (
            str(exc)
            if isinstance(exc, TypeError)
            else "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in exc.errors())
        )
        logger.warning("analytics event refused", extra={"error": message})
        return {"ok": False, "error": message}

    report = analytics.roll_up(start, end, tenant_id)
    metrics.add_metric(name="AnalyticsRollupTenants", unit=MetricUnit.Count, value=len(report.succeeded))
    metrics.add_metric(name="AnalyticsRollupFailedTenants", unit=MetricUnit.Count, value=len(report.failed))
    failed = sorted(str(t) for t in report.failed)
    tenants = len(report.succeeded) + len(report.failed)
    result: dict[str, Any] = {
        "ok": not report.failed,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "tenants": tenants,
        "failed": failed,
    }
    logger.info("analytics rollup finished", extra=result)
    if report.failed:
        raise RollupFailed(f"{len(failed)} of {tenants} tenants failed: {', '.join(failed)}")
    return result
