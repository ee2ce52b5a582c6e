"""The email outbox (support.services.email_outbox): sends the customers' notifications, and stops mail to the
addresses SES reports as bounced or complaining.

Two events:
* the schedule's, every minute (`{"scheduledTime": "<aws.scheduler.scheduled-time>"}`, template.yaml; any event
  that is not SNS's does the same): drains the outbox, for every tenant, until nothing is due or the time budget is
  spent. Failures to send are the outbox's to retry (backoff) or record (on the ticket), not the invocation's: it
  answers the counts;
* SNS's, `{"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "<SES notification JSON>"}}]}`: a permanent
  bounce or a complaint suppresses the address for the tenant that sent the mail.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from support import audit_actor
from support.observability import logger, metrics
from support.services import email_outbox

# The schedule runs every minute: a drain stops taking new batches after this long, below the function timeout.
TIME_BUDGET_SECONDS = 45.0


def _is_sns(event: dict[str, Any]) -> bool:
    records = event.get("Records")
    return isinstance(records, list) and any(
        isinstance(r, dict) and (r.get("EventSource") or r.get("eventSource")) == "aws:sns" for r in records
    )


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    audit_actor.bind(audit_actor.job("email_outbox"))
    if _is_sns(event):
        suppressed = sum(email_outbox.record_ses_notification(n) for n in email_outbox.sns_notifications(event))
        metrics.add_metric(name="EmailAddressesSuppressed", unit=MetricUnit.Count, value=suppressed)
        return {"ok": True, "suppressed": suppressed}
    result = email_outbox.drain(time_budget_seconds=TIME_BUDGET_SECONDS)
    metrics.add_metric(name="EmailsSent", unit=MetricUnit.Count, value=result.sent)
    metrics.add_metric(name="EmailsRetried", unit=MetricUnit.Count, value=result.retried)
    metrics.add_metric(name="EmailsFailed", unit=MetricUnit.Count, value=result.failed)
    if result.sent or result.retried or result.failed:
        logger.info(
            "email outbox drained", extra={"sent": result.sent, "retried": result.retried, "failed": result.failed}
        )
    return {"ok": True, "sent": result.sent, "retried": result.retried, "failed": result.failed}
