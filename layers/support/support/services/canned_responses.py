"""Canned responses: the tenant's shared library of replies, found by shortcut and counted as they are used.

Every agent of the tenant may read, use, add, edit and delete them (there is no owner column: the library
belongs to the desk). Shortcut keys are unique per tenant ignoring case (a unique index on the tenant and
the lower-cased key) and a tenant has at most 10,000 responses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg import errors, sql

from support.auth import Principal
from support.db import tenant_transaction
from support.db.statements import admit_under_cap, equals_placeholders
from support.errors import Conflict, found
from support.models.canned import (
    CannedResponse,
    CannedResponseCreate,
    CannedResponseQuery,
    CannedResponseSort,
    CannedResponseUpdate,
)
from support.pagination import Page, decode_count_cursor, decode_cursor, page_of

MAX_CANNED_RESPONSES_PER_TENANT = 10_000  # the seed's "Canned Responses: Up to 10,000 per user" (the tenant)

CANNED_COLUMNS = """id, user_id, response_title, response_content, shortcut_key, category, usage_count,
    last_used_at, created_at, updated_at"""

# Search: every whitespace-separated word of the text must occur, as a case-insensitive substring, in the
# shortcut, the title or the content ("ref pol" finds "Refund policy"). No index can serve a substring match
# under row-level security (LIKE, ILIKE and lower() are not leakproof, so a trigram index would never be
# used), so this is a walk of the tenant's rows along the list index that stops once the page is full:
# bounded by the cap of 10,000 rows. strpos rather than ILIKE: as fast per row, and the planner then keeps
# that early-stopping walk, where its low estimate for ILIKE made it match all rows first and then sort.
# The fields are joined by a newline, which no search word contains, so a word never spans two fields.
SEARCH_MATCHES = """0 < ALL (
    SELECT strpos(lower(concat_ws(E'\\n', shortcut_key, response_title, response_content)), lower(word))
    FROM unnest(%(words)s::text[]) AS word)"""

# The lookup by shortcut: one probe of the unique index on (user_id, shortcut_key_lower), a generated
# column holding lower(shortcut_key). Comparing the column itself keeps the condition leakproof, which
# row-level security requires before it lets an index evaluate it (sql/0006_canned_responses_shortcut_lookup.sql).
BY_SHORTCUT = f"SELECT {CANNED_COLUMNS} FROM canned_responses WHERE user_id = %s AND shortcut_key_lower = lower(%s)"  # noqa: S608


@dataclass(frozen=True)
class _Order:
    column: str  # the sort key, then id; both descending
    decode: Callable[[str], tuple[Any, UUID]]


_ORDERS = {
    CannedResponseSort.NEWEST: _Order("created_at", decode_cursor),  # canned_responses_list_idx
    CannedResponseSort.USAGE: _Order("usage_count", decode_count_cursor),  # canned_responses_usage_idx
}


def _canned_response(row: dict[str, Any] | None) -> CannedResponse:
    return CannedResponse.model_validate(found(row, "canned response"))


def _duplicate_shortcut(shortcut_key: str) -> Conflict:
    return Conflict(
        f"a canned response with the shortcut key {shortcut_key!r} already exists (keys ignore case)",
        details=[{"field": "body.shortcutKey", "message": "already used by another canned response"}],
    )


def list_canned_responses(principal: Principal, query: CannedResponseQuery) -> Page[CannedResponse]:
    """getCannedResponses: newest first, or most used first; filtered by category, searched; keyset-paginated."""
    order = _ORDERS[query.sort]
    key = sql.Identifier(order.column)
    params: dict[str, Any] = {"tenant": principal.tenant_id, "limit": query.limit + 1}
    conditions: list[sql.Composable] = [sql.SQL("user_id = %(tenant)s")]
    if query.category is not None:
        params["category"] = query.category
        conditions.append(sql.SQL("category = %(category)s"))
    if query.search:
        params["words"] = query.search.split()
        conditions.append(sql.SQL(SEARCH_MATCHES))
    if query.cursor:
        params["after_key"], params["after_id"] = order.decode(query.cursor)
        conditions.append(sql.SQL("({}, id) < (%(after_key)s, %(after_id)s)").format(key))
    statement = sql.SQL(
        "SELECT {columns} FROM canned_responses WHERE {conditions} ORDER BY {key} DESC, id DESC LIMIT %(limit)s"
    ).format(columns=sql.SQL(CANNED_COLUMNS), conditions=sql.SQL(" AND ").join(conditions), key=key)
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(statement, params)
        rows = cur.fetchall()
    return page_of(rows, query.limit, CannedResponse.model_validate, key=order.column)


def create_canned_response(principal: Principal, data: CannedResponseCreate) -> CannedResponse:
    """createCannedResponse. A duplicate shortcut key (ignoring case) or a full library is a 409."""
    with tenant_transaction(principal.tenant_id) as cur:
        admit_under_cap(
            cur,
            principal.tenant_id,
            "canned_responses",
            MAX_CANNED_RESPONSES_PER_TENANT,
            f"a tenant may have at most {MAX_CANNED_RESPONSES_PER_TENANT} canned responses; "
            "delete one before adding another",
        )
        try:
            cur.execute(
                f"""INSERT INTO canned_responses (user_id, response_title, response_content, shortcut_key, category)
                VALUES (%s, %s, %s, %s, %s) RETURNING {CANNED_COLUMNS}""",  # noqa: S608
                (principal.tenant_id, data.response_title, data.response_content, data.shortcut_key, data.category),
            )
        except errors.UniqueViolation as exc:
            raise _duplicate_shortcut(data.shortcut_key) from exc
        return _canned_response(cur.fetchone())


def get_canned_response_by_shortcut(principal: Principal, shortcut_key: str) -> CannedResponse:
    """The response an agent's shortcut names, ignoring case: one probe of the unique index."""
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(BY_SHORTCUT, (principal.tenant_id, shortcut_key))
        return _canned_response(cur.fetchone())


def update_canned_response(principal: Principal, response_id: UUID, changes: CannedResponseUpdate) -> CannedResponse:
    fields = changes.model_dump(exclude_unset=True)
    for not_nullable in ("response_title", "response_content", "shortcut_key"):  # null means "leave as is"
        if fields.get(not_nullable, "") is None:
            del fields[not_nullable]
    with tenant_transaction(principal.tenant_id) as cur:
        if not fields:
            cur.execute(
                f"SELECT {CANNED_COLUMNS} FROM canned_responses WHERE user_id = %s AND id = %s",  # noqa: S608
                (principal.tenant_id, response_id),
            )
            return _canned_response(cur.fetchone())
        assignments = sql.SQL(", ").join(equals_placeholders(fields))
        try:
            cur.execute(
                sql.SQL(
                    "UPDATE canned_responses SET {assignments} WHERE user_id = %(tenant)s AND id = %(id)s "
                    "RETURNING {columns}"
                ).format(assignments=assignments, columns=sql.SQL(CANNED_COLUMNS)),
                {**fields, "tenant": principal.tenant_id, "id": response_id},
            )
        except errors.UniqueViolation as exc:
            raise _duplicate_shortcut(fields["shortcut_key"]) from exc
        return _canned_response(cur.fetchone())


def delete_canned_response(principal: Principal, response_id: UUID) -> CannedResponse:
    """The deleted response is returned, so a client can offer to undo (by creating it again)."""
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            f"DELETE FROM canned_responses WHERE user_id = %s AND id = %s RETURNING {CANNED_COLUMNS}",  # noqa: S608
            (principal.tenant_id, response_id),
        )
        return _canned_response(cur.fetchone())


def use_canned_response(principal: Principal, response_id: UUID) -> CannedResponse:
    """useCannedResponse: one atomic UPDATE, so concurrent uses are all counted (the row lock serialises
    them and each adds 1 to the value the previous one committed). It does not change updated_at
    (sql/0006_canned_responses_shortcut_lookup.sql)."""
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            f"""UPDATE canned_responses SET usage_count = usage_count + 1, last_used_at = now()
            WHERE user_id = %s AND id = %s RETURNING {CANNED_COLUMNS}""",  # noqa: S608
            (principal.tenant_id, response_id),
        )
        return _canned_response(cur.fetchone())
