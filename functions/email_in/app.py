"""Email in (support.services.email_in): SES's receipt rule stored a message in S3 and invokes this function with
its receipt event (events/email/ses_receipt.json); the message becomes a ticket, a customer message on the ticket it
answers, an ignored automatic mail or a rejected one, stored once per tenant.

Answers `{"ok": true, "results": [...]}`, one result per record (`outcome`: created, threaded, ignored_automatic,
rejected, or unknown_recipient when no desk receives at the address: then nothing is stored and the raw message
stays in S3). An event of another shape answers `{"ok": false, "error": ...}` (retrying it would not help). A
failure to reach S3 or the database raises, so that Lambda retries the asynchronous invocation (a second delivery of
a stored message changes nothing).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from support import audit_actor
from support.mail.ses import SesReceipt
from support.observability import logger, metrics
from support.services import email_in


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    audit_actor.bind(audit_actor.job("email_in"))
    try:
        receipts = SesReceipt.from_event(event if isinstance(event, dict) else {})
    except ValidationError as exc:
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in exc.errors())
        logger.warning("inbound email event refused", extra={"error": message})
        return {"ok": False, "error": message}
    if not receipts:
        return {"ok": False, "error": "no SES receipt record in the event"}
    results = [email_in.receive(receipt) for receipt in receipts]
    for result in results:
        metrics.add_metric(name=f"InboundEmail_{result.outcome}", unit=MetricUnit.Count, value=1)
    return {"ok": True, "results": [result.as_dict() for result in results]}
