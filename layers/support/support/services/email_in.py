"""Email in: a customer's mail becomes a ticket, or a message on the ticket it answers.

SES receives the mail, its receipt rule stores the raw message in S3 (`<prefix><SES message id>`) and invokes the
email function with the receipt event (support.mail.ses). `receive` then:

1. reads the object from S3 (not past the size limit: a larger message is rejected from its first 64 KB) and parses
   it (support.mail.inbound.parse, which never raises);
2. finds the tenant by the receiving address: the envelope recipients SES matched first, then the addresses a
   forwarder or the headers name (`email_inbound_tenant`, SECURITY DEFINER: the tenant is not known yet). No tenant:
   nothing is stored, the raw message stays in S3, and the answer says `unknown_recipient`;
3. in the tenant's transaction, records the message once in `inbound_emails` (sql/0028) with its outcome:
   * `rejected` (over the size limit, unparseable, no sender, or SES's virus or spam verdict failed), with the reason;
   * `ignored_automatic` (support.mail.inbound.automatic_reason: bounces, auto-replies, bulk mail): no ticket, no
     answer, so no mail loop;
   * `threaded`: the reply goes onto its ticket as a customer message with the NEW text only (support.mail.text.
     new_text), reopening a `waiting_customer` or `resolved` ticket. The ticket is the one whose desk mail the reply
     names in In-Reply-To/References (the Message-IDs in email_outbox, or an earlier inbound message of the ticket),
     else the one whose reference the subject carries, and only when the sender is that ticket's customer (its email
     or an email of its contact): a guessed reference cannot post onto someone else's ticket. A closed ticket takes
     no message: the mail opens a new ticket, as the desk's `closed` notice tells the customer;
   * `created`: a new ticket (`channel = email`, the contact found or made by the sender's email) with the subject
     and the new text, its first conversation entry carrying the files. Its `received` notice is the outbox's to
     send (services/email_outbox: the tenant's switch); a threaded customer message sends nothing.

Invariants. A message is stored once per tenant (its Message-ID, or `ses:<SES id>` without one): deliveries of the
same message take the tenant's lock named after it, so the second one waits for the first to commit and then finds
its row (the unique index backs it). Attachments go to S3 before the transaction, under keys derived from the SES
message id, so a retried delivery writes the same objects again rather than new ones. Lock order: the inbound
message's lock, then the ticket's row (as a message on it takes), then the contact's (contact_for).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from support.auth import Principal, Role
from support.aws import cached_client
from support.db import tenant_transaction
from support.db.connection import Cursor, anonymous_transaction
from support.db.statements import lock_for_tenant
from support.errors import found
from support.mail.inbound import (
    InboundEmail,
    Rejection,
    automatic_reason,
    parse,
    reference_in_subject,
    strip_reply_prefixes,
)
from support.mail.ses import SesReceipt
from support.mail.text import new_text
from support.models.base import MESSAGE_MAX_BYTES
from support.models.inbound import OriginalEmail
from support.models.tickets import TicketStatus
from support.observability import logger
from support.services import automations, email_outbox, routing, webhooks
from support.services.tickets import CONVERSATION_COLUMNS, _admit_ticket

THREADED = "threaded"
CREATED = "created"
IGNORED_AUTOMATIC = "ignored_automatic"
REJECTED = "rejected"
# Not stored (no tenant to store it for): the answer's outcome only.
UNKNOWN_RECIPIENT = "unknown_recipient"
FROM_THE_DESK = "from_the_desk"  # the reason of a desk's own mail that came back (ignored_automatic)

DEFAULT_MAX_BYTES = 10 * 1024 * 1024  # a message larger than this is kept in S3 and rejected (SES's own cap: 40 MB)
HEAD_BYTES = 64 * 1024  # of a message over the limit, read for its Message-ID and sender
REOPENED = (TicketStatus.WAITING_CUSTOMER, TicketStatus.RESOLVED)
NO_SUBJECT = "(no subject)"
NO_TEXT = "(no text)"


@dataclass(frozen=True)
class InboundConfig:
    """Where SES stores the raw messages and where their files go (environment of the email function)."""

    bucket: str
    inbound_prefix: str = "inbound/"
    attachments_prefix: str = "attachments/"
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def from_environment(cls) -> InboundConfig:
        bucket = os.environ.get("INBOUND_EMAIL_BUCKET", "")
        if not bucket:
            raise RuntimeError("set INBOUND_EMAIL_BUCKET: the bucket SES stores inbound mail in")
        return cls(
            bucket=bucket,
            inbound_prefix=os.environ.get("INBOUND_EMAIL_PREFIX", "inbound/"),
            attachments_prefix=os.environ.get("EMAIL_ATTACHMENTS_PREFIX", "attachments/"),
            max_bytes=int(os.environ.get("INBOUND_EMAIL_MAX_BYTES") or DEFAULT_MAX_BYTES),
        )


@dataclass(frozen=True)
class InboundResult:
    """What became of one received message."""

    outcome: str
    ses_message_id: str
    reason: str | None = None
    tenant_id: UUID | None = None
    inbound_id: UUID | None = None
    ticket_id: UUID | None = None
    reference: int | None = None
    conversation_id: UUID | None = None
    duplicate: bool = False  # stored before: this delivery changed nothing

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "sesMessageId": self.ses_message_id,
            "reason": self.reason,
            "tenantId": str(self.tenant_id) if self.tenant_id else None,
            "inboundId": str(self.inbound_id) if self.inbound_id else None,
            "ticketId": str(self.ticket_id) if self.ticket_id else None,
            "reference": f"#{self.reference}" if self.reference is not None else None,
            "conversationId": str(self.conversation_id) if self.conversation_id else None,
            "duplicate": self.duplicate,
        }


# --- S3 ----------------------------------------------------------------------------------------------------------


def s3_client() -> Any:
    """S3's client, built once per endpoint (support.aws)."""
    return cached_client("s3", max_attempts=3)


def _read(config: InboundConfig, key: str) -> tuple[bytes, int, bool]:
    """The stored message (its first HEAD_BYTES only when it is over the limit), its size, and whether it is."""
    s3 = s3_client()
    stored = s3.get_object(Bucket=config.bucket, Key=key)
    size = int(stored["ContentLength"])
    if size <= config.max_bytes:
        return stored["Body"].read(), size, False
    stored["Body"].close()  # not read past its headers
    part = s3.get_object(Bucket=config.bucket, Key=key, Range=f"bytes=0-{HEAD_BYTES - 1}")
    return part["Body"].read(), size, True


_UNSAFE_KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


def _attachment_key(config: InboundConfig, tenant_id: UUID, ses_message_id: str, index: int, name: str) -> str:
    safe = _UNSAFE_KEY_CHARACTERS.sub("_", name).strip("._")[:100] or "file"
    return f"{config.attachments_prefix}{tenant_id}/{ses_message_id}/{index}-{safe}"


def _store_attachments(
    config: InboundConfig, tenant_id: UUID, ses_message_id: str, email: InboundEmail
) -> list[dict[str, Any]]:
    """Each file (attached or inline) to S3; the metadata the conversation entry carries."""
    stored = []
    s3 = s3_client()
    for index, attachment in enumerate(email.attachments, start=1):
        name = attachment.filename or f"part-{index}"
        key = _attachment_key(config, tenant_id, ses_message_id, index, name)
        s3.put_object(
            Bucket=config.bucket,
            Key=key,
            Body=attachment.payload,
            ContentType=attachment.content_type,
            ServerSideEncryption="AES256",
        )
        stored.append(
            {
                "fileName": name,
                "contentType": attachment.content_type,
                "sizeBytes": attachment.size,
                "s3Bucket": config.bucket,
                "s3Key": key,
                "contentId": attachment.content_id,
                "inline": attachment.inline,
            }
        )
    return stored


# --- receiving ---------------------------------------------------------------------------------------------------


def receive(receipt: SesReceipt, config: InboundConfig | None = None) -> InboundResult:
    """One message of an SES receipt event, from S3 to its ticket (see the module's docstring)."""
    config = config or InboundConfig.from_environment()
    key = f"{config.inbound_prefix}{receipt.ses_message_id}"
    raw, size, over_limit = _read(config, key)
    return receive_message(receipt, raw, config, key=key, size=size, over_limit=over_limit)


def receive_message(
    receipt: SesReceipt, raw: bytes, config: InboundConfig, *, key: str, size: int, over_limit: bool = False
) -> InboundResult:
    """Parse and store a message read from `key` (`raw` is its first bytes only when it is `over_limit`)."""
    if over_limit:
        parsed: InboundEmail | Rejection = replace(
            _as_rejection(parse(raw, max_bytes=0)),
            detail=f"{size} bytes, the limit is {config.max_bytes}",
            size=size,
        )
    else:
        parsed = parse(raw, max_bytes=config.max_bytes)
    desk = _tenant_for(receipt, parsed)
    if desk is None:
        logger.warning(
            "inbound email for no desk",
            extra={"ses_message_id": receipt.ses_message_id, "recipients": list(receipt.recipients)},
        )
        return InboundResult(UNKNOWN_RECIPIENT, receipt.ses_message_id, reason="no desk receives at these addresses")
    tenant_id, address = desk
    message = _Message(receipt=receipt, key=key, recipient=address, size=size, parsed=parsed)
    attachments: list[dict[str, Any]] = []
    # A person's mail with files: to S3 first, unless a first delivery of it stored them already.
    if (
        isinstance(parsed, InboundEmail)
        and parsed.attachments
        and message.verdict is None
        and automatic_reason(parsed) is None
        and not _stored_before(tenant_id, message.message_id)
    ):
        attachments = _store_attachments(config, tenant_id, receipt.ses_message_id, parsed)
    result = _record(tenant_id, message, attachments)
    if result.ticket_id is not None and not result.duplicate:  # committed: its events run now, not at the sweep
        automations.kick(tenant_id)
        webhooks.kick(tenant_id)
    logger.info("inbound email", extra={k: v for k, v in result.as_dict().items() if v is not None})
    return result


def _as_rejection(parsed: InboundEmail | Rejection) -> Rejection:
    assert isinstance(parsed, Rejection)  # max_bytes=0: every message is over it
    return parsed


def _tenant_for(receipt: SesReceipt, parsed: InboundEmail | Rejection) -> tuple[UUID, str] | None:
    addresses = list(receipt.recipients)
    if isinstance(parsed, InboundEmail):
        addresses += [*parsed.delivered_to, *(a.email for a in parsed.to), *(a.email for a in parsed.cc)]
    with anonymous_transaction() as cur:
        cur.execute("SELECT user_id, address FROM email_inbound_tenant(%s)", (list(dict.fromkeys(addresses)),))
        row = cur.fetchone()
    return (UUID(str(row["user_id"])), str(row["address"])) if row else None


@dataclass(frozen=True)
class _Message:
    receipt: SesReceipt
    key: str
    recipient: str
    size: int
    parsed: InboundEmail | Rejection

    @property
    def message_id(self) -> str:
        header = self.parsed.message_id
        return header[:998] if header else f"ses:{self.receipt.ses_message_id}"

    @property
    def sender(self) -> str | None:
        if isinstance(self.parsed, InboundEmail):
            return self.parsed.sender.email[:320]
        return self.parsed.sender[:320] if self.parsed.sender else None

    @property
    def subject(self) -> str | None:
        return self.parsed.subject[:998] if isinstance(self.parsed, InboundEmail) else None

    @property
    def verdict(self) -> str | None:
        """SES's scan failed it: kept, recorded as rejected, never answered."""
        refusal = self.receipt.refusal()
        return f"ses_{refusal}_verdict" if refusal else None


def _stored_before(tenant_id: UUID, message_id: str) -> bool:
    with tenant_transaction(tenant_id) as cur:
        cur.execute("SELECT 1 FROM inbound_emails WHERE user_id = %s AND message_id = %s", (tenant_id, message_id))
        return cur.fetchone() is not None


_INBOUND_COLUMNS = "id, outcome, reason, ticket_id, conversation_id"


def _record(tenant_id: UUID, message: _Message, attachments: list[dict[str, Any]]) -> InboundResult:
    """The tenant's transaction: the message stored once, with what became of it."""
    with tenant_transaction(tenant_id) as cur:
        lock_for_tenant(cur, tenant_id, f"inbound-email:{message.message_id}")
        cur.execute(
            f"SELECT {_INBOUND_COLUMNS} FROM inbound_emails WHERE user_id = %s AND message_id = %s",  # noqa: S608
            (tenant_id, message.message_id),
        )
        before = cur.fetchone()
        if before is not None:
            return _result(cur, tenant_id, message, before, duplicate=True)
        parsed = message.parsed
        ticket: dict[str, Any] | None = None
        reason: str | None = None
        if isinstance(parsed, Rejection):
            outcome, reason = REJECTED, f"{parsed.reason.value}: {parsed.detail}"
        elif message.verdict is not None:
            outcome, reason = REJECTED, message.verdict
        elif (automatic := automatic_reason(parsed)) is not None:
            outcome, reason = IGNORED_AUTOMATIC, automatic.value
        elif _from_the_desk(cur, tenant_id, parsed):
            outcome, reason = IGNORED_AUTOMATIC, FROM_THE_DESK
        else:
            ticket = _ticket_answered(cur, tenant_id, parsed)
            outcome = THREADED if ticket is not None else CREATED
            if ticket is None:
                ticket = _create_ticket(cur, tenant_id, parsed)
        cur.execute(
            f"""INSERT INTO inbound_emails (user_id, message_id, ses_message_id, s3_key, recipient, sender, subject,
                size_bytes, outcome, reason, ticket_id)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_INBOUND_COLUMNS}""",  # noqa: S608
            (
                tenant_id,
                message.message_id,
                message.receipt.ses_message_id,
                message.key,
                message.recipient,
                message.sender,
                message.subject,
                message.size,
                outcome,
                reason[:1000] if reason else None,
                ticket["id"] if ticket else None,
            ),
        )
        row = cur.fetchone()
        assert row is not None
        if ticket is not None and isinstance(parsed, InboundEmail):
            entry = _add_customer_message(cur, tenant_id, ticket, parsed, attachments)
            cur.execute(
                "UPDATE inbound_emails SET conversation_id = %s WHERE user_id = %s AND id = %s",
                (entry["id"], tenant_id, row["id"]),
            )
            row = {**row, "conversation_id": entry["id"]}
            if outcome == CREATED:
                email_outbox.notify(cur, tenant_id, ticket["id"], email_outbox.RECEIVED)
        return _result(cur, tenant_id, message, row, duplicate=False)


def _result(cur: Cursor, tenant_id: UUID, message: _Message, row: dict[str, Any], *, duplicate: bool) -> InboundResult:
    reference = None
    if row["ticket_id"] is not None:
        cur.execute(
            "SELECT reference FROM support_tickets WHERE user_id = %s AND id = %s", (tenant_id, row["ticket_id"])
        )
        ticket = cur.fetchone()
        reference = ticket["reference"] if ticket else None
    return InboundResult(
        outcome=row["outcome"],
        ses_message_id=message.receipt.ses_message_id,
        reason=row["reason"],
        tenant_id=tenant_id,
        inbound_id=row["id"],
        ticket_id=row["ticket_id"],
        reference=reference,
        conversation_id=row["conversation_id"],
        duplicate=duplicate,
    )


def _from_the_desk(cur: Cursor, tenant_id: UUID, email: InboundEmail) -> bool:
    """The desk's own mail come back (an agent's reply copied to the support address, a forward loop): sent from
    one of the desk's addresses, or carrying the header the outbox writes. Answering it would mail the desk."""
    if email.header("x-support-ticket") is not None:
        return True
    cur.execute(
        """SELECT EXISTS (SELECT FROM email_inbound_addresses a WHERE a.user_id = %(tenant)s AND a.address = %(sender)s)
            OR EXISTS (SELECT FROM tenant_settings s WHERE s.user_id = %(tenant)s AND s.area = 'email'
                       AND lower(s.settings ->> 'from_address') = %(sender)s) AS desk""",
        {"tenant": tenant_id, "sender": email.sender.email},
    )
    row = cur.fetchone()
    return bool(row and row["desk"])


# --- threading ---------------------------------------------------------------------------------------------------

_LOCK_TICKET = """SELECT id, status, reference, customer_email, contact_id FROM support_tickets
    WHERE user_id = %s AND id = %s FOR NO KEY UPDATE"""


def _ticket_answered(cur: Cursor, tenant_id: UUID, email: InboundEmail) -> dict[str, Any] | None:
    """The open (not closed) ticket this mail answers, locked, or None for a new ticket."""
    ticket_id = _ticket_by_message_ids(cur, tenant_id, email.thread_ids)
    if ticket_id is None:
        ticket_id = _ticket_by_reference(cur, tenant_id, email)
    if ticket_id is None:
        return None
    cur.execute(_LOCK_TICKET, (tenant_id, ticket_id))
    ticket = cur.fetchone()
    if ticket is None or ticket["status"] == TicketStatus.CLOSED:
        return None
    return dict(ticket)


def _ticket_by_message_ids(cur: Cursor, tenant_id: UUID, ids: tuple[str, ...]) -> UUID | None:
    """The ticket of the likeliest Message-ID the mail answers: a desk mail's (email_outbox), or an earlier mail of
    the customer's that is on a ticket (inbound_emails). Both are unguessable ids the customer was sent or wrote."""
    if not ids:
        return None
    ids = ids[:50]
    cur.execute(
        """SELECT ticket_id FROM (
            SELECT o.ticket_id, array_position(%(ids)s::text[], substr(o.message_id, 2, length(o.message_id) - 2)) AS p
            FROM email_outbox o WHERE o.user_id = %(tenant)s AND o.message_id = ANY(%(bracketed)s)
            UNION ALL
            SELECT i.ticket_id, array_position(%(ids)s::text[], i.message_id)
            FROM inbound_emails i
            WHERE i.user_id = %(tenant)s AND i.message_id = ANY(%(ids)s) AND i.ticket_id IS NOT NULL
        ) found ORDER BY p LIMIT 1""",
        {"tenant": tenant_id, "ids": list(ids), "bracketed": [f"<{i}>" for i in ids]},
    )
    row = cur.fetchone()
    return row["ticket_id"] if row else None


def _ticket_by_reference(cur: Cursor, tenant_id: UUID, email: InboundEmail) -> UUID | None:
    """The ticket the subject's reference names, when the sender is its customer (its email, or an email of its
    contact); else None, and the mail opens a ticket of its own."""
    reference = reference_in_subject(email.subject)
    if reference is None:
        return None
    cur.execute(
        """SELECT t.id FROM support_tickets t
        WHERE t.user_id = %(tenant)s AND t.reference = %(reference)s
          AND (lower(t.customer_email) = %(sender)s
               OR EXISTS (SELECT FROM contact_identities i
                          WHERE i.user_id = t.user_id AND i.contact_id = t.contact_id AND i.kind = 'email'
                            AND i.scope = '' AND i.value = %(sender)s))""",
        {"tenant": tenant_id, "reference": reference, "sender": email.sender.email},
    )
    row = cur.fetchone()
    return row["id"] if row else None


# --- writing -----------------------------------------------------------------------------------------------------


def _fit(text: str, max_bytes: int = MESSAGE_MAX_BYTES) -> str:
    """Text as the columns take it: no NUL, at most `max_bytes` of UTF-8 (cut at a character), never empty."""
    text = text.replace("\x00", "").strip()
    encoded = text.encode("utf-8")
    if len(encoded) > max_bytes:
        text = encoded[:max_bytes].decode("utf-8", errors="ignore")
    return text or NO_TEXT


def _sender_name(email: InboundEmail) -> str:
    name = " ".join(email.sender.name.split()) or email.sender.email.partition("@")[0] or email.sender.email
    return name[:200]


_BRACKETED_REFERENCE = re.compile(r"\[#\d{1,12}\]")


def _create_ticket(cur: Cursor, tenant_id: UUID, email: InboundEmail) -> dict[str, Any]:
    """A new ticket from the mail: channel `email`, the sender's contact, the subject and the new text."""
    principal = Principal(tenant_id=tenant_id, role=Role.ADMIN, subject="email-in")
    _admit_ticket(cur, principal)
    # Without reply prefixes, and without a bracketed reference (another desk's, or a closed ticket's): the ticket's
    # own reference goes in front of it in every mail about it.
    subject = " ".join(_BRACKETED_REFERENCE.sub(" ", strip_reply_prefixes(email.subject)).split())[:500] or NO_SUBJECT
    name = _sender_name(email)
    agent = routing.pick_agent(cur, principal, category=None, channel="email", custom_fields={})
    cur.execute(
        """INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, description, channel,
            contact_id, assigned_agent_id)
        VALUES (%s, %s, %s, %s, %s, 'email', contact_for(%s, %s, %s, NULL, NULL), %s)
        RETURNING id, status, reference, customer_email, contact_id""",
        (
            tenant_id,
            name,
            email.sender.email,
            subject,
            _fit(new_text(email.text)),
            tenant_id,
            name,
            email.sender.email,
            agent,
        ),
    )
    created = cur.fetchone()
    assert created is not None
    return dict(created)


def _add_customer_message(
    cur: Cursor, tenant_id: UUID, ticket: dict[str, Any], email: InboundEmail, attachments: list[dict[str, Any]]
) -> dict[str, Any]:
    """The customer's message on the ticket (stamped as add_conversation stamps, under the ticket's lock); a
    `waiting_customer` or `resolved` ticket opens again. No mail goes out for it (email_outbox.notify_reply sends
    only an agent's public reply)."""
    cur.execute(
        f"""INSERT INTO ticket_conversations (ticket_id, user_id, sender_type, sender_name, sender_email, message,
            is_internal, attachments, created_at, updated_at)
        SELECT %s, %s, 'customer', %s, %s, %s, false, %s, stamp.at, stamp.at
        FROM (SELECT clock_timestamp() AS at) stamp
        RETURNING {CONVERSATION_COLUMNS}""",  # noqa: S608
        (
            ticket["id"],
            tenant_id,
            _sender_name(email),
            email.sender.email,
            _fit(new_text(email.text)),
            Jsonb(attachments),
        ),
    )
    entry = cur.fetchone()
    assert entry is not None
    if ticket["status"] in REOPENED:
        cur.execute(
            """UPDATE support_tickets SET status = 'open', resolved_at = NULL, resolution_time = NULL
            WHERE user_id = %s AND id = %s""",
            (tenant_id, ticket["id"]),
        )
    return dict(entry)


# --- the original ------------------------------------------------------------------------------------------------

ORIGINAL_URL_SECONDS = 300


def original_of(principal: Principal, ticket_id: UUID, conversation_id: UUID) -> OriginalEmail:
    """The raw original of a conversation entry that came by email: a presigned GET of the stored message, valid
    for a few minutes (a message may be far larger than a Lambda answer). 404 for an entry that did not come by
    email, or another tenant's."""
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            """SELECT i.s3_key, i.size_bytes, i.message_id, i.received_at FROM inbound_emails i
            WHERE i.user_id = %s AND i.ticket_id = %s AND i.conversation_id = %s""",
            (principal.tenant_id, ticket_id, conversation_id),
        )
        row = found(cur.fetchone(), "original email")
    bucket = os.environ.get("INBOUND_EMAIL_BUCKET", "")
    if not bucket:
        raise RuntimeError("set INBOUND_EMAIL_BUCKET: the bucket SES stores inbound mail in")
    url = s3_client().generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": row["s3_key"], "ResponseContentType": "message/rfc822"},
        ExpiresIn=ORIGINAL_URL_SECONDS,
    )
    return OriginalEmail(
        url=url,
        expires_in=ORIGINAL_URL_SECONDS,
        content_type="message/rfc822",
        size_bytes=row["size_bytes"],
        message_id=row["message_id"],
        received_at=row["received_at"],
    )
