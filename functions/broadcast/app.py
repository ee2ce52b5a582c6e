"""The staff broadcast function: invoked asynchronously (InvocationType Event) by the functions whose changes the
whole staff must hear (support.services.broadcasts), never by API Gateway.

Two events:

* `{"tenantId": "..."}`: one broadcast run of the tenant: its pending changes, read and told in one pass
  (queue.updated and agent.status to every staff connection, chat.queued to the visitors whose position changed),
  the first slice of recipients delivered here and each further slice handed to another invocation of this
  function (its own name, from the context);
* `{"tenantId": "...", "slice": {"events": [...], "recipients": [[connectionId, [eventIndex, ...]], ...]}}`: the
  delivery of one slice.

A failure raises, so that Lambda retries the invocation (EventInvokeConfig in template.yaml); a run is safe to
repeat (a second run finds no pending request and does nothing; a slice delivered twice tells the same newest state
twice).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aws_lambda_powertools.utilities.typing import LambdaContext

from support import audit_actor
from support.config import get_settings
from support.observability import logger, metrics
from support.services import broadcasts

get_settings()  # a misconfigured function fails at cold start


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    audit_actor.bind(audit_actor.job("staff_broadcast"))
    tenant_id = UUID(str(event["tenantId"]))
    if "slice" in event:
        part = broadcasts.Slice.from_payload(event["slice"])
        broadcasts.deliver_slice(tenant_id, part)
        return {"delivered": len(part.recipients)}
    report = broadcasts.run(tenant_id, function_name=context.function_name)
    if report.ran:
        metrics.add_metric(name="StaffBroadcasts", unit="Count", value=1)
    logger.info(
        "staff broadcast",
        extra={
            "ran": report.ran,
            "staff_connections": report.staff_connections,
            "retold": len(report.retold),
            "slices_handed_on": report.slices_handed_on,
        },
    )
    return {"ran": report.ran, "staffConnections": report.staff_connections, "retold": len(report.retold)}
