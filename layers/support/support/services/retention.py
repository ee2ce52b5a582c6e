"""Retention (issue 19): a tenant's policy, and the workflow sweep's `retention` step that archives and deletes.

The policy (`GET`/`PUT /api/support/settings/retention`, support.models.settings.RetentionSettings): closed tickets
(status `resolved` or `closed`, aged from `resolved_at`) and ended chats (status `closed`, aged from
`session_end_time`) are kept forever (the default), deleted, or archived and deleted, `days` after they closed; audit
entries are pruned after `auditDays` (at least 365).

The step (`sweep_step(now)`, every minute): one look across tenants (retention_tenants_due, SECURITY DEFINER owned by
the lister: the ids of the tenants with something due, so a minute with nothing due costs one round trip), then per
tenant, oldest first, batches of BATCH rows, each:
1. read under the tenant's row-level security, in one transaction: the rows with their conversations and feedback
   (tickets) or messages (chats), each row one JSON line built by the database;
2. archive mode: one S3 object per batch (`archive/<tenant>/<yyyy-mm-dd>/<kind>-<part>.jsonl`, SSE-S3), named
   after the batch's first row (the day it closed, then its closing time and id), so a batch read again after a
   crash writes the same object again: the upload is idempotent and the names sort in archiving order;
3. only after the upload, one transaction that deletes the batch through retention_delete_tickets /
   retention_delete_chats (sql/definitions/retention.sql): the database re-checks status and age against the
   tenant's stored policy and its own clock, locking the rows, so a ticket reopened after step 1 stays; the figure
   triggers skip these deletes and tombstones keep what the recount needs (the totals count history).
A crash between 2 and 3 loses nothing: the rows are still there and the next run writes the same object again.
A copy of a ticket that reopened between 1 and 3 stays in the archive (the live row wins; a reader takes the newest
line per id). At most ROWS_PER_RUN rows and SECONDS_PER_RUN seconds per run (the function's timeout is 60 s); the
next minute goes on where this one stopped. Tenants are visited in a different order each run, so one tenant's
backlog does not starve the others.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID

from support.auth import Principal
from support.aws import cached_client
from support.db import tenant_transaction
from support.db.connection import anonymous_transaction
from support.models.settings import RetentionRule, RetentionSettings
from support.observability import logger
from support.services import attachments, audit, settings

RETENTION = "retention"
BATCH = 2_000  # rows per object and per delete transaction: locks held for one batch only
ROWS_PER_RUN = 20_000
SECONDS_PER_RUN = 30.0  # the sweep's timeout is 60 s, and the other steps run too
ARCHIVE_PREFIX = "archive"

Kind = Literal["tickets", "chats"]
Store = Callable[[str, bytes], None]  # put one object (key, body)


def retention_settings(principal: Principal) -> RetentionSettings:
    with tenant_transaction(principal.tenant_id) as cur:
        return settings.read_settings(cur, principal.tenant_id, RETENTION, RetentionSettings)


def put_retention_settings(principal: Principal, data: RetentionSettings) -> RetentionSettings:
    return settings.write_settings(principal, RETENTION, data)


@dataclass
class Batch:
    tenant_id: UUID
    kind: Kind
    ids: list[UUID]
    lines: list[str]
    first_closed_at: datetime

    @property
    def key(self) -> str:
        """The batch's object: named after its first row, so the same batch read again gets the same name."""
        first = self.first_closed_at.astimezone(UTC)
        return (
            f"{ARCHIVE_PREFIX}/{self.tenant_id}/{first:%Y-%m-%d}/"
            f"{self.kind}-{first:%Y%m%dT%H%M%S%fZ}-{self.ids[0]}.jsonl"
        )

    def body(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode()


@dataclass
class RetentionReport:
    tenants: int = 0
    archived: dict[str, int] = field(default_factory=lambda: {"tickets": 0, "chats": 0})
    deleted: dict[str, int] = field(default_factory=lambda: {"tickets": 0, "chats": 0})
    objects: list[str] = field(default_factory=list)
    failed: dict[UUID, str] = field(default_factory=dict)
    more: bool = False  # stopped by the run's budget with work left
    seconds: dict[str, float] = field(default_factory=lambda: {"read": 0.0, "upload": 0.0, "delete": 0.0})
    audit_pruned: int = 0  # audit entries past the tenants' auditDays, deleted (support.services.audit.prune)

    @property
    def rows(self) -> int:
        return sum(self.deleted.values())


# Each line: the row as the database holds it (snake_case columns, the search vector left out) with what hangs
# from it; built by the database in the read's own statement (to_jsonb), one round trip per batch.
_SELECT: dict[Kind, str] = {
    "tickets": """SELECT t.id, t.resolved_at AS closed_at, jsonb_build_object(
            'kind', 'ticket',
            'ticket', to_jsonb(t) - 'search_vector',
            'conversations', coalesce((SELECT jsonb_agg(to_jsonb(c) ORDER BY c.created_at, c.id)
                                       FROM ticket_conversations c
                                       WHERE c.user_id = t.user_id AND c.ticket_id = t.id), '[]'::jsonb),
            'feedback', (SELECT to_jsonb(f) FROM ticket_feedback f WHERE f.user_id = t.user_id AND f.ticket_id = t.id)
        )::text AS line
        FROM support_tickets t
        WHERE t.user_id = %(tenant)s AND t.resolved_at IS NOT NULL AND t.resolved_at < %(cutoff)s
          AND t.status IN ('resolved', 'closed')
        ORDER BY t.resolved_at, t.id
        LIMIT %(limit)s""",
    "chats": """SELECT s.id, s.session_end_time AS closed_at, jsonb_build_object(
            'kind', 'chat',
            'session', to_jsonb(s),
            'messages', coalesce((SELECT jsonb_agg(to_jsonb(m) ORDER BY m.created_at, m.id)
                                  FROM chat_messages m
                                  WHERE m.user_id = s.user_id AND m.session_id = s.id), '[]'::jsonb)
        )::text AS line
        FROM live_chat_sessions s
        WHERE s.user_id = %(tenant)s AND s.session_end_time IS NOT NULL AND s.session_end_time < %(cutoff)s
          AND s.status = 'closed'
        ORDER BY s.session_end_time, s.id
        LIMIT %(limit)s""",
}
_DELETE: dict[Kind, str] = {
    "tickets": "SELECT retention_delete_tickets(%s, %s, %s) AS gone",
    "chats": "SELECT retention_delete_chats(%s, %s, %s) AS gone",
}


def due_before(now: datetime, days: int) -> datetime:
    """What a policy of `days` makes due at `now`: the rows closed before midnight UTC `days` days ago. Whole days
    (as retention_cutoff in the database): a day's closed rows become due together, once, so they are archived in
    one object (in parts beyond BATCH rows), not in a new object every minute as each row comes of age."""
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=days)


def select_batch(tenant_id: UUID, kind: Kind, rule: RetentionRule, now: datetime, limit: int = BATCH) -> Batch | None:
    """The oldest rows of `kind` due under `rule` at `now`, those of the first one's closing day (UTC) only, as
    JSON lines (step 1), or None when nothing is due."""
    assert rule.days is not None
    with tenant_transaction(tenant_id) as cur:
        cur.execute(_SELECT[kind], {"tenant": tenant_id, "cutoff": due_before(now, rule.days), "limit": limit})
        rows = cur.fetchall()
    if not rows:
        return None
    day = rows[0]["closed_at"].astimezone(UTC).date()
    rows = [r for r in rows if r["closed_at"].astimezone(UTC).date() == day]  # a batch never spans two days
    return Batch(tenant_id, kind, [r["id"] for r in rows], [r["line"] for r in rows], rows[0]["closed_at"])


def archive_bucket() -> str:
    bucket = os.environ.get("ARCHIVE_BUCKET", "")
    if not bucket:
        raise RuntimeError("set ARCHIVE_BUCKET: the bucket the retention step archives to")
    return bucket


def s3_store(key: str, body: bytes) -> None:
    cached_client("s3", max_attempts=5).put_object(
        Bucket=archive_bucket(),
        Key=key,
        Body=body,
        ContentType="application/x-ndjson",
        ServerSideEncryption="AES256",
    )


def write_batch(batch: Batch, store: Store) -> str:
    """Step 2: the batch's object, written whole (a retry overwrites it with the same rows)."""
    store(batch.key, batch.body())
    return batch.key


_PARENTS: dict[Kind, tuple[str, str]] = {
    "tickets": ("support_tickets", "ticket_id"),
    "chats": ("live_chat_sessions", "session_id"),
}


def delete_batch(batch: Batch, now: datetime) -> int:
    """Step 3: delete what is still due of the batch (the database re-checks status and age). Answers how many. The
    files uploaded to the deleted tickets or chats (their attachment rows go with them by the foreign key) are deleted
    from S3 before the commit: a failure there rolls the batch back, to be run again."""
    table, column = _PARENTS[batch.kind]
    with tenant_transaction(batch.tenant_id) as cur:
        cur.execute(
            f"SELECT {column} AS parent, id, object_key FROM attachments WHERE user_id = %s AND {column} = ANY(%s)",  # noqa: S608
            (batch.tenant_id, batch.ids),
        )
        files = cur.fetchall()
        cur.execute(_DELETE[batch.kind], (batch.tenant_id, batch.ids, now))
        row = cur.fetchone()
        if files:
            cur.execute(
                f"SELECT id FROM {table} WHERE user_id = %s AND id = ANY(%s)",  # noqa: S608
                (batch.tenant_id, sorted({f["parent"] for f in files})),
            )
            kept = {r["id"] for r in cur.fetchall()}
            attachments.delete_stored(
                batch.tenant_id, [(f["id"], f["object_key"]) for f in files if f["parent"] not in kept]
            )
    return int(row["gone"]) if row else 0


def prune_audit(tenant_id: UUID, audit_days: int, now: datetime) -> int:
    """The tenant's audit entries older than `audit_days` (at least 365), at most audit.PRUNE_BATCH a run, through the
    audit trail's own pruning (support.services.audit.prune: the chain keeps an anchor, so what stays still
    verifies). The cut-off is taken from the earlier of `now` and the database's clock, which refuses anything of the
    last 365 days."""
    older_than = min(now, datetime.now(UTC)) - timedelta(days=audit_days)
    with tenant_transaction(tenant_id) as cur:
        return audit.prune(cur, tenant_id, older_than, audit.PRUNE_BATCH)


def run_tenant(
    tenant_id: UUID,
    now: datetime,
    report: RetentionReport,
    *,
    store: Store,
    rows_left: int,
    deadline: float,
) -> int:
    """One tenant's due rows, batch by batch, within the run's budget. Answers the rows deleted."""
    with tenant_transaction(tenant_id) as cur:
        policy = settings.read_settings(cur, tenant_id, RETENTION, RetentionSettings)
    done = 0
    kinds: list[tuple[Kind, RetentionRule]] = [("tickets", policy.tickets), ("chats", policy.chats)]
    for kind, rule in kinds:
        if rule.mode == "keep":
            continue
        while done < rows_left and time.monotonic() < deadline:
            started = time.monotonic()
            batch = select_batch(tenant_id, kind, rule, now, min(BATCH, rows_left - done))
            report.seconds["read"] += (read := time.monotonic()) - started
            if batch is None:
                break
            if rule.mode == "archive":
                report.objects.append(write_batch(batch, store))
                report.archived[kind] += len(batch.ids)
            report.seconds["upload"] += (uploaded := time.monotonic()) - read
            gone = delete_batch(batch, now)
            report.seconds["delete"] += time.monotonic() - uploaded
            report.deleted[kind] += gone
            done += gone
            if gone == 0:  # every row of the batch changed meanwhile (reopened): leave the rest to the next run
                break
        else:
            report.more = True
    if policy.audit_days is not None:
        report.audit_pruned += prune_audit(tenant_id, policy.audit_days, now)
    return done


def run(
    now: datetime,
    *,
    store: Store | None = None,
    max_rows: int = ROWS_PER_RUN,
    max_seconds: float = SECONDS_PER_RUN,
    tenants: list[UUID] | None = None,
) -> RetentionReport:
    """Every due tenant's closed tickets and ended chats at `now`, within the budget (see the module)."""
    report = RetentionReport()
    deadline = time.monotonic() + max_seconds
    if tenants is None:
        with anonymous_transaction() as cur:
            cur.execute("SELECT t FROM retention_tenants_due(%s) AS t", (now,))
            tenants = [row["t"] for row in cur.fetchall()]
        random.shuffle(tenants)  # fairness between tenants: a backlog does not always come first
    report.tenants = len(tenants)
    for tenant_id in tenants:
        if report.rows >= max_rows or time.monotonic() >= deadline:
            report.more = True
            break
        try:
            run_tenant(
                tenant_id, now, report, store=store or s3_store, rows_left=max_rows - report.rows, deadline=deadline
            )
        except Exception as exc:
            logger.exception("retention of a tenant failed", extra={"tenant_id": str(tenant_id)})
            report.failed[tenant_id] = repr(exc)
    if report.rows:
        logger.info(
            "retention",
            extra={
                "tenants": report.tenants,
                "archived": report.archived,
                "deleted": report.deleted,
                "objects": len(report.objects),
                "more": report.more,
                "seconds": report.seconds,
            },
        )
    return report


def sweep_step(now: datetime) -> int:
    """The workflow sweep's `retention` step: the rows deleted (archived first where the policy says so)."""
    report = run(now)
    if report.failed:
        raise RuntimeError(f"retention failed for {len(report.failed)} tenant(s)")
    return report.rows
