"""The audit trail (issue 19): who changed what, when, for every change of the desk's data.

The shape of it (docs/ARCHITECTURE.md, "Audit trail"):

* Capture: a row trigger on every tenant table (sql/definitions/audit.sql, attached from the catalog, so a table added
  later is captured too) writes one `audit_entries` row per row inserted, updated or deleted, in the change's own
  transaction, with the actor the transaction bound (support.audit_actor). No text and no personal value enters the
  entry: texts are named as changed, personal values go to `audit_personal_values`, covered by a salted digest.
* Chain: the entries are unchained when written (the writers never wait for each other on the audit); `seal`, a step
  of the every-minute workflow sweep, chains each tenant's new entries after its head, each hash covering the
  previous one. `check`, the next step, verifies the chains a bounded stretch at a time and reports the tenants whose
  chain is broken (the sweep publishes their count, WorkflowSweep_audit_check, which an alarm watches);
  `make verify-audit` (local/verify_audit.py) verifies whole chains.
* Reads: `list_entries`, admins only, newest first, keyset pages on the entry's id.
* Removal: `prune` (the retention's, a prefix of the chain older than a date, leaving an anchor) and `erase_subjects`
  (the privacy erasure's, the personal values of a customer) keep every remaining chain verifiable.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql

from support.auth import Principal
from support.db.connection import Cursor, anonymous_transaction, read_snapshot
from support.errors import InvalidInput
from support.models.audit import AuditActor, AuditEntity, AuditEntry, AuditQuery
from support.observability import logger
from support.pagination import Page

# The `entity` filter's names and the tables they are (docs/api.md, "Audit trail").
ENTITY_TABLES: dict[AuditEntity, str] = {
    AuditEntity.TICKET: "support_tickets",
    AuditEntity.CONVERSATION: "ticket_conversations",
    AuditEntity.FEEDBACK: "ticket_feedback",
    AuditEntity.AGENT: "support_agents",
    AuditEntity.CHAT_SESSION: "live_chat_sessions",
    AuditEntity.CHAT_MESSAGE: "chat_messages",
    AuditEntity.CANNED_RESPONSE: "canned_responses",
    AuditEntity.CONTACT: "support_contacts",
    AuditEntity.CONTACT_IDENTITY: "contact_identities",
    AuditEntity.WIDGET_KEY: "widget_keys",
    AuditEntity.SETTINGS: "tenant_settings",
    AuditEntity.CHANNEL: "support_channels",
    AuditEntity.CHANNEL_SECRET: "support_channel_secrets",
    AuditEntity.AUTOMATION_RULE: "automation_rules",
    AuditEntity.SLA_EVENT: "ticket_sla_events",
    AuditEntity.INBOUND_EMAIL: "inbound_emails",
    AuditEntity.EMAIL_ADDRESS: "email_inbound_addresses",
    AuditEntity.EMAIL_SUPPRESSION: "email_suppressions",
}
_TABLE_ENTITIES = {table: str(entity) for entity, table in ENTITY_TABLES.items()}

SEAL_BATCH = 50_000  # entries chained per sweep run at most (the next minute chains the rest)
CHECK_BUDGET = 20_000  # entries verified per sweep run: each chain is verified again and again, this much a minute
MAX_ENTRY_ID = 2**63 - 1


# --- the sweep's steps ---------------------------------------------------------------------------------------------


def seal(now: datetime | None = None) -> int:
    """The workflow sweep's `audit` step: chain every tenant's unsealed entries. Answers how many it chained."""
    with anonymous_transaction() as cur:
        cur.execute("SELECT audit_seal(%s) AS sealed", (SEAL_BATCH,))
        row = cur.fetchone()
    return int(row["sealed"]) if row else 0


def check(now: datetime | None = None, budget: int = CHECK_BUDGET) -> list[dict[str, Any]]:
    """The workflow sweep's `audit_check` step: verify the next stretch of the chains; answers the broken ones (a
    tenant, the first entry found wrong, what is wrong), each logged as an error. Their count is the sweep's
    WorkflowSweep_audit_check metric, which the AuditChainBrokenAlarm watches."""
    with anonymous_transaction() as cur:
        cur.execute("SELECT user_id, broken_seq, problem FROM audit_check(%s)", (budget,))
        broken = [dict(row) for row in cur.fetchall()]
    for row in broken:
        logger.error(
            "audit chain broken",
            extra={"tenant": str(row["user_id"]), "seq": row["broken_seq"], "problem": row["problem"]},
        )
    return broken


# --- removal that keeps the chain verifiable -----------------------------------------------------------------------


PRUNE_BATCH = 10_000  # entries a pruning deletes at most at once (a prefix of the chain: one short transaction)


def prune(cur: Cursor, tenant_id: UUID, older_than: datetime, batch: int = PRUNE_BATCH) -> int:
    """Delete the tenant's sealed entries older than `older_than` (a prefix of its chain, at most `batch`), in the
    caller's transaction bound to that tenant; the chain keeps an anchor (the last deleted entry's hash), so the rest
    still verifies. Entries of the last 365 days are never deleted (the function refuses). Answers how many."""
    cur.execute("SELECT audit_prune(%s, %s, %s) AS pruned", (tenant_id, older_than, batch))
    row = cur.fetchone()
    return int(row["pruned"]) if row else 0


def subject_of_email(email: str) -> str:
    """The subject the capture files a customer's personal values under: the normalised email."""
    return email.strip().lower()


def erase_subjects(cur: Cursor, tenant_id: UUID, subjects: list[str]) -> int:
    """Erase the personal values the audit keeps for `subjects`, in the caller's transaction bound to the tenant:
    every email and identity value the customer was known by (subject_of_email; their contact's identities: emails,
    phones, visitor ids), and `support_tickets:<id>`, `live_chat_sessions:<id>` and `support_contacts:<id>` for
    their rows (messages and conversations without an email are filed under their ticket or chat). The entries
    stay, and their chain still verifies. Call it after the rows themselves were anonymised (those updates file the
    old values under the same subjects). Answers the number of entries whose values were erased."""
    cur.execute("SELECT audit_erase_subjects(%s, %s) AS erased", (tenant_id, subjects))
    row = cur.fetchone()
    return int(row["erased"]) if row else 0


def erase_customer(
    cur: Cursor,
    tenant_id: UUID,
    emails: list[str],
    *,
    ticket_ids: list[UUID],
    session_ids: list[UUID],
    contact_ids: list[UUID],
) -> int:
    """A privacy erasure's last statement, in the transaction that marks it done: the personal values of every entry
    about the customer (filed under their emails, or about their tickets, chats, contacts and what hangs off them)
    erased; the entries stay and their chain still verifies. Answers the number of entries whose values went."""
    cur.execute(
        "SELECT audit_erase_customer(%s, %s, %s, %s, %s) AS erased",
        (tenant_id, [subject_of_email(e) for e in emails], ticket_ids, session_ids, contact_ids),
    )
    row = cur.fetchone()
    return int(row["erased"]) if row else 0


def erase_subject(cur: Cursor, tenant_id: UUID, subject: str) -> int:
    """erase_subjects for one subject (a customer's email is normalised here)."""
    return erase_subjects(cur, tenant_id, [subject_of_email(subject)])


# --- reading -------------------------------------------------------------------------------------------------------


def encode_entry_cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([entry_id]).encode()).decode().rstrip("=")


def decode_entry_cursor(cursor: str) -> int:
    """The id of the last entry of the previous page; anything else is a 422 on `query.cursor`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise _invalid_cursor() from exc
    if not isinstance(value, list) or len(value) != 1 or type(value[0]) is not int or not 1 <= value[0] <= MAX_ENTRY_ID:
        raise _invalid_cursor()
    return int(value[0])


def _invalid_cursor() -> InvalidInput:
    return InvalidInput(
        "cursor is not valid",
        details=[{"field": "query.cursor", "message": "not a cursor returned by this API", "type": "cursor_invalid"}],
    )


_COLUMNS = (
    "id, occurred_at, actor_type, actor_id, request_id, db_role, table_name, row_id, action, changes,"
    " seq IS NOT NULL AS sealed"
)


def _entry(row: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        occurred_at=row["occurred_at"],
        actor=AuditActor(
            type=row["actor_type"], id=row["actor_id"], request_id=row["request_id"], db_role=row["db_role"]
        ),
        entity=_TABLE_ENTITIES.get(row["table_name"], row["table_name"]),
        entity_id=row["row_id"],
        table=row["table_name"],
        action=row["action"],
        changes=row["changes"],
        sealed=row["sealed"],
    )


def list_entries(principal: Principal, query: AuditQuery, *, limit: int, cursor: str | None = None) -> Page[AuditEntry]:
    """The tenant's entries, newest first, filtered; admins only (an agent's 403). `id` without `entity` matches the
    row id in any table."""
    principal.require_admin("read the audit trail")
    conditions = [sql.SQL("user_id = %(tenant)s")]
    params: dict[str, Any] = {"tenant": principal.tenant_id, "limit": limit + 1}
    if query.entity is not None:
        conditions.append(sql.SQL("table_name = %(table)s"))
        params["table"] = ENTITY_TABLES[query.entity]
    if query.id is not None:
        conditions.append(sql.SQL("row_id = %(row_id)s"))
        params["row_id"] = query.id
    if query.actor is not None:
        conditions.append(sql.SQL("actor_id = %(actor)s"))
        params["actor"] = query.actor
    if query.action is not None:
        conditions.append(sql.SQL("action = %(action)s"))
        params["action"] = str(query.action)
    if query.from_ is not None:
        conditions.append(sql.SQL("occurred_at >= %(from)s"))
        params["from"] = query.from_
    if query.to is not None:
        conditions.append(sql.SQL("occurred_at < %(to)s"))
        params["to"] = query.to
    if cursor:
        conditions.append(sql.SQL("id < %(after)s"))
        params["after"] = decode_entry_cursor(cursor)
    statement = sql.SQL("SELECT {columns} FROM audit_entries WHERE {where} ORDER BY id DESC LIMIT %(limit)s").format(
        columns=sql.SQL(_COLUMNS), where=sql.SQL(" AND ").join(conditions)
    )
    rows = read_snapshot(principal.tenant_id, lambda cur: cur.execute(statement, params).fetchall())
    items = rows[:limit]
    next_cursor = encode_entry_cursor(items[-1]["id"]) if len(rows) > limit else None
    return Page(data=[_entry(row) for row in items], next_cursor=next_cursor)
