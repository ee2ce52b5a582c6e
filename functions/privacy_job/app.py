"""The privacy job: one export or erasure (support.services.privacy), invoked asynchronously by the privacy function
right after the request committed, with `{"tenantId": "...", "privacyRequestId": "..."}`.

A failure raises, so that Lambda retries the invocation (EventInvokeConfig) and then sends the event to the
dead-letter queue (whose depth raises an alarm); the request records its error and its attempts, and the workflow
sweep's `privacy` step resumes it from its last committed batch whatever happened to the invocation.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aws_lambda_powertools.utilities.typing import LambdaContext

from support.config import get_settings
from support.observability import logger, metrics
from support.services import privacy

get_settings()  # a misconfigured function fails at cold start

# Below the function's 900 s time-out: a run that needs more gives its lease up and the sweep goes on with it.
BUDGET_SECONDS = 780.0


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    tenant_id = UUID(str(event["tenantId"]))
    request_id = UUID(str(event["privacyRequestId"]))
    logger.append_keys(tenant_id=str(tenant_id), privacy_request_id=str(request_id))
    state = privacy.run_request(tenant_id, request_id, budget_seconds=BUDGET_SECONDS)
    metrics.add_metric(name="PrivacyRequestsRun", unit="Count", value=1)
    return {"privacyRequestId": str(request_id), "state": state}
