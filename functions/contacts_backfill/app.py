"""The contacts backfill (support.services.contacts.backfill): links the tickets and chat sessions from before
contacts existed to their contacts, in bounded batches. Invoked by hand (`aws lambda invoke`, `make
backfill-contacts` locally), as often as it takes: each run stops short of the function's timeout and answers
`"done": false` when rows remain, and the next run continues where it ended (the rows left are those with no
contact yet).

The event, every field optional: `{"tenantId": "<uuid>", "batchSize": 500}` (one tenant, or every tenant; rows
per transaction, at most 5,000). A bad event answers `{"ok": false, "error": ...}`. If any tenant fails, the others
are still linked, and the invocation then raises so that the failure is seen.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from support import audit_actor
from support.observability import logger, metrics
from support.services import contacts

# Left of the function's time when a run stops taking new batches: a batch, and the answer, fit in it.
RESERVE_SECONDS = 30.0


class BackfillEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tenant_id: UUID | None = Field(default=None, alias="tenantId")
    batch_size: int = Field(default=contacts.BACKFILL_BATCH, alias="batchSize", ge=1, le=contacts.MAX_BACKFILL_BATCH)


class BackfillFailed(RuntimeError):
    """Some tenants' backfills failed (the others were linked): raised so that the failure is seen."""


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    audit_actor.bind(audit_actor.job("contacts_backfill"))
    try:
        request = BackfillEvent.model_validate(event if event is not None else {})
    except ValidationError as exc:
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in exc.errors())
        logger.warning("contacts backfill event refused", extra={"error": message})
        return {"ok": False, "error": message}

    seconds = max(1.0, context.get_remaining_time_in_millis() / 1000 - RESERVE_SECONDS)
    report = contacts.backfill(tenant_id=request.tenant_id, batch_size=request.batch_size, seconds=seconds)
    metrics.add_metric(name="ContactsBackfillTickets", unit=MetricUnit.Count, value=report.tickets)
    metrics.add_metric(name="ContactsBackfillSessions", unit=MetricUnit.Count, value=report.sessions)
    failed = sorted(str(t) for t in report.failed)
    result: dict[str, Any] = {
        "ok": not failed,
        "done": report.done and not failed,
        "tenants": report.tenants,
        "tickets": report.tickets,
        "sessions": report.sessions,
        "batches": report.batches,
        "failed": failed,
    }
    logger.info("contacts backfill finished", extra=result)
    if failed:
        raise BackfillFailed(f"{len(failed)} tenants failed: {', '.join(failed)}")
    return result
