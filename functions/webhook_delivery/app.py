"""Webhook deliveries (support.services.webhooks, docs/webhooks.md). Two kinds of invocation:

* SQS's (the event source mapping of WebhookDeliveryQueue, batches of up to 10 with ReportBatchItemFailures): each
  message names one delivery; it is attempted if due, its outcome recorded, a retry sent on with its delay. The
  messages of a tenant whose database work failed are reported as failures, so SQS gives them again (and moves them
  to the dead-letter queue after maxReceiveCount).
* `{"dispatch": {"tenantId": "..."}}`, an asynchronous invocation by a function whose change wrote deliveries: the
  tenant's pending deliveries handed to SQS. A failure raises, so that Lambda retries it; the workflow sweep
  dispatches whatever is left.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from support.observability import logger, metrics
from support.services import webhooks


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "dispatch" in event:
        queued = webhooks.dispatch(UUID(str(event["dispatch"]["tenantId"])))
        metrics.add_metric(name="WebhookDeliveriesQueued", unit=MetricUnit.Count, value=queued)
        return {"queued": queued}
    report = webhooks.deliver_messages(event.get("Records", []))
    for name in ("delivered", "retried", "failed"):
        metrics.add_metric(name=f"WebhookDeliveries_{name}", unit=MetricUnit.Count, value=getattr(report, name))
    if report.failed or report.unprocessed:
        logger.info("webhook batch", extra={"failed": report.failed, "unprocessed": len(report.unprocessed)})
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in report.unprocessed]}
