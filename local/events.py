"""The events API Gateway sends a Lambda function, built the way API Gateway builds them.

Used by the local gateway and by the tests that call handlers in-process, so both speak payload 2.0
(HTTP API) exactly alike.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

ACCOUNT_ID = "123456789012"
API_ID = "local"
REGION = "us-east-1"


def _stringify_claim(value: Any) -> str:
    """The JWT authorizer hands claims over as strings; a list becomes "[a b c]"."""
    if isinstance(value, list):
        return "[" + " ".join(str(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def http_event(
    *,
    method: str,
    path: str,
    route_key: str,
    query_string: str = "",
    headers: Mapping[str, str] | None = None,
    body: str | bytes | None = None,
    claims: Mapping[str, Any] | None = None,
    path_parameters: Mapping[str, str] | None = None,
    source_ip: str = "127.0.0.1",
    domain_name: str = "localhost",
) -> dict[str, Any]:
    """An HTTP API payload format 2.0 event, with the JWT authorizer's verified claims."""
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    query: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    is_base64 = False
    if isinstance(body, bytes):
        try:
            body = body.decode()
        except UnicodeDecodeError:
            body, is_base64 = base64.b64encode(body).decode(), True
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query_string,
        "headers": lowered,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "authorizer": {
                "jwt": {"claims": {k: _stringify_claim(v) for k, v in (claims or {}).items()}, "scopes": None}
            },
            "domainName": domain_name,
            "domainPrefix": domain_name.split(".")[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": is_base64,
    }
    if "cookie" in lowered:
        event["cookies"] = [c.strip() for c in lowered["cookie"].split(";")]
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body is not None:
        event["body"] = body
    return event


@dataclass
class LambdaContext:
    """What the Lambda runtime passes as `context`, as far as Powertools and the handlers use it."""

    function_name: str
    memory_limit_in_mb: int = 512
    timeout_seconds: float = 10.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    _deadline: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline + self.timeout_seconds - time.monotonic()) * 1000))


def lambda_context(function_name: str) -> LambdaContext:
    return LambdaContext(function_name=function_name)
