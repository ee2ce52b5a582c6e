"""Small builders for the SQL the services compose from fixed column names (values are always bound)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from uuid import UUID

from psycopg import sql

from support.errors import QuotaExceeded

if TYPE_CHECKING:
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
