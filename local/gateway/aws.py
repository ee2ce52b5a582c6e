"""The account, region, identifiers and request headers API Gateway and Lambda share, with their local values."""

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


def forwarded_for(given: str | None, peer: str) -> str:
    """The X-Forwarded-For a function sees: the client's own (`given`, anything it likes), with the TCP peer, the
    one address it cannot forge and the event's `sourceIp`, appended, as a proxy appends its caller's."""
    return f"{given}, {peer}" if given else peer
