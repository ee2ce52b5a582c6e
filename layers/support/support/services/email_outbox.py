"""Email out: the customer hears back by email, through an outbox drained after the commit.

* Enqueue (`notify`): inside the transaction of the change it tells (a ticket created, an agent's public reply, a
  ticket resolved, a ticket closed), one row of `email_outbox` (sql/0026), only when the tenant's switch is on and a
  sender is set, and only to a recipient that has not bounced or complained. A rolled-back change leaves no row; a
  notification enqueued twice is stored once (its unique notice key).
* Drain (`drain`, the EmailOutboxFunction every minute, and `make run` every few seconds): claims due rows across
  tenants (`email_outbox_claim`: FOR UPDATE SKIP LOCKED and a lease, so two workers never send one row and a worker
  that died mid-send leaves its rows to the next drain once the lease ends), builds each mail with the standard
  library, sends it with SES SendRawEmail, and marks it. A throttle, a 5xx or a network failure is retried with
  exponential backoff; a permanent refusal, or too many attempts, marks it `failed` and records it on the ticket as
  an internal system entry.
* Bounces and complaints (`record_ses_notification`): SES's notification (through SNS) names the SES message id; the
  tenant that sent it suppresses the address, and no further mail goes to it.
"""

from __future__ import annotations

import html
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any
from uuid import UUID, uuid4

from support.aws import cached_client
from support.db import tenant_transaction
from support.db.connection import Cursor, anonymous_transaction
from support.models.settings import EmailSettings
from support.observability import logger
from support.services.settings import email_settings

RECEIVED = "received"
REPLIED = "replied"
RESOLVED = "resolved"
CLOSED = "closed"
# An automation rule's notify_email (support.services.automations): its text (`note`) to the address the rule names,
# a member of the staff, not the customer.
AUTOMATION = "automation"
KINDS = (RECEIVED, REPLIED, RESOLVED, CLOSED, AUTOMATION)
# The automatic notices: marked `Auto-Submitted: auto-replied` (RFC 3834), so that a well-behaved auto-responder
# does not answer them. An agent's reply is a person's mail and is not marked.
AUTOMATIC = frozenset({RECEIVED, RESOLVED, CLOSED, AUTOMATION})

BATCH_SIZE = 100  # rows one claim takes
# Mails in flight at once: an SES call is a round trip of some milliseconds, so a drain sends from a few threads
# (boto3's clients are thread-safe). SES's own sending rate answers a throttle beyond it, which is retried.
SEND_CONCURRENCY = int(os.environ.get("EMAIL_SEND_CONCURRENCY", "8"))
LEASE_SECONDS = 120  # a claimed row is the claimer's this long; above the SES call's timeouts
MAX_ATTEMPTS = 8  # then `failed`: about 2 hours of backoff in all
BACKOFF_FIRST_SECONDS = 30
BACKOFF_MAX_SECONDS = 3600
MAX_REFERENCES = 20  # the ticket's earlier desk mails named in References
# SES error codes that are worth another try; every other 4xx refusal is permanent (MessageRejected,
# MailFromDomainNotVerifiedException, ConfigurationSetDoesNotExist, InvalidParameterValue, ...).
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestTimeout",
        "ServiceUnavailable",
        "InternalFailure",
        "AccountSendingPausedException",
    }
)

# Which notice key makes each notification unique within its ticket and kind (sql/0026): a reply is its
# conversation entry, a resolution its resolved_at (resolved again after a reopen is another notice).
_ENQUEUE = """
INSERT INTO email_outbox (id, user_id, ticket_id, kind, conversation_id, notice_key, recipient, message_id)
SELECT %(id)s, t.user_id, t.id, %(kind)s::text, %(conversation)s::uuid,
    coalesce(%(key)s::text, extract(epoch FROM t.resolved_at)::text, 'resolved'), t.customer_email, %(message_id)s
FROM support_tickets t
WHERE t.user_id = %(tenant)s AND t.id = %(ticket)s
  AND t.channel <> 'social'  -- a social customer has no email address (support.services.channels)
  -- nor an expired chat's visitor who left none yet (support.services.chat_expiry): RFC 2606's never-delivered domain
  AND right(t.customer_email, 8) <> '.invalid'
  AND NOT EXISTS (SELECT FROM email_suppressions s WHERE s.user_id = t.user_id AND s.address = lower(t.customer_email))
ON CONFLICT (user_id, ticket_id, kind, notice_key) DO NOTHING
"""


def message_id(ticket_id: UUID, outbox_id: UUID, domain: str) -> str:
    """The Message-ID a desk mail carries: the desk recognises `ticket-{ticketId}.` in a reply's In-Reply-To or
    References and threads the reply onto that ticket."""
    return f"<ticket-{ticket_id}.{outbox_id}@{domain}>"


def notify(cur: Cursor, tenant_id: UUID, ticket_id: UUID, kind: str, *, conversation_id: UUID | None = None) -> bool:
    """Enqueue the `kind` notice of a ticket in the caller's transaction (the change's own). True when a row was
    stored; False when the switch is off, no sender is set, the recipient is suppressed, or it was enqueued before."""
    settings = email_settings(cur, tenant_id)
    if not settings.sends(kind) or settings.from_address is None:
        return False
    outbox_id = uuid4()
    domain = settings.from_address.rsplit("@", 1)[1]
    cur.execute(
        _ENQUEUE,
        {
            "id": outbox_id,
            "tenant": tenant_id,
            "ticket": ticket_id,
            "kind": kind,
            "conversation": conversation_id,
            # see _ENQUEUE: a resolution's key is its resolved_at, read in the statement
            "key": str(conversation_id) if kind == REPLIED else None if kind == RESOLVED else kind,
            "message_id": message_id(ticket_id, outbox_id, domain),
        },
    )
    return cur.rowcount == 1


def notify_reply(cur: Cursor, tenant_id: UUID, entry: dict[str, Any] | None) -> None:
    """A conversation entry just written: an agent's public reply goes to the customer; an internal note, the
    customer's own words and the system's entries never leave."""
    if entry is not None and entry["sender_type"] == "agent" and not entry["is_internal"]:
        notify(cur, tenant_id, entry["ticket_id"], REPLIED, conversation_id=entry["id"])


def notify_status(cur: Cursor, tenant_id: UUID, ticket_id: UUID, old_status: str, new_status: str | None) -> None:
    """A status change: moving to `resolved` or `closed` tells the customer."""
    if new_status in (RESOLVED, CLOSED) and new_status != old_status:
        notify(cur, tenant_id, ticket_id, new_status)


# --- building the mail -------------------------------------------------------------------------------------------


def _subject(ticket: dict[str, Any]) -> str:
    """The subject of every mail about a ticket, one line: the ticket's reference in brackets first (`[#1001] ...`,
    as support.mail.inbound.reference_in_subject finds it again when the customer answers), then its subject."""
    subject = " ".join(str(ticket["subject"]).split())
    return f"[#{ticket['reference']}] {subject}" if ticket.get("reference") is not None else subject


@dataclass(frozen=True)
class Mail:
    """One claimed notification with what its mail needs."""

    outbox_id: UUID
    tenant_id: UUID
    attempts: int
    kind: str
    recipient: str
    message_id: str
    ticket: dict[str, Any]
    settings: EmailSettings
    reply: dict[str, Any] | None = None
    earlier: list[str] = field(default_factory=list)
    suppressed: str | None = None
    note: str | None = None


def _paragraphs(text: str) -> str:
    return "".join(
        f"<p>{html.escape(block).replace(chr(10), '<br>')}</p>" for block in text.split("\n\n") if block.strip()
    )


def _texts(mail: Mail) -> str:
    ticket = mail.ticket
    name = " ".join(str(ticket["customer_name"]).split())
    subject = _subject(ticket)
    if mail.kind == RECEIVED:
        body = (
            f'We received your request "{subject}" and will answer you soon.\n\n'
            "Reply to this email to add anything to it."
        )
    elif mail.kind == REPLIED:
        assert mail.reply is not None
        body = str(mail.reply["message"])
    elif mail.kind == AUTOMATION:
        return f"{mail.note or ''}\n"
    elif mail.kind == RESOLVED:
        body = (
            f'Your request "{subject}" has been resolved.\n\n'
            "If something is still not right, reply to this email and we will pick it up again.\n\n"
            "How did we do? Reply with a rating from 1 (poor) to 5 (excellent), and a word on why if you like; "
            "we record it with your request."
        )
    else:
        body = (
            f'Your request "{subject}" has been closed.\n\n'
            "If you need anything else, write to us at this address and we will open a new request."
        )
    sign = " ".join(str(mail.reply["sender_name"]).split()) if mail.reply else (mail.settings.from_name or "")
    closing = f"\n\n{sign}" if sign else ""
    return f"Hello {name},\n\n{body}{closing}\n"


def ascii_address(address: str) -> tuple[str, str]:
    """(local part, domain) as SES takes them: an internationalised domain in its ASCII form (IDNA); a local part
    beyond ASCII is refused (SES does not offer SMTPUTF8), a ValueError."""
    local, _, domain = address.rpartition("@")
    if not local or not local.isascii():
        raise ValueError(f"SES cannot send to {address}: its local part is not ASCII")
    return local, domain.encode("idna").decode("ascii") if not domain.isascii() else domain


def build_message(mail: Mail) -> EmailMessage:
    """The mail, with the standard library: plain text plus an HTML alternative, a Message-ID the desk recognises,
    In-Reply-To/References to the ticket's earlier desk mails (so mail clients thread), Auto-Submitted on the
    automatic notices."""
    settings = mail.settings
    assert settings.from_address is not None
    message = EmailMessage()
    local, domain = settings.from_address.rsplit("@", 1)
    message["From"] = Address(display_name=" ".join((settings.from_name or "").split()), username=local, domain=domain)
    to_local, to_domain = ascii_address(mail.recipient)
    to_name = "" if mail.kind == AUTOMATION else " ".join(str(mail.ticket["customer_name"]).split())
    message["To"] = Address(display_name=to_name, username=to_local, domain=to_domain)
    message["Subject"] = _subject(mail.ticket)
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = mail.message_id
    if mail.earlier and mail.kind != AUTOMATION:
        message["In-Reply-To"] = mail.earlier[-1]
        message["References"] = " ".join(mail.earlier[-MAX_REFERENCES:])
    if mail.kind in AUTOMATIC:
        message["Auto-Submitted"] = "auto-replied"
    message["X-Support-Ticket"] = str(mail.ticket["id"])
    text = _texts(mail)
    message.set_content(text)
    message.add_alternative(f"<!doctype html><html><body>{_paragraphs(text)}</body></html>", subtype="html")
    return message


# --- sending -----------------------------------------------------------------------------------------------------


def ses_client() -> Any:
    """SES's client, built once per endpoint (support.aws). Short timeouts and few retries: the outbox retries, not
    the client."""
    return cached_client("ses", max_attempts=2)


class SendFailure(Exception):
    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


def send_with_ses(mail: Mail, message: EmailMessage) -> str:
    """SendRawEmail; the SES message id. A failure is a SendFailure saying whether another try may succeed."""
    from botocore.exceptions import BotoCoreError, ClientError

    assert mail.settings.from_address is not None
    arguments: dict[str, Any] = {
        "Source": mail.settings.from_address,
        "Destinations": ["@".join(ascii_address(mail.recipient))],
        "RawMessage": {"Data": message.as_bytes(policy=SMTP)},  # CRLF line ends, as on the wire
    }
    configuration_set = os.environ.get("SES_CONFIGURATION_SET")
    if configuration_set:
        arguments["ConfigurationSetName"] = configuration_set
    try:
        answer = ses_client().send_raw_email(**arguments)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        reason = f"{code}: {error.get('Message', '')}".strip()
        raise SendFailure(reason, permanent=code not in RETRYABLE_CODES and status < 500) from exc
    except BotoCoreError as exc:  # a network failure, a timeout: try again later
        raise SendFailure(f"{type(exc).__name__}: {exc}", permanent=False) from exc
    return str(answer["MessageId"])


Sender = Callable[[Mail, EmailMessage], str]


# --- draining ----------------------------------------------------------------------------------------------------


@dataclass
class DrainResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0

    def add(self, other: DrainResult) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed try: 30 s, 1 min, 2 min, ... at most an hour."""
    return timedelta(seconds=min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** max(0, attempts - 1)))


def claim(batch: int = BATCH_SIZE, lease_seconds: int = LEASE_SECONDS) -> list[dict[str, Any]]:
    """Take up to `batch` due notifications of any tenant (committed at once: the lease holds while sending)."""
    with anonymous_transaction() as cur:
        cur.execute("SELECT id, user_id, attempts FROM email_outbox_claim(%s, %s)", (batch, lease_seconds))
        return cur.fetchall()


_LOAD = """
SELECT o.id, o.kind, o.recipient, o.message_id, o.conversation_id, o.ticket_id, o.note,
    t.id AS t_id, t.subject AS t_subject, t.customer_name AS t_customer_name, t.status AS t_status,
    t.reference AS t_reference,
    c.message AS c_message, c.sender_name AS c_sender_name,
    s.reason AS suppressed,
    ARRAY(SELECT e.message_id FROM email_outbox e
          WHERE e.user_id = o.user_id AND e.ticket_id = o.ticket_id AND e.state <> 'failed'
            AND e.kind <> 'automation' AND e.created_at < o.created_at
          ORDER BY e.created_at DESC LIMIT %(references)s) AS earlier
FROM email_outbox o
JOIN support_tickets t ON t.user_id = o.user_id AND t.id = o.ticket_id
LEFT JOIN ticket_conversations c ON c.user_id = o.user_id AND c.id = o.conversation_id
LEFT JOIN email_suppressions s ON s.user_id = o.user_id AND s.address = lower(o.recipient)
WHERE o.user_id = %(tenant)s AND o.id = ANY(%(ids)s) AND o.state = 'sending'
"""


def _load(tenant_id: UUID, claimed: list[dict[str, Any]]) -> list[Mail]:
    attempts = {row["id"]: row["attempts"] for row in claimed}
    with tenant_transaction(tenant_id) as cur:
        settings = email_settings(cur, tenant_id)
        cur.execute(_LOAD, {"tenant": tenant_id, "ids": list(attempts), "references": MAX_REFERENCES})
        rows = cur.fetchall()
    mails = []
    for row in rows:
        ticket = {
            "id": row["t_id"],
            "subject": row["t_subject"],
            "customer_name": row["t_customer_name"],
            "reference": row["t_reference"],
        }
        reply = {"message": row["c_message"], "sender_name": row["c_sender_name"]} if row["conversation_id"] else None
        mails.append(
            Mail(
                outbox_id=row["id"],
                tenant_id=tenant_id,
                attempts=attempts[row["id"]],
                kind=row["kind"],
                recipient=row["recipient"],
                message_id=row["message_id"],
                ticket=ticket,
                settings=settings,
                reply=reply,
                earlier=list(reversed(row["earlier"])),
                suppressed=row["suppressed"],
                note=row["note"],
            )
        )
    return mails


@dataclass
class _Outcome:
    mail: Mail
    ses_message_id: str | None = None
    error: str | None = None
    permanent: bool = False


def _deliver(mail: Mail, send: Sender) -> _Outcome:
    if mail.suppressed is not None:
        return _Outcome(mail, error=f"the address is suppressed after a {mail.suppressed}", permanent=True)
    if mail.settings.from_address is None:
        return _Outcome(mail, error="the desk has no sender address (email settings, fromAddress)", permanent=True)
    if mail.attempts > MAX_ATTEMPTS:  # claimed again and again by workers that died before marking it
        return _Outcome(mail, error="no outcome after the last attempt's lease", permanent=True)
    try:
        message = build_message(mail)
    except (ValueError, TypeError, UnicodeError) as exc:  # nothing another try would change
        return _Outcome(mail, error=f"the mail could not be built: {exc}"[:2000], permanent=True)
    try:
        return _Outcome(mail, ses_message_id=send(mail, message))
    except SendFailure as exc:
        return _Outcome(mail, error=exc.reason[:2000], permanent=exc.permanent)
    except Exception as exc:  # a bug or an unforeseen failure: logged, and tried again later like a network error
        logger.exception("sending an email failed unexpectedly", extra={"outbox_id": str(mail.outbox_id)})
        return _Outcome(mail, error=f"{type(exc).__name__}: {exc}"[:2000])


_MARK_SENT = """UPDATE email_outbox SET state = 'sent', ses_message_id = %s, sent_at = now(), last_error = NULL,
    updated_at = now() WHERE user_id = %s AND id = %s"""
_MARK_RETRY = """UPDATE email_outbox SET state = 'pending', next_attempt_at = now() + %s, last_error = %s,
    updated_at = now() WHERE user_id = %s AND id = %s"""
_MARK_FAILED = """UPDATE email_outbox SET state = 'failed', last_error = %s, updated_at = now()
    WHERE user_id = %s AND id = %s"""
_RECORD_FAILURE = """INSERT INTO ticket_conversations (ticket_id, user_id, sender_type, sender_name, message,
    is_internal) VALUES (%s, %s, 'system', 'Email', %s, true)"""


def _mark(tenant_id: UUID, outcomes: list[_Outcome]) -> DrainResult:
    result = DrainResult()
    sent, retry, failed, notes = [], [], [], []
    for outcome in outcomes:
        mail = outcome.mail
        if outcome.error is None:
            sent.append((outcome.ses_message_id, tenant_id, mail.outbox_id))
        elif outcome.permanent or mail.attempts >= MAX_ATTEMPTS:
            why = outcome.error if outcome.permanent else f"{outcome.error} (gave up after {mail.attempts} attempts)"
            failed.append((why, tenant_id, mail.outbox_id))
            notes.append((mail.ticket["id"], tenant_id, f"The {mail.kind} email to {mail.recipient} failed: {why}"))
        else:
            retry.append((backoff(mail.attempts), outcome.error, tenant_id, mail.outbox_id))
    with tenant_transaction(tenant_id) as cur:
        for statement, rows in ((_MARK_SENT, sent), (_MARK_RETRY, retry), (_MARK_FAILED, failed)):
            if rows:
                cur.executemany(statement, rows)
        if notes:
            cur.executemany(_RECORD_FAILURE, notes)
    for why, _tenant, outbox_id in failed:
        logger.warning("email failed", extra={"outbox_id": str(outbox_id), "reason": why})
    result.sent, result.retried, result.failed = len(sent), len(retry), len(failed)
    return result


def drain(
    *,
    send: Sender = send_with_ses,
    batch: int = BATCH_SIZE,
    time_budget_seconds: float = 50.0,
    lease_seconds: int = LEASE_SECONDS,
) -> DrainResult:
    """Send every due notification (until none is due or the time budget is spent: the next drain carries on)."""
    total = DrainResult()
    deadline = time.monotonic() + time_budget_seconds
    if send is send_with_ses:
        ses_client()  # built once, before the threads share it (building a client is not thread-safe)
    with ThreadPoolExecutor(max_workers=max(1, SEND_CONCURRENCY), thread_name_prefix="email") as pool:
        while time.monotonic() < deadline:
            claimed = claim(batch, lease_seconds)
            if not claimed:
                break
            by_tenant: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
            for row in claimed:
                by_tenant[row["user_id"]].append(row)
            for tenant_id, rows in by_tenant.items():
                outcomes = list(pool.map(lambda mail: _deliver(mail, send), _load(tenant_id, rows)))
                total.add(_mark(tenant_id, outcomes))
    return total


# --- bounces and complaints --------------------------------------------------------------------------------------


def _recipients(notification: dict[str, Any]) -> tuple[str, list[str], str] | None:
    """(reason, addresses, detail) of an SES bounce or complaint notification; None for anything else (a
    delivery, a transient bounce: no reason to stop mailing)."""
    kind = notification.get("notificationType") or notification.get("eventType")
    if kind == "Bounce":
        bounce = notification.get("bounce") or {}
        if bounce.get("bounceType") != "Permanent":
            return None
        recipients = bounce.get("bouncedRecipients") or []
        detail = "; ".join(str(r.get("diagnosticCode") or "") for r in recipients if r.get("diagnosticCode"))
        reason = "bounce"
        detail = detail or f"{bounce.get('bounceType')} / {bounce.get('bounceSubType', '')}"
    elif kind == "Complaint":
        complaint = notification.get("complaint") or {}
        recipients = complaint.get("complainedRecipients") or []
        reason = "complaint"
        detail = str(complaint.get("complaintFeedbackType") or "complaint")
    else:
        return None
    addresses = [str(r["emailAddress"]).strip().lower() for r in recipients if r.get("emailAddress")]
    return reason, addresses, detail[:2000]


def record_ses_notification(notification: dict[str, Any]) -> int:
    """Suppress the addresses a permanent bounce or a complaint names, for the tenant that sent the mail (found by
    SES's message id). Returns how many addresses were suppressed."""
    found = _recipients(notification)
    ses_id = (notification.get("mail") or {}).get("messageId")
    if found is None or not ses_id:
        return 0
    reason, addresses, detail = found
    with anonymous_transaction() as cur:
        cur.execute("SELECT user_id, recipient FROM email_outbox_sent_as(%s)", (str(ses_id)[:300],))
        sent_as = cur.fetchone()
    if sent_as is None:
        logger.info("SES notification for a message this desk did not send", extra={"ses_message_id": ses_id})
        return 0
    tenant_id = sent_as["user_id"]
    addresses = [a for a in addresses if 3 <= len(a) <= 320] or [str(sent_as["recipient"]).lower()]
    with tenant_transaction(tenant_id) as cur:
        cur.executemany(
            """INSERT INTO email_suppressions (user_id, address, reason, detail) VALUES (%s, %s, %s, %s)
            ON CONFLICT (user_id, address) DO UPDATE SET reason = excluded.reason, detail = excluded.detail""",
            [(tenant_id, address, reason, detail) for address in addresses],
        )
    return len(addresses)


def sns_notifications(event: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """The SES notifications in an SNS event (each record's Message is the notification's JSON)."""
    for record in event.get("Records") or []:
        message = (record.get("Sns") or {}).get("Message")
        if not message:
            continue
        try:
            parsed = json.loads(message)
        except ValueError:
            logger.warning("an SNS message that is not JSON was skipped")
            continue
        if isinstance(parsed, dict):
            yield parsed
