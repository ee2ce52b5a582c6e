"""Retry-safe writes: the `Idempotency-Key` header of the create routes (docs/api.md, "Retry-safe writes").

A route opts in with `middlewares=[idempotent]`; not a route whose answer holds a secret (a channel's signing
secret: the stored answer would keep it readable for the key's day). The key is the caller's, per tenant and per
route (the method and the path as sent, ids included): another tenant's, or another route's, same key is another
key. The first request with a key claims it (one statement, one round trip: `idempotency_claim`), runs, and leaves
its answer on the key (`idempotency_finish`, one more). A retry with the same request (the caller's role and agent,
method, path, query and body, compared by SHA-256) gets that answer, status and body, with `Idempotent-Replayed:
true`, and creates nothing; another request with the same key is a 422 `idempotency_key_reused`; a retry while the
first still runs is a 409 `idempotency_in_progress` (it does not wait: a Lambda would pay for the wait). Only a
success (2xx) is remembered: an error releases the key, so a retry runs again. Keys expire after 24 hours (a new
claim replaces an expired key; the workflow sweep deletes them).

Our own, not Powertools' idempotency utility: that one keys a record by a hash of the event (not per tenant and
route) and needs a persistence layer of our own anyway (DynamoDB, Redis, or a custom class); this is the same
claim / complete protocol in two statements under the table's row-level security (sql/0037).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from psycopg.rows import DictRow

from support.db import connection
from support.db.connection import anonymous_transaction
from support.errors import IdempotencyInProgress, IdempotencyKeyReused, InvalidInput
from support.observability import logger

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_CHARS = 255
# Printable ASCII without spaces: a UUID, a ULID, any token a client makes.
_KEY = re.compile(rf"[\x21-\x7e]{{1,{MAX_KEY_CHARS}}}")
KEY_TTL = timedelta(hours=24)
# An in-progress claim older than this was left by an invocation that died (the HTTP functions time out at 30 s at
# most): the next retry takes it over.
LEASE = timedelta(seconds=60)

# One call each (sql/definitions/idempotency.sql), sent alone on the autocommit connection: the statement is its own
# transaction and the function binds the tenant in it, so each is one round trip and no pipeline.
_CLAIM = """
SELECT mine, request_hash, status_code, response_body
FROM idempotency_claim(%(tenant)s, %(route)s, %(key)s, %(hash)s, %(claim)s, %(lease)s, %(ttl)s)
"""
_FINISH = "SELECT idempotency_finish(%(tenant)s, %(route)s, %(key)s, %(claim)s, %(status)s::smallint, %(body)s) AS done"


def _call(query: str, params: dict[str, Any]) -> DictRow | None:
    """One statement alone, its first row. Both calls may run twice (a claim finds its own claim again, a finish
    changes nothing more): on a connection found broken, a new one and once more, as write_one."""
    for attempt in range(2):
        conn = connection.get_connection()
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchone()
        except psycopg.OperationalError:
            if attempt or not (conn.broken or conn.closed):
                raise
            logger.warning("database connection was unusable; reconnecting once")
            connection.reset_connection()
    raise AssertionError("unreachable: the second attempt returns or raises")


def request_hash(method: str, path: str, query: str, body: bytes, caller: str = "") -> bytes:
    """SHA-256 of what makes two requests the same: the caller (role and agent: a retry comes from the same caller,
    and a replay never hands another role's answer to a caller who could not have made it), the method, the path,
    the query and the body."""
    digest = hashlib.sha256()
    for part in (caller.encode(), method.encode(), path.encode(), query.encode()):
        digest.update(len(part).to_bytes(4, "big") + part)
    digest.update(body)
    return digest.digest()


def _key(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not _KEY.fullmatch(raw):
        raise InvalidInput(
            "the Idempotency-Key header is not valid",
            details=[
                {
                    "field": "header.Idempotency-Key",
                    "message": f"1 to {MAX_KEY_CHARS} printable ASCII characters, no spaces",
                    "type": "string_pattern_mismatch",
                }
            ],
        )
    return raw


def _replay(status: int, body: str) -> Response[Any]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers={REPLAYED_HEADER: "true"},
    )


def idempotent(app: Any, next_middleware: NextMiddleware) -> Response[Any]:
    """Route middleware: the Idempotency-Key protocol around the route (after request validation, so an invalid
    request claims nothing). Without the header the route runs as it always did."""
    from support.http import current_principal  # support.http imports nothing of this module; avoids a cycle

    event = app.current_event
    key = _key(event.headers.get(HEADER))
    if key is None:
        return next_middleware(app)
    principal = current_principal(app)
    tenant: UUID = principal.tenant_id
    caller = f"{principal.role.value} {principal.agent_id or ''}"
    raw_body = event.decoded_body or ""
    params: dict[str, Any] = {
        "tenant": tenant,
        "route": f"{event.http_method} {event.raw_path}"[:300],
        "key": key,
        "hash": request_hash(
            event.http_method, event.raw_path, event.raw_query_string or "", raw_body.encode(), caller
        ),
        "claim": uuid4(),
        "lease": LEASE,
        "ttl": KEY_TTL,
    }
    found = _call(_CLAIM, params)
    if found is None or not found["mine"]:
        if found is not None and bytes(found["request_hash"]) != params["hash"]:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used for another request on this route: use a new key for a new request"
            )
        if found is not None and found["status_code"] is not None:
            return _replay(found["status_code"], found["response_body"])
        raise IdempotencyInProgress("a request with this Idempotency-Key is still running: retry in a moment")
    try:
        response: Response[Any] = next_middleware(app)
    except BaseException:
        _release(params)
        raise
    if not 200 <= response.status_code < 300:
        _release(params)
        return response
    body = response.body if isinstance(response.body, str) else app._serializer(response.body)
    response.body = body
    _call(_FINISH, {**params, "status": response.status_code, "body": body})
    return response


def _release(params: dict[str, Any]) -> None:
    try:
        _call(_FINISH, {**params, "status": None, "body": None})
    except Exception:  # the key then stays claimed until its lease ends: a retry after it runs again
        logger.exception("could not release an Idempotency-Key")


PURGE_BATCH = 10_000


def purge_expired(now: datetime) -> int:
    """The workflow sweep's `idempotency` step: delete the expired keys of every tenant (at most PURGE_BATCH a
    minute; a claim of an expired key replaces it anyway). Answers how many it deleted."""
    at = min(now, datetime.now(UTC))  # never a key that has not expired yet, whatever clock a run by hand gives
    with anonymous_transaction() as cur:
        cur.execute("SELECT idempotency_keys_purge(%s, %s) AS purged", (at, PURGE_BATCH))
        row = cur.fetchone()
    return int(row["purged"]) if row else 0
