"""Cognito pre-token-generation trigger (`V2_0`): the tenant, role and agent id claims in the access token.

The decision lives in the layer (support.pre_token). The event holds the user's attributes (an email address),
so it is never logged.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from support.observability import logger
from support.pre_token import add_staff_claims


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return add_staff_claims(event)
