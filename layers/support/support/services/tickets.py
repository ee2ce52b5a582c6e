"""Tickets: the lifecycle (create, update, assign, resolve, close), conversation threads, phone calls and feedback.

Channel and reference (sql/0025). A ticket's `channel` is set when it is created and never changes. Its reference
(`#1001`, `#1002`, ... per tenant) is given by the database on insert (sql/definitions/ticket_references.sql),
whatever path creates the ticket, from a counter row of the tenant locked until the create commits: a tenant's
creates are numbered one at a time, which queues them no more than their row of the day's totals already does.

Calls. A phone call is an entry of the ticket's thread of kind `call` (direction, caller number, duration, the
agent who logged it; its notes are the entry's message), internal like a note: it is the desk's record of a
conversation the customer was part of, never a message sent to them. A ticket created with `channel: phone` and a
`call` logs that call in the same transaction.

A chat made into a ticket (ticket_from_chat) is a ticket of channel `chat` whose thread is the chat's messages; the
session keeps the ticket's id (sql/0031), so it is made once per session.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import errors, sql
from psycopg.types.json import Jsonb

from support.auth import Principal, Role
from support.db import tenant_transaction
from support.db.connection import Cursor
from support.db.statements import equals_placeholders, lock_for_tenant, oldest_first
from support.errors import Conflict, Forbidden, InvalidInput, NotFound, QuotaExceeded, found
from support.models.tickets import (
    CallCreate,
    ChatTicketCreate,
    Conversation,
    ConversationCreate,
    ConversationKind,
    Feedback,
    FeedbackCreate,
    SenderType,
    Ticket,
    TicketChannel,
    TicketCreate,
    TicketQuery,
    TicketStatus,
    TicketUpdate,
    reference_number,
)
from support.pagination import Page, decode_cursor, page_of
from support.services import attachments, email_outbox, routing, sla, webhooks

_TICKET_FIELDS = """id, user_id, customer_name, customer_email, customer_phone, subject, description, category,
    priority, status, assigned_agent_id, created_at, updated_at, resolved_at, first_response_time,
    resolution_time, custom_fields, contact_id, channel, reference"""
# The ticket's columns, and its SLA due times and state (an expression: support.services.sla)
TICKET_COLUMNS = f"{_TICKET_FIELDS}, {sla.TICKET_SLA_COLUMNS}"
# The names TICKET_COLUMNS answers (the dashboard's recent tickets answer the same: a test compares them)
TICKET_COLUMN_NAMES = [name.strip() for name in _TICKET_FIELDS.split(",")] + list(sla.TICKET_SLA_COLUMN_NAMES)
CONVERSATION_COLUMNS = """id, ticket_id, user_id, kind, sender_type, sender_name, sender_email, message, is_internal,
    attachments, call_direction, caller_number, call_duration_seconds, agent_id, created_at, updated_at"""
FEEDBACK_COLUMNS = """id, ticket_id, user_id, rating, recommendation, feedback, resolved_issue, agent_rating,
    response_time_rating, communication_rating, created_at"""

# Whole seconds from creation until now, as the seed's durations are (`averageResolutionTime: 28800`).
SECONDS_SINCE_CREATED = "greatest(0, round(extract(epoch FROM now() - created_at)))::integer"
# Search runs in the database function search_ticket_ids (sql/0003_ticket_search_index.sql), which can use
# the full-text index that row-level security keeps away from ordinary queries. Its ids are then read back
# from support_tickets under the caller's own RLS.
SEARCH_MATCHES = """id IN (SELECT ticket_id FROM search_ticket_ids(
    %(search)s, %(limit)s, %(after_at)s, %(after_id)s, %(status)s, %(priority)s, %(assigned_agent_id)s,
    %(category)s, %(channel)s))"""
FINISHED = (TicketStatus.RESOLVED, TicketStatus.CLOSED)

MAX_TICKETS_PER_TENANT = 1_000_000  # the product's "Ticket Volume: up to 1,000,000 tickets per user" (the tenant)
# Categories are for grouping and routing, not free-form tags: each one in use is a group of the dashboard's
# running totals (and a key of its ticketsByCategory), so a tenant may use at most this many at once.
MAX_CATEGORIES_PER_TENANT = 200
# Creates far from the ticket cap take no lock; within this many of it they queue per tenant, so concurrent
# creates (at most a few hundred in flight per tenant: the functions' concurrency) cannot overshoot it.
TICKET_CAP_MARGIN = 1_000


def _ticket(row: dict[str, Any] | None) -> Ticket:
    return Ticket.model_validate(found(row, "ticket"))


def _lock_ticket(cur: Cursor, principal: Principal, ticket_id: UUID) -> dict[str, Any]:
    cur.execute(
        f"SELECT {TICKET_COLUMNS} FROM support_tickets WHERE user_id = %s AND id = %s FOR UPDATE",  # noqa: S608
        (principal.tenant_id, ticket_id),
    )
    return found(cur.fetchone(), "ticket")


def _require_agent(cur: Cursor, principal: Principal, agent_id: UUID) -> None:
    cur.execute("SELECT 1 FROM support_agents WHERE user_id = %s AND id = %s", (principal.tenant_id, agent_id))
    found(cur.fetchone(), "agent")


def _ticket_count(cur: Cursor, principal: Principal) -> int:
    # From the running totals (a few hundred rows at most), never a count of the tickets themselves.
    cur.execute("SELECT coalesce(sum(tickets), 0) AS n FROM ticket_totals WHERE user_id = %s", (principal.tenant_id,))
    row = cur.fetchone()
    return int(row["n"]) if row else 0


def _admit_ticket(cur: Cursor, principal: Principal) -> None:
    """The 1,000,000-ticket cap: 409 quota_exceeded for the ticket over it."""
    count = _ticket_count(cur, principal)
    if count >= MAX_TICKETS_PER_TENANT - TICKET_CAP_MARGIN:
        lock_for_tenant(cur, principal.tenant_id, "tickets")
        count = _ticket_count(cur, principal)  # a new statement: sees every create committed before the lock
    if count >= MAX_TICKETS_PER_TENANT:
        raise QuotaExceeded(
            f"a tenant may have at most {MAX_TICKETS_PER_TENANT:,} tickets",
            details=[{"field": "tickets", "message": f"{count:,} tickets exist"}],
        )


def _category_in_use(cur: Cursor, principal: Principal, category: str) -> bool:
    in_use = "SELECT 1 FROM ticket_totals WHERE user_id = %s AND category = %s LIMIT 1"
    cur.execute(in_use, (principal.tenant_id, category))
    return cur.fetchone() is not None


def _admit_category(cur: Cursor, principal: Principal, category: str | None) -> None:
    """A category already in use is always fine; a new one only while fewer than the cap are in use."""
    if category is None or _category_in_use(cur, principal, category):
        return
    lock_for_tenant(cur, principal.tenant_id, "categories")
    cur.execute(
        "SELECT count(DISTINCT category) AS n FROM ticket_totals WHERE user_id = %s AND category IS NOT NULL",
        (principal.tenant_id,),
    )
    row = cur.fetchone()
    if row is not None and row["n"] >= MAX_CATEGORIES_PER_TENANT:
        raise QuotaExceeded(
            f"a tenant may use at most {MAX_CATEGORIES_PER_TENANT} categories at once; reuse one or retire one",
            details=[{"field": "body.category", "message": "a new category over the cap"}],
        )


def _reference_match(cur: Cursor, principal: Principal, search: str) -> int | None:
    """The reference a search names: `#1042` always (found or not); `1042` only if a ticket has that reference, so
    that a number that is no reference (an order number in a description) is still searched as text."""
    number = reference_number(search)
    if number is None or search.lstrip().startswith("#"):
        return number
    cur.execute("SELECT 1 FROM support_tickets WHERE user_id = %s AND reference = %s", (principal.tenant_id, number))
    return number if cur.fetchone() is not None else None


def list_tickets(principal: Principal, query: TicketQuery) -> Page[Ticket]:
    """getTickets: newest first, filtered, keyset-paginated. A search that is a ticket's reference (`#1042`, or
    `1042` when a ticket has it) answers that ticket only (with the other filters), by the reference's index."""
    filters = {
        "status": query.status,
        "priority": query.priority,
        "assigned_agent_id": query.assigned_agent_id,
        "category": query.category,
        "channel": query.channel,
    }
    after_at, after_id = decode_cursor(query.cursor) if query.cursor else (None, None)
    params: dict[str, Any] = {
        **filters,
        "tenant": principal.tenant_id,
        "limit": query.limit + 1,
        "search": query.search,
        "after_at": after_at,
        "after_id": after_id,
    }
    conditions: list[sql.Composable] = [sql.SQL("user_id = %(tenant)s")]
    conditions += equals_placeholders(column for column, value in filters.items() if value is not None)
    if query.cursor:
        conditions.append(sql.SQL("(created_at, id) < (%(after_at)s, %(after_id)s)"))
    if query.sla_state is not None:
        params["sla_state"] = query.sla_state.value
        conditions.append(sql.SQL(f"({sla.SLA_STATE}) = %(sla_state)s"))
    with tenant_transaction(principal.tenant_id) as cur:
        if query.search:
            params["reference"] = _reference_match(cur, principal, query.search)
            if params["reference"] is not None:
                conditions.append(sql.SQL("reference = %(reference)s"))
            else:
                conditions.append(sql.SQL(SEARCH_MATCHES))
        statement = sql.SQL(
            "SELECT {columns} FROM support_tickets WHERE {conditions} ORDER BY created_at DESC, id DESC LIMIT %(limit)s"
        ).format(columns=sql.SQL(TICKET_COLUMNS), conditions=sql.SQL(" AND ").join(conditions))
        cur.execute(statement, params)
        rows = cur.fetchall()
    return page_of(rows, query.limit, Ticket.model_validate)


# Where a public path keeps a category the tenant does not use yet (create_ticket with `channel`).
REQUESTED_CATEGORY_FIELD = "requestedCategory"


def create_ticket(principal: Principal, data: TicketCreate, *, channel: TicketChannel | None = None) -> Ticket:
    """createTicket. Over the ticket cap, or a new category over the category cap: 409 quota_exceeded. The database
    gives the reference; a phone ticket's `call` is logged in the same transaction.

    `channel` is given by a path that is not staff's (the widget's web form), and is then the ticket's channel
    whatever `data.channel` says. Such a path may use only a category the tenant already uses: a new one is kept in
    `customFields.requestedCategory` instead, so that strangers cannot fill the tenant's categories cap."""
    with tenant_transaction(principal.tenant_id) as cur:
        if channel is not None and data.category is not None and not _category_in_use(cur, principal, data.category):
            fields = {**data.custom_fields, REQUESTED_CATEGORY_FIELD: data.category}
            data = data.model_copy(update={"category": None, "custom_fields": fields})
        ticket = _insert_ticket(cur, principal, data, TicketChannel(channel or data.channel))
        if data.call is not None:
            _insert_call(cur, principal, ticket.id, data.call)
        return ticket


def _insert_ticket(
    cur: Cursor,
    principal: Principal,
    data: TicketCreate,
    channel: TicketChannel,
    contact_id: UUID | None = None,
    agent_id: UUID | None = None,
) -> Ticket:
    """A new ticket in the open transaction, whatever path makes it: the caps checked, the contact linked (the one
    given, else found or made by email), the reference given by the database, the customer told (the outbox), and the
    ticket routed: inserted with the agent the router picked (support.services.routing.pick_agent, after the caps,
    whose category lock comes before the routing lock in every path), unless `agent_id` names its agent (a chat's)."""
    _admit_ticket(cur, principal)
    _admit_category(cur, principal, data.category)
    agent = agent_id or routing.pick_agent(
        cur, principal, category=data.category, channel=channel, custom_fields=data.custom_fields
    )
    cur.execute(
        f"""INSERT INTO support_tickets (user_id, customer_name, customer_email, customer_phone, subject,
            description, category, priority, custom_fields, channel, contact_id, assigned_agent_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, contact_for(%s, %s, %s, %s, NULL)), %s)
        RETURNING {TICKET_COLUMNS}""",  # noqa: S608
        (
            principal.tenant_id,
            data.customer_name,
            str(data.customer_email),
            data.customer_phone,
            data.subject,
            data.description,
            data.category,
            data.priority,
            Jsonb(data.custom_fields),
            channel,
            contact_id,
            # contact_for: the customer's contact, found or made by email (sql/definitions/contacts.sql)
            principal.tenant_id,
            data.customer_name,
            str(data.customer_email),
            data.customer_phone,
            agent,
        ),
    )
    ticket = _ticket(cur.fetchone())
    email_outbox.notify(cur, principal.tenant_id, ticket.id, email_outbox.RECEIVED)
    return ticket


def _read_ticket(cur: Cursor, principal: Principal, ticket_id: UUID) -> Ticket:
    cur.execute(
        f"SELECT {TICKET_COLUMNS} FROM support_tickets WHERE user_id = %s AND id = %s",  # noqa: S608
        (principal.tenant_id, ticket_id),
    )
    return _ticket(cur.fetchone())


# The fields whose change can free an agent or change who may take the ticket.
ROUTING_FIELDS = frozenset({"status", "assigned_agent_id", "category", "custom_fields"})


def _after_change(cur: Cursor, principal: Principal, before: dict[str, Any], after: Ticket) -> Ticket:
    """Routing after a ticket change (with the routing lock taken before the write: routing.lock_for_change): a ticket
    left without an agent is routed, and an agent it freed (a resolve, a close, a reassignment) takes the oldest
    waiting tickets they can (the whole queue's drain, as the freed capacity may suit any ticket)."""
    unrouted = after.assigned_agent_id is None and after.status not in FINISHED
    if unrouted and routing.route_ticket(cur, principal, after.id) is not None:
        after = _read_ticket(cur, principal, after.id)
    freed = before["assigned_agent_id"] is not None and before["status"] not in FINISHED
    if freed and (after.assigned_agent_id != before["assigned_agent_id"] or after.status in FINISHED):
        routing.drain_tickets(cur, principal)
    return after


def get_ticket(principal: Principal, ticket_id: UUID) -> Ticket:
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            f"SELECT {TICKET_COLUMNS} FROM support_tickets WHERE user_id = %s AND id = %s",  # noqa: S608
            (principal.tenant_id, ticket_id),
        )
        return _ticket(cur.fetchone())


def update_ticket(principal: Principal, ticket_id: UUID, changes: TicketUpdate) -> Ticket:
    """updateTicket. Moving to `resolved` or `closed` records when and how long it took; reopening clears it."""
    fields = changes.model_dump(exclude_unset=True)
    with tenant_transaction(principal.tenant_id) as cur:
        current = _lock_ticket(cur, principal, ticket_id)
        if current["status"] == TicketStatus.CLOSED:
            raise Conflict("a closed ticket cannot be changed")
        for not_nullable in ("status", "priority"):  # null means "leave as is" for these
            if fields.get(not_nullable, "") is None:
                del fields[not_nullable]
        if not fields:
            return Ticket.model_validate(current)
        if fields.get("assigned_agent_id") is not None:
            _require_agent(cur, principal, fields["assigned_agent_id"])
        routes = not ROUTING_FIELDS.isdisjoint(fields)
        if routes:
            routing.lock_for_change(cur, principal)
        if fields.get("category") is not None and fields["category"] != current["category"]:
            _admit_category(cur, principal, fields["category"])
        assignments = equals_placeholders(fields)
        new_status = fields.get("status")
        if new_status in FINISHED:
            assignments.append(sql.SQL("resolved_at = coalesce(resolved_at, now())"))
            assignments.append(
                sql.SQL("resolution_time = coalesce(resolution_time, {})").format(sql.SQL(SECONDS_SINCE_CREATED))
            )
        elif new_status is not None:
            assignments.append(sql.SQL("resolved_at = NULL, resolution_time = NULL"))
        params = {**fields, "tenant": principal.tenant_id, "id": ticket_id}
        if "custom_fields" in params:
            params["custom_fields"] = Jsonb(params["custom_fields"] or {})
        cur.execute(
            sql.SQL(
                "UPDATE support_tickets SET {assignments} WHERE user_id = %(tenant)s AND id = %(id)s "
                "RETURNING {columns}"
            ).format(assignments=sql.SQL(", ").join(assignments), columns=sql.SQL(TICKET_COLUMNS)),
            params,
        )
        updated = _ticket(cur.fetchone())
        email_outbox.notify_status(cur, principal.tenant_id, ticket_id, current["status"], new_status)
        return _after_change(cur, principal, current, updated) if routes else updated


def close_ticket(principal: Principal, ticket_id: UUID) -> Ticket:
    """closeTicket: `closed`, keeping resolved_at and resolution_time if the ticket was resolved before."""
    with tenant_transaction(principal.tenant_id) as cur:
        current = _lock_ticket(cur, principal, ticket_id)
        if current["status"] == TicketStatus.CLOSED:
            raise Conflict("the ticket is already closed")
        routing.lock_for_change(cur, principal)
        cur.execute(
            f"""UPDATE support_tickets SET status = 'closed', resolved_at = coalesce(resolved_at, now()),
                resolution_time = coalesce(resolution_time, {SECONDS_SINCE_CREATED})
            WHERE user_id = %s AND id = %s RETURNING {TICKET_COLUMNS}""",  # noqa: S608
            (principal.tenant_id, ticket_id),
        )
        closed = _ticket(cur.fetchone())
        email_outbox.notify(cur, principal.tenant_id, ticket_id, email_outbox.CLOSED)
        return _after_change(cur, principal, current, closed)


def assign_ticket(principal: Principal, ticket_id: UUID, agent_id: UUID) -> Ticket:
    """assignTicketToAgent: the agent must be the tenant's; the ticket moves to `in_progress`."""
    with tenant_transaction(principal.tenant_id) as cur:
        current = _lock_ticket(cur, principal, ticket_id)
        if current["status"] == TicketStatus.CLOSED:
            raise Conflict("a closed ticket cannot be assigned")
        _require_agent(cur, principal, agent_id)
        routing.lock_for_change(cur, principal)
        cur.execute(
            f"""UPDATE support_tickets SET assigned_agent_id = %s, status = 'in_progress',
                resolved_at = NULL, resolution_time = NULL
            WHERE user_id = %s AND id = %s RETURNING {TICKET_COLUMNS}""",  # noqa: S608
            (agent_id, principal.tenant_id, ticket_id),
        )
        return _after_change(cur, principal, current, _ticket(cur.fetchone()))


# Row locks for a check of the ticket's status that must still hold at commit. FOR SHARE lets feedback and
# other readers in together but waits for a writer (a reopen, a close) and then reads the ticket as it
# committed. A message takes FOR NO KEY UPDATE: it may go on to stamp the first response on the ticket,
# and two FOR SHARE holders upgrading together would deadlock; it also orders the thread (see below).
NO_LOCK = sql.SQL("")
SHARE = sql.SQL("FOR SHARE")
NO_KEY_UPDATE = sql.SQL("FOR NO KEY UPDATE")


def _require_ticket(
    cur: Cursor, principal: Principal, ticket_id: UUID, lock: sql.Composable = NO_LOCK
) -> dict[str, Any]:
    cur.execute(
        sql.SQL("SELECT id, status FROM support_tickets WHERE user_id = %s AND id = %s {}").format(lock),
        (principal.tenant_id, ticket_id),
    )
    return found(cur.fetchone(), "ticket")


def list_conversations(
    principal: Principal, ticket_id: UUID, *, limit: int, cursor: str | None = None
) -> Page[Conversation]:
    """getTicketConversations: the thread, oldest first."""
    with tenant_transaction(principal.tenant_id) as cur:
        _require_ticket(cur, principal, ticket_id)
        rows = oldest_first(
            cur,
            principal.tenant_id,
            "ticket_conversations",
            CONVERSATION_COLUMNS,
            ("ticket_id", ticket_id),
            limit=limit,
            cursor=cursor,
        )
    return page_of(rows, limit, Conversation.model_validate)


def add_conversation(principal: Principal, ticket_id: UUID, data: ConversationCreate) -> Conversation:
    """addTicketConversation. The first public agent reply records the ticket's first response time, once.
    Staff write as `agent`, in public or as an internal note (`isInternal`); another sender type is a 403: the
    customer's words and the system's entries are not the staff's to write.

    The message is stamped with a clock read under the ticket's lock, not the transaction's start time, so
    messages are stamped in the order they commit and a reader paging the thread oldest first by
    (created_at, id) never finds one appear behind its cursor."""
    principal.require_own_sender_type(data.sender_type)
    # Uploaded files (`attachmentIds`) are checked with S3 before the transaction and claimed in it
    # (support.services.attachments): the message is stored with all of them or not at all.
    if data.attachment_ids:
        with tenant_transaction(principal.tenant_id) as cur:
            _require_ticket(cur, principal, ticket_id)
    prepared = attachments.prepare_claim(principal, data.attachment_ids, ticket_id=ticket_id)
    with attachments.discarded_on_failure(prepared), tenant_transaction(principal.tenant_id) as cur:
        ticket = _require_ticket(cur, principal, ticket_id, NO_KEY_UPDATE)
        if ticket["status"] == TicketStatus.CLOSED:
            raise Conflict("a closed ticket takes no new messages")
        cur.execute(
            f"""INSERT INTO ticket_conversations (ticket_id, user_id, sender_type, sender_name, sender_email,
                message, is_internal, attachments, created_at, updated_at)
            SELECT %s, %s, %s, %s, %s, %s, %s, %s, stamp.at, stamp.at FROM (SELECT clock_timestamp() AS at) stamp
            RETURNING {CONVERSATION_COLUMNS}""",  # noqa: S608
            (
                ticket_id,
                principal.tenant_id,
                data.sender_type,
                data.sender_name,
                str(data.sender_email) if data.sender_email else None,
                data.message,
                data.is_internal,
                Jsonb([a.model_dump(mode="json", by_alias=True) for a in data.attachments] + prepared.summaries),
            ),
        )
        created = cur.fetchone()
        assert created is not None  # an INSERT ... RETURNING answers its row
        attachments.claim_for_conversation(cur, prepared, ticket_id, created["id"])
        email_outbox.notify_reply(cur, principal.tenant_id, created)
        if data.sender_type is SenderType.AGENT and not data.is_internal:
            cur.execute(
                f"""UPDATE support_tickets SET first_response_time = {SECONDS_SINCE_CREATED}
                WHERE user_id = %s AND id = %s AND first_response_time IS NULL""",  # noqa: S608
                (principal.tenant_id, ticket_id),
            )
    return Conversation.model_validate(created)


def _insert_call(cur: Cursor, principal: Principal, ticket_id: UUID, call: CallCreate) -> dict[str, Any]:
    """The call's entry in the thread, stamped like a message (see add_conversation), by the caller's agent (an
    admin without one logs it as "Admin", with no agent)."""
    agent = None
    if principal.agent_id is not None:
        cur.execute(
            "SELECT id, agent_name FROM support_agents WHERE user_id = %s AND id = %s",
            (principal.tenant_id, principal.agent_id),
        )
        agent = cur.fetchone()
    cur.execute(
        f"""INSERT INTO ticket_conversations (ticket_id, user_id, kind, sender_type, sender_name, message,
            is_internal, call_direction, caller_number, call_duration_seconds, agent_id, created_at, updated_at)
        SELECT %s, %s, %s, %s, %s, %s, true, %s, %s, %s, %s, stamp.at, stamp.at
        FROM (SELECT clock_timestamp() AS at) stamp
        RETURNING {CONVERSATION_COLUMNS}""",  # noqa: S608
        (
            ticket_id,
            principal.tenant_id,
            ConversationKind.CALL,
            SenderType.AGENT,
            agent["agent_name"] if agent else principal.role.value.capitalize(),
            call.notes or _call_summary(call),
            call.direction,
            call.caller_number,
            call.duration_seconds,
            agent["id"] if agent else None,
        ),
    )
    return found(cur.fetchone(), "call")


def _call_summary(call: CallCreate) -> str:
    """The entry's text for a call logged without notes: what the thread shows of it."""
    minutes, seconds = divmod(call.duration_seconds, 60)
    number = f" ({call.caller_number})" if call.caller_number else ""
    return f"{call.direction.value.capitalize()} call{number}, {minutes}:{seconds:02d}"


def log_call(principal: Principal, ticket_id: UUID, call: CallCreate) -> Conversation:
    """A phone call on a ticket: an internal entry of kind `call` in its thread (see the module's docstring). A
    closed ticket takes none (409), as it takes no message."""
    with tenant_transaction(principal.tenant_id) as cur:
        ticket = _require_ticket(cur, principal, ticket_id, NO_KEY_UPDATE)
        if ticket["status"] == TicketStatus.CLOSED:
            raise Conflict("a closed ticket takes no new calls")
        created = _insert_call(cur, principal, ticket_id, call)
    return Conversation.model_validate(created)


def add_feedback(principal: Principal, ticket_id: UUID, data: FeedbackCreate) -> Feedback:
    """Customer satisfaction for a resolved or closed ticket, once per ticket."""
    with tenant_transaction(principal.tenant_id) as cur:
        ticket = _require_ticket(cur, principal, ticket_id, SHARE)
        if ticket["status"] not in FINISHED:
            raise Conflict("feedback is taken only for a resolved or closed ticket")
        try:
            cur.execute(
                f"""INSERT INTO ticket_feedback (ticket_id, user_id, rating, recommendation, feedback,
                    resolved_issue, agent_rating, response_time_rating, communication_rating)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {FEEDBACK_COLUMNS}""",  # noqa: S608
                (
                    ticket_id,
                    principal.tenant_id,
                    data.rating,
                    data.recommendation,
                    data.feedback,
                    data.resolved_issue,
                    data.agent_rating,
                    data.response_time_rating,
                    data.communication_rating,
                ),
            )
        except errors.UniqueViolation as exc:
            raise Conflict("this ticket already has feedback") from exc
        return Feedback.model_validate(cur.fetchone())


def get_feedback(principal: Principal, ticket_id: UUID) -> Feedback:
    with tenant_transaction(principal.tenant_id) as cur:
        _require_ticket(cur, principal, ticket_id)
        cur.execute(
            f"SELECT {FEEDBACK_COLUMNS} FROM ticket_feedback WHERE user_id = %s AND ticket_id = %s",  # noqa: S608
            (principal.tenant_id, ticket_id),
        )
        row = cur.fetchone()
    if row is None:
        raise NotFound("this ticket has no feedback yet")
    return Feedback.model_validate(row)


# A ticket's subject made from the visitor's first words: at most this many characters, cut at a word.
CHAT_SUBJECT_CHARS = 80
# A chat message's attachment is named in the ticket's entry (its URL below the text) while the text leaves room
# (ticket_conversations.message is at most 51,200 bytes, as a chat message is).
ATTACHMENT_NOTE_ROOM = 51_200 - 2_100


def _subject_from(words: str | None, visitor_name: str | None) -> str:
    text = " ".join((words or "").split())
    if not text:
        return f"Chat with {visitor_name or 'a visitor'}"
    if len(text) <= CHAT_SUBJECT_CHARS:
        return text
    cut = text[: CHAT_SUBJECT_CHARS - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"


def ticket_from_chat(principal: Principal, session_id: UUID, data: ChatTicketCreate) -> tuple[Ticket, bool]:
    """The console's "Make a ticket": a ticket of channel `chat` with the visitor's name and email, the session's
    contact, the chat's messages as its thread (same order, times and sender types; an attachment's URL below its
    text) and the session's agent. Answers (the ticket, True) when made now, (the ticket, False) when the session
    already has one: at most one per session, under any concurrency (below). Staff only (a visitor: 403); a visitor
    who gave no email needs `customerEmail` (422), a ticket always has one.

    Locks. The calls for one session queue on a lock of their own (a transaction-level advisory lock keyed by the
    session), taken before the session is read, so the second reads the `ticket_id` the first committed. The session
    row is not locked until the last statement: the chat carries on meanwhile (a new message's foreign key check
    takes FOR KEY SHARE on it), and a contact merge, which locks the contacts and then moves their sessions, never
    waits on a make that waits on it. The ticket's contact is the session's as it is when the ticket is inserted,
    read FOR KEY SHARE through merged_into (one hop: a merge keeps chains flat), as contact_for reads it; the
    ticket's email joins that contact unless another contact owns it."""
    if principal.role is Role.VISITOR:
        raise Forbidden("only the desk's staff make tickets from chats")
    with tenant_transaction(principal.tenant_id) as cur:
        lock_for_tenant(cur, principal.tenant_id, f"chat-ticket:{session_id}")
        ticket, made = chat_to_ticket(cur, principal, session_id, data)
    if made:
        webhooks.kick(principal.tenant_id)  # committed: its ticket.created leaves now (the chat function kicks none)
    return ticket, made


# The customer email of a ticket made from a chat whose visitor left none (an expired chat: support.services.
# chat_expiry): RFC 2606's `.invalid` is never delivered (the email outbox skips it), and the visitor's email, once
# left, replaces it (leave_email).
NO_CHAT_EMAIL = "no-email@chat.invalid"


def chat_to_ticket(
    cur: Cursor, principal: Principal, session_id: UUID, data: ChatTicketCreate, *, without_email: bool = False
) -> tuple[Ticket, bool]:
    """ticket_from_chat's work in the open transaction, with the session's chat-ticket lock already taken
    (lock_for_tenant(..., f"chat-ticket:{session_id}")). `without_email`: a visitor who gave none gets NO_CHAT_EMAIL
    in place of the 422."""
    cur.execute(
        """SELECT id, visitor_id, visitor_name, visitor_email, assigned_agent_id, contact_id, ticket_id
        FROM live_chat_sessions WHERE user_id = %s AND id = %s""",
        (principal.tenant_id, session_id),
    )
    session = found(cur.fetchone(), "chat session")
    if session["ticket_id"] is not None:
        cur.execute(
            f"SELECT {TICKET_COLUMNS} FROM support_tickets WHERE user_id = %s AND id = %s",  # noqa: S608
            (principal.tenant_id, session["ticket_id"]),
        )
        return _ticket(cur.fetchone()), False
    email = data.customer_email or session["visitor_email"] or (NO_CHAT_EMAIL if without_email else None)
    if not email:
        raise InvalidInput(
            "the visitor gave no email address, and a ticket needs one: give the customer's as customerEmail",
            details=[{"field": "body.customerEmail", "message": "required: the chat has no visitor email"}],
        )
    cur.execute(
        """SELECT message FROM chat_messages WHERE user_id = %s AND session_id = %s AND sender_type = 'customer'
        ORDER BY created_at, id LIMIT 1""",
        (principal.tenant_id, session_id),
    )
    first = cur.fetchone()
    name = (session["visitor_name"] or "").strip() or "Visitor"
    placeholder = email == NO_CHAT_EMAIL  # RFC 2606's reserved name, which email validation refuses by design
    create = TicketCreate.model_validate(
        {
            "customerName": name,
            "customerEmail": "no-email@chat.example" if placeholder else email,
            "subject": data.subject or _subject_from(first["message"] if first else None, session["visitor_name"]),
        }
    )
    if placeholder:
        create = create.model_copy(update={"customer_email": NO_CHAT_EMAIL})
    contact_id = None
    if session["contact_id"] is not None:
        cur.execute(
            """SELECT coalesce(merged_into, id) AS id FROM support_contacts WHERE user_id = %s AND id = %s
            FOR KEY SHARE""",
            (principal.tenant_id, session["contact_id"]),
        )
        contact = cur.fetchone()
        contact_id = contact["id"] if contact else None
    if contact_id is not None and not placeholder:
        # The ticket's email becomes the contact's too unless another contact owns it (joined only by a merge):
        # the customer's next email or ticket then finds this contact.
        cur.execute(
            """INSERT INTO contact_identities (user_id, kind, scope, value, contact_id)
            SELECT %(tenant)s, 'email', '', v.value, %(contact)s
            FROM (SELECT contact_normalise('email', %(email)s) AS value) v WHERE v.value IS NOT NULL
            ON CONFLICT (user_id, kind, scope, value) DO NOTHING""",
            {"tenant": principal.tenant_id, "contact": contact_id, "email": email},
        )
    ticket = _insert_ticket(cur, principal, create, TicketChannel.CHAT, contact_id, session["assigned_agent_id"])
    cur.execute(
        """INSERT INTO ticket_conversations (ticket_id, user_id, sender_type, sender_name, sender_email, message,
            is_internal, created_at, updated_at)
        SELECT %(ticket)s, m.user_id, m.sender_type,
            coalesce(nullif(btrim(m.sender_name), ''),
                     CASE m.sender_type WHEN 'customer' THEN %(name)s WHEN 'agent' THEN 'Agent' ELSE 'System' END),
            CASE WHEN m.sender_type = 'customer' THEN %(email)s END,
            CASE WHEN m.attachment_url IS NULL OR octet_length(m.message) > %(room)s THEN m.message
                 ELSE m.message || E'\\n\\nAttachment: ' || m.attachment_url END,
            false, m.created_at, m.created_at
        FROM chat_messages m WHERE m.user_id = %(tenant)s AND m.session_id = %(session)s
        ORDER BY m.created_at, m.id""",
        {
            "ticket": ticket.id,
            "name": name,
            "email": str(create.customer_email),
            "room": ATTACHMENT_NOTE_ROOM,
            "tenant": principal.tenant_id,
            "session": session_id,
        },
    )
    cur.execute(
        "UPDATE live_chat_sessions SET ticket_id = %s WHERE user_id = %s AND id = %s",
        (ticket.id, principal.tenant_id, session_id),
    )
    return ticket, True
