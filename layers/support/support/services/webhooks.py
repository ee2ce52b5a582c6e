"""Webhooks (issue 20): a tenant's endpoints receive the desk's events, signed, through an outbox and SQS.

The shape of it (docs/webhooks.md for integrators, docs/ARCHITECTURE.md "Webhooks" for the decisions):

* Endpoints (`webhook_endpoints`, sql/0042): an https URL whose name resolves to public addresses only (checked when
  saved and again at every delivery: support.webhook_http), the subscribed events, enabled. Admins manage them at
  `/api/support/webhooks`. Each has a signing secret that never leaves the database once stored (as the channels'):
  the admin is answered it once, on create and on rotation; after a rotation the previous one keeps signing for
  SECRET_OVERLAP, every delivery then carrying both signatures.
* The outbox (`webhook_deliveries`): the triggers of sql/definitions/webhooks.sql write one row per event and
  subscribed endpoint in the change's own transaction, whatever code path made the change; a rolled-back change
  leaves none, and a desk without endpoints pays one index probe per statement. A row's id is the delivery id the
  receiver sees on every attempt.
* Dispatch, after the commit: `kick` (or `start_after` for a change sent through a realtime outbox) starts `dispatch`
  for the tenant (an asynchronous invocation of WebhookDeliveryFunction, else here): its pending rows are locked (FOR
  UPDATE SKIP LOCKED), sent to SQS, and marked queued in the same transaction, so a row is queued only once its message
  was accepted. The kick follows the tickets function's writes, a chat's start, end and rating, a ticket made from a
  chat, the web form, channel deliveries and inbound email. A chat message (the live chat's hot path, held to three
  database round trips) is not probed: the statement that sends it also answers whether its transaction wrote a delivery
  (WRITTEN), and only then is the dispatch started (`start_after(..., written=True)`): a desk without endpoints pays
  nothing for it. The workflow sweep (`sweep`) dispatches whatever was left pending and re-sends the messages of queued
  rows that are long past due (a message lost after its row committed).
* Delivery (`deliver_messages`, WebhookDeliveryFunction's SQS handler): a batch's rows are claimed with a lease (a
  second copy of a message, or one that arrives early, changes nothing), signed by the database, POSTed (the URL
  checked again, the connection made to the checked address), and their outcome recorded in one transaction. A
  2xx is delivered. Otherwise the next attempt is due after a growing delay (BACKOFF) and the message is sent again
  with an SQS delay of at most 15 minutes (a longer wait takes several hops: a message that arrives before its row
  is due is sent on again); once the next attempt would fall more than RETRY_WINDOW after the event, the row is
  failed (dead-lettered: visible in the delivery log, nothing more is sent). Delivery is at least once: a worker
  that POSTed and died before recording the answer sends again after its lease; receivers deduplicate by the
  delivery id.
* The delivery log's retention (`prune_log`, the workflow sweep's `webhook_log` step): a delivered or failed row is
  deleted 30 days after it finished (completed_at), per tenant in batches of LOG_PRUNE_BATCH, at most
  LOG_PRUNE_TENANTS tenants (in a random order) and LOG_PRUNE_SECONDS a run; pending and queued rows never are.
  The 30 days are the database's (webhook_delivery_log_cutoff, sql/definitions/webhooks.sql), so the runtime role,
  which has no DELETE on the log, cannot prune a younger delivery through the function (nor by marking one finished
  long ago: the row's created_at must be past the cut-off too).
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import DictRow

from support import webhook_http
from support.auth import Principal
from support.config import get_settings
from support.db import tenant_transaction
from support.db.connection import Cursor, anonymous_transaction
from support.db.statements import admit_under_cap, newest_first
from support.errors import InvalidInput, found
from support.invocations import invoke_or_run
from support.models.webhooks import Webhook, WebhookCreate, WebhookDelivery, WebhookUpdate, WebhookWithSecret
from support.observability import logger
from support.pagination import Page, decode_cursor, page_of
from support.services.tenant_batches import each_tenant

MAX_ENDPOINTS_PER_TENANT = 20
SECRET_OVERLAP = timedelta(hours=24)
RETRY_WINDOW = timedelta(hours=24)
FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=6)
LEASE = timedelta(seconds=60)  # longer than an attempt (10 s) and its recording
LOST_AFTER = timedelta(minutes=20)  # a queued row this far past due, with no lease: its message was lost
DELIVERIES_PER_MESSAGE = 25  # one SQS message names up to this many deliveries of one tenant, due at one time
SQS_BATCH = 10  # SendMessageBatch's limit
SQS_SENDERS = 4  # SendMessageBatch calls at once
DISPATCH_BATCH = DELIVERIES_PER_MESSAGE * SQS_BATCH * SQS_SENDERS  # rows per dispatch transaction: 4 calls at once
SENDERS = 25  # concurrent POSTs of one invocation (4 messages of 25: at most 4 rounds of the 10 s timeout)
SIGNATURE_HEADER = "X-Support-Signature"
USER_AGENT = "SupportDesk-Webhooks/1"

ENDPOINT_COLUMNS = "id, url, events, description, enabled, created_at, updated_at"
DELIVERY_COLUMNS = (
    "id, event_id, event, state, attempts, response_status, duration_ms, last_error, last_attempt_at, "
    "next_attempt_at, created_at, completed_at"
)


# -- Endpoints ---------------------------------------------------------------------------------------------------


def _checked_url(url: str) -> str:
    try:
        webhook_http.check(url, allow_local=get_settings().webhooks_allow_local_http)
    except webhook_http.UnsafeUrl as exc:
        raise InvalidInput(str(exc), details=[{"loc": ["body", "url"], "msg": str(exc)}]) from exc
    return url


def _new_secret() -> str:
    return "whsec_" + secrets.token_hex(32)  # 256 random bits


def _store_secret(cur: Cursor, endpoint_id: UUID) -> tuple[str, datetime | None] | None:
    """A new secret for the tenant's endpoint (the previous one kept signing for SECRET_OVERLAP) and when that
    overlap ends, or None if the tenant has no such endpoint."""
    secret = _new_secret()
    cur.execute(
        "SELECT webhook_secret_store(%s, %s, %s) AS stored, webhook_secret_overlap_ends(%s) AS overlap",
        (endpoint_id, secret, SECRET_OVERLAP, endpoint_id),
    )
    row = cur.fetchone()
    return (secret, row["overlap"]) if row and row["stored"] else None


def create_endpoint(principal: Principal, data: WebhookCreate) -> WebhookWithSecret:
    principal.require_admin("manage webhooks")
    url = _checked_url(data.url)
    with tenant_transaction(principal.tenant_id) as cur:
        admit_under_cap(
            cur,
            principal.tenant_id,
            "webhook_endpoints",
            MAX_ENDPOINTS_PER_TENANT,
            f"a tenant may have at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints",
        )
        cur.execute(
            f"""INSERT INTO webhook_endpoints (user_id, url, events, description, enabled)
            VALUES (%s, %s, %s, %s, %s) RETURNING {ENDPOINT_COLUMNS}""",  # noqa: S608
            (principal.tenant_id, url, [str(e) for e in data.events], data.description, data.enabled),
        )
        row = found(cur.fetchone(), "webhook")
        stored = _store_secret(cur, row["id"])
        if stored is None:  # made by this transaction: always the tenant's
            raise AssertionError("a new webhook endpoint took no secret")
        return WebhookWithSecret.model_validate({**row, "secret": stored[0]})


def list_endpoints(principal: Principal, *, limit: int, cursor: str | None = None) -> Page[Webhook]:
    """Newest first, keyset-paginated. Never a secret."""
    principal.require_admin("manage webhooks")
    columns = f"{ENDPOINT_COLUMNS}, webhook_secret_overlap_ends(id) AS previous_secret_valid_until"
    with tenant_transaction(principal.tenant_id) as cur:
        rows = newest_first(cur, principal.tenant_id, "webhook_endpoints", columns, limit=limit, cursor=cursor)
    return page_of(rows, limit, Webhook.model_validate)


def _one(cur: Cursor, tenant_id: UUID, endpoint_id: UUID) -> DictRow:
    cur.execute(
        f"""SELECT {ENDPOINT_COLUMNS}, webhook_secret_overlap_ends(id) AS previous_secret_valid_until
        FROM webhook_endpoints WHERE user_id = %s AND id = %s""",  # noqa: S608
        (tenant_id, endpoint_id),
    )
    return found(cur.fetchone(), "webhook")


def get_endpoint(principal: Principal, endpoint_id: UUID) -> Webhook:
    principal.require_admin("manage webhooks")
    with tenant_transaction(principal.tenant_id) as cur:
        return Webhook.model_validate(_one(cur, principal.tenant_id, endpoint_id))


def update_endpoint(principal: Principal, endpoint_id: UUID, data: WebhookUpdate) -> Webhook:
    principal.require_admin("manage webhooks")
    fields = data.model_dump(exclude_unset=True)
    if fields.get("url") is not None:
        _checked_url(fields["url"])
    for name in ("url", "events", "enabled"):
        if name in fields and fields[name] is None:
            raise InvalidInput(f"{name} may not be null", details=[{"loc": ["body", name], "msg": "may not be null"}])
    if "events" in fields:
        fields["events"] = [str(e) for e in fields["events"]]
    with tenant_transaction(principal.tenant_id) as cur:
        if fields:
            assignments = ", ".join(f"{name} = %({name})s" for name in fields)
            cur.execute(
                f"""UPDATE webhook_endpoints SET {assignments}, updated_at = now()
                WHERE user_id = %(tenant)s AND id = %(id)s RETURNING id""",  # noqa: S608
                {**fields, "tenant": principal.tenant_id, "id": endpoint_id},
            )
            found(cur.fetchone(), "webhook")
        return Webhook.model_validate(_one(cur, principal.tenant_id, endpoint_id))


def delete_endpoint(principal: Principal, endpoint_id: UUID) -> Webhook:
    """Deleted with its secrets and its delivery log (answered as it was); a delivery in flight finds no row and is
    dropped."""
    principal.require_admin("manage webhooks")
    with tenant_transaction(principal.tenant_id) as cur:
        row = _one(cur, principal.tenant_id, endpoint_id)
        cur.execute("DELETE FROM webhook_endpoints WHERE user_id = %s AND id = %s", (principal.tenant_id, endpoint_id))
        return Webhook.model_validate(row)


def rotate_secret(principal: Principal, endpoint_id: UUID) -> WebhookWithSecret:
    """A new secret, answered once; deliveries carry a second signature with the previous one for 24 hours more
    (one older still in its overlap stops at once)."""
    principal.require_admin("manage webhooks")
    with tenant_transaction(principal.tenant_id) as cur:
        stored = _store_secret(cur, endpoint_id)
        if stored is None:
            found(None, "webhook")
            raise AssertionError  # found raised
        row = _one(cur, principal.tenant_id, endpoint_id)
        return WebhookWithSecret.model_validate({**row, "secret": stored[0]})


def list_deliveries(
    principal: Principal, endpoint_id: UUID, *, limit: int, cursor: str | None = None
) -> Page[WebhookDelivery]:
    """The endpoint's delivery log, newest first, keyset-paginated."""
    principal.require_admin("manage webhooks")
    params: dict[str, Any] = {"tenant": principal.tenant_id, "endpoint": endpoint_id, "limit": limit + 1}
    after = ""
    if cursor:
        params["after_at"], params["after_id"] = decode_cursor(cursor)
        after = "AND (created_at, id) < (%(after_at)s, %(after_id)s)"
    with tenant_transaction(principal.tenant_id) as cur:
        _one(cur, principal.tenant_id, endpoint_id)
        cur.execute(
            f"""SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
            WHERE user_id = %(tenant)s AND endpoint_id = %(endpoint)s {after}
            ORDER BY created_at DESC, id DESC LIMIT %(limit)s""",  # noqa: S608
            params,
        )
        rows = cur.fetchall()
    return page_of(rows, limit, WebhookDelivery.model_validate)


# -- Dispatch: the outbox's rows into SQS, after the commit ------------------------------------------------------


def _sqs() -> Any:
    from support.aws import cached_client

    return cached_client("sqs", max_attempts=3)


def _message(tenant_id: UUID, delivery_ids: Sequence[UUID], not_before: datetime) -> str:
    return json.dumps(
        {
            "tenantId": str(tenant_id),
            "deliveryIds": [str(i) for i in delivery_ids],
            "notBefore": not_before.isoformat(),
        },
        separators=(",", ":"),
    )


def _messages(
    tenant_id: UUID, due: Iterable[tuple[UUID, datetime]], max_delay: int, at: datetime
) -> list[tuple[str, str, int, list[UUID]]]:
    """(id, body, delay, delivery ids) messages for deliveries due at given times: those due at one time share
    messages of up to DELIVERIES_PER_MESSAGE; the SQS delay is the wait, at most `max_delay` (a longer one hops)."""
    by_time: dict[datetime, list[UUID]] = {}
    for delivery_id, not_before in due:
        by_time.setdefault(not_before, []).append(delivery_id)
    out: list[tuple[str, str, int, list[UUID]]] = []
    for not_before, ids in by_time.items():
        delay = min(max(0, math.ceil((not_before - at).total_seconds())), max_delay)
        for start in range(0, len(ids), DELIVERIES_PER_MESSAGE):
            chunk = ids[start : start + DELIVERIES_PER_MESSAGE]
            out.append((str(len(out)), _message(tenant_id, chunk, not_before), delay, chunk))
    return out


def _send(messages: Sequence[tuple[str, str, int, list[UUID]]]) -> set[str]:
    """Send (id, body, delay seconds, delivery ids) messages to the queue, ten a call, up to SQS_SENDERS calls at
    once: the ids SQS accepted."""
    queue = get_settings().webhook_queue_url
    if queue is None:
        return set()
    sqs = _sqs()

    def send(chunk: Sequence[tuple[str, str, int, list[UUID]]]) -> list[str]:
        try:
            answer = sqs.send_message_batch(
                QueueUrl=queue,
                Entries=[{"Id": key, "MessageBody": body, "DelaySeconds": delay} for key, body, delay, _ in chunk],
            )
        except Exception:
            logger.exception("could not send webhook messages to SQS; the sweep sends them again")
            return []
        for failure in answer.get("Failed", []):
            logger.warning("SQS refused a webhook message", extra={"code": failure.get("Code")})
        return [entry["Id"] for entry in answer.get("Successful", [])]

    chunks = [messages[start : start + SQS_BATCH] for start in range(0, len(messages), SQS_BATCH)]
    if len(chunks) <= 1:
        return set(send(chunks[0])) if chunks else set()
    with ThreadPoolExecutor(max_workers=min(SQS_SENDERS, len(chunks))) as pool:
        return {key for accepted in pool.map(send, chunks) for key in accepted}


def dispatch(tenant_id: UUID, *, now: datetime | None = None, limit: int = 5000) -> int:
    """Hand the tenant's pending deliveries to SQS, oldest first: each batch locked, sent, and marked queued in one
    transaction (a row is queued only once SQS took its message; a concurrent dispatch passes locked rows by)."""
    if get_settings().webhook_queue_url is None:
        return 0
    at = now or datetime.now(UTC)
    queued = 0
    while queued < limit:
        with tenant_transaction(tenant_id) as cur:
            cur.execute(
                """SELECT id FROM webhook_deliveries WHERE user_id = %s AND state = 'pending'
                ORDER BY created_at, id LIMIT %s FOR UPDATE SKIP LOCKED""",
                (tenant_id, DISPATCH_BATCH),
            )
            ids = [row["id"] for row in cur.fetchall()]
            if not ids:
                break
            messages = _messages(tenant_id, ((i, at) for i in ids), 0, at)
            sent = _send(messages)
            done = [i for key, _, _, chunk in messages if key in sent for i in chunk]
            cur.execute(
                """UPDATE webhook_deliveries SET state = 'queued', next_attempt_at = %s
                WHERE user_id = %s AND id = ANY(%s)""",
                (at, tenant_id, done),
            )
        queued += len(done)
        if len(done) < len(ids):
            break  # SQS refused some: the sweep tries again
    return queued


# A column for a statement of the change's own transaction, after its writes: whether the capture triggers wrote a
# delivery in this transaction (webhook_deliveries_add sets app.webhooks_pending, transaction-local). Reading it is
# no scan at all: a desk without endpoints pays nothing more than its triggers' one probe.
WRITTEN = "current_setting('app.webhooks_pending', true) IS NOT DISTINCT FROM 'on' AS webhooks_written"


def _pending(tenant_id: UUID) -> bool:
    with tenant_transaction(tenant_id) as cur:
        cur.execute(
            "SELECT EXISTS (SELECT FROM webhook_deliveries WHERE user_id = %s AND state = 'pending') AS pending",
            (tenant_id,),
        )
        row = cur.fetchone()
        return bool(row and row["pending"])


def start(tenant_id: UUID) -> None:
    """Dispatch the tenant's pending deliveries soon: an asynchronous invocation of WebhookDeliveryFunction, or,
    with none configured (or when the invocation fails), the dispatch here. Never raises: the sweep sends the rest."""
    invoke_or_run(
        get_settings().webhook_function_name,
        {"dispatch": {"tenantId": str(tenant_id)}},
        lambda: dispatch(tenant_id),
        what="webhook dispatch",
    )


def kick(tenant_id: UUID) -> None:
    """After a write of the tenant committed: start a dispatch if it left deliveries pending (one indexed probe of a
    partial index that holds nothing for a desk without endpoints)."""
    try:
        pending = _pending(tenant_id)
    except psycopg.Error:
        logger.exception("could not look for pending webhook deliveries; the sweep sends them")
        return
    if pending:
        start(tenant_id)


def start_after(outbox: Any, *, written: bool = False) -> None:
    """For a change sent through a realtime outbox (support.services.connections.Outbox): the kick once the outbox
    was sent after the commit; or, when the change knows it `written` deliveries (WRITTEN, read in its own
    transaction), the dispatch started without the kick's probe."""
    tenant_id = outbox.tenant_id
    outbox.after_send(lambda: start(tenant_id) if written else kick(tenant_id))


# -- Delivery: WebhookDeliveryFunction's SQS batches ---------------------------------------------------------------


def next_attempt_after(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: 30 s, then doubling, at most 6 hours (about 13 attempts in
    the day: 0 s, 30 s, 1.5 min, 3.5 min, ... 8.5 h, 14.5 h, 20.5 h)."""
    wait: timedelta = FIRST_RETRY * 2 ** max(0, attempts - 1)
    return min(wait, LONGEST_WAIT)


@dataclass
class DeliveryReport:
    """What one batch did (for the logs and the tests)."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0  # arrived before their time: sent on
    dropped: int = 0  # already done, taken by another worker, or a stale copy
    unprocessed: list[str] = field(default_factory=list)  # message ids SQS should give again


@dataclass
class _Claimed:
    message_id: str
    delivery_id: UUID
    endpoint_id: UUID
    event: str
    url: str
    enabled: bool
    attempts: int
    created_at: datetime
    body: bytes
    signatures: list[str] = field(default_factory=list)
    outcome: webhook_http.Outcome | None = None


def _parse(record: dict[str, Any]) -> tuple[UUID, list[UUID], datetime] | None:
    try:
        body = json.loads(record["body"])
        not_before = datetime.fromisoformat(body["notBefore"])
        return UUID(body["tenantId"]), [UUID(i) for i in body["deliveryIds"]], not_before
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def deliver_messages(records: Iterable[dict[str, Any]], *, now: datetime | None = None) -> DeliveryReport:
    """An SQS batch (Lambda's `Records`: messageId, body): each message's delivery attempted if it is due, the
    outcomes recorded, the retries sent on. Messages of a tenant whose database work failed are answered as
    unprocessed (SQS gives them again; after maxReceiveCount they go to the dead-letter queue)."""
    at = now or datetime.now(UTC)
    report = DeliveryReport()
    by_tenant: dict[UUID, list[tuple[str, UUID, datetime]]] = {}
    for record in records:
        parsed = _parse(record)
        if parsed is None:
            logger.error("an unreadable webhook message is dropped", extra={"messageId": record.get("messageId")})
            report.dropped += 1
            continue
        tenant_id, delivery_ids, not_before = parsed
        for delivery_id in delivery_ids:
            by_tenant.setdefault(tenant_id, []).append((record["messageId"], delivery_id, not_before))
    for tenant_id, messages in by_tenant.items():
        try:
            _deliver_for_tenant(tenant_id, messages, at, report)
        except Exception:
            logger.exception("webhook deliveries of a tenant failed; SQS gives them again")
            report.unprocessed.extend(dict.fromkeys(message_id for message_id, _, _ in messages))
    return report


def _deliver_for_tenant(
    tenant_id: UUID, messages: list[tuple[str, UUID, datetime]], at: datetime, report: DeliveryReport
) -> None:
    settings = get_settings()
    claimed: list[_Claimed] = []
    hops: list[tuple[UUID, datetime]] = []
    with tenant_transaction(tenant_id) as cur:
        cur.execute(
            """SELECT d.id, d.state, d.next_attempt_at, d.lease_until FROM webhook_deliveries d
            WHERE d.user_id = %s AND d.id = ANY(%s)""",
            (tenant_id, [delivery_id for _, delivery_id, _ in messages]),
        )
        rows = {row["id"]: row for row in cur.fetchall()}
        due: dict[UUID, str] = {}
        for message_id, delivery_id, not_before in messages:
            row = rows.get(delivery_id)
            if row is None or row["state"] != "queued" or delivery_id in due:
                report.dropped += 1  # done, given up, its endpoint deleted, or a second copy in this batch
            elif row["next_attempt_at"] is not None and row["next_attempt_at"] > at:
                if row["next_attempt_at"] == not_before:  # the row's own schedule, early: one more hop
                    hops.append((delivery_id, not_before))
                    report.deferred += 1
                else:
                    report.dropped += 1  # a stale copy: the row was rescheduled since
            elif row["lease_until"] is not None and row["lease_until"] > at:
                report.dropped += 1  # another worker is attempting it now
            else:
                due[delivery_id] = message_id
        if due:
            cur.execute(
                """UPDATE webhook_deliveries d SET lease_until = %s
                FROM webhook_endpoints w
                WHERE d.user_id = %s AND d.id = ANY(%s) AND d.state = 'queued'
                  AND w.user_id = d.user_id AND w.id = d.endpoint_id
                RETURNING d.id, d.endpoint_id, d.event, d.payload, d.attempts, d.created_at, w.url, w.enabled""",
                (at + LEASE, tenant_id, list(due)),
            )
            for row in cur.fetchall():
                body = json.dumps(row["payload"], separators=(",", ":"), ensure_ascii=False).encode()
                claimed.append(
                    _Claimed(
                        message_id=due[row["id"]],
                        delivery_id=row["id"],
                        endpoint_id=row["endpoint_id"],
                        event=row["event"],
                        url=row["url"],
                        enabled=row["enabled"],
                        attempts=row["attempts"],
                        created_at=row["created_at"],
                        body=body,
                    )
                )
        timestamp = int(at.timestamp())
        if claimed:
            # Signed by the database: the secrets never leave it (sql/definitions/webhooks.sql).
            cur.execute(
                """SELECT s.i, webhook_signatures(s.endpoint, s.signed, %s) AS signatures
                FROM unnest(%s::uuid[], %s::bytea[]) WITH ORDINALITY AS s (endpoint, signed, i)""",
                (at, [c.endpoint_id for c in claimed], [f"{timestamp}.".encode() + c.body for c in claimed]),
            )
            for row in cur.fetchall():
                claimed[row["i"] - 1].signatures = list(row["signatures"])
    if hops:
        _send(_messages(tenant_id, hops, settings.webhook_max_hop_seconds, at))
    if not claimed:
        return

    allow_local = settings.webhooks_allow_local_http

    def attempt(one: _Claimed) -> None:
        if not one.enabled:
            one.outcome = webhook_http.Outcome(status=None, error="the endpoint is disabled", duration_ms=0)
            return
        try:
            target = webhook_http.check(one.url, allow_local=allow_local)
        except webhook_http.UnsafeUrl as exc:
            one.outcome = webhook_http.Outcome(status=None, error=f"refused: {exc}", duration_ms=0)
            return
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Support-Event": one.event,
            "X-Support-Delivery": str(one.delivery_id),
            SIGNATURE_HEADER: ",".join([f"t={timestamp}", *(f"v1={s}" for s in one.signatures)]),
        }
        one.outcome = webhook_http.post(target, one.body, headers)

    if len(claimed) == 1:
        attempt(claimed[0])
    else:
        with ThreadPoolExecutor(max_workers=min(SENDERS, len(claimed))) as pool:
            list(pool.map(attempt, claimed))

    retries: list[tuple[UUID, datetime]] = []
    updates: list[dict[str, Any]] = []
    for one in claimed:
        outcome = one.outcome or webhook_http.Outcome(status=None, error="not attempted", duration_ms=0)
        attempts = one.attempts + 1
        ok = outcome.status is not None and 200 <= outcome.status < 300
        next_at: datetime | None = None
        if ok:
            state = "delivered"
            report.delivered += 1
        elif not one.enabled:
            state = "failed"
            report.failed += 1
        else:
            next_at = at + next_attempt_after(attempts)
            if next_at > one.created_at + RETRY_WINDOW:
                state, next_at = "failed", None
                report.failed += 1
            else:
                state = "queued"
                report.retried += 1
                retries.append((one.delivery_id, next_at))
        updates.append(
            {
                "id": one.delivery_id,
                "tenant": tenant_id,
                "state": state,
                "attempts": attempts,
                "next": next_at,
                "status": outcome.status if outcome.status is not None and 100 <= outcome.status <= 599 else None,
                "duration": outcome.duration_ms,
                "error": outcome.error,
                "at": at,
                "completed": at if state in ("delivered", "failed") else None,
            }
        )
    with tenant_transaction(tenant_id) as cur:
        cur.executemany(
            """UPDATE webhook_deliveries SET state = %(state)s, attempts = %(attempts)s, next_attempt_at = %(next)s,
                lease_until = NULL, response_status = %(status)s, duration_ms = %(duration)s, last_error = %(error)s,
                last_attempt_at = %(at)s, completed_at = %(completed)s
            WHERE user_id = %(tenant)s AND id = %(id)s AND state = 'queued'""",
            updates,
        )
    if retries:
        _send(
            _messages(tenant_id, retries, settings.webhook_max_hop_seconds, at)
        )  # a retry whose message is lost is sent again by the sweep once it is long past due


def sweep(now: datetime) -> int:
    """The workflow sweep's step: for every tenant with work, dispatch what was left pending and re-send the
    messages of queued deliveries long past due with no attempt in flight (lost after their row committed). The
    number of deliveries handed to SQS."""
    if get_settings().webhook_queue_url is None:
        return 0
    with anonymous_transaction() as cur:
        cur.execute("SELECT user_id FROM webhook_sweep_work(%s, %s)", (now, now - LOST_AFTER))
        tenants = [row["user_id"] for row in cur.fetchall()]
    sent = 0
    for tenant_id in tenants:
        try:
            sent += dispatch(tenant_id, now=now)
            sent += _resend_lost(tenant_id, now)
        except Exception:
            logger.exception("the webhook sweep failed for a tenant; the next sweep tries again")
    return sent


LOG_PRUNE_BATCH = 5_000  # finished deliveries deleted per tenant and run
LOG_PRUNE_TENANTS = 200  # tenants one run works on (each a transaction)
LOG_PRUNE_SECONDS = 8.0  # the sweep's timeout is 60 s: the audit steps run after this one


def prune_log(now: datetime, *, max_tenants: int = LOG_PRUNE_TENANTS, max_seconds: float = LOG_PRUNE_SECONDS) -> int:
    """The workflow sweep's `webhook_log` step: every tenant's finished deliveries past their 30 days at `now` (or
    the database's clock, whichever is earlier), a batch per tenant, the tenants in a new order each run (a backlog
    does not always come first), at most `max_tenants` of them and none started after `max_seconds`: the next minute
    goes on. Answers how many it deleted. A tenant that fails is logged and the others still run; the step then fails
    (the next minute tries again)."""
    with anonymous_transaction() as cur:
        cur.execute("SELECT t FROM webhook_log_tenants_due(%s) AS t", (now,))
        tenants = [row["t"] for row in cur.fetchall()]

    def prune(tenant_id: UUID) -> int:
        with tenant_transaction(tenant_id) as cur:
            cur.execute("SELECT webhook_prune_deliveries(%s, %s, %s) AS gone", (tenant_id, now, LOG_PRUNE_BATCH))
            row = cur.fetchone()
        return int(row["gone"]) if row else 0

    return each_tenant(
        tenants, prune, what="pruning the webhook delivery log", max_tenants=max_tenants, max_seconds=max_seconds
    )


def _resend_lost(tenant_id: UUID, now: datetime) -> int:
    with tenant_transaction(tenant_id) as cur:
        cur.execute(
            """SELECT id, next_attempt_at FROM webhook_deliveries
            WHERE user_id = %s AND state = 'queued' AND next_attempt_at < %s
              AND (lease_until IS NULL OR lease_until < %s)
            ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED""",
            (tenant_id, now - LOST_AFTER, now, DISPATCH_BATCH),
        )
        rows = cur.fetchall()
        if not rows:
            return 0
        # Due now: the row's schedule moves to now, so the re-sent message is its own (an older copy is stale).
        messages = _messages(tenant_id, ((row["id"], now) for row in rows), 0, now)
        sent = _send(messages)
        ids = [i for key, _, _, chunk in messages if key in sent for i in chunk]
        cur.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = %s WHERE user_id = %s AND id = ANY(%s)",
            (now, tenant_id, ids),
        )
        return len(ids)
