"""The account, region and identifiers API Gateway and Lambda share, with their local values."""

from __future__ import annotations

import base64
import os
import secrets

ACCOUNT_ID = "123456789012"
REGION = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"


def request_id() -> str:
    """An id shaped like API Gateway's request ids: 16 characters of base64."""
    return base64.b64encode(secrets.token_bytes(11)).decode()


def connection_id() -> str:
    """An id shaped like API Gateway's WebSocket connection ids ("WyHPAfymhcwCENw="), safe in a URL path."""
    while True:
        value = base64.b64encode(secrets.token_bytes(11)).decode()
        if "/" not in value and "+" not in value:
            return value
