"""Asynchronous Lambda invocations (`InvocationType: Event`) from a function's request path: the staff broadcast's
trigger (support.services.broadcasts), and its slices.

One request, `POST {endpoint}/2015-03-31/functions/{name}/invocations` with `X-Amz-Invocation-Type: Event`, the
one botocore's `lambda` client sends for `invoke(InvocationType="Event")`, signed with Signature Version 4 for the
service `lambda` (support.sigv4: botocore's signature, the derived key kept for the day) and sent over one urllib3
connection pool per execution environment. Lambda answers 202 once the event is queued; the function runs later,
and Lambda retries it (twice by default) when it fails. No boto3 client: building one costs a cold start about
100 ms and each call 0.6 to 1 ms of CPU, on the path of a visitor's or agent's answer.

The endpoint is botocore's: `AWS_ENDPOINT_URL_LAMBDA`, else `AWS_ENDPOINT_URL`, else the region's
(`https://lambda.{region}.amazonaws.com`). Locally the gateway serves the Invoke API (local/gateway/lambda_api.py)
and `make run` points AWS_ENDPOINT_URL_LAMBDA at it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from support.sigv4 import SigV4Signer, aws_environment, open_endpoint

SERVICE = "lambda"
TIMEOUT_SECONDS = 2.0
ATTEMPTS = 2  # a broken pooled connection or a throttle gets one more try; then the caller decides
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_ASYNC_PAYLOAD_BYTES = 256 * 1024  # Lambda's limit for an asynchronous invocation's event

_lock = threading.Lock()
_client: LambdaInvoker | None = None


class InvocationError(Exception):
    """Lambda did not accept the event (after one retry of a transient failure)."""


class LambdaInvoker:
    """Queues events for functions of one endpoint. Safe to share between threads."""

    def __init__(self, endpoint: str, *, region: str, credentials: Any, ca_bundle: str | None = None) -> None:
        self._endpoint = open_endpoint(
            endpoint, name="the Lambda endpoint", connections=4, timeout_seconds=TIMEOUT_SECONDS, ca_bundle=ca_bundle
        )
        self._signer = SigV4Signer(SERVICE, region, credentials)

    def invoke_async(self, function_name: str, payload: dict[str, Any]) -> None:
        """Queue `payload` as the event of one invocation of `function_name` (a name or an ARN); raises
        InvocationError unless Lambda answers 202."""
        from urllib3.exceptions import HTTPError

        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        if len(body) > MAX_ASYNC_PAYLOAD_BYTES:
            raise InvocationError(f"the event is {len(body)} bytes, over Lambda's {MAX_ASYNC_PAYLOAD_BYTES}")
        endpoint = self._endpoint
        path = f"{endpoint.base_path}/2015-03-31/functions/{quote(function_name, safe='')}/invocations"
        problem = ""
        for _ in range(ATTEMPTS):
            headers = self._signer.headers("POST", endpoint.host, path, body, {"x-amz-invocation-type": "Event"})
            headers["content-type"] = "application/json"
            try:
                response = endpoint.http.urlopen(
                    "POST", path, body=body, headers=headers, retries=False, redirect=False, assert_same_host=False
                )
            except HTTPError as error:
                problem = f"no answer: {error}"
                continue
            if response.status == 202:
                return
            problem = f"{response.status} {response.headers.get('x-amzn-errortype') or ''}".strip()
            if response.status not in RETRYABLE_STATUSES:
                break
        raise InvocationError(f"Lambda did not queue the event for {function_name}: {problem}")


def endpoint_url(region: str) -> str:
    """botocore's endpoint for the service: the service's own setting, the global one, else the region's."""
    configured = os.environ.get("AWS_ENDPOINT_URL_LAMBDA") or os.environ.get("AWS_ENDPOINT_URL")
    if configured:
        return configured
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://lambda.{region}.{suffix}"


def lambda_invoker() -> LambdaInvoker:
    """The execution environment's client, created on first use (botocore imported only then)."""
    global _client
    with _lock:
        if _client is None:
            aws = aws_environment("invoking a function")
            _client = LambdaInvoker(
                endpoint_url(aws.region), region=aws.region, credentials=aws.credentials, ca_bundle=aws.ca_bundle
            )
        return _client


def reset() -> None:
    """Forget the client (tests that change the endpoint or the credentials)."""
    global _client
    with _lock:
        _client = None


def invoke_or_run(
    function_name: str | None, payload: dict[str, Any], run_here: Callable[[], object], *, what: str
) -> None:
    """Start `what` soon: an asynchronous invocation of `function_name` with `payload`, or, with no function
    configured (or when Lambda did not take the event), `run_here()` in this environment. Never raises: the work is
    written down before it is started, so whatever fails here is left for the caller's own catch-up (a sweep, the
    next change)."""
    from support.observability import logger

    try:
        if function_name is not None:
            try:
                lambda_invoker().invoke_async(function_name, payload)
                return
            except Exception:
                logger.exception("the %s function was not invoked; running it here", what)
        run_here()
    except Exception:
        logger.exception("the %s run failed; it is picked up again later", what)
