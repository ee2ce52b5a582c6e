"""Attachments up to 100 MB: files go from the browser straight to S3 (a presigned POST), never through a function;
a ticket conversation or chat message then claims them; reading one is a presigned GET of 5 minutes.

Lifecycle of one file:
1. `upload_url` (staff) or `visitor_upload_url` (the widget, the visitor's own chat only): the ticket or chat must be
   the caller's tenant's (404 otherwise); the declared name, type (an allow-list: support.models.attachments) and
   size (at most 100 MB) are checked; a `pending` row is written and a presigned POST answered whose policy lets S3
   accept exactly this key (`incoming/<tenant>/<id>`), exactly the declared Content-Type and at most the declared
   size. The presign happens before the row is written: a failure to sign (503) leaves nothing behind.
2. The browser POSTs the file to S3. The bucket's lifecycle deletes everything under `incoming/` after a day
   (INCOMING_LIFETIME); the workflow sweep's `uploads` step deletes the rows no message claimed by then, and their
   objects (`sweep_unclaimed`, below).
3. A message names the file in `attachmentIds`. `prepare_claim` (before the message's transaction, since S3 is no
   part of it) checks each pending row is the ticket's or chat's, asks S3 for the object (HeadObject: 422 if it is
   missing or its real size or Content-Type differ from the declaration, 502 if S3 fails) and copies it to the kept
   prefix (`files/<tenant>/<id>`), which no lifecycle rule expires. The message's transaction then marks the rows
   `claimed` by it (`claim`, or chat_send_message_with_attachments for a chat message) and records the files in the
   message's `attachments`; a row claimed meanwhile by another message is a 409 and rolls the message back. If the
   transaction fails, the copies are deleted again (best effort: an orphan copy holds no row and is listed by
   nothing). So a message is stored with all its files or not at all, and a client that gets a 502/503/409 sends it
   again.
4. `download_url` (staff, the owning tenant only: another tenant's id is a 404) and `visitor_download_url` (the
   visitor's own chat only: 403 for another chat of the desk) answer a presigned GET of 5 minutes, served as a
   download (Content-Disposition: attachment) with the declared type.

For the privacy export and erasure and for retention (built beside this): `keys_for_ticket`, `keys_for_session`,
`keys_for_contact` list the kept objects, `claimed_files_of` the files a privacy export copies, and `delete_objects`
deletes objects and their rows.

Unclaimed uploads (`sweep_unclaimed`, the workflow sweep's `uploads` step): a pending row older than
UNCLAIMED_AFTER (the lifecycle's day and a margin) is deleted with its objects, per tenant in its own transaction, at
most UNCLAIMED_BATCH rows a tenant, UNCLAIMED_TENANTS tenants (in a random order) and UNCLAIMED_SECONDS a minute. The
rows are locked (FOR UPDATE SKIP LOCKED): a message claiming one at that moment keeps it, and a claim that comes after
the delete finds no pending row (409) and deletes its copy. The objects are deleted before the commit, best effort:
one already gone is no failure, and one S3 failed to delete is logged and left to the lifecycle (under `incoming/`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from uuid import UUID, uuid4

from support.auth import Principal
from support.aws import cached_client
from support.db import tenant_transaction
from support.db.connection import Cursor, anonymous_transaction
from support.errors import Conflict, Forbidden, InvalidInput, NotFound, StorageFailed, StorageUnavailable, found
from support.models.attachments import (
    AttachmentDownload,
    AttachmentUpload,
    AttachmentUploadRequest,
    VisitorAttachmentDownloadRequest,
    VisitorAttachmentUploadRequest,
)
from support.observability import logger
from support.services.tenant_batches import each_tenant
from support.visitors import VisitorClaims, verify_resume_token

UPLOAD_LIFETIME = timedelta(minutes=15)
DOWNLOAD_LIFETIME = timedelta(minutes=5)
INCOMING_PREFIX = "incoming/"  # expired by the bucket's lifecycle after INCOMING_LIFETIME
# The bucket's lifecycle rule (template.yaml, AttachmentsBucket's ExpireUnclaimedUploads: ExpirationInDays, which
# tests/contract/test_template.py compares with this): an upload no message claimed within it is gone.
INCOMING_LIFETIME = timedelta(days=1)
# A pending row is deleted once its upload is past the lifecycle's day and this margin (an upload URL lives 15
# minutes: a file uploaded at its end keeps its full day).
UNCLAIMED_AFTER = INCOMING_LIFETIME + timedelta(hours=1)
UNCLAIMED_BATCH = 500  # pending rows deleted per tenant and run (DeleteObjects takes 1,000 keys: two per row)
UNCLAIMED_TENANTS = 100  # tenants one run works on (each a transaction and a DeleteObjects)
UNCLAIMED_SECONDS = 8.0  # the sweep's timeout is 60 s: the audit steps run after this one
KEPT_PREFIX = "files/"  # a claimed file's home: expired by nothing


def bucket() -> str:
    """The attachments bucket (ATTACHMENTS_BUCKET: the template's AttachmentsBucket; locally local.s3's)."""
    name = os.environ.get("ATTACHMENTS_BUCKET", "")
    if not name:
        raise StorageUnavailable("attachments are not configured here (no ATTACHMENTS_BUCKET)")
    return name


def s3_client() -> Any:
    """S3's client, SigV4 (presigned URLs too: S3 refuses SigV2 for new buckets and KMS), built once per endpoint."""
    return cached_client("s3", max_attempts=3, signature_version="s3v4")


def incoming_key(tenant_id: UUID, attachment_id: UUID) -> str:
    return f"{INCOMING_PREFIX}{tenant_id}/{attachment_id}"


def kept_key(tenant_id: UUID, attachment_id: UUID) -> str:
    return f"{KEPT_PREFIX}{tenant_id}/{attachment_id}"


# --- Upload URLs ---------------------------------------------------------------------------------------------------


def upload_url(
    principal: Principal, request: AttachmentUploadRequest, *, now: datetime | None = None
) -> AttachmentUpload:
    """POST /api/support/attachments/upload-url: a pending file of a ticket or chat of the caller's tenant."""
    with tenant_transaction(principal.tenant_id) as cur:
        if request.ticket_id is not None:
            cur.execute(
                "SELECT id FROM support_tickets WHERE user_id = %s AND id = %s",
                (principal.tenant_id, request.ticket_id),
            )
            found(cur.fetchone(), "ticket")
        else:
            cur.execute(
                "SELECT id FROM live_chat_sessions WHERE user_id = %s AND id = %s",
                (principal.tenant_id, request.session_id),
            )
            found(cur.fetchone(), "chat session")
    return _new_upload(principal.tenant_id, request, "staff", now=now)


def visitor_upload_url(
    request: VisitorAttachmentUploadRequest, origin: str | None, *, now: datetime | None = None
) -> AttachmentUpload:
    """POST /api/support/widget/attachments/upload-url: a pending file of the visitor's own chat."""
    visitor = _visitor(request.widget_key, request.resume_token, origin)
    _require_visitors_session(visitor, request.session_id)
    owner = AttachmentUploadRequest(
        session_id=request.session_id,
        file_name=request.file_name,
        content_type=request.content_type,
        size_bytes=request.size_bytes,
    )
    return _new_upload(visitor.tenant_id, owner, "visitor", now=now)


def _new_upload(
    tenant_id: UUID, request: AttachmentUploadRequest, uploaded_by: str, *, now: datetime | None
) -> AttachmentUpload:
    attachment_id = uuid4()
    key = incoming_key(tenant_id, attachment_id)
    expires_at = (now or datetime.now(UTC)) + UPLOAD_LIFETIME
    post = _presigned_post(key, request.content_type, request.size_bytes)
    with tenant_transaction(tenant_id) as cur:
        cur.execute(
            """INSERT INTO attachments (id, user_id, ticket_id, session_id, file_name, content_type, size_bytes,
                object_key, uploaded_by)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (
                attachment_id,
                tenant_id,
                request.ticket_id,
                request.session_id,
                request.file_name,
                request.content_type,
                request.size_bytes,
                key,
                uploaded_by,
            ),
        )
    return AttachmentUpload(
        attachment_id=attachment_id,
        url=post["url"],
        fields=post["fields"],
        expires_at=expires_at,
        max_size_bytes=request.size_bytes,
    )


def upload_conditions(key: str, content_type: str, size_bytes: int) -> list[Any]:
    """The POST policy's conditions beyond the bucket and the key (boto3 adds those): the exact Content-Type, and a
    body of at most the declared size (S3 answers 400 EntityTooLarge to a larger file)."""
    return [{"Content-Type": content_type}, ["content-length-range", 1, size_bytes]]


def _presigned_post(key: str, content_type: str, size_bytes: int) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    name = bucket()
    try:
        post: dict[str, Any] = s3_client().generate_presigned_post(
            Bucket=name,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=upload_conditions(key, content_type, size_bytes),
            ExpiresIn=int(UPLOAD_LIFETIME.total_seconds()),
        )
    except (BotoCoreError, ClientError, AttributeError) as exc:
        # AttributeError: botocore signs a POST without credentials by reading `None.access_key` (botocore/auth.py,
        # scope) instead of raising NoCredentialsError as its other signers do.
        logger.warning("attachments: presigning an upload failed", extra={"error": type(exc).__name__})
        raise StorageUnavailable("the file store cannot take uploads right now; try again") from exc
    return post


# --- Visitors ------------------------------------------------------------------------------------------------------


def _visitor(widget_key: str, resume_token: str, origin: str | None) -> VisitorClaims:
    """The visitor a resume token names, if the widget key admits the page's origin and the token is this key's."""
    from support.services.widgets import admitted_tenant

    tenant_id = admitted_tenant(widget_key, origin)
    claims = verify_resume_token(resume_token)
    if claims is None or claims.widget_key != widget_key or claims.tenant_id != tenant_id:
        raise Forbidden("this visitor token is not valid for this widget: start a widget session again")
    return claims


def _require_visitors_session(visitor: VisitorClaims, session_id: UUID) -> None:
    """The chat must be the visitor's own: unknown is a 404, another visitor's chat of the desk a 403."""
    with tenant_transaction(visitor.tenant_id) as cur:
        cur.execute(
            "SELECT visitor_id FROM live_chat_sessions WHERE user_id = %s AND id = %s", (visitor.tenant_id, session_id)
        )
        session = found(cur.fetchone(), "chat session")
    if session["visitor_id"] != visitor.visitor_id:
        raise Forbidden("this chat session is not yours")


# --- Claims --------------------------------------------------------------------------------------------------------


@dataclass
class PreparedClaim:
    """Files checked with S3 and copied to the kept prefix, ready for the message's transaction to claim."""

    tenant_id: UUID
    ids: list[UUID] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)  # kept keys this preparation wrote (deleted if the claim fails)

    def __bool__(self) -> bool:
        return bool(self.ids)


def prepare_claim(
    principal: Principal,
    attachment_ids: Sequence[UUID],
    *,
    ticket_id: UUID | None = None,
    session_id: UUID | None = None,
) -> PreparedClaim:
    """Check the files a message names (see the module's step 3) before its transaction. Unknown ids, another
    owner's, and files already claimed by a message are a 422 (a WebSocket resend, whose message is already
    stored with them, passes: its send claims nothing)."""
    prepared = PreparedClaim(principal.tenant_id)
    if not attachment_ids:
        return prepared
    if len(set(attachment_ids)) != len(attachment_ids):
        raise InvalidInput("an attachment is named twice", details=[{"field": "attachmentIds"}])
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            """SELECT id, ticket_id, session_id, file_name, content_type, size_bytes, object_key, state
            FROM attachments WHERE user_id = %s AND id = ANY(%s)""",
            (principal.tenant_id, list(attachment_ids)),
        )
        rows = {row["id"]: row for row in cur.fetchall()}
    for attachment_id in attachment_ids:
        row = rows.get(attachment_id)
        if row is None or row["ticket_id"] != ticket_id or row["session_id"] != session_id:
            raise InvalidInput(f"attachment {attachment_id} is not an upload of this {_owner(ticket_id)}")
    try:
        for attachment_id in attachment_ids:
            row = rows[attachment_id]
            summary = {
                "id": str(row["id"]),
                "fileName": row["file_name"],
                "contentType": row["content_type"],
                "sizeBytes": row["size_bytes"],
            }
            if row["state"] == "claimed":
                if session_id is None:  # a ticket conversation has no resend: a claimed file is another message's
                    raise InvalidInput(f"attachment {attachment_id} is already part of a message")
                key = row["object_key"]  # a resend of the message that claimed it (else the send refuses it)
            else:
                _check_upload(row)
                key = kept_key(principal.tenant_id, attachment_id)
                _copy(row["object_key"], key)
                prepared.copied.append(key)
            prepared.ids.append(attachment_id)
            prepared.keys.append(key)
            prepared.summaries.append(summary)
    except BaseException:
        discard(prepared)
        raise
    return prepared


def _owner(ticket_id: UUID | None) -> str:
    return "ticket" if ticket_id is not None else "chat session"


def _check_upload(row: dict[str, Any]) -> None:
    """HeadObject: the object must exist with exactly the declared size and Content-Type."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        head = s3_client().head_object(Bucket=bucket(), Key=row["object_key"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            raise InvalidInput(
                f"attachment {row['id']} was not uploaded (or its upload expired after a day): upload it first"
            ) from exc
        raise _storage_failed("checking an upload", exc) from exc
    except BotoCoreError as exc:
        raise _storage_failed("checking an upload", exc) from exc
    size, content_type = head.get("ContentLength"), (head.get("ContentType") or "").lower()
    if size != row["size_bytes"] or content_type != row["content_type"]:
        raise InvalidInput(
            f"attachment {row['id']} is not the file declared: {size} bytes of {content_type or 'no type'} "
            f"uploaded, {row['size_bytes']} bytes of {row['content_type']} declared"
        )


def _copy(source: str, target: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    name = bucket()
    try:
        s3_client().copy_object(Bucket=name, Key=target, CopySource={"Bucket": name, "Key": source})
    except (BotoCoreError, ClientError) as exc:
        raise _storage_failed("keeping an upload", exc) from exc


def _storage_failed(what: str, exc: Exception) -> StorageFailed:
    logger.warning(f"attachments: {what} failed", extra={"error": type(exc).__name__})
    return StorageFailed("the file store failed to answer; the message was not stored: send it again")


def discard(prepared: PreparedClaim) -> None:
    """Delete the copies a preparation wrote (its message was not stored). Best effort: a copy left behind belongs
    to no row; the upload itself stays under incoming/ until its day is over, so a resend can claim it."""
    if prepared.copied:
        with contextlib.suppress(Exception):
            _delete_keys(prepared.copied)
        prepared.copied = []


@contextlib.contextmanager
def discarded_on_failure(prepared: PreparedClaim) -> Iterator[PreparedClaim]:
    try:
        yield prepared
    except BaseException:
        discard(prepared)
        raise


def claim_for_conversation(cur: Cursor, prepared: PreparedClaim, ticket_id: UUID, conversation_id: UUID) -> None:
    """In the conversation's transaction: the prepared files become the conversation's, or the transaction fails
    (a 409: another message claimed one meanwhile)."""
    if not prepared:
        return
    cur.execute(
        """UPDATE attachments a SET state = 'claimed', object_key = w.key, conversation_id = %s, claimed_at = now()
        FROM unnest(%s::uuid[], %s::text[]) AS w (id, key)
        WHERE a.user_id = %s AND a.ticket_id = %s AND a.id = w.id AND a.state = 'pending'""",
        (conversation_id, prepared.ids, prepared.keys, prepared.tenant_id, ticket_id),
    )
    if cur.rowcount != len(prepared.ids):
        raise Conflict("an attachment was claimed by another message meanwhile")


# --- Downloads -----------------------------------------------------------------------------------------------------

_ATTACHMENT_COLUMNS = "id, ticket_id, session_id, file_name, content_type, size_bytes, object_key, state"
_ATTACHMENT_COLUMNS_OF_A = ", ".join(f"a.{name.strip()}" for name in _ATTACHMENT_COLUMNS.split(","))


def download_url(principal: Principal, attachment_id: UUID, *, now: datetime | None = None) -> AttachmentDownload:
    """GET /api/support/attachments/{attachmentId}: any file of the caller's tenant (another tenant's is a 404)."""
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            f"SELECT {_ATTACHMENT_COLUMNS} FROM attachments WHERE user_id = %s AND id = %s",  # noqa: S608
            (principal.tenant_id, attachment_id),
        )
        row = found(cur.fetchone(), "attachment")
    return _presigned_get(row, now=now)


def visitor_download_url(
    attachment_id: UUID, request: VisitorAttachmentDownloadRequest, origin: str | None, *, now: datetime | None = None
) -> AttachmentDownload:
    """POST /api/support/widget/attachments/{attachmentId}/download-url: a file of the visitor's own chat."""
    visitor = _visitor(request.widget_key, request.resume_token, origin)
    with tenant_transaction(visitor.tenant_id) as cur:
        cur.execute(
            f"""SELECT {_ATTACHMENT_COLUMNS_OF_A}, s.visitor_id FROM attachments a
            JOIN live_chat_sessions s ON s.user_id = a.user_id AND s.id = a.session_id
            WHERE a.user_id = %s AND a.id = %s""",  # noqa: S608
            (visitor.tenant_id, attachment_id),
        )
        row = found(cur.fetchone(), "attachment")
    if row["visitor_id"] != visitor.visitor_id:
        raise Forbidden("this file is not of your chat")
    return _presigned_get(row, now=now)


def content_disposition(file_name: str) -> str:
    """A download, never a page of the desk's origin, under the file's own name (RFC 6266's UTF-8 form)."""
    return f"attachment; filename*=UTF-8''{quote(file_name, safe='')}"


def _presigned_get(row: dict[str, Any], *, now: datetime | None) -> AttachmentDownload:
    from botocore.exceptions import BotoCoreError, ClientError

    if row["state"] != "claimed":
        raise NotFound("attachment not found (no message has it yet)")
    disposition = content_disposition(row["file_name"])
    try:
        url = s3_client().generate_presigned_url(
            "get_object",
            Params={
                "Bucket": bucket(),
                "Key": row["object_key"],
                "ResponseContentDisposition": disposition,
                "ResponseContentType": row["content_type"],
            },
            ExpiresIn=int(DOWNLOAD_LIFETIME.total_seconds()),
        )
    except (BotoCoreError, ClientError, AttributeError) as exc:  # AttributeError: as _presigned_post says
        logger.warning("attachments: presigning a download failed", extra={"error": type(exc).__name__})
        raise StorageUnavailable("the file store cannot serve files right now; try again") from exc
    return AttachmentDownload(
        attachment_id=row["id"],
        url=url,
        expires_at=(now or datetime.now(UTC)) + DOWNLOAD_LIFETIME,
        file_name=row["file_name"],
        content_type=row["content_type"],
        size_bytes=row["size_bytes"],
    )


# --- For the privacy export and erasure, and retention ---------------------------------------------------------------


@dataclass(frozen=True)
class StoredFile:
    attachment_id: UUID
    object_key: str
    file_name: str
    content_type: str
    size_bytes: int
    state: str


def _files(cur: Cursor, where: str, params: tuple[Any, ...], limit: int | None = None) -> list[StoredFile]:
    cur.execute(
        f"""SELECT a.id, a.object_key, a.file_name, a.content_type, a.size_bytes, a.state FROM attachments a
        WHERE {where} ORDER BY a.created_at, a.id LIMIT %s""",  # noqa: S608 (fixed text from this module; values bound)
        (*params, limit),
    )
    return [
        StoredFile(r["id"], r["object_key"], r["file_name"], r["content_type"], r["size_bytes"], r["state"])
        for r in cur.fetchall()
    ]


def keys_for_ticket(cur: Cursor, tenant_id: UUID, ticket_id: UUID) -> list[StoredFile]:
    """A ticket's files (pending ones too), in the caller's tenant transaction."""
    return _files(cur, "a.user_id = %s AND a.ticket_id = %s", (tenant_id, ticket_id))


def keys_for_session(cur: Cursor, tenant_id: UUID, session_id: UUID) -> list[StoredFile]:
    """A chat session's files (pending ones too), in the caller's tenant transaction."""
    return _files(cur, "a.user_id = %s AND a.session_id = %s", (tenant_id, session_id))


def keys_for_contact(cur: Cursor, tenant_id: UUID, contact_id: UUID) -> list[StoredFile]:
    """Every file of a contact's tickets and chats (the privacy export's and erasure's), in the tenant transaction."""
    return _files(
        cur,
        """a.user_id = %s AND (
            a.ticket_id IN (SELECT t.id FROM support_tickets t WHERE t.user_id = %s AND t.contact_id = %s)
            OR a.session_id IN (SELECT s.id FROM live_chat_sessions s WHERE s.user_id = %s AND s.contact_id = %s))""",
        (tenant_id, tenant_id, contact_id, tenant_id, contact_id),
    )


def files_of(
    cur: Cursor, tenant_id: UUID, ticket_ids: Sequence[UUID], session_ids: Sequence[UUID], *, limit: int
) -> list[StoredFile]:
    """The files of these tickets and chats (pending ones too), oldest first, at most `limit`, in the caller's
    tenant transaction (the privacy erasure's batches)."""
    return _files(
        cur,
        "a.user_id = %s AND (a.ticket_id = ANY(%s) OR a.session_id = ANY(%s))",
        (tenant_id, list(ticket_ids), list(session_ids)),
        limit,
    )


@dataclass(frozen=True)
class ClaimedFile:
    """A file a message claimed, with the message it belongs to (the privacy export carries it)."""

    attachment_id: UUID
    object_key: str
    file_name: str
    content_type: str
    size_bytes: int
    ticket_id: UUID | None
    conversation_id: UUID | None
    session_id: UUID | None
    chat_message_id: UUID | None


def claimed_files_of(
    cur: Cursor, tenant_id: UUID, ticket_ids: Sequence[UUID], session_ids: Sequence[UUID]
) -> list[ClaimedFile]:
    """The claimed files of these tickets and chats, oldest first, in the caller's tenant transaction (the privacy
    export's snapshot). Pending uploads are not listed: no message has them, and they expire within a day."""
    cur.execute(
        """SELECT a.id, a.object_key, a.file_name, a.content_type, a.size_bytes, a.ticket_id, a.conversation_id,
            a.session_id, a.chat_message_id
        FROM attachments a
        WHERE a.user_id = %s AND a.state = 'claimed' AND (a.ticket_id = ANY(%s) OR a.session_id = ANY(%s))
        ORDER BY a.created_at, a.id""",
        (tenant_id, list(ticket_ids), list(session_ids)),
    )
    return [
        ClaimedFile(
            r["id"],
            r["object_key"],
            r["file_name"],
            r["content_type"],
            r["size_bytes"],
            r["ticket_id"],
            r["conversation_id"],
            r["session_id"],
            r["chat_message_id"],
        )
        for r in cur.fetchall()
    ]


def object_body(key: str) -> bytes:
    """A stored file's bytes (the privacy export carries them)."""
    return bytes(s3_client().get_object(Bucket=bucket(), Key=key)["Body"].read())


def delete_objects(cur: Cursor, tenant_id: UUID, files: Sequence[StoredFile]) -> int:
    """Delete the files' rows (in the caller's transaction) and their objects, the kept copy and the upload both.
    Call it before the transaction commits: an S3 failure raises StorageFailed and the rows stay, so the job can run
    again; an object already gone is no failure. Answers the rows deleted."""
    if not files:
        return 0
    keys: list[str] = []
    for stored in files:
        keys += [stored.object_key, incoming_key(tenant_id, stored.attachment_id)]
    cur.execute(
        "DELETE FROM attachments WHERE user_id = %s AND id = ANY(%s)",
        (tenant_id, [stored.attachment_id for stored in files]),
    )
    deleted = cur.rowcount
    _delete_keys(sorted(set(keys)))
    return deleted


def delete_stored(tenant_id: UUID, files: Sequence[tuple[UUID, str]]) -> None:
    """Delete the objects of files whose rows are already gone ((attachment id, kept object key) pairs: a ticket or
    chat the retention step deleted took its attachment rows with it), the kept copy and the upload both. Raises
    StorageFailed when S3 does not; call it before the deleting transaction commits, so that the run is retried."""
    keys: list[str] = []
    for attachment_id, object_key in files:
        keys += [object_key, incoming_key(tenant_id, attachment_id)]
    if keys:
        _delete_keys(sorted(set(keys)))


def _delete_keys(keys: Sequence[str]) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    name = bucket()
    try:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            answer = s3_client().delete_objects(
                Bucket=name, Delete={"Objects": [{"Key": key} for key in keys[start : start + 1000]], "Quiet": True}
            )
            if answer.get("Errors"):
                raise StorageFailed(f"the file store did not delete {len(answer['Errors'])} file(s)")
    except (BotoCoreError, ClientError) as exc:
        raise _storage_failed("deleting files", exc) from exc


# --- Unclaimed uploads -----------------------------------------------------------------------------------------------


def sweep_unclaimed(
    now: datetime, *, max_tenants: int = UNCLAIMED_TENANTS, max_seconds: float = UNCLAIMED_SECONDS
) -> int:
    """The workflow sweep's `uploads` step: the pending rows of every tenant older than UNCLAIMED_AFTER at `now` (or
    at the real time, whichever is earlier: a run by hand with a later clock deletes nothing early), deleted with
    their objects, a batch per tenant, the tenants in a new order each run (a backlog does not always come first), at
    most `max_tenants` of them and none started after `max_seconds`: the next minute goes on. Answers how many rows it
    deleted. A tenant that fails is logged and the others still run; the step then fails (the next minute tries
    again)."""
    before = min(now, datetime.now(UTC)) - UNCLAIMED_AFTER
    with anonymous_transaction() as cur:
        cur.execute("SELECT t FROM attachments_tenants_unclaimed(%s) AS t", (before,))
        tenants = [row["t"] for row in cur.fetchall()]
    return each_tenant(
        tenants,
        lambda tenant_id: delete_unclaimed(tenant_id, before),
        what="deleting unclaimed uploads",
        max_tenants=max_tenants,
        max_seconds=max_seconds,
    )


def delete_unclaimed(tenant_id: UUID, before: datetime, *, limit: int = UNCLAIMED_BATCH) -> int:
    """One tenant's pending rows created before `before`, at most `limit`, oldest first: deleted with their objects
    (the upload, and a kept copy a failed claim may have left), in the tenant's own transaction."""
    with tenant_transaction(tenant_id) as cur:
        cur.execute(
            """DELETE FROM attachments WHERE user_id = %s AND id IN (
                SELECT id FROM attachments WHERE user_id = %s AND state = 'pending' AND created_at < %s
                ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED)
            RETURNING id""",
            (tenant_id, tenant_id, before, limit),
        )
        ids = [row["id"] for row in cur.fetchall()]
        keys = sorted(key for i in ids for key in (incoming_key(tenant_id, i), kept_key(tenant_id, i)))
        if keys:
            try:
                _delete_keys(keys)
            except Exception as exc:  # best effort: the lifecycle expires what stays under incoming/
                logger.warning(
                    "attachments: deleting unclaimed uploads' objects failed",
                    extra={"error": type(exc).__name__, "objects": len(keys)},
                )
    return len(ids)
