"""A chat that waits too long becomes a ticket (issue 18, "Routing"): the every-minute sweep's step
`expire_waiting_chats(now)`.

A chat still `waiting` for an agent `chatWaitLimitSeconds` after it started (the tenant's routing settings; null: never)
is made into a ticket of channel `chat` with its messages (support.services.tickets.chat_to_ticket, the console's
"Make a ticket"), routed as every new ticket is, and ended. Its visitor hears `chat.ended`, then `chat.ticketed` (the
session's and the ticket's ids, the ticket's reference, and `emailRequested` when they left no email: the widget then
offers to leave one, the WebSocket action `leaveEmail`); the staff hear the queue change in the next staff broadcast.

Across tenants as the analytics job does: one look at which tenants have a chat waiting since before the shortest
limit (routing_tenants_waiting, SECURITY DEFINER owned by the lister role: ids only), then one transaction per tenant
under its own row-level security, so one tenant's failure is logged and leaves the others done. Per tenant, under its
chat queue lock (no assignment races the expiry: a chat is either assigned or made a ticket, never both), at most
EXPIRE_BATCH chats per run, oldest first; each takes its chat-ticket lock, then its row, as a "Make a ticket" does (so
the two never make two tickets). Run twice, a second run finds nothing waiting: at most one ticket per chat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from support.auth import Principal, Role
from support.db import tenant_transaction
from support.db.connection import anonymous_transaction
from support.db.statements import lock_for_tenant
from support.errors import Conflict, NotFound
from support.models.base import Record
from support.models.chat import ChatSession
from support.models.settings import MIN_CHAT_WAIT_LIMIT_SECONDS
from support.models.tickets import ChatTicketCreate
from support.observability import logger
from support.services import automations, broadcasts, chat, email_outbox, settings, tickets
from support.services.connections import Caller, Outbox

EXPIRE_BATCH = 200  # chats per tenant per run: the next run, a minute later, takes the rest


class ChatTicketed(Record):
    """chat.ticketed: the visitor's chat waited too long and became a ticket."""

    session_id: UUID
    ticket_id: UUID
    reference: str | None
    email_requested: bool


@dataclass
class ExpiryReport:
    tenants: int = 0
    ticketed: list[UUID] = field(default_factory=list)  # the sessions made into tickets
    failed: dict[UUID, str] = field(default_factory=dict)


def expire_waiting_chats(now: datetime) -> ExpiryReport:
    """The sweep step: every tenant's chats waiting longer than its limit at `now` become tickets (see the module)."""
    report = ExpiryReport()
    with anonymous_transaction() as cur:
        cur.execute(
            "SELECT t FROM routing_tenants_waiting(%s) AS t ORDER BY t",
            (now - timedelta(seconds=MIN_CHAT_WAIT_LIMIT_SECONDS),),
        )
        tenants = [row["t"] for row in cur.fetchall()]
    report.tenants = len(tenants)
    for tenant_id in tenants:
        try:
            report.ticketed += expire_tenant_chats(tenant_id, now)
        except Exception as exc:
            logger.exception("waiting chats of a tenant were not expired", extra={"tenant_id": str(tenant_id)})
            report.failed[tenant_id] = repr(exc)
    return report


_END = """SELECT f.outcome, (f.session).*, f.agent_name AS assigned_agent_name, f.connection_ids, f.start_broadcast
FROM chat_end(%s, %s, 'system', NULL, NULL, NULL, false, %s) f"""  # ended_by 'system': the desk ended it


def expire_tenant_chats(tenant_id: UUID, now: datetime) -> list[UUID]:
    """One tenant's expiry, in one transaction (see the module). Answers the sessions made into tickets."""
    principal = Principal(tenant_id=tenant_id, role=Role.ADMIN, subject="routing")
    outbox = Outbox(tenant_id)
    done: list[UUID] = []
    with tenant_transaction(tenant_id) as cur:
        limit = settings.routing_settings(cur, tenant_id).chat_wait_limit_seconds
        if limit is None:
            return done
        chat.lock_queue(cur, principal)
        cur.execute(
            """SELECT id FROM live_chat_sessions WHERE user_id = %s AND status = 'waiting' AND created_at <= %s
            ORDER BY created_at, id LIMIT %s""",
            (tenant_id, now - timedelta(seconds=limit), EXPIRE_BATCH),
        )
        starts = False
        for session_id in [row["id"] for row in cur.fetchall()]:
            lock_for_tenant(cur, tenant_id, f"chat-ticket:{session_id}")
            cur.execute(
                "SELECT visitor_email FROM live_chat_sessions WHERE user_id = %s AND id = %s FOR UPDATE",
                (tenant_id, session_id),
            )
            locked = cur.fetchone()
            assert locked is not None  # waiting under the queue lock: nothing else ends it
            ticket, _ = tickets.chat_to_ticket(cur, principal, session_id, ChatTicketCreate(), without_email=True)
            cur.execute(_END, (tenant_id, session_id, broadcasts.STALE_AFTER_SECONDS))
            ended = [row for row in cur.fetchall() if row["outcome"] == "ended"]
            [row] = ended
            session = ChatSession.model_validate(row)
            connections = _visitor_connections(cur, tenant_id, session.visitor_id)
            notice = ChatTicketed(
                session_id=session_id,
                ticket_id=ticket.id,
                reference=ticket.reference,
                email_requested=ticket.customer_email == tickets.NO_CHAT_EMAIL,
            )
            outbox.tell(connections, "chat.ended", session)  # first: the widget then shows what became of it
            outbox.tell(connections, "chat.ticketed", notice)
            starts = starts or bool(row["start_broadcast"])
            done.append(session_id)
        if starts:
            broadcasts.start_after(outbox)
        if done:  # the tickets made and the chats ended: their events run now, not at the next sweep
            automations.start_after(outbox, automations.pending(cur, tenant_id))
    outbox.send()
    return done


def _visitor_connections(cur: Any, tenant_id: UUID, visitor_id: str) -> list[str]:
    cur.execute(
        "SELECT connection_id FROM ws_connections WHERE user_id = %s AND role = 'visitor' AND visitor_id = %s",
        (tenant_id, visitor_id),
    )
    return [row["connection_id"] for row in cur.fetchall()]


def leave_email(principal: Principal, session_id: UUID, email: str, *, caller: Caller | None = None) -> ChatTicketed:
    """leaveEmail: the visitor of a chat that became a ticket without an email gives one. The ticket's placeholder
    (NO_CHAT_EMAIL) becomes it, the contact learns it (unless another contact owns it), and the customer is told the
    ticket was received (the email outbox, when the tenant sends mail). Answers chat.ticketed, `emailRequested`
    false. Another visitor's session, or one that is no ticket, is a 404; a ticket with another email already, 409;
    the same email again is answered as the first time (a retry)."""
    outbox = Outbox(principal.tenant_id, caller)
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            """SELECT s.visitor_id, t.id AS ticket_id, t.reference, t.customer_email, t.contact_id
            FROM live_chat_sessions s JOIN support_tickets t ON t.user_id = s.user_id AND t.id = s.ticket_id
            WHERE s.user_id = %s AND s.id = %s FOR NO KEY UPDATE OF t""",
            (principal.tenant_id, session_id),
        )
        row = cur.fetchone()
        if row is None or row["visitor_id"] != principal.visitor_id:
            raise NotFound("chat session not found, or it is no ticket")
        if row["customer_email"] not in (tickets.NO_CHAT_EMAIL, email):
            raise Conflict("this ticket has an email address already")
        if row["customer_email"] == tickets.NO_CHAT_EMAIL:
            cur.execute(
                "UPDATE support_tickets SET customer_email = %s WHERE user_id = %s AND id = %s",
                (email, principal.tenant_id, row["ticket_id"]),
            )
            if row["contact_id"] is not None:
                cur.execute(
                    """INSERT INTO contact_identities (user_id, kind, scope, value, contact_id)
                    SELECT %(tenant)s, 'email', '', v.value, %(contact)s
                    FROM (SELECT contact_normalise('email', %(email)s) AS value) v WHERE v.value IS NOT NULL
                    ON CONFLICT (user_id, kind, scope, value) DO NOTHING""",
                    {"tenant": principal.tenant_id, "contact": row["contact_id"], "email": email},
                )
            email_outbox.notify(cur, principal.tenant_id, row["ticket_id"], email_outbox.RECEIVED)
    reference = f"#{row['reference']}" if row["reference"] is not None else None  # as Ticket writes it
    answer = ChatTicketed(session_id=session_id, ticket_id=row["ticket_id"], reference=reference, email_requested=False)
    outbox.answer("chat.ticketed", answer)
    outbox.send()
    return answer
