"""Fan-out to WebSocket connections: the only code that talks to the API Gateway Management API.

Services build `Delivery` values inside their transaction (who gets what, read from the committed state they
are about to commit) and call `deliver` after the commit, so nothing is announced that the database does not
hold. Delivery is best effort by design: a client that missed an event gets it again with `sync` or over HTTP.

* Each request is the one botocore's `apigatewaymanagementapi` client would send (`POST` or `DELETE`
  `{endpoint}/@connections/{connectionId}`, the id percent-encoded, the stage in the path), signed with
  Signature Version 4 for the service `execute-api`, with the region and credentials boto3 would find, exactly
  as botocore's `SigV4Auth` signs it (the tests recompute each signature with it) but with the derived signing
  key kept for the day (support.sigv4); sent over one urllib3 connection pool per execution environment. Not the
  boto3 client itself: building the request from the service model, its event hooks and parsing the answer cost
  0.6 to 1 ms of CPU per post, this about 0.28 ms (bench.post_cost measures both in one run; bench/RESULTS.md).
  urllib3 and botocore are the Lambda runtime's, as boto3 is (the layer carries none of them).
* Credentials are read once per execution environment (botocore's resolver: the function's environment in
  Lambda) and frozen per request, so botocore's refreshable credentials renew themselves when they say so.
* Posts run concurrently, at most FAN_OUT_CONCURRENCY at once per execution environment (the calling thread and a
  pool of one fewer threads; as many pooled HTTP connections), so one slow or failing connection never holds up or
  stops delivery to the others; each attempt has a connect and a read timeout (POST_TIMEOUT_SECONDS). The calling
  thread makes one post itself, so the single post of a one-to-one chat message never crosses threads.
* A throttled post (429) or a transient failure (500, 502, 503, 504, a broken connection, a timeout) is
  retried as botocore's standard retry mode retries it: at most MAX_ATTEMPTS attempts, exponential backoff with
  full jitter (1 s base for throttling, 50 ms otherwise), within botocore's retry quota, so an endpoint that is
  down does not multiply its load.
* A post that answers 410 Gone names a connection that no longer exists (the client vanished without a
  goodbye): it is not retried, and `deliver` returns those ids (once each) so the caller deletes their rows.
  Only the dead target's id, never the sender's.
* `disconnect` closes connections (`DELETE @connections/{id}`, API Gateway then runs their `$disconnect`): the
  connections of a revoked widget key, a staff connection whose token has expired. A connection already gone
  is already closed.
* The endpoint comes from configuration (WEBSOCKET_MANAGEMENT_ENDPOINT): in AWS the API's stage URL, locally
  the local gateway's. Without one, nothing is sent (a function with no WebSocket side).
"""

from __future__ import annotations

import functools
import json
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from support.config import get_settings
from support.observability import logger
from support.sigv4 import SigV4Signer, aws_environment, open_endpoint

FAN_OUT_CONCURRENCY = 16
POST_TIMEOUT_SECONDS = 3.0
MAX_ATTEMPTS = 4  # the first request and 3 retries
THROTTLING_BACKOFF_SECONDS = 1.0  # botocore's standard mode: the base of the backoff after a throttle,
TRANSIENT_BACKOFF_SECONDS = 0.05  # and after any other retryable failure;
MAX_BACKOFF_SECONDS = 20.0  # the cap of one delay
THROTTLING_RETRY_COST = 5  # what a retry takes from the retry quota (500 to start with)
TRANSIENT_RETRY_COST = 14
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
SERVICE = "execute-api"  # what IAM checks the signature for

_lock = threading.Lock()
_client: ManagementApi | None = None
_pool: ThreadPoolExecutor | None = None


class ConnectionGone(Exception):
    """410: the connection does not exist (any more)."""


class ManagementApiError(Exception):
    """A request that the management API refused, or that failed after its retries."""

    def __init__(self, status: int | None, error_type: str | None, cause: Exception | None = None) -> None:
        super().__init__(f"management API: {status or 'no answer'} {error_type or cause or ''}".strip())
        self.status = status
        self.error_type = error_type


class ManagementApi:
    """A client of one management API endpoint (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`):
    the two calls the fan-out makes, each request the one botocore would send, with botocore's standard
    retries. Safe to share between threads."""

    def __init__(self, endpoint: str, *, region: str, credentials: Any, ca_bundle: str | None = None) -> None:
        from botocore.retries.quota import RetryQuota

        # the stage, as the endpoint names it, starts every (signed) path
        self._endpoint = open_endpoint(
            endpoint,
            name="WEBSOCKET_MANAGEMENT_ENDPOINT",
            connections=FAN_OUT_CONCURRENCY,
            timeout_seconds=POST_TIMEOUT_SECONDS,
            ca_bundle=ca_bundle,
        )
        self._signer = SigV4Signer(SERVICE, region, credentials)
        self._quota = RetryQuota()

    def post_to_connection(self, connection_id: str, data: bytes) -> None:
        """Send the data to the connection as one message; raises ConnectionGone on 410."""
        self._call("POST", connection_id, data)

    def delete_connection(self, connection_id: str) -> None:
        """Close the connection; raises ConnectionGone on 410."""
        self._call("DELETE", connection_id, b"")

    def _call(self, method: str, connection_id: str, body: bytes) -> None:
        from botocore.utils import percent_encode
        from urllib3.exceptions import HTTPError

        path = f"{self._endpoint.base_path}/@connections/{percent_encode(connection_id)}"
        attempt, retry_cost = 0, 0
        while True:
            attempt += 1
            status: int | None = None
            error_type: str | None = None
            cause: Exception | None = None
            try:
                response = self._endpoint.http.urlopen(
                    method,
                    path,
                    body=body,
                    headers=self._signed_headers(method, path, body),
                    retries=False,
                    redirect=False,
                    assert_same_host=False,
                    preload_content=True,
                )
            except HTTPError as error:  # refused, reset, timed out: transient, as botocore treats them
                cause = error
            else:
                status = response.status
                if status < 300:
                    self._quota.release(retry_cost or 1)  # botocore: a success refills the quota
                    return
                if status == 410:
                    raise ConnectionGone(connection_id)  # final: never retried
                error_type = (response.headers.get("x-amzn-errortype") or "").split(":")[0] or None
            throttled = status == 429
            if not (throttled or status is None or status in TRANSIENT_STATUSES) or attempt == MAX_ATTEMPTS:
                raise ManagementApiError(status, error_type, cause)
            retry_cost = THROTTLING_RETRY_COST if throttled else TRANSIENT_RETRY_COST
            if not self._quota.acquire(retry_cost):
                raise ManagementApiError(status, error_type, cause)
            base = THROTTLING_BACKOFF_SECONDS if throttled else TRANSIENT_BACKOFF_SECONDS
            time.sleep(random.random() * min(base * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS))  # noqa: S311 - jitter

    def _signed_headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        """Signed as botocore's SigV4Auth signs it (tests/integration/test_fan_out.py checks it against botocore),
        with the derived signing key kept for the day (support.sigv4)."""
        return self._signer.headers(method, self._endpoint.host, path, body)


@dataclass(frozen=True)
class Delivery:
    connection_id: str
    event: dict[str, Any]  # {"type", "data", "requestId"?}: serialised as JSON

    def payload(self) -> bytes:
        return encode(self.event).encode()


def encode(message: dict[str, Any]) -> str:
    """A server-to-client message as sent: compact JSON (a post's data, or a route response's body)."""
    return json.dumps(message, separators=(",", ":"), default=str)


def event(event_type: str, data: Any, *, request_id: str | None = None) -> dict[str, Any]:
    """A server-to-client message of the chat protocol."""
    message: dict[str, Any] = {"type": event_type}
    if request_id is not None:
        message["requestId"] = request_id
    message["data"] = data
    return message


def _management_client() -> ManagementApi | None:
    global _client, _pool
    endpoint = get_settings().websocket_management_endpoint
    if not endpoint:
        return None
    with _lock:
        if _client is None:
            # botocore imported on first use: a function that never fans out never pays its import
            aws = aws_environment("the WebSocket fan-out")
            _client = ManagementApi(endpoint, region=aws.region, credentials=aws.credentials, ca_bundle=aws.ca_bundle)
            _pool = ThreadPoolExecutor(max_workers=FAN_OUT_CONCURRENCY - 1, thread_name_prefix="fan-out")
    return _client


def reset() -> None:
    """Forget the client (tests that change the endpoint, the credentials or the limits)."""
    global _client, _pool
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=True)
        _client, _pool = None, None


def deliver(deliveries: Iterable[Delivery]) -> set[str]:
    """Post each delivery; returns the ids of connections that are gone (410). One post (a chat message to the other
    side's one connection, the common case) is made on the calling thread; with more, the calling thread makes the
    first while the pool makes the others. An event told to many connections is serialised once."""
    batch = list(deliveries)
    if not batch:
        return set()
    client = _management_client()
    if client is None or _pool is None:
        logger.debug("no WebSocket management endpoint configured; %d events not sent", len(batch))
        return set()
    encoded: dict[int, bytes] = {}  # by the event's identity: Outbox.tell shares one event among its recipients

    def payload(delivery: Delivery) -> bytes:
        data = encoded.get(id(delivery.event))
        if data is None:
            data = encoded[id(delivery.event)] = delivery.payload()
        return data

    first, *rest = batch
    futures = {_pool.submit(client.post_to_connection, d.connection_id, payload(d)): d for d in rest}
    gone: set[str] = set()
    failed = 0

    def settle(delivery: Delivery, post: Callable[[], None]) -> None:
        nonlocal failed
        try:
            post()
        except ConnectionGone:
            gone.add(delivery.connection_id)
        except Exception:  # one connection's failure never stops the others; the client can sync
            failed += 1
            logger.exception("post to a connection failed", extra={"event_type": delivery.event.get("type")})

    settle(first, functools.partial(client.post_to_connection, first.connection_id, payload(first)))
    for future in as_completed(futures):
        settle(futures[future], future.result)
    if gone or failed:
        logger.info("fan-out done", extra={"sent": len(batch), "gone": len(gone), "failed": failed})
    return gone


def disconnect(connection_ids: Iterable[str]) -> None:
    """Close each connection (best effort, concurrently, as posts): one that is already gone needs nothing."""
    batch = list(dict.fromkeys(connection_ids))
    if not batch:
        return
    client = _management_client()
    if client is None or _pool is None:
        logger.debug("no WebSocket management endpoint configured; %d connections not closed", len(batch))
        return
    futures = [_pool.submit(client.delete_connection, connection_id) for connection_id in batch]
    failed = 0
    for future in as_completed(futures):
        try:
            future.result()
        except ConnectionGone:
            pass
        except Exception:  # logged; the connection's messages are refused all the same (support.websocket)
            failed += 1
            logger.exception("closing a connection failed")
    logger.info("connections closed", extra={"closed": len(batch) - failed, "failed": failed})
