"""Fan-out to WebSocket connections: the only code that talks to the API Gateway Management API.

Services build `Delivery` values inside their transaction (who gets what, read from the committed state they
are about to commit) and call `deliver` after the commit, so nothing is announced that the database does not
hold. Delivery is best effort by design: a client that missed an event gets it again with `sync` or over HTTP.

* Posts run concurrently on a bounded pool per execution environment (FAN_OUT_CONCURRENCY), so one slow or
  failing connection never holds up or stops delivery to the others.
* A throttled post (429, LimitExceededException) or a transient 5xx is retried by botocore's standard retry
  mode: exponential backoff with full jitter, a few attempts.
* A post that answers 410 Gone names a connection that no longer exists (the client vanished without a
  goodbye): `deliver` returns those ids so the caller deletes their rows. Only the dead target's id, never the
  sender's.
* `disconnect` closes connections (`DELETE @connections/{id}`, API Gateway then runs their `$disconnect`): the
  connections of a revoked widget key, a staff connection whose token has expired. A connection already gone
  is already closed.
* The endpoint comes from configuration (WEBSOCKET_MANAGEMENT_ENDPOINT): in AWS the API's stage URL, locally
  the local gateway's. Without one, nothing is sent (a function with no WebSocket side).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from support.config import get_settings
from support.observability import logger

FAN_OUT_CONCURRENCY = 16
POST_TIMEOUT_SECONDS = 3

_lock = threading.Lock()
_client: Any = None
_pool: ThreadPoolExecutor | None = None


@dataclass(frozen=True)
class Delivery:
    connection_id: str
    event: dict[str, Any]  # {"type", "data", "requestId"?}: serialised as JSON

    def payload(self) -> bytes:
        return json.dumps(self.event, separators=(",", ":"), default=str).encode()


def event(event_type: str, data: Any, *, request_id: str | None = None) -> dict[str, Any]:
    """A server-to-client message of the chat protocol."""
    message: dict[str, Any] = {"type": event_type}
    if request_id is not None:
        message["requestId"] = request_id
    message["data"] = data
    return message


def _management_client() -> Any:
    global _client, _pool
    endpoint = get_settings().websocket_management_endpoint
    if not endpoint:
        return None
    with _lock:
        if _client is None:
            # Imported on first use: a function that never fans out never pays boto3's import.
            import boto3
            from botocore.config import Config

            _client = boto3.client(
                "apigatewaymanagementapi",
                endpoint_url=endpoint,
                config=Config(
                    retries={"mode": "standard", "total_max_attempts": 4},  # the first post and 3 retries
                    connect_timeout=POST_TIMEOUT_SECONDS,
                    read_timeout=POST_TIMEOUT_SECONDS,
                    max_pool_connections=FAN_OUT_CONCURRENCY,
                ),
            )
            _pool = ThreadPoolExecutor(max_workers=FAN_OUT_CONCURRENCY, thread_name_prefix="fan-out")
    return _client


def reset() -> None:
    """Forget the client (tests that change the endpoint)."""
    global _client, _pool
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=True)
        _client, _pool = None, None


def deliver(deliveries: Iterable[Delivery]) -> set[str]:
    """Post each delivery; returns the ids of connections that are gone (410)."""
    batch = list(deliveries)
    if not batch:
        return set()
    client = _management_client()
    if client is None or _pool is None:
        logger.debug("no WebSocket management endpoint configured; %d events not sent", len(batch))
        return set()
    gone_error = client.exceptions.GoneException
    futures = {
        _pool.submit(client.post_to_connection, ConnectionId=d.connection_id, Data=d.payload()): d for d in batch
    }
    gone: set[str] = set()
    failed = 0
    for future in as_completed(futures):
        delivery = futures[future]
        try:
            future.result()
        except gone_error:
            gone.add(delivery.connection_id)
        except Exception:  # one connection's failure never stops the others; the client can sync
            failed += 1
            logger.exception("post to a connection failed", extra={"event_type": delivery.event.get("type")})
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
    gone_error = client.exceptions.GoneException
    futures = [_pool.submit(client.delete_connection, ConnectionId=connection_id) for connection_id in batch]
    failed = 0
    for future in as_completed(futures):
        try:
            future.result()
        except gone_error:
            pass
        except Exception:  # logged; the connection's messages are refused all the same (support.websocket)
            failed += 1
            logger.exception("closing a connection failed")
    logger.info("connections closed", extra={"closed": len(batch) - failed, "failed": failed})
