"""Contacts: one customer per tenant across channels (list, read, edit, merge), and the backfill that links the
tickets and chat sessions from before contacts existed.

Invariants:
- An identity (an email, a phone number, a chat visitor id, a social sender id; stored normalised by
  contact_normalise) belongs to exactly one contact of the tenant: the primary key of contact_identities.
- A new ticket and a new chat session are made with their contact in the same statement: contact_for
  (sql/definitions/contacts.sql) finds it by email (a ticket; a chat whose visitor gave one) or visitor id, or makes
  it. Concurrent makes of the same new identity end on ONE contact (the identity is claimed first, ON CONFLICT).
- A merge keeps the other contact's row with merged_into = the survivor (chains kept flat: one hop), and moves its
  identities, tickets and chat sessions onto the survivor in one transaction. The other id keeps answering: every
  read and edit of it answers the survivor (no redirect; the answer's `id` says which contact it is).

Lock order: a merge locks both contacts FOR UPDATE in id order before moving anything; contact_for locks the contact
it answers FOR KEY SHARE and follows merged_into, so a link racing a merge either waits and reads the survivor or
commits before the merge moves the rows. An edit locks its contact FOR NO KEY UPDATE (a merge waits for it; a link
does not).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from psycopg import sql

from support.auth import Principal
from support.db import tenant_transaction
from support.db.connection import Cursor, anonymous_transaction
from support.errors import Conflict, InvalidInput, found
from support.models.contacts import (
    DEFAULT_HISTORY_PAGE,
    Contact,
    ContactConversation,
    ContactDetails,
    ContactQuery,
    ContactUpdate,
    Identity,
)
from support.observability import logger
from support.pagination import MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor, page_of

# A contact as the list and the details answer it: its emails and phone numbers beside it.
_CONTACT_COLUMNS = """c.id, c.user_id, c.name, c.created_at, c.updated_at,
    ARRAY(SELECT i.value FROM contact_identities i WHERE i.user_id = c.user_id AND i.contact_id = c.id
          AND i.kind = 'email' ORDER BY i.created_at, i.value) AS emails,
    ARRAY(SELECT i.value FROM contact_identities i WHERE i.user_id = c.user_id AND i.contact_id = c.id
          AND i.kind = 'phone' ORDER BY i.created_at, i.value) AS phones"""

# Search: a part of the name (case-insensitive), or the beginning of an email address or of a phone number (its
# digits, with or without the leading +). The identities are found by ranges of their primary key (byte order:
# COLLATE "C", and leakproof comparisons, so that row-level security lets the index serve them); the name by the
# scan of the tenant's contacts newest first that the list is, stopping at the page's end.
_SEARCH = """(c.name ILIKE %(name_pattern)s ESCAPE '\\'
    OR c.id IN (SELECT i.contact_id FROM contact_identities i
                WHERE i.user_id = %(tenant)s AND i.scope = ''
                  AND ((i.kind = 'email' AND i.value >= %(email)s AND i.value < %(email)s || %(last)s)
                       OR (i.kind = 'phone' AND i.value >= %(phone)s AND i.value < %(phone)s || %(last)s)
                       OR (i.kind = 'phone' AND i.value >= %(plus_phone)s
                           AND i.value < %(plus_phone)s || %(last)s))))"""
_LAST_CHARACTER = "\U0010ffff"  # after every character: `prefix` <= value < `prefix` + this, in byte order

# The contact's tickets and chat sessions, newest first across both: each side read newest first from its
# (user_id, contact_id, created_at, id) index, at most a page each, then merged.
_CONVERSATIONS = """SELECT * FROM (
    (SELECT 'ticket' AS kind, t.id, t.created_at, t.status, t.subject, t.assigned_agent_id FROM support_tickets t
     WHERE t.user_id = %(tenant)s AND t.contact_id = %(contact)s AND (t.created_at, t.id) < (%(at)s, %(after)s)
     ORDER BY t.created_at DESC, t.id DESC LIMIT %(limit)s)
    UNION ALL
    (SELECT 'chat', s.id, s.created_at, s.status, NULL, s.assigned_agent_id FROM live_chat_sessions s
     WHERE s.user_id = %(tenant)s AND s.contact_id = %(contact)s AND (s.created_at, s.id) < (%(at)s, %(after)s)
     ORDER BY s.created_at DESC, s.id DESC LIMIT %(limit)s)
) both_kinds ORDER BY created_at DESC, id DESC LIMIT %(limit)s"""
# Before the first page: after every (created_at, id) there is.
_END_OF_TIME = datetime(9999, 12, 31, tzinfo=UTC)
_LAST_ID = UUID(int=2**128 - 1)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _live_contact(cur: Cursor, tenant: UUID, contact_id: UUID, *, lock: bool = False) -> UUID:
    """The contact this id answers: itself, or the survivor it was merged into. 404 for an unknown id (another
    tenant's too: row-level security hides it). `lock`: the live contact locked FOR UPDATE."""
    cur.execute(
        "SELECT coalesce(merged_into, id) AS id FROM support_contacts WHERE user_id = %s AND id = %s",
        (tenant, contact_id),
    )
    live: UUID = found(cur.fetchone(), "contact")["id"]
    if lock:
        cur.execute(
            "SELECT merged_into FROM support_contacts WHERE user_id = %s AND id = %s FOR NO KEY UPDATE", (tenant, live)
        )
        row = found(cur.fetchone(), "contact")
        if row["merged_into"] is not None:  # merged while we looked: follow it once more
            return _live_contact(cur, tenant, row["merged_into"], lock=True)
    return live


def list_contacts(principal: Principal, query: ContactQuery) -> Page[Contact]:
    """Newest first, keyset-paginated; `search` matches a part of the name, an email address or a phone number."""
    params: dict[str, Any] = {"tenant": principal.tenant_id, "limit": query.limit + 1}
    conditions = [sql.SQL("c.user_id = %(tenant)s AND c.merged_into IS NULL")]
    if query.cursor:
        params["after_at"], params["after_id"] = decode_cursor(query.cursor)
        conditions.append(sql.SQL("(c.created_at, c.id) < (%(after_at)s, %(after_id)s)"))
    if query.search:
        digits = "".join(ch for ch in query.search if ch.isdigit())
        # a search without digits matches no phone number: a prefix no stored number has
        phone = digits if len(digits) >= 3 else "-"
        params |= {
            "name_pattern": _like(query.search),
            "email": query.search.lower(),
            "phone": phone,
            "plus_phone": "+" + phone,
            "last": _LAST_CHARACTER,
        }
        conditions.append(sql.SQL(_SEARCH))
    statement = sql.SQL(
        "SELECT {columns} FROM support_contacts c WHERE {conditions} ORDER BY c.created_at DESC, c.id DESC "
        "LIMIT %(limit)s"
    ).format(columns=sql.SQL(_CONTACT_COLUMNS), conditions=sql.SQL(" AND ").join(conditions))
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(statement, params)
        rows = cur.fetchall()
    return page_of(rows, query.limit, Contact.model_validate)


def _details(cur: Cursor, tenant: UUID, contact_id: UUID, limit: int, cursor: str | None) -> ContactDetails:
    cur.execute(
        sql.SQL("SELECT {} FROM support_contacts c WHERE c.user_id = %s AND c.id = %s").format(
            sql.SQL(_CONTACT_COLUMNS)
        ),
        (tenant, contact_id),
    )
    contact = found(cur.fetchone(), "contact")
    cur.execute(
        "SELECT kind, value, nullif(scope, '') AS scope FROM contact_identities WHERE user_id = %s AND contact_id = %s"
        " ORDER BY kind, created_at, value",
        (tenant, contact_id),
    )
    identities = [Identity.model_validate(row) for row in cur.fetchall()]
    at, after = decode_cursor(cursor) if cursor else (_END_OF_TIME, _LAST_ID)
    cur.execute(_CONVERSATIONS, {"tenant": tenant, "contact": contact_id, "at": at, "after": after, "limit": limit + 1})
    rows = cur.fetchall()
    conversations = [ContactConversation.model_validate(row) for row in rows[:limit]]
    next_cursor = encode_cursor(rows[limit - 1]["created_at"], rows[limit - 1]["id"]) if len(rows) > limit else None
    return ContactDetails.model_validate(
        {**contact, "identities": identities, "conversations": conversations, "conversations_next_cursor": next_cursor}
    )


def get_contact(
    principal: Principal, contact_id: UUID, *, limit: int = DEFAULT_HISTORY_PAGE, cursor: str | None = None
) -> ContactDetails:
    """The contact (the survivor, for a merged id), its identities, and a page of its tickets and chats."""
    if cursor:
        decode_cursor(cursor)  # a bad cursor is a 422 before anything is read
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    with tenant_transaction(principal.tenant_id) as cur:
        live = _live_contact(cur, principal.tenant_id, contact_id)
        return _details(cur, principal.tenant_id, live, limit, cursor)


def _owned_elsewhere(cur: Cursor, tenant: UUID, contact_id: UUID, kind: str, values: list[str]) -> list[str]:
    """Add `values` (raw) of `kind` to the contact; answer those another contact owns (nothing is taken from it)."""
    cur.execute(
        """WITH wanted AS (SELECT DISTINCT contact_normalise(%(kind)s, v) AS value FROM unnest(%(values)s::text[]) v),
        added AS (
            INSERT INTO contact_identities (user_id, kind, scope, value, contact_id)
            SELECT %(tenant)s, %(kind)s, '', w.value, %(contact)s FROM wanted w WHERE w.value IS NOT NULL
            ON CONFLICT (user_id, kind, scope, value) DO NOTHING
            RETURNING value
        )
        SELECT i.value FROM contact_identities i JOIN wanted w ON w.value = i.value
        WHERE i.user_id = %(tenant)s AND i.kind = %(kind)s AND i.scope = '' AND i.contact_id <> %(contact)s
          AND i.value NOT IN (SELECT value FROM added)""",
        {"tenant": tenant, "contact": contact_id, "kind": kind, "values": values},
    )
    return [row["value"] for row in cur.fetchall()]


def _remove(cur: Cursor, tenant: UUID, contact_id: UUID, kind: str, values: list[str]) -> None:
    cur.execute(
        """DELETE FROM contact_identities WHERE user_id = %(tenant)s AND contact_id = %(contact)s AND kind = %(kind)s
        AND scope = '' AND value IN (SELECT contact_normalise(%(kind)s, v) FROM unnest(%(values)s::text[]) v)""",
        {"tenant": tenant, "contact": contact_id, "kind": kind, "values": values},
    )


def update_contact(principal: Principal, contact_id: UUID, changes: ContactUpdate) -> ContactDetails:
    """Rename, add or remove emails and phone numbers. Removals first, so that one edit can replace an address.
    An email or phone number another contact owns: 409, and nothing of the edit is kept."""
    tenant = principal.tenant_id
    with tenant_transaction(tenant) as cur:
        live = _live_contact(cur, tenant, contact_id, lock=True)
        _remove(cur, tenant, live, "email", changes.remove_emails)
        _remove(cur, tenant, live, "phone", changes.remove_phones)
        taken = [
            {"field": f"body.{name}", "message": f"{value} belongs to another contact (merge the two instead)"}
            for name, kind, values in (
                ("addEmails", "email", changes.add_emails),
                ("addPhones", "phone", changes.add_phones),
            )
            if values
            for value in _owned_elsewhere(cur, tenant, live, kind, list(values))
        ]
        if taken:
            raise Conflict("an identity belongs to another contact", details=taken)
        # Touches updated_at whatever changed (the name, or only the identities).
        cur.execute(
            "UPDATE support_contacts SET name = coalesce(%s, name) WHERE user_id = %s AND id = %s",
            (changes.name, tenant, live),
        )
        return _details(cur, tenant, live, DEFAULT_HISTORY_PAGE, None)


def merge_contacts(principal: Principal, contact_id: UUID, other_contact_id: UUID) -> ContactDetails:
    """Merge the other contact into this one: its identities, tickets and chat sessions move here, its name fills a
    missing one, and its id answers this contact from then on. 409 when the two are one contact already."""
    tenant = principal.tenant_id
    with tenant_transaction(tenant) as cur:
        survivor = _live_contact(cur, tenant, contact_id)
        other = _live_contact(cur, tenant, other_contact_id)
        if survivor == other:
            raise Conflict("the two ids are one contact already")
        cur.execute(
            "SELECT id, name, merged_into FROM support_contacts WHERE user_id = %s AND id IN (%s, %s)"
            " ORDER BY id FOR UPDATE",
            (tenant, survivor, other),
        )
        locked = {row["id"]: row for row in cur.fetchall()}
        if any(row["merged_into"] is not None for row in locked.values()):
            raise Conflict("one of the contacts was merged meanwhile; read it again and retry")
        moved = "UPDATE {} SET contact_id = %(survivor)s WHERE user_id = %(tenant)s AND contact_id = %(other)s"
        moves = [
            *(moved.format(table) for table in ("contact_identities", "support_tickets", "live_chat_sessions")),
            # the other, and the contacts merged into it before, now answer the survivor (chains kept flat)
            "UPDATE support_contacts SET merged_into = %(survivor)s WHERE user_id = %(tenant)s"
            " AND (id = %(other)s OR merged_into = %(other)s)",
            "UPDATE support_contacts SET name = coalesce(name, %(other_name)s) WHERE user_id = %(tenant)s"
            " AND id = %(survivor)s",
        ]
        params = {"tenant": tenant, "survivor": survivor, "other": other, "other_name": locked[other]["name"]}
        for statement in moves:
            cur.execute(statement, params)
        return _details(cur, tenant, survivor, DEFAULT_HISTORY_PAGE, None)


# --- The backfill ---------------------------------------------------------------------------------------------------
# Tickets and chat sessions from before contacts existed (contact_id NULL) are linked by contact_for, as new ones
# are: a ticket by its customer's email (name and phone added), a session by its visitor id and email. In bounded
# batches of one tenant, newest first, each batch its own short transaction: a batch takes the row locks of at most
# `batch_size` rows (SKIP LOCKED: a row a request holds is taken by a later run), and the triggers of an UPDATE that
# changes only contact_id move no running total, agent figure, day total or search entry (each compares what it
# keeps), nor updated_at (sql/definitions/updated_at.sql). Resumable without a stored position: the rows still to
# link are the rows with contact_id NULL, found by the contact index, so a run cut short (its time budget, a
# failure) is continued by the next one.

BACKFILL_BATCH = 500
MAX_BACKFILL_BATCH = 5_000
_TENANTS_PAGE = 100
_NO_TENANT = UUID(int=0)

_LINK_TICKETS = """WITH batch AS (
    SELECT id FROM support_tickets WHERE user_id = %(tenant)s AND contact_id IS NULL
      AND (created_at, id) < (%(at)s, %(after)s)
    ORDER BY created_at DESC, id DESC LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
UPDATE support_tickets t SET contact_id = contact_for(t.user_id, t.customer_name, t.customer_email,
    t.customer_phone, NULL)
FROM batch WHERE t.user_id = %(tenant)s AND t.id = batch.id
RETURNING t.created_at, t.id"""
_LINK_SESSIONS = """WITH batch AS (
    SELECT id FROM live_chat_sessions WHERE user_id = %(tenant)s AND contact_id IS NULL
      AND (created_at, id) < (%(at)s, %(after)s)
    ORDER BY created_at DESC, id DESC LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
UPDATE live_chat_sessions s SET contact_id = contact_for(s.user_id, s.visitor_name, s.visitor_email, NULL,
    s.visitor_id)
FROM batch WHERE s.user_id = %(tenant)s AND s.id = batch.id
RETURNING s.created_at, s.id"""


@dataclass
class BackfillReport:
    tenants: int = 0
    tickets: int = 0
    sessions: int = 0
    batches: int = 0
    done: bool = True  # false: the time budget ran out first; run again to continue
    failed: list[UUID] = field(default_factory=list)


BatchDone = Callable[[UUID, str, int], None]  # tenant, "tickets" or "sessions", rows linked
_on_batch: list[BatchDone] = []


@contextmanager
def reporting_progress(on_batch: BatchDone) -> Iterator[None]:
    """Tell `on_batch` of every batch linked while the block runs (make backfill-contacts' progress bar)."""
    _on_batch.append(on_batch)
    try:
        yield
    finally:
        _on_batch.remove(on_batch)


def backfill_tenants() -> Iterator[UUID]:
    """Every tenant with a ticket or a chat session, in id order, a page at a time (contacts_backfill_tenants)."""
    after = _NO_TENANT
    while True:
        with anonymous_transaction() as cur:
            cur.execute("SELECT t FROM contacts_backfill_tenants(%s, %s) AS t", (after, _TENANTS_PAGE))
            page = [row["t"] for row in cur.fetchall()]
        yield from page
        if len(page) < _TENANTS_PAGE:
            return
        after = page[-1]


def _link_batches(
    tenant: UUID, statement: str, what: str, batch: int, report: BackfillReport, out_of_time: Callable[[], bool]
) -> bool:
    """Link one kind of row of one tenant, batch by batch; False when the time budget ran out first."""
    at, after = _END_OF_TIME, _LAST_ID
    while True:
        if out_of_time():
            return False
        with tenant_transaction(tenant) as cur:
            cur.execute(statement, {"tenant": tenant, "at": at, "after": after, "batch": batch})
            rows = cur.fetchall()
        if not rows:
            return True
        report.batches += 1
        setattr(report, what, getattr(report, what) + len(rows))
        for tell in list(_on_batch):
            tell(tenant, what, len(rows))
        last = min(rows, key=lambda row: (row["created_at"], row["id"]))
        at, after = last["created_at"], last["id"]


def backfill(
    *, tenant_id: UUID | None = None, batch_size: int = BACKFILL_BATCH, seconds: float | None = None
) -> BackfillReport:
    """Link every unlinked ticket and chat session (of one tenant, or of all), `batch_size` rows per transaction,
    until done or until `seconds` have passed (then `done` is false: run again, it continues where this one ended).
    A tenant that fails is reported and the others are still linked."""
    if not 1 <= batch_size <= MAX_BACKFILL_BATCH:
        raise InvalidInput(f"batchSize must be between 1 and {MAX_BACKFILL_BATCH}")
    deadline = time.monotonic() + (seconds if seconds is not None else math.inf)

    def out_of_time() -> bool:
        return time.monotonic() >= deadline

    report = BackfillReport()
    tenants = [tenant_id] if tenant_id is not None else backfill_tenants()
    for tenant in tenants:
        try:
            finished = _link_batches(tenant, _LINK_TICKETS, "tickets", batch_size, report, out_of_time) and (
                _link_batches(tenant, _LINK_SESSIONS, "sessions", batch_size, report, out_of_time)
            )
        except Exception:  # one tenant's failure must not stop the others
            logger.exception("contacts backfill failed for a tenant", extra={"tenant": str(tenant)})
            report.failed.append(tenant)
            continue
        report.tenants += 1
        if not finished:
            report.done = False
            break
    return report
