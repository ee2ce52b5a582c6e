"""Fan-out to WebSocket connections: the only code that talks to the API Gateway Management API.

Services build `Delivery` values inside their transaction (who gets what, read from the committed state they
are about to commit) and call `deliver` after the commit, so nothing is announced that the database does not
hold. Delivery is best effort by design: a client that missed an event gets it again with `sync` or over HTTP.

* Each request is the one botocore's `apigatewaymanagementapi` client would send (`POST` or `DELETE`
  `{endpoint}/@connections/{connectionId}`, the id percent-encoded, the stage in the path), signed with
  Signature Version 4 for the service `execute-api`, with the region and credentials boto3 would find, exactly
  as botocore's `SigV4Auth` signs it (the tests recompute each signature with it) but with the derived signing
  key kept for the day (support.sigv4). Not the boto3 client itself: building the request from the service
  model, its event hooks and parsing the answer cost 0.6 to 1 ms of CPU per post; this about 0.2 ms, 0.14 ms
  each in a fan-out to many (bench.post_cost measures both in one run; bench/RESULTS.md). botocore is the Lambda
  runtime's, as boto3 is (the layer carries none of them).
* Requests go over the standard library's HTTP/1.1 client (`http.client`, the class urllib3's connections build
  on; TLS verified against the CA bundle botocore would use), on kept-alive connections the client pools itself,
  at most FAN_OUT_CONCURRENCY per execution environment. Not urllib3's pool: its request and answer wrappers
  cost another 0.06 ms per post, and its pool serves one request per thread, where a fan-out wants many in
  flight at once. So every post of a fan-out is written from the calling thread, each on its own connection, and
  the answers are read as they arrive (`ManagementApi.send`, with `selectors`): no thread pool, no hand-off, and
  one slow or failing connection never holds up or stops delivery to the others. Each attempt has a connect and a
  read timeout (POST_TIMEOUT_SECONDS).
* Credentials are read once per execution environment (botocore's resolver: the function's environment in
  Lambda) and frozen per request, so botocore's refreshable credentials renew themselves when they say so.
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

import heapq
import http.client
import json
import random
import select
import selectors
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
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


class ConnectionGone(Exception):
    """410: the connection does not exist (any more)."""


class ManagementApiError(Exception):
    """A request that the management API refused, or that failed after its retries."""

    def __init__(self, status: int | None, error_type: str | None, cause: Exception | None = None) -> None:
        super().__init__(f"management API: {status or 'no answer'} {error_type or cause or ''}".strip())
        self.status = status
        self.error_type = error_type


@dataclass(frozen=True)
class Request:
    """One call of the management API: `POST` (data to send) or `DELETE` (close) `@connections/{connection_id}`."""

    method: str
    connection_id: str
    body: bytes = b""


@dataclass
class _Attempt:
    index: int  # of the request in its batch
    request: Request
    path: str
    number: int = 0  # attempts made
    retry_cost: int = 0  # what the last retry took from the quota


class ManagementApi:
    """A client of one management API endpoint (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`):
    the two calls the fan-out makes, each request the one botocore would send, with botocore's standard
    retries. Safe to share between threads (each `send` uses connections of its own)."""

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
        self._idle: list[http.client.HTTPConnection] = []  # kept-alive connections no request uses, newest last
        self._idle_lock = threading.Lock()

    def post_to_connection(self, connection_id: str, data: bytes) -> None:
        """Send the data to the connection as one message; raises ConnectionGone on 410."""
        self._raise(self.send([Request("POST", connection_id, data)])[0])

    def delete_connection(self, connection_id: str) -> None:
        """Close the connection; raises ConnectionGone on 410."""
        self._raise(self.send([Request("DELETE", connection_id)])[0])

    @staticmethod
    def _raise(outcome: Exception | None) -> None:
        if outcome is not None:
            raise outcome

    def send(self, requests: Sequence[Request]) -> list[Exception | None]:
        """Make each request, at most FAN_OUT_CONCURRENCY at once, all from the calling thread: each is written on a
        kept-alive connection of its own and the answers are read as they arrive, so a slow or hung connection holds
        up no other. Returns each request's outcome in order: None when done, ConnectionGone (410, never retried), or
        ManagementApiError (refused, or failed after its retries)."""
        outcomes: list[Exception | None] = [None] * len(requests)
        ready = deque(_Attempt(n, request, self._path(request)) for n, request in enumerate(requests))
        backing_off: list[tuple[float, int, _Attempt]] = []  # heap: retries by when their backoff ends
        in_flight: dict[http.client.HTTPConnection, tuple[_Attempt, float]] = {}  # the attempt, when it times out
        selector = selectors.DefaultSelector() if len(requests) > 1 else None
        try:
            while ready or backing_off or in_flight:
                now = time.monotonic()
                while backing_off and backing_off[0][0] <= now:
                    ready.append(heapq.heappop(backing_off)[2])
                while ready and len(in_flight) < FAN_OUT_CONCURRENCY:
                    attempt = ready.popleft()
                    attempt.number += 1
                    connection = self._checkout()
                    request = attempt.request
                    headers = self._signer.headers(request.method, self._endpoint.host, attempt.path, request.body)
                    try:
                        connection.request(request.method, attempt.path, body=request.body, headers=headers)
                    except Exception as error:  # refused, reset: transient, as botocore treats them
                        connection.close()
                        self._failed(attempt, None, None, error, outcomes, backing_off)
                        continue
                    in_flight[connection] = (attempt, now + POST_TIMEOUT_SECONDS)
                    if selector is not None:
                        selector.register(connection.sock, selectors.EVENT_READ, connection)
                if not in_flight:  # every attempt waits for its backoff
                    if backing_off:
                        time.sleep(max(0.0, backing_off[0][0] - time.monotonic()))
                    continue
                if selector is None:  # one request: read its answer (the socket's timeout bounds the wait)
                    connection, (attempt, _) = in_flight.popitem()
                    self._receive(connection, attempt, outcomes, backing_off)
                    continue
                wake = min(deadline for _, deadline in in_flight.values())
                if backing_off:
                    wake = min(wake, backing_off[0][0])
                for key, _ in selector.select(max(0.0, wake - time.monotonic())):
                    selector.unregister(key.fileobj)
                    attempt, _ = in_flight.pop(key.data)
                    self._receive(key.data, attempt, outcomes, backing_off)
                now = time.monotonic()
                for connection, (attempt, deadline) in list(in_flight.items()):
                    if deadline <= now:  # no answer in time: transient; the connection is closed, not reused
                        del in_flight[connection]
                        selector.unregister(connection.sock)
                        connection.close()
                        self._failed(attempt, None, None, TimeoutError("no answer"), outcomes, backing_off)
        finally:
            for connection in in_flight:
                connection.close()
            if selector is not None:
                selector.close()
        return outcomes

    def _path(self, request: Request) -> str:
        from botocore.utils import percent_encode

        return f"{self._endpoint.base_path}/@connections/{percent_encode(request.connection_id)}"

    def _checkout(self) -> http.client.HTTPConnection:
        """A kept-alive idle connection that the server has not closed meanwhile (an idle connection with something
        to read has been closed, or is out of step), else a new one."""
        while True:
            with self._idle_lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                new: http.client.HTTPConnection = self._endpoint.connection()
                return new
            if connection.sock is not None and not select.select([connection.sock], [], [], 0)[0]:
                return connection
            connection.close()

    def _checkin(self, connection: http.client.HTTPConnection) -> None:
        if connection.sock is None:  # the server said close: urllib3 closed it
            return
        with self._idle_lock:
            if len(self._idle) < FAN_OUT_CONCURRENCY:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _receive(
        self,
        connection: http.client.HTTPConnection,
        attempt: _Attempt,
        outcomes: list[Exception | None],
        backing_off: list[tuple[float, int, _Attempt]],
    ) -> None:
        try:
            response = connection.getresponse()
            response.read()  # the whole answer, so the connection can carry the next request
        except Exception as error:  # reset, timed out, not HTTP: transient
            connection.close()
            self._failed(attempt, None, None, error, outcomes, backing_off)
            return
        self._checkin(connection)
        status = response.status
        if status < 300:
            self._quota.release(attempt.retry_cost or 1)  # botocore: a success refills the quota
        elif status == 410:
            outcomes[attempt.index] = ConnectionGone(attempt.request.connection_id)  # final: never retried
        else:
            error_type = (response.getheader("x-amzn-errortype") or "").split(":")[0] or None
            self._failed(attempt, status, error_type, None, outcomes, backing_off)

    def _failed(
        self,
        attempt: _Attempt,
        status: int | None,
        error_type: str | None,
        cause: Exception | None,
        outcomes: list[Exception | None],
        backing_off: list[tuple[float, int, _Attempt]],
    ) -> None:
        """Retry as botocore's standard mode does (a throttle, a 5xx or no answer; within the quota; after a
        full-jitter backoff), else record the failure."""
        throttled = status == 429
        retryable = throttled or status is None or status in TRANSIENT_STATUSES
        attempt.retry_cost = THROTTLING_RETRY_COST if throttled else TRANSIENT_RETRY_COST
        if not retryable or attempt.number >= MAX_ATTEMPTS or not self._quota.acquire(attempt.retry_cost):
            outcomes[attempt.index] = ManagementApiError(status, error_type, cause)
            return
        base = THROTTLING_BACKOFF_SECONDS if throttled else TRANSIENT_BACKOFF_SECONDS
        delay = random.random() * min(base * 2 ** (attempt.number - 1), MAX_BACKOFF_SECONDS)  # noqa: S311 - jitter
        heapq.heappush(backing_off, (time.monotonic() + delay, attempt.index, attempt))


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
    global _client
    endpoint = get_settings().websocket_management_endpoint
    if not endpoint:
        return None
    with _lock:
        if _client is None:
            # botocore imported on first use: a function that never fans out never pays its import
            aws = aws_environment("the WebSocket fan-out")
            _client = ManagementApi(endpoint, region=aws.region, credentials=aws.credentials, ca_bundle=aws.ca_bundle)
    return _client


def reset() -> None:
    """Forget the client (tests that change the endpoint, the credentials or the limits)."""
    global _client
    with _lock:
        if _client is not None:
            _client.close()
        _client = None


def deliver(deliveries: Iterable[Delivery]) -> set[str]:
    """Post each delivery; returns the ids of connections that are gone (410). All from the calling thread, at most
    FAN_OUT_CONCURRENCY in flight (ManagementApi.send). An event told to many connections is serialised once."""
    batch = list(deliveries)
    if not batch:
        return set()
    client = _management_client()
    if client is None:
        logger.debug("no WebSocket management endpoint configured; %d events not sent", len(batch))
        return set()
    encoded: dict[int, bytes] = {}  # by the event's identity: Outbox.tell shares one event among its recipients

    def payload(delivery: Delivery) -> bytes:
        data = encoded.get(id(delivery.event))
        if data is None:
            data = encoded[id(delivery.event)] = delivery.payload()
        return data

    outcomes = client.send([Request("POST", delivery.connection_id, payload(delivery)) for delivery in batch])
    gone: set[str] = set()
    failed = 0
    for delivery, outcome in zip(batch, outcomes, strict=True):
        if isinstance(outcome, ConnectionGone):
            gone.add(delivery.connection_id)
        elif outcome is not None:  # one connection's failure never stops the others; the client can sync
            failed += 1
            logger.error(
                "post to a connection failed",
                extra={"event_type": delivery.event.get("type"), "error": str(outcome)},
            )
    if gone or failed:
        logger.info("fan-out done", extra={"sent": len(batch), "gone": len(gone), "failed": failed})
    return gone


def disconnect(connection_ids: Iterable[str]) -> None:
    """Close each connection (best effort, concurrently, as posts): one that is already gone needs nothing."""
    batch = list(dict.fromkeys(connection_ids))
    if not batch:
        return
    client = _management_client()
    if client is None:
        logger.debug("no WebSocket management endpoint configured; %d connections not closed", len(batch))
        return
    outcomes = client.send([Request("DELETE", connection_id) for connection_id in batch])
    failed = 0
    for outcome in outcomes:
        if outcome is not None and not isinstance(outcome, ConnectionGone):
            failed += 1  # logged; the connection's messages are refused all the same (support.websocket)
            logger.error("closing a connection failed", extra={"error": str(outcome)})
    logger.info("connections closed", extra={"closed": len(batch) - failed, "failed": failed})
