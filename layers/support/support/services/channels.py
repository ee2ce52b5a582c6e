"""Social and other channels: a connector (a WhatsApp, Facebook or Instagram relay, a Zapier step) posts each
customer message, normalised, to `POST /api/support/channels/{channelId}/messages`, signed with the channel's secret.

Signature. `X-Signature-Timestamp: <unix seconds>` and `X-Signature: v1=<hex HMAC-SHA256 of "{timestamp}.{raw body}">`
with the channel's secret as the key. A timestamp more than 5 minutes from now is refused; so is a signature seen
before (a replay: a connector signs each attempt anew); so is a bad signature, an unknown, disabled or other
tenant's channel, all with one answer (401, NOT_ADMITTED), so a prober learns nothing.

Secrets never leave the database once stored: the signature is checked by `channel_delivery_admit`
(sql/definitions/channels.sql), a SECURITY DEFINER function that answers the channel's tenant, not the secret; the
runtime role has no privilege on the secrets' table. An admin is answered a secret once, when the channel is
created or its secret rotated; after a rotation the previous secret is accepted for 24 hours more.

Invariants of a delivery, all in ONE transaction (so a delivery that fails leaves nothing, its signature included,
and may be sent again):
* its external message id is claimed first (channel_messages' primary key): the same id delivered twice, even
  concurrently, is stored once; the second waits for the first's commit and answers the same ticket (200,
  `duplicate: true`);
* the sender's contact (a `social` identity scoped by the channel) is found or made and locked, so one sender's
  messages take turns: the first opens a ticket (`channel = social`), the next thread onto their newest ticket
  that is not closed, as the customer's message, reopening a `waiting_customer` or `resolved` one; once closed,
  the next message opens a new ticket;
* a token of the channel's rate limit bucket (429 with Retry-After beyond it).

A social customer has no email address: the ticket's `customerEmail` is NO_EMAIL (under RFC 2606's reserved
`.invalid`, never delivered), and the email outbox never mails a social ticket (support.services.email_outbox).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from datetime import timedelta
from uuid import UUID

from pydantic import ValidationError

from support.auth import Principal, Role
from support.db import tenant_transaction
from support.db.connection import SET_TENANT, Cursor, anonymous_transaction
from support.db.statements import admit_under_cap, newest_first
from support.errors import Conflict, InvalidInput, MalformedJson, PayloadTooLarge, RateLimited, Unauthorized, found
from support.models.channels import Channel, ChannelCreate, ChannelDelivery, ChannelMessage, ChannelWithSecret
from support.models.tickets import SenderType, TicketStatus
from support.pagination import Page, page_of
from support.services import automations, routing, webhooks
from support.services.rate_limits import Bucket, take_tokens
from support.services.tickets import _admit_ticket

MAX_CHANNELS_PER_TENANT = 100
SIGNATURE_TOLERANCE_SECONDS = 300
SECRET_OVERLAP = timedelta(hours=24)
# A channel's deliveries: a busy shop's WhatsApp number, not a flood. API Gateway's route throttle is the outer limit.
CHANNEL_MESSAGES = Bucket("channel-messages", burst=120, per_second=10)
# The body of one normalised message: a 50 KB text and its few fields, with room for JSON escapes.
MAX_BODY_BYTES = 128 * 1024
NO_EMAIL = "no-email@social.invalid"
SUBJECT_MAX_CHARS = 80

# One answer for every refusal that could tell a prober something about a channel it holds no secret for.
NOT_ADMITTED = "the signature is not valid for this channel, or the channel is unknown or disabled"
TOO_OLD = "the signature's timestamp is more than 5 minutes from now: sign each delivery when sending it"
REPLAYED = "this signature was used before: sign each delivery, and each retry, anew"

CHANNEL_COLUMNS = "id, name, kind, created_at, disabled_at"
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^v1=([0-9a-fA-F]{64})$")


def _new_secret() -> str:
    return "chs_" + secrets.token_hex(32)  # 256 random bits


def _store_secret(cur: Cursor, channel_id: UUID) -> str | None:
    """A new secret for the tenant's live channel (the previous one kept for SECRET_OVERLAP), or None if there is no
    such live channel."""
    secret = _new_secret()
    cur.execute(
        "SELECT channel_secret_store(%s, %s, %s) AS stored, channel_secret_overlap_ends(%s) AS overlap",
        (channel_id, secret, SECRET_OVERLAP, channel_id),
    )
    row = cur.fetchone()
    return secret if row and row["stored"] else None


def create_channel(principal: Principal, data: ChannelCreate) -> ChannelWithSecret:
    principal.require_admin("create channels")
    with tenant_transaction(principal.tenant_id) as cur:
        admit_under_cap(
            cur,
            principal.tenant_id,
            "support_channels",
            MAX_CHANNELS_PER_TENANT,
            f"a tenant may have at most {MAX_CHANNELS_PER_TENANT} channels",
        )
        cur.execute(
            f"INSERT INTO support_channels (user_id, name, kind) VALUES (%s, %s, %s) RETURNING {CHANNEL_COLUMNS}",  # noqa: S608
            (principal.tenant_id, data.name, data.kind),
        )
        row = found(cur.fetchone(), "channel")
        secret = _store_secret(cur, row["id"])
        if secret is None:  # the channel was made by this transaction: always live
            raise AssertionError("a new channel took no secret")
        return ChannelWithSecret.model_validate({**row, "secret": secret})


def list_channels(principal: Principal, *, limit: int, cursor: str | None = None) -> Page[Channel]:
    """Newest first, disabled ones included (with `disabledAt`), keyset-paginated. Never a secret."""
    columns = f"{CHANNEL_COLUMNS}, channel_secret_overlap_ends(id) AS previous_secret_valid_until"
    with tenant_transaction(principal.tenant_id) as cur:
        rows = newest_first(cur, principal.tenant_id, "support_channels", columns, limit=limit, cursor=cursor)
    return page_of(rows, limit, Channel.model_validate)


def get_channel(principal: Principal, channel_id: UUID) -> Channel:
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            f"""SELECT {CHANNEL_COLUMNS}, channel_secret_overlap_ends(id) AS previous_secret_valid_until
            FROM support_channels WHERE user_id = %s AND id = %s""",  # noqa: S608
            (principal.tenant_id, channel_id),
        )
        return Channel.model_validate(found(cur.fetchone(), "channel"))


def disable_channel(principal: Principal, channel_id: UUID) -> Channel:
    """Disable (idempotent: the first time is kept). Every later delivery is refused as an unknown channel's."""
    principal.require_admin("disable channels")
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            f"""UPDATE support_channels SET disabled_at = coalesce(disabled_at, now())
            WHERE user_id = %s AND id = %s RETURNING {CHANNEL_COLUMNS}""",  # noqa: S608
            (principal.tenant_id, channel_id),
        )
        return Channel.model_validate(found(cur.fetchone(), "channel"))


def rotate_secret(principal: Principal, channel_id: UUID) -> ChannelWithSecret:
    """A new secret, answered once; the previous one is accepted for 24 hours more (one older still in its overlap
    ends now). A disabled channel: 409."""
    principal.require_admin("rotate channel secrets")
    with tenant_transaction(principal.tenant_id) as cur:
        secret = _store_secret(cur, channel_id)
        cur.execute(
            f"""SELECT {CHANNEL_COLUMNS}, channel_secret_overlap_ends(id) AS previous_secret_valid_until
            FROM support_channels WHERE user_id = %s AND id = %s""",  # noqa: S608
            (principal.tenant_id, channel_id),
        )
        row = found(cur.fetchone(), "channel")
        if secret is None:
            raise Conflict("this channel is disabled: create a new one")
        return ChannelWithSecret.model_validate({**row, "secret": secret})


# --- deliveries --------------------------------------------------------------------------------------------------


def _signature(timestamp: str | None, signature: str | None) -> tuple[int, bytes]:
    """The headers' timestamp and signature bytes; Unauthorized(NOT_ADMITTED) when either is missing or malformed."""
    ts = (timestamp or "").strip()
    match = _SIGNATURE.match((signature or "").strip())
    if not _TIMESTAMP.match(ts) or match is None:
        raise Unauthorized(NOT_ADMITTED)
    return int(ts), bytes.fromhex(match.group(1))


def _message(body: bytes) -> ChannelMessage:
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MalformedJson("the request body is not valid UTF-8 JSON") from exc
    if not isinstance(decoded, dict):
        raise InvalidInput(
            "the request is not valid",
            details=[{"field": "body", "message": "a JSON object", "type": "model_type"}],
        )
    try:
        return ChannelMessage.model_validate(decoded)
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(part) for part in ("body", *err["loc"])), "message": err["msg"], "type": err["type"]}
            for err in exc.errors()
        ]
        if any(err["type"] == "payload_too_large" for err in exc.errors()):
            raise PayloadTooLarge("a field is over its size limit", details=details) from exc
        raise InvalidInput("the request is not valid", details=details) from exc


def subject_of(text: str) -> str:
    """A ticket's subject from a message: its first words, whole words up to SUBJECT_MAX_CHARS, then an ellipsis."""
    words = " ".join(text.split())
    if len(words) <= SUBJECT_MAX_CHARS:
        return words
    cut = words[:SUBJECT_MAX_CHARS].rsplit(" ", 1)[0] if " " in words[:SUBJECT_MAX_CHARS] else words[:SUBJECT_MAX_CHARS]
    return cut.rstrip(" ,.;:-") + "…"


def deliver(
    channel_id: UUID, timestamp: str | None, signature: str | None, body: bytes
) -> tuple[ChannelDelivery, bool]:
    """Admit a connector's delivery and store it; (the answer, whether this request stored something new)."""
    ts, mac = _signature(timestamp, signature)
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"a delivery's body is at most {MAX_BODY_BYTES // 1024} KB")
    if abs(time.time() - ts) > SIGNATURE_TOLERANCE_SECONDS:
        raise Unauthorized(TOO_OLD)
    with anonymous_transaction() as cur:
        cur.execute(
            "SELECT user_id, kind, replayed FROM channel_delivery_admit(%s, %s, %s, %s, %s)",
            (channel_id, ts, body, mac, SIGNATURE_TOLERANCE_SECONDS),
        )
        admitted = cur.fetchone()
        if admitted is None:
            raise Unauthorized(NOT_ADMITTED)
        if admitted["replayed"]:
            raise Unauthorized(REPLAYED)
        tenant_id = UUID(str(admitted["user_id"]))
        cur.execute(SET_TENANT, (str(tenant_id),))
        retry_after = take_tokens(cur, tenant_id, [(CHANNEL_MESSAGES, str(channel_id))])
        if retry_after is not None:
            raise RateLimited("too many messages for this channel", retry_after=retry_after)
        message = _message(body)
        delivery, stored = _store(cur, tenant_id, channel_id, message)
    if stored:  # committed: the ticket's or the message's events run now (support.services.automations)
        automations.kick(tenant_id)
        webhooks.kick(tenant_id)
    return delivery, stored


def _store(cur: Cursor, tenant_id: UUID, channel_id: UUID, message: ChannelMessage) -> tuple[ChannelDelivery, bool]:
    cur.execute(
        """INSERT INTO channel_messages (user_id, channel_id, external_message_id) VALUES (%s, %s, %s)
        ON CONFLICT DO NOTHING RETURNING external_message_id""",
        (tenant_id, channel_id, message.external_message_id),
    )
    if cur.fetchone() is None:
        # Delivered before (committed: a concurrent first delivery was waited for): its ticket, nothing stored.
        cur.execute(
            """SELECT m.ticket_id, m.conversation_id, t.reference FROM channel_messages m
            JOIN support_tickets t ON t.user_id = m.user_id AND t.id = m.ticket_id
            WHERE m.user_id = %s AND m.channel_id = %s AND m.external_message_id = %s""",
            (tenant_id, channel_id, message.external_message_id),
        )
        row = found(cur.fetchone(), "message")
        return ChannelDelivery.model_validate({**row, "created_ticket": False, "duplicate": True}), False

    cur.execute(
        "SELECT contact_for_social(%s, %s, %s, %s) AS contact_id",
        (tenant_id, channel_id, message.external_sender_id, message.sender_name),
    )
    contact_id = found(cur.fetchone(), "contact")["contact_id"]
    cur.execute("SELECT name FROM support_contacts WHERE user_id = %s AND id = %s", (tenant_id, contact_id))
    contact = cur.fetchone()
    name = (message.sender_name or (contact or {}).get("name") or message.external_sender_id)[:200]

    # The sender's newest ticket that is not closed (one index range: the contact's tickets, newest first).
    cur.execute(
        """SELECT id, status, reference FROM support_tickets
        WHERE user_id = %s AND contact_id = %s AND channel = 'social' AND status <> 'closed'
        ORDER BY created_at DESC, id DESC LIMIT 1 FOR NO KEY UPDATE""",
        (tenant_id, contact_id),
    )
    ticket = cur.fetchone()
    conversation_id = None
    if ticket is None:
        principal = Principal(tenant_id=tenant_id, role=Role.AGENT, subject=f"channel:{channel_id}")
        _admit_ticket(cur, principal)
        agent = routing.pick_agent(cur, principal, category=None, channel="social", custom_fields={})
        cur.execute(
            """INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, description, channel,
                contact_id, assigned_agent_id)
            VALUES (%s, %s, %s, %s, %s, 'social', %s, %s) RETURNING id, reference""",
            (tenant_id, name, NO_EMAIL, subject_of(message.text), message.text, contact_id, agent),
        )
        ticket = found(cur.fetchone(), "ticket")
    else:
        cur.execute(
            """INSERT INTO ticket_conversations (ticket_id, user_id, sender_type, sender_name, message, is_internal,
                created_at, updated_at)
            SELECT %s, %s, %s, %s, %s, false, stamp.at, stamp.at FROM (SELECT clock_timestamp() AS at) stamp
            RETURNING id""",
            (ticket["id"], tenant_id, SenderType.CUSTOMER, name, message.text),
        )
        conversation_id = found(cur.fetchone(), "conversation")["id"]
        if ticket["status"] in (TicketStatus.WAITING_CUSTOMER, TicketStatus.RESOLVED):
            cur.execute(
                """UPDATE support_tickets SET status = 'open', resolved_at = NULL, resolution_time = NULL
                WHERE user_id = %s AND id = %s""",
                (tenant_id, ticket["id"]),
            )
    cur.execute(
        """UPDATE channel_messages SET ticket_id = %s, conversation_id = %s
        WHERE user_id = %s AND channel_id = %s AND external_message_id = %s""",
        (ticket["id"], conversation_id, tenant_id, channel_id, message.external_message_id),
    )
    delivery = ChannelDelivery.model_validate(
        {
            "ticket_id": ticket["id"],
            "reference": ticket["reference"],
            "conversation_id": conversation_id,
            "created_ticket": conversation_id is None,
            "duplicate": False,
        }
    )
    return delivery, True
