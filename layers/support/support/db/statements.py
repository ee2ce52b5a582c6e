"""Small builders for the SQL the services compose from fixed column names (values are always bound)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from psycopg import sql

from support.errors import QuotaExceeded
from support.pagination import decode_cursor

if TYPE_CHECKING:
    from psycopg.rows import DictRow

    from support.db.connection import Cursor


def equals_placeholders(columns: Iterable[str]) -> list[sql.Composable]:
    """`column = %(column)s` for each column: SET lists and equality filters with named parameters."""
    return [sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column)) for column in columns]


# Advisory locks that serialise one kind of change per tenant until the transaction ends. Keyed by a name and
# the tenant, so different kinds (or tenants) never wait for each other.
TENANT_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s || ':' || %s, 0))"


def lock_for_tenant(cur: Cursor, tenant_id: UUID, what: str) -> None:
    """Take the tenant's `what` lock (for example "agents" while checking a count cap and inserting)."""
    cur.execute(TENANT_LOCK, (what, str(tenant_id)))


def admit_under_cap(cur: Cursor, tenant_id: UUID, table: str, cap: int, message: str) -> None:
    """A count cap (500 agents, 10,000 canned responses, ...): under the tenant's lock named after `table`, so
    that concurrent creates cannot overshoot it, QuotaExceeded(`message`) once the tenant has `cap` rows."""
    lock_for_tenant(cur, tenant_id, table)
    cur.execute(sql.SQL("SELECT count(*) AS n FROM {} WHERE user_id = %s").format(sql.Identifier(table)), (tenant_id,))
    row = cur.fetchone()
    if row is not None and row["n"] >= cap:
        raise QuotaExceeded(message)


def newest_first(
    cur: Cursor, tenant_id: UUID, table: str, columns: str, *, limit: int, cursor: str | None
) -> list[DictRow]:
    """One page of the tenant's rows of `table`, newest first by (created_at, id), after the (created_at, id)
    `cursor` names: `limit` + 1 rows at most, the extra one for support.pagination.page_of."""
    params: dict[str, Any] = {"tenant": tenant_id, "limit": limit + 1}
    after = sql.SQL("")
    if cursor:
        params["after_at"], params["after_id"] = decode_cursor(cursor)
        after = sql.SQL("AND (created_at, id) < (%(after_at)s, %(after_id)s)")
    cur.execute(
        sql.SQL(
            "SELECT {columns} FROM {table} WHERE user_id = %(tenant)s {after} "
            "ORDER BY created_at DESC, id DESC LIMIT %(limit)s"
        ).format(columns=sql.SQL(columns), table=sql.Identifier(table), after=after),
        params,
    )
    return cur.fetchall()


def oldest_first(
    cur: Cursor, tenant_id: UUID, table: str, columns: str, parent: tuple[str, UUID], *, limit: int, cursor: str | None
) -> list[DictRow]:
    """One page of a thread (the rows of `table` whose `parent` column names the parent id), oldest first by
    (created_at, id), after the (created_at, id) `cursor` names: `limit` + 1 rows at most, as newest_first."""
    column, parent_id = parent
    params: dict[str, Any] = {"tenant": tenant_id, "parent": parent_id, "limit": limit + 1}
    after = sql.SQL("")
    if cursor:
        params["after_at"], params["after_id"] = decode_cursor(cursor)
        after = sql.SQL("AND (created_at, id) > (%(after_at)s, %(after_id)s)")
    cur.execute(
        sql.SQL(
            "SELECT {columns} FROM {table} WHERE user_id = %(tenant)s AND {column} = %(parent)s {after} "
            "ORDER BY created_at, id LIMIT %(limit)s"
        ).format(columns=sql.SQL(columns), table=sql.Identifier(table), column=sql.Identifier(column), after=after),
        params,
    )
    return cur.fetchall()
