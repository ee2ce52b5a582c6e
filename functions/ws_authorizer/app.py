"""The WebSocket API's $connect authorizer (a Lambda REQUEST authorizer): staff JWTs and visitor tokens.

The decision lives in the layer (support.ws_auth). Raising "Unauthorized" makes API Gateway answer 401; a Deny
policy, 403. The event holds the token in its query string, so it is never logged.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from support.config import get_settings
from support.observability import logger
from support.visitors import signing_key
from support.ws_auth import authorize

get_settings()
signing_key()  # the visitor key, read at cold start


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return authorize(event)
