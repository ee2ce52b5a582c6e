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
from typing import Any
from urllib.parse import quote

from support.config import ConfigurationError
from support.sigv4 import DEFAULT_PORTS, SigV4Signer, host_header

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
        import urllib3

        url = urllib3.util.parse_url(endpoint.rstrip("/"))
        if url.scheme not in DEFAULT_PORTS or not url.host:
            raise ConfigurationError(f"the Lambda endpoint is not an http(s) URL: {endpoint!r}")
        self._host = host_header(url.scheme, url.host, url.port)
        self._base_path = url.path or ""
        self._signer = SigV4Signer(SERVICE, region, credentials)
        manager = urllib3.PoolManager(
            num_pools=1,
            maxsize=4,
            timeout=urllib3.Timeout(connect=TIMEOUT_SECONDS, read=TIMEOUT_SECONDS),
            retries=False,
            ca_certs=ca_bundle,
        )
        self._http = manager.connection_from_url(f"{url.scheme}://{url.netloc}")

    def invoke_async(self, function_name: str, payload: dict[str, Any]) -> None:
        """Queue `payload` as the event of one invocation of `function_name` (a name or an ARN); raises
        InvocationError unless Lambda answers 202."""
        from urllib3.exceptions import HTTPError

        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        if len(body) > MAX_ASYNC_PAYLOAD_BYTES:
            raise InvocationError(f"the event is {len(body)} bytes, over Lambda's {MAX_ASYNC_PAYLOAD_BYTES}")
        path = f"{self._base_path}/2015-03-31/functions/{quote(function_name, safe='')}/invocations"
        problem = ""
        for _ in range(ATTEMPTS):
            headers = self._signer.headers("POST", self._host, path, body, {"x-amz-invocation-type": "Event"})
            headers["content-type"] = "application/json"
            try:
                response = self._http.urlopen(
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
            import botocore.session
            from botocore.httpsession import get_cert_path

            session = botocore.session.get_session()
            region = session.get_config_variable("region")
            credentials = session.get_credentials()
            if not region or credentials is None:
                raise ConfigurationError("invoking a function needs an AWS region and credentials")
            _client = LambdaInvoker(
                endpoint_url(region),
                region=region,
                credentials=credentials,
                ca_bundle=session.get_config_variable("ca_bundle") or get_cert_path(True),
            )
        return _client


def reset() -> None:
    """Forget the client (tests that change the endpoint or the credentials)."""
    global _client
    with _lock:
        _client = None
