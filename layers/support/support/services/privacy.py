"""Privacy requests (issue 19): everything held about a customer exported as one JSON document, or their personal
data erased everywhere while every figure stays true.

The shape of it:

* A request is a row of `privacy_requests` (sql/0039: per tenant, row-level security), written and committed by the
  admin's POST, then started at once (`start`: an asynchronous invocation of PrivacyJobFunction, PRIVACY_FUNCTION_NAME,
  else the run here, support.invocations.invoke_or_run). The every-minute workflow sweep's `privacy` step (`sweep`)
  resumes what a lost invocation or a crashed run left: a run holds a lease on its request (`lease_until`), renewed
  with every batch; a request whose lease ended, or that never started, is claimed again, at most MAX_ATTEMPTS
  times, then `failed` with its last error. A claim counts an attempt, and the attempt it counted is the runner's
  token: each batch checks it under the request's row lock, so a runner that lost its lease to another stops.
* Who the customer is: the email given, lower-cased; their contacts (the identity of that email, the contact it
  was merged into, and the contacts merged into that one); their tickets (by contact or by the ticket's email) and
  chat sessions (by contact, or by the email the visitor gave). Resolved once, when an erasure starts, and kept on
  the request: once erased, nothing finds them by the email any more.
* The export reads, in one REPEATABLE READ READ ONLY snapshot under the tenant's row-level security, every row of
  those (tickets, their thread entries and feedback, chat sessions and their messages, contacts and identities,
  inbound mail records, email notices, attachments' metadata), writes the document to a temporary file, copies the
  customer's stored files (the files claimed by their tickets' and chats' messages, the files of their mail and the
  raw mail) server-side into the export (S3 CopyObject: no byte passes through the function) and puts the document
  last, so a document in the bucket means a complete export (see `_run_export`). Everything an export writes is under
  one prefix of the encrypted export bucket (exports/<tenant>/<id>.json and exports/<tenant>/<id>/files/...), so the
  bucket's 7-day lifecycle and an erasure take it whole. `GET` answers presigned GETs valid for an hour.
* The erasure runs ERASERS in order, each in batches of at most BATCH rows, one transaction per batch: the batch's
  rows changed in place (privacy_erase_batch, SECURITY DEFINER, sql/definitions/privacy.sql: texts, names, emails,
  phones, IPs, user agents replaced or cleared; statuses, agents, times, ratings, counts kept, so the running totals,
  the agents' figures, analytics and SLA figures do not move), the S3 objects those rows named deleted, and the
  request's step, cursor (the last id done) and progress committed together. A crash loses at most the batch it was
  in; the resumed run goes on from the committed cursor. Steps are idempotent (a second run of a batch finds its
  rows already erased), and a second request for the same customer finds nothing left: a no-op success.
* Erasers other features add: `ERASERS` is a list of `Eraser(name, batch)`; a feature that keeps personal data of
  its own (the audit trail's erasable store, attachments' files) appends its step there (see `register_eraser`).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import IO, Any
from uuid import UUID

from psycopg.types.json import Jsonb
from pydantic.alias_generators import to_camel

from support.auth import Principal
from support.config import get_settings
from support.db import read_snapshot, tenant_transaction
from support.db.connection import Cursor, anonymous_transaction
from support.errors import StorageFailed, StorageUnavailable, found
from support.invocations import invoke_or_run
from support.models.privacy import (
    PrivacyErasure,
    PrivacyExport,
    PrivacyExportFile,
    PrivacyRequestCreate,
    PrivacyState,
)
from support.observability import logger
from support.services import attachments, audit

BATCH = 500  # rows per erasure transaction: short row locks even for a customer with 100,000 messages
LEASE = timedelta(minutes=2)  # renewed with every batch; a run that stops renewing is resumed after it
MAX_ATTEMPTS = 5  # claims of one request before it is failed
PENDING_GRACE = timedelta(minutes=1)  # a request its own invocation has not started by then is the sweep's
SWEEP_REQUESTS = 20  # requests one sweep run takes up
SWEEP_BUDGET_SECONDS = 40.0  # the sweep's time for them (its function has 60 s); a run cut short is resumed
DOWNLOAD_SECONDS = 3600  # a download link's validity
EXPORT_PREFIX = "exports/"
EXPORT_CHUNK = 200  # tickets or sessions read per statement of an export
EXPORT_FILES_PER_ANSWER = 100  # files (each with its presigned GET) listed by one GET of an export
ERRORS_MAX_CHARS = 2000


# --- requests: POST and GET /api/support/privacy/exports and /erasures ------------------------------------------------

_COLUMNS = """id, kind, customer_email, state, attempts, lease_until, step, cursor, progress, s3_key, error,
    created_at, finished_at"""


def _customer(email: str) -> str:
    """The email as contacts keep it (contact_normalise('email', ...): trimmed, lower-cased)."""
    return email.strip().lower()


def request_export(principal: Principal, data: PrivacyRequestCreate) -> PrivacyExport:
    """A new export of the customer, started at once (202)."""
    principal.require_admin("export a customer's data")
    row = _insert(principal, "export", _customer(data.customer_email))
    start(principal.tenant_id, row["id"])
    return _export(row)


def get_export(principal: Principal, request_id: UUID, *, files_after: str | None = None) -> PrivacyExport:
    """The export; when done, presigned GETs of its document and of its files (a page of them, after `files_after`)."""
    principal.require_admin("read a customer's data export")
    with tenant_transaction(principal.tenant_id) as cur:
        row = _read(cur, principal.tenant_id, request_id, "export")
    export = _export(row, with_link=True)
    if export.download_url is not None:
        export.files, export.more_files_after = _export_files(principal.tenant_id, request_id, files_after)
    return export


def request_erasure(principal: Principal, data: PrivacyRequestCreate) -> PrivacyErasure:
    """A new erasure of the customer, started at once (202); an open one for the same customer is answered instead."""
    principal.require_admin("erase a customer's data")
    email = _customer(data.customer_email)
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            f"""SELECT {_COLUMNS} FROM privacy_requests
            WHERE user_id = %s AND customer_email = %s AND kind = 'erasure' AND state IN ('pending', 'running')
            ORDER BY created_at LIMIT 1""",  # noqa: S608
            (principal.tenant_id, email),
        )
        open_one = cur.fetchone()
    if open_one is not None:
        return _erasure(open_one)
    row = _insert(principal, "erasure", email)
    start(principal.tenant_id, row["id"])
    return _erasure(row)


def get_erasure(principal: Principal, request_id: UUID) -> PrivacyErasure:
    principal.require_admin("read a customer's erasure")
    with tenant_transaction(principal.tenant_id) as cur:
        return _erasure(_read(cur, principal.tenant_id, request_id, "erasure"))


def _insert(principal: Principal, kind: str, email: str) -> dict[str, Any]:
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            f"""INSERT INTO privacy_requests (user_id, kind, customer_email, requested_by) VALUES (%s, %s, %s, %s)
            RETURNING {_COLUMNS}""",  # noqa: S608
            (principal.tenant_id, kind, email, principal.subject[:300] or None),
        )
        return found(cur.fetchone(), "privacy request")


def _read(cur: Cursor, tenant_id: UUID, request_id: UUID, kind: str) -> dict[str, Any]:
    cur.execute(
        f"SELECT {_COLUMNS} FROM privacy_requests WHERE user_id = %s AND id = %s AND kind = %s",  # noqa: S608
        (tenant_id, request_id, kind),
    )
    return found(cur.fetchone(), f"privacy {kind}")


def _export(row: dict[str, Any], *, with_link: bool = False) -> PrivacyExport:
    export = PrivacyExport.model_validate(row)
    if with_link and row["state"] == PrivacyState.DONE and row["s3_key"]:
        expires = datetime.now(UTC) + timedelta(seconds=DOWNLOAD_SECONDS)
        export.download_url = _s3().generate_presigned_url(
            "get_object",
            Params={
                "Bucket": _export_bucket(),
                "Key": row["s3_key"],
                "ResponseContentType": "application/json",
                "ResponseContentDisposition": f'attachment; filename="export-{row["id"]}.json"',
            },
            ExpiresIn=DOWNLOAD_SECONDS,
        )
        export.download_expires_at = expires.replace(microsecond=0)
    return export


def _export_files(tenant_id: UUID, request_id: UUID, after: str | None) -> tuple[list[PrivacyExportFile], str | None]:
    """A page of the files copied into the export, by path, read from the bucket (what is there is what the export
    holds: an erased customer's export lists nothing), each with a presigned GET. The copy carries the file's own
    Content-Type and a Content-Disposition with its original name, so the link needs no overrides. S3 failing to list
    is a 502 (StorageFailed), a link that cannot be signed a 503: nothing was changed, ask again."""
    from botocore.exceptions import BotoCoreError, ClientError

    prefix = f"{_export_prefix(tenant_id, request_id)}/"
    s3 = _s3()
    listing = {"Bucket": _export_bucket(), "Prefix": f"{prefix}files/", "MaxKeys": EXPORT_FILES_PER_ANSWER}
    if after:
        listing["StartAfter"] = prefix + after
    try:
        listed = s3.list_objects_v2(**listing)
    except (BotoCoreError, ClientError) as exc:
        logger.warning("privacy export: listing its files failed", extra={"error": type(exc).__name__})
        raise StorageFailed("the file store failed to list the export's files; try again") from exc
    try:
        files = [
            PrivacyExportFile(
                path=item["Key"].removeprefix(prefix),
                file_name=item["Key"].rsplit("/", 1)[-1],
                size_bytes=item["Size"],
                download_url=s3.generate_presigned_url(
                    "get_object", Params={"Bucket": _export_bucket(), "Key": item["Key"]}, ExpiresIn=DOWNLOAD_SECONDS
                ),
            )
            for item in listed.get("Contents", [])
        ]
    except (BotoCoreError, ClientError, AttributeError) as exc:  # AttributeError: see attachments._presigned_post
        logger.warning("privacy export: presigning its files failed", extra={"error": type(exc).__name__})
        raise StorageUnavailable("the file store cannot serve files right now; try again") from exc
    more = files[-1].path if listed.get("IsTruncated") and files else None
    return files, more


def _erasure(row: dict[str, Any]) -> PrivacyErasure:
    return PrivacyErasure.model_validate(row)


# --- running a request ------------------------------------------------------------------------------------------------


def start(tenant_id: UUID, request_id: UUID) -> None:
    """After the request committed: run it now, in PrivacyJobFunction or here. Never raises (the sweep resumes it)."""
    invoke_or_run(
        get_settings().privacy_function_name,
        {"tenantId": str(tenant_id), "privacyRequestId": str(request_id)},
        lambda: run_request(tenant_id, request_id),
        what="privacy request",
    )


class LeaseLost(RuntimeError):
    """Another runner claimed the request (this one's lease ended): this one stops."""


@dataclass
class Claim:
    tenant_id: UUID
    request_id: UUID
    kind: str
    attempt: int
    email: str
    step: str | None
    cursor: str | None
    progress: dict[str, int]
    contact_ids: list[UUID] = field(default_factory=list)
    ticket_ids: list[UUID] = field(default_factory=list)
    session_ids: list[UUID] = field(default_factory=list)


type AfterBatch = Callable[[str, int], None]


def run_request(
    tenant_id: UUID,
    request_id: UUID,
    *,
    now: Callable[[], datetime] | None = None,
    after_batch: AfterBatch | None = None,
    budget_seconds: float | None = None,
) -> str | None:
    """Claim the request and run it to its end (or until `budget_seconds` passed: the lease is then given up, and the
    next sweep goes on). Answers the state it left, or None when it was not claimable (done, failed, or another
    runner's lease still holds). A failure is recorded on the request and raised (Lambda then retries the
    invocation; the sweep resumes it after the lease). `after_batch(step, rows)` runs inside each erasure batch's
    transaction, before its commit (tests crash a run there)."""
    clock = now or (lambda: datetime.now(UTC))
    claim = _claim(tenant_id, request_id, clock())
    if claim is None:
        return None
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    try:
        if claim.kind == "export":
            return _run_export(claim, clock, deadline)
        return _run_erasure(claim, clock, after_batch, deadline)
    except LeaseLost:
        logger.warning("privacy request taken over by another run", extra={"privacy_request_id": str(request_id)})
        return None
    except Exception as exc:
        _record_failure(claim, exc, clock())
        raise


def _claim(tenant_id: UUID, request_id: UUID, at: datetime) -> Claim | None:
    with tenant_transaction(tenant_id) as cur:
        cur.execute(
            """UPDATE privacy_requests SET state = 'running', attempts = attempts + 1, lease_until = %s,
                started_at = coalesce(started_at, %s), updated_at = %s
            WHERE user_id = %s AND id = %s
              AND (state = 'pending' OR (state = 'running' AND (lease_until IS NULL OR lease_until < %s)))
            RETURNING kind, attempts, customer_email, step, cursor, progress, contact_ids, ticket_ids, session_ids""",
            (at + LEASE, at, at, tenant_id, request_id, at),
        )
        row = cur.fetchone()
        if row is None:
            return None
        if row["attempts"] > MAX_ATTEMPTS or row["customer_email"] is None:
            cur.execute(
                """UPDATE privacy_requests SET state = 'failed', lease_until = NULL, finished_at = %s, updated_at = %s,
                    error = coalesce(error, 'gave up') || %s
                WHERE user_id = %s AND id = %s""",
                (at, at, f" (after {MAX_ATTEMPTS} attempts)", tenant_id, request_id),
            )
            logger.error("privacy request failed for good", extra={"privacy_request_id": str(request_id)})
            return None
    return Claim(
        tenant_id=tenant_id,
        request_id=request_id,
        kind=row["kind"],
        attempt=row["attempts"],
        email=row["customer_email"],
        step=row["step"],
        cursor=row["cursor"],
        progress=dict(row["progress"]),
        contact_ids=list(row["contact_ids"] or []),
        ticket_ids=list(row["ticket_ids"] or []),
        session_ids=list(row["session_ids"] or []),
    )


def _hold(cur: Cursor, claim: Claim, at: datetime) -> None:
    """In a batch's transaction: lock the request, check it is still this run's, and renew the lease."""
    cur.execute(
        """UPDATE privacy_requests SET lease_until = %s, updated_at = %s
        WHERE user_id = %s AND id = %s AND state = 'running' AND attempts = %s RETURNING id""",
        (at + LEASE, at, claim.tenant_id, claim.request_id, claim.attempt),
    )
    if cur.fetchone() is None:
        raise LeaseLost(str(claim.request_id))


def _record_failure(claim: Claim, exc: BaseException, at: datetime) -> None:
    """The error on the request, and its lease ended at once so that the next sweep (or Lambda's retry) resumes it;
    `failed` once the attempts are spent."""
    try:
        with tenant_transaction(claim.tenant_id) as cur:
            cur.execute(
                """UPDATE privacy_requests
                SET error = %s, updated_at = %s,
                    state = CASE WHEN attempts >= %s THEN 'failed' ELSE state END,
                    finished_at = CASE WHEN attempts >= %s THEN %s END,
                    lease_until = CASE WHEN attempts >= %s THEN NULL ELSE %s END
                WHERE user_id = %s AND id = %s AND state = 'running' AND attempts = %s""",
                (
                    f"{type(exc).__name__}: {exc}"[:ERRORS_MAX_CHARS],
                    at,
                    MAX_ATTEMPTS,
                    MAX_ATTEMPTS,
                    at,
                    MAX_ATTEMPTS,
                    at,
                    claim.tenant_id,
                    claim.request_id,
                    claim.attempt,
                ),
            )
    except Exception:
        logger.exception("could not record a privacy request's failure; its lease ends on its own")
    logger.exception("privacy request failed", extra={"privacy_request_id": str(claim.request_id)})


def _resolve(cur: Cursor, tenant_id: UUID, email: str) -> tuple[list[UUID], list[UUID], list[UUID]]:
    """The customer's contacts, tickets and chat sessions (see the module)."""
    cur.execute(
        """WITH direct AS (
                SELECT coalesce(c.merged_into, c.id) AS id FROM contact_identities i
                JOIN support_contacts c ON c.user_id = i.user_id AND c.id = i.contact_id
                WHERE i.user_id = %(t)s AND i.kind = 'email' AND i.value = %(e)s
            ), contacts AS (
                SELECT id FROM direct
                UNION SELECT c.id FROM support_contacts c
                WHERE c.user_id = %(t)s AND c.merged_into IN (SELECT id FROM direct)
            )
        SELECT coalesce((SELECT array_agg(id ORDER BY id) FROM contacts), '{}') AS contacts,
               coalesce((SELECT array_agg(t.id ORDER BY t.id) FROM support_tickets t
                         WHERE t.user_id = %(t)s AND (t.contact_id IN (SELECT id FROM contacts)
                                                      OR lower(t.customer_email) = %(e)s)), '{}') AS tickets,
               coalesce((SELECT array_agg(s.id ORDER BY s.id) FROM live_chat_sessions s
                         WHERE s.user_id = %(t)s AND (s.contact_id IN (SELECT id FROM contacts)
                                                      OR lower(s.visitor_email) = %(e)s)), '{}') AS sessions""",
        {"t": tenant_id, "e": email},
    )
    row = found(cur.fetchone(), "customer")
    return list(row["contacts"]), list(row["tickets"]), list(row["sessions"])


# --- the export -------------------------------------------------------------------------------------------------------


def _camel(row: dict[str, Any]) -> dict[str, Any]:
    return {to_camel(key): value for key, value in row.items()}


def _write_list(out: IO[str], name: str, rows: Iterable[dict[str, Any]], *, first: bool = False) -> int:
    out.write(("" if first else ",\n") + json.dumps(name) + ": [")
    count = 0
    for row in rows:
        out.write(("\n  " if count == 0 else ",\n  ") + json.dumps(_camel(row), default=str, ensure_ascii=False))
        count += 1
    out.write("\n]" if count else "]")
    return count


def _chunks(ids: list[UUID], size: int = EXPORT_CHUNK) -> Iterable[list[UUID]]:
    for at in range(0, len(ids), size):
        yield ids[at : at + size]


def _rows(cur: Cursor, query: str, tenant_id: UUID, ids: list[UUID]) -> Iterable[dict[str, Any]]:
    """`query` (one jsonb column `row`, parameters tenant and ids) over `ids` in chunks."""
    for chunk in _chunks(ids):
        cur.execute(query, (tenant_id, chunk))
        for found_row in cur.fetchall():
            yield found_row["row"]


_EXPORT_QUERIES = {
    "contacts": "SELECT to_jsonb(c) AS row FROM support_contacts c WHERE c.user_id = %s AND c.id = ANY(%s)"
    " ORDER BY c.created_at, c.id",
    "contactIdentities": "SELECT to_jsonb(i) AS row FROM contact_identities i WHERE i.user_id = %s"
    " AND i.contact_id = ANY(%s) ORDER BY i.contact_id, i.kind, i.value",
    "tickets": "SELECT to_jsonb(t) - 'search_vector' AS row FROM support_tickets t WHERE t.user_id = %s"
    " AND t.id = ANY(%s) ORDER BY t.created_at, t.id",
    "conversations": "SELECT to_jsonb(c) AS row FROM ticket_conversations c WHERE c.user_id = %s"
    " AND c.ticket_id = ANY(%s) ORDER BY c.ticket_id, c.created_at, c.id",
    "feedback": "SELECT to_jsonb(f) AS row FROM ticket_feedback f WHERE f.user_id = %s AND f.ticket_id = ANY(%s)"
    " ORDER BY f.created_at, f.id",
    "inboundEmails": "SELECT to_jsonb(e) AS row FROM inbound_emails e WHERE e.user_id = %s AND e.ticket_id = ANY(%s)"
    " ORDER BY e.received_at, e.id",
    "emailNotices": "SELECT to_jsonb(o) - 'message_id' AS row FROM email_outbox o WHERE o.user_id = %s"
    " AND o.ticket_id = ANY(%s) ORDER BY o.created_at, o.id",
    "chatSessions": "SELECT to_jsonb(s) AS row FROM live_chat_sessions s WHERE s.user_id = %s AND s.id = ANY(%s)"
    " ORDER BY s.created_at, s.id",
    "chatMessages": "SELECT to_jsonb(m) AS row FROM chat_messages m WHERE m.user_id = %s AND m.session_id = ANY(%s)"
    " ORDER BY m.session_id, m.created_at, m.id",
}


_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


def _export_prefix(tenant_id: UUID, request_id: UUID) -> str:
    """Everything an export writes starts with this: its document (<prefix>.json) and its files (<prefix>/files/...).
    A request id is a UUID, of fixed length, so no other export's key starts with it."""
    return f"{EXPORT_PREFIX}{tenant_id}/{request_id}"


@dataclass(frozen=True)
class ExportFile:
    """A stored file of the customer, and where its copy goes in the export (`path`, under the export's prefix)."""

    id: str  # an uploaded file's attachment id; a mail's file: its entry's id and position; raw mail: its record's
    source: str  # "upload" (claimed by a message), "emailAttachment" (a file of their mail), "email" (the raw mail)
    bucket: str
    key: str
    file_name: str
    content_type: str
    size_bytes: int | None
    of: dict[str, Any]  # the records it belongs to (ticket_id and conversation_id, session_id and message_id, ...)

    @property
    def path(self) -> str:
        """files/<id>/<safe name>: the shape `filesAfter` must have (models.privacy.EXPORT_FILE_PATH_PATTERN)."""
        safe = _UNSAFE_NAME_CHARACTERS.sub("_", self.file_name).strip("._")[:100] or "file"
        return f"files/{self.id}/{safe}"

    def entry(self, *, copied: bool) -> dict[str, Any]:
        """The document's `files` entry: `path` null when the file was gone from S3 by the time it was copied."""
        return {
            "id": self.id,
            "source": self.source,
            **self.of,
            "file_name": self.file_name,
            "content_type": self.content_type,
            "size_bytes": self.size_bytes,
            "path": self.path if copied else None,
        }


def write_export(
    cur: Cursor, claim: Claim, out: IO[str], at: datetime, files: list[ExportFile] | None = None
) -> dict[str, int]:
    """The export document of `claim`'s customer into `out` (in the caller's snapshot), every section but the last,
    `files`, which `close_export` writes once the files are copied; the count per section. The customer's stored
    files are appended to `files`."""
    tenant = claim.tenant_id
    files = [] if files is None else files
    contacts, tickets, sessions = _resolve(cur, tenant, claim.email)
    counts: dict[str, int] = {}
    header = {
        "exportId": str(claim.request_id),
        "tenantId": str(tenant),
        "customerEmail": claim.email,
        "exportedAt": at.isoformat(),
        "format": "one list per kind of record; each record holds every column the desk keeps, in camelCase; "
        "`files` lists the stored files copied into the export, each at its `path` beside this document (null: it "
        "was gone from storage when the export ran)",
    }
    out.write("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in header.items()) + ",\n")
    for stored in attachments.claimed_files_of(cur, tenant, tickets, sessions):
        # The source is where a claim keeps the file (attachments.kept_key: this tenant's prefix and the file's id),
        # not the key the row names: a row pointed elsewhere copies nothing of anyone else's.
        kept = attachments.kept_key(tenant, stored.attachment_id)
        if stored.object_key != kept:
            logger.warning(
                "privacy export: an attachment names a key other than its own",
                extra={"attachment": stored.attachment_id},
            )
        owner = (
            {"ticket_id": str(stored.ticket_id), "conversation_id": str(stored.conversation_id)}
            if stored.ticket_id is not None
            else {"session_id": str(stored.session_id), "message_id": str(stored.chat_message_id)}
        )
        files.append(
            ExportFile(
                str(stored.attachment_id),
                "upload",
                attachments.bucket(),
                kept,
                stored.file_name,
                stored.content_type,
                stored.size_bytes,
                owner,
            )
        )
    metadata: list[dict[str, Any]] = []
    sections: list[tuple[str, list[UUID]]] = [
        ("contacts", contacts),
        ("contactIdentities", contacts),
        ("tickets", tickets),
        ("conversations", tickets),
        ("feedback", tickets),
        ("inboundEmails", tickets),
        ("emailNotices", tickets),
        ("chatSessions", sessions),
        ("chatMessages", sessions),
    ]
    for index, (name, ids) in enumerate(sections):
        rows = _rows(cur, _EXPORT_QUERIES[name], tenant, ids)
        if name in {"conversations", "chatMessages", "inboundEmails"}:
            rows = _collect_files(rows, name, metadata, files, tenant)
        counts[name] = _write_list(out, name, rows, first=index == 0)
    counts["attachments"] = _write_list(out, "attachments", metadata)
    return counts


def close_export(out: IO[str], entries: list[dict[str, Any]]) -> None:
    """The document's last section, `files` (ExportFile.entry of each), and its end."""
    _write_list(out, "files", entries)
    out.write("\n}\n")


def _collect_files(
    rows: Iterable[dict[str, Any]], section: str, metadata: list[dict[str, Any]], files: list[ExportFile], tenant: UUID
) -> Iterable[dict[str, Any]]:
    """Pass `rows` through, noting the metadata of the files they carry (the `attachments` section) and the stored
    files that are not in `attachments` (the mail's: its files and the raw message) to copy into the export."""
    for row in rows:
        if section == "conversations":
            for position, attachment in enumerate(row.get("attachments") or [], start=1):
                if not isinstance(attachment, dict):
                    continue
                metadata.append(
                    {"source": "conversation", "ticket_id": row["ticket_id"], "entry_id": row["id"], **attachment}
                )
                if attachment.get("s3Key"):
                    stored = _mail_file(row, position, attachment, tenant)
                    if stored is not None:
                        files.append(stored)
        elif section == "chatMessages":
            for attachment in row.get("attachments") or []:
                if isinstance(attachment, dict):
                    metadata.append(
                        {
                            "source": "chatMessage",
                            "session_id": row["session_id"],
                            "message_id": row["id"],
                            **attachment,
                        }
                    )
            if row.get("attachment_url"):
                metadata.append(
                    {
                        "source": "chatMessage",
                        "session_id": row["session_id"],
                        "message_id": row["id"],
                        "url": row["attachment_url"],
                        "content_type": row.get("attachment_type"),
                    }
                )
        elif row.get("s3_key"):  # an inbound mail record: the message as it arrived
            stored = _raw_mail_file(row)
            if stored is not None:
                files.append(stored)
        yield row


def _raw_mail_file(row: dict[str, Any]) -> ExportFile | None:
    """The raw message of an inbound mail record: SES stores it as <INBOUND_EMAIL_PREFIX><its SES message id> before
    any tenant is known (support.services.email_in.receive), so its key names no tenant. Only the record's own
    message is copied: a key that is not exactly that (another key of the mail bucket, say another tenant's mail
    files under attachments/<tenant>/) is refused."""
    ses_id = str(row.get("ses_message_id") or "")
    if not ses_id or "/" in ses_id or row["s3_key"] != f"{_inbound_prefix()}{ses_id}":
        logger.warning(
            "privacy export: an inbound mail record names a key other than its message", extra={"mail": row["id"]}
        )
        return None
    return ExportFile(
        str(row["id"]),
        "email",
        _inbound_bucket(),
        row["s3_key"],
        "message.eml",
        "message/rfc822",
        row.get("size_bytes"),
        {"ticket_id": row.get("ticket_id"), "inbound_email_id": row["id"]},
    )


def _mail_file(row: dict[str, Any], position: int, attachment: dict[str, Any], tenant: UUID) -> ExportFile | None:
    """A file of the customer's mail (support.services.email_in stored it: <EMAIL_ATTACHMENTS_PREFIX><tenant>/<message>/
    ...). Only email_in writes `s3Key` (the API refuses the field); still, nothing outside this tenant's prefix of the
    mail bucket is copied."""
    bucket, key = attachment.get("s3Bucket") or _inbound_bucket(), str(attachment["s3Key"])
    if bucket != _inbound_bucket() or not key.startswith(f"{_mail_files_prefix()}{tenant}/"):
        logger.warning(
            "privacy export: a thread entry names a file outside the tenant's mail", extra={"entry": row["id"]}
        )
        return None
    return ExportFile(
        f"{row['id']}-{position}",
        "emailAttachment",
        bucket,
        key,
        str(attachment.get("fileName") or f"part-{position}"),
        str(attachment.get("contentType") or "application/octet-stream"),
        attachment.get("sizeBytes"),
        {"ticket_id": row["ticket_id"], "conversation_id": row["id"]},
    )


def _run_export(claim: Claim, clock: Callable[[], datetime], deadline: float | None = None) -> str:
    """The document read in one snapshot, then the files copied (resumable: see `_copy_files`), then the document put,
    last, and the request done. Out of time while copying, the run gives its lease up and the next one goes on."""
    at = clock()
    prefix = _export_prefix(claim.tenant_id, claim.request_id)
    key = f"{prefix}.json"
    files: list[ExportFile] = []
    with tempfile.TemporaryFile("w+", encoding="utf-8") as document:

        def gather(cur: Cursor) -> dict[str, int]:
            document.seek(0)
            document.truncate()
            files.clear()
            return write_export(cur, claim, document, at, files)

        counts = read_snapshot(claim.tenant_id, gather)
        try:
            entries = _copy_files(claim, files, clock, deadline)
            if entries is None:
                _pause(claim, clock())
                logger.info("privacy export paused", extra={"privacy_request_id": str(claim.request_id)})
                return PrivacyState.RUNNING
            copied = sum(1 for entry in entries if entry["path"] is not None)
            counts["files"] = copied
            if copied < len(entries):
                counts["filesMissing"] = len(entries) - copied
            close_export(document, entries)
            size = document.tell()
            document.seek(0)
            _s3().put_object(
                Bucket=_export_bucket(),
                Key=key,
                Body=document.read().encode(),
                ContentType="application/json",
                ServerSideEncryption="AES256",
            )
            _finish_export(claim, key, counts, size, clock)
        except LeaseLost:
            _discard_abandoned(claim)
            raise
    logger.info("privacy export done", extra={"privacy_request_id": str(claim.request_id), "counts": counts})
    return PrivacyState.DONE


def _copy_files(
    claim: Claim, files: list[ExportFile], clock: Callable[[], datetime], deadline: float | None
) -> list[dict[str, Any]] | None:
    """Copy each file into the export, server-side (CopyObject: at most 5 GB, and a file is at most 100 MB), and answer
    the document's `files` entries; None when out of time before the last copy. Each copy first checks, under the
    request's row lock, that the run is still this export's (an erasure fails an open export of its customer) and
    renews the lease. A copy a previous run of this export made is not made again: a copy is written whole or not at
    all, and no source is ever rewritten (a file's key is written once), so a rerun after a crash or a pause goes on
    where it stopped; copies of files the snapshot no longer holds (deleted meanwhile) are deleted."""
    prefix = f"{_export_prefix(claim.tenant_id, claim.request_id)}/"
    bucket = _export_bucket()
    s3 = _s3()
    present: set[str] = set()
    for listed in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}files/"):
        present |= {item["Key"] for item in listed.get("Contents", [])}
    entries: list[dict[str, Any]] = []
    for stored in files:
        target = prefix + stored.path
        copied = target in present
        if not copied:
            if deadline is not None and time.monotonic() > deadline:
                return None
            with tenant_transaction(claim.tenant_id) as cur:
                _hold(cur, claim, clock())
            copied = _copy_file(s3, stored, bucket, target)
        entries.append(stored.entry(copied=copied))
    stale = present - {prefix + stored.path for stored in files}
    if stale:
        _delete_objects([(bucket, key) for key in sorted(stale)])
    return entries


def _copy_file(s3: Any, stored: ExportFile, bucket: str, target: str) -> bool:
    """One file into the export, with its type and its original name (Content-Disposition) for the download. False
    when the source is gone (deleted since the snapshot, or lost)."""
    from botocore.exceptions import ClientError

    try:
        s3.copy_object(
            Bucket=bucket,
            Key=target,
            CopySource={"Bucket": stored.bucket, "Key": stored.key},
            MetadataDirective="REPLACE",
            ContentType=stored.content_type,
            ContentDisposition=attachments.content_disposition(stored.file_name),
            ServerSideEncryption="AES256",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}:
            logger.warning("privacy export: a file is gone from S3", extra={"file": stored.id, "source": stored.source})
            return False
        raise
    return True


def _discard_abandoned(claim: Claim) -> None:
    """This run lost its export: delete what it wrote, unless another run owns the export now (running, or done: the
    same keys are its). An export an erasure failed keeps nothing."""
    with tenant_transaction(claim.tenant_id) as cur:
        cur.execute(
            "SELECT state FROM privacy_requests WHERE user_id = %s AND id = %s", (claim.tenant_id, claim.request_id)
        )
        row = cur.fetchone()
    if row is None or row["state"] == PrivacyState.FAILED:
        _delete_prefix(_export_bucket(), _export_prefix(claim.tenant_id, claim.request_id))


def _finish_export(claim: Claim, key: str, counts: dict[str, int], size: int, clock: Callable[[], datetime]) -> None:
    with tenant_transaction(claim.tenant_id) as cur:
        _hold(cur, claim, clock())
        # An erasure of the same customer asked for meanwhile wins: nothing of the export is kept.
        cur.execute(
            """SELECT 1 FROM privacy_requests WHERE user_id = %s AND kind = 'erasure' AND customer_email = %s
            AND state IN ('pending', 'running')""",
            (claim.tenant_id, claim.email),
        )
        if cur.fetchone() is not None:
            _delete_prefix(_export_bucket(), _export_prefix(claim.tenant_id, claim.request_id))
            raise RuntimeError("the customer is being erased: the export was discarded")
        cur.execute(
            """UPDATE privacy_requests SET state = 'done', s3_key = %s, progress = %s, lease_until = NULL,
                error = NULL, finished_at = %s, updated_at = %s
            WHERE user_id = %s AND id = %s""",
            (key, Jsonb({**counts, "bytes": size}), clock(), clock(), claim.tenant_id, claim.request_id),
        )


# --- the erasure ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchResult:
    changed: int
    cursor: str | None  # where the next batch starts; None: the step is done


@dataclass(frozen=True)
class Eraser:
    """One step of an erasure: `batch(cur, claim, cursor)` erases at most BATCH rows (or objects) after `cursor`, in
    the caller's transaction (which commits the request's progress with it), and answers how many and where next."""

    name: str
    batch: Callable[[Cursor, Claim, str | None], BatchResult]


def _database_step(name: str) -> Eraser:
    def batch(cur: Cursor, claim: Claim, cursor: str | None) -> BatchResult:
        cur.execute(
            "SELECT changed, next_cursor, s3_objects FROM privacy_erase_batch(%s, %s, %s, %s)",
            (claim.request_id, name, cursor, BATCH),
        )
        row = found(cur.fetchone(), "erasure batch")
        objects = [(item.get("bucket") or _inbound_bucket(), item["key"]) for item in row["s3_objects"] or []]
        changed = row["changed"]
        if objects:
            _delete_objects(objects)  # before the commit: a failure here rolls the batch back, to be run again
        return BatchResult(changed, row["next_cursor"])

    return Eraser(name, batch)


def _attachment_files(cur: Cursor, claim: Claim, cursor: str | None) -> BatchResult:
    """The files uploaded to the customer's tickets and chats (support.services.attachments): their rows and both S3
    objects (the upload and the kept copy), a batch at a time, the objects deleted before the batch commits."""
    del cursor
    files = attachments.files_of(cur, claim.tenant_id, claim.ticket_ids or [], claim.session_ids or [], limit=BATCH)
    deleted = attachments.delete_objects(cur, claim.tenant_id, files)
    return BatchResult(deleted, "more" if len(files) >= BATCH else None)


def _webhook_deliveries(cur: Cursor, claim: Claim, cursor: str | None) -> BatchResult:
    """The webhook deliveries about the customer (support.services.webhooks: each body copies the change's names,
    emails and texts), deleted a batch at a time by webhook_erase_deliveries (sql/definitions/webhooks.sql)."""
    del cursor
    cur.execute(
        "SELECT webhook_erase_deliveries(%s, %s, %s, %s, %s) AS gone",
        (claim.tenant_id, claim.ticket_ids or [], claim.session_ids or [], [claim.email] if claim.email else [], BATCH),
    )
    row = cur.fetchone()
    gone = int(row["gone"]) if row else 0
    return BatchResult(gone, "more" if gone >= BATCH else None)


def _fail_open_exports(cur: Cursor, claim: Claim) -> None:
    """An export of the customer still open is failed: its run stops at its next copy or at its end, and deletes what
    it wrote (`_discard_abandoned`). Done when the erasure starts, and again by its `earlier_requests` step."""
    cur.execute(
        """UPDATE privacy_requests SET state = 'failed', lease_until = NULL, finished_at = now(), updated_at = now(),
            error = 'the customer was erased'
        WHERE user_id = %s AND customer_email = %s AND kind = 'export' AND state IN ('pending', 'running')""",
        (claim.tenant_id, claim.email),
    )


def _earlier_requests(cur: Cursor, claim: Claim, cursor: str | None) -> BatchResult:
    """The customer's earlier exports (everything each wrote to S3: its document and its copies of the customer's
    files, failed ones' too) and other requests: no email kept. An export still open is failed first."""
    del cursor
    _fail_open_exports(cur, claim)
    cur.execute(
        """SELECT id, kind FROM privacy_requests
        WHERE user_id = %s AND customer_email = %s AND id <> %s AND state NOT IN ('pending', 'running')
        ORDER BY id LIMIT %s FOR UPDATE""",
        (claim.tenant_id, claim.email, claim.request_id, BATCH),
    )
    rows = cur.fetchall()
    for row in rows:
        if row["kind"] == "export":  # before the commit: a failure rolls the batch back, to be deleted again
            _delete_prefix(_export_bucket(), _export_prefix(claim.tenant_id, row["id"]))
    cur.execute(
        """UPDATE privacy_requests SET customer_email = NULL, s3_key = NULL, updated_at = now()
        WHERE user_id = %s AND id = ANY(%s)""",
        (claim.tenant_id, [row["id"] for row in rows]),
    )
    return BatchResult(len(rows), "more" if len(rows) >= BATCH else None)


# The steps, in order. Texts first (the largest tables), the rows that name the customer after them, so that a
# resumed run still finds what it was erasing from the ids kept on the request.
ERASERS: list[Eraser] = [
    _database_step("conversations"),
    _database_step("chat_messages"),
    Eraser("attachments", _attachment_files),
    Eraser("webhook_deliveries", _webhook_deliveries),
    _database_step("tickets"),
    _database_step("feedback"),
    _database_step("chat_sessions"),
    _database_step("contacts"),
    _database_step("inbound_emails"),
    _database_step("email_outbox"),
    _database_step("email_suppressions"),
    _database_step("automation_events"),
    _database_step("idempotency_keys"),
    Eraser("earlier_requests", _earlier_requests),
    # The audit trail's personal values go last, in the transaction that marks the erasure done (_run_erasure);
    # other features' stores join here through register_eraser, each a step of the same shape.
]


def register_eraser(eraser: Eraser) -> None:
    """Add a feature's own step to every erasure (once), after the built-in ones."""
    if all(existing.name != eraser.name for existing in ERASERS):
        ERASERS.append(eraser)


def _run_erasure(
    claim: Claim, clock: Callable[[], datetime], after_batch: AfterBatch | None, deadline: float | None
) -> str:
    names = [eraser.name for eraser in ERASERS]
    if claim.step is None:  # the first run: who the customer is, kept on the request
        with tenant_transaction(claim.tenant_id) as cur:
            _hold(cur, claim, clock())
            claim.contact_ids, claim.ticket_ids, claim.session_ids = _resolve(cur, claim.tenant_id, claim.email)
            _fail_open_exports(cur, claim)  # at once: an export copying the customer's files stops at its next copy
            claim.step, claim.cursor = names[0], None
            cur.execute(
                """UPDATE privacy_requests SET contact_ids = %s, ticket_ids = %s, session_ids = %s, step = %s,
                    cursor = NULL WHERE user_id = %s AND id = %s""",
                (claim.contact_ids, claim.ticket_ids, claim.session_ids, claim.step, claim.tenant_id, claim.request_id),
            )
        logger.info(
            "privacy erasure started",
            extra={
                "privacy_request_id": str(claim.request_id),
                "tickets": len(claim.ticket_ids),
                "chat_sessions": len(claim.session_ids),
                "contacts": len(claim.contact_ids),
            },
        )
    while claim.step is not None:
        if deadline is not None and time.monotonic() > deadline:
            _pause(claim, clock())
            return PrivacyState.RUNNING
        eraser = ERASERS[names.index(claim.step)]
        with tenant_transaction(claim.tenant_id) as cur:
            _hold(cur, claim, clock())
            result = eraser.batch(cur, claim, claim.cursor)
            progress = {**claim.progress, eraser.name: claim.progress.get(eraser.name, 0) + result.changed}
            if result.cursor is None:
                at = names.index(eraser.name) + 1
                step, cursor = (names[at] if at < len(names) else None), None
            else:
                step, cursor = eraser.name, result.cursor
            cur.execute(
                "UPDATE privacy_requests SET step = %s, cursor = %s, progress = %s WHERE user_id = %s AND id = %s",
                (step, cursor, Jsonb(progress), claim.tenant_id, claim.request_id),
            )
            if after_batch is not None:
                after_batch(eraser.name, result.changed)
        claim.step, claim.cursor, claim.progress = step, cursor, progress
        if result.changed:
            logger.info(
                "privacy erasure batch",
                extra={"privacy_request_id": str(claim.request_id), "step": eraser.name, "progress": progress},
            )
    with tenant_transaction(claim.tenant_id) as cur:
        _hold(cur, claim, clock())
        cur.execute(
            """UPDATE privacy_requests SET state = 'done', customer_email = NULL, contact_ids = NULL, ticket_ids = NULL,
                session_ids = NULL, step = NULL, cursor = NULL, lease_until = NULL, error = NULL, finished_at = %s
            WHERE user_id = %s AND id = %s""",
            (clock(), claim.tenant_id, claim.request_id),
        )
        # Last, after every row was anonymised and this request let go of the email: the audit trail's personal
        # values about the customer (each of those updates filed the old values there), erased in the same commit.
        erased = audit.erase_customer(
            cur,
            claim.tenant_id,
            [claim.email] if claim.email else [],
            ticket_ids=claim.ticket_ids or [],
            session_ids=claim.session_ids or [],
            contact_ids=claim.contact_ids or [],
        )
        claim.progress = {**claim.progress, "audit": erased}
    logger.info("privacy erasure done", extra={"privacy_request_id": str(claim.request_id), "progress": claim.progress})
    return PrivacyState.DONE


def _pause(claim: Claim, at: datetime) -> None:
    """Out of time: give the lease up, so that the next sweep goes on from the committed cursor."""
    with tenant_transaction(claim.tenant_id) as cur:
        _hold(cur, claim, at)
        cur.execute(  # a pause is no failed attempt: the next claim counts this one again
            "UPDATE privacy_requests SET lease_until = %s, attempts = attempts - 1 WHERE user_id = %s AND id = %s",
            (at, claim.tenant_id, claim.request_id),
        )


# --- the sweep --------------------------------------------------------------------------------------------------------


def sweep(now: datetime) -> list[UUID]:
    """The workflow sweep's `privacy` step: start again the requests of every tenant whose run was lost (a lease that
    ended, or a request never started): an asynchronous invocation of PrivacyJobFunction each, or, with none
    configured, the run here within SWEEP_BUDGET_SECONDS (a run cut short gives its lease up and goes on next
    minute). Answers the requests it started."""
    with anonymous_transaction() as cur:
        cur.execute(
            "SELECT user_id, id FROM privacy_requests_due(%s, %s, %s)", (now, now - PENDING_GRACE, SWEEP_REQUESTS)
        )
        due = [(row["user_id"], row["id"]) for row in cur.fetchall()]
    began = time.monotonic()
    started: list[UUID] = []
    for tenant_id, request_id in due:
        left = SWEEP_BUDGET_SECONDS - (time.monotonic() - began)
        if left <= 0:
            break
        logger.info("privacy request resumed", extra={"privacy_request_id": str(request_id)})
        invoke_or_run(
            get_settings().privacy_function_name,
            {"tenantId": str(tenant_id), "privacyRequestId": str(request_id)},
            partial(run_request, tenant_id, request_id, budget_seconds=left),
            what="privacy request",
        )
        started.append(request_id)
    return started


# --- S3 ---------------------------------------------------------------------------------------------------------------


def _s3() -> Any:
    from support.aws import cached_client

    return cached_client("s3", max_attempts=3)


def _export_bucket() -> str:
    bucket = get_settings().privacy_export_bucket
    if not bucket:
        raise RuntimeError("set PRIVACY_EXPORT_BUCKET: the bucket privacy exports are written to")
    return bucket


def _inbound_prefix() -> str:
    """Where SES stores raw mail in the mail bucket (as support.services.email_in.InboundConfig reads it)."""
    return os.environ.get("INBOUND_EMAIL_PREFIX", "inbound/")


def _mail_files_prefix() -> str:
    """Where email_in stores the files of mail, per tenant (as support.services.email_in.InboundConfig reads it)."""
    return os.environ.get("EMAIL_ATTACHMENTS_PREFIX", "attachments/")


def _inbound_bucket() -> str:
    bucket = os.environ.get("INBOUND_EMAIL_BUCKET", "")
    if not bucket:
        raise RuntimeError("set INBOUND_EMAIL_BUCKET: the customer's mail and files are in it")
    return bucket


def _delete_objects(objects: list[tuple[str, str]]) -> None:
    """Delete the objects (bucket, key) with every version of them (the inbound mail bucket keeps versions: a
    deleted object's older versions would still hold the mail); one that is already gone is no error."""
    by_bucket: dict[str, list[str]] = {}
    for bucket, key in objects:
        by_bucket.setdefault(bucket, []).append(key)
    s3 = _s3()
    for bucket, keys in by_bucket.items():
        targets: list[dict[str, str]] = []
        for key in keys:
            listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
            versions = [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]
            # (an unversioned bucket lists its objects as version "null"; none listed: already gone, and a plain
            # delete would only leave a delete marker behind that names it)
            targets += [{"Key": key, "VersionId": v["VersionId"]} for v in versions if v["Key"] == key]
        _delete_versions(s3, bucket, targets)


def _delete_prefix(bucket: str, prefix: str) -> None:
    """Delete every object under `prefix`, every version (an export: its document and its files)."""
    s3 = _s3()
    targets: list[dict[str, str]] = []
    for listed in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        versions = [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]
        targets += [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions]
    _delete_versions(s3, bucket, targets)


def _delete_versions(s3: Any, bucket: str, targets: list[dict[str, str]]) -> None:
    for at in range(0, len(targets), 1000):  # delete_objects takes 1,000 at most
        answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": targets[at : at + 1000], "Quiet": True})
        if answer.get("Errors"):
            raise RuntimeError(f"S3 did not delete {len(answer['Errors'])} objects of {bucket}")
