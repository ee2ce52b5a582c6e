"""One PostgreSQL connection per execution environment, opened lazily and reused across invocations.

Every unit of work runs in `tenant_transaction`, which first binds the tenant with
`set_config('app.tenant_id', ..., true)`: transaction-local, so it can never leak into the next
invocation, and safe behind RDS Proxy (a session `SET` would pin the connection).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import quote
from uuid import UUID

import psycopg
from psycopg.rows import DictRow, dict_row

from support.config import Settings, get_settings
from support.observability import logger

Connection = psycopg.Connection[DictRow]
Cursor = psycopg.Cursor[DictRow]

_connection: Connection | None = None


def _conninfo(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    # Imported here so that local runs and cold starts without a secret never pay for boto3.
    from aws_lambda_powertools.utilities import parameters

    secret: Any = parameters.get_secret(
        settings.db_secret_arn or "", transform="json", max_age=settings.db_secret_max_age_seconds
    )
    return (
        f"postgresql://{quote(secret['username'], safe='')}:{quote(secret['password'], safe='')}"
        f"@{secret['host']}:{secret.get('port', 5432)}/{secret.get('dbname', 'support')}"
    )


def _connect(settings: Settings) -> Connection:
    return psycopg.connect(
        _conninfo(settings),
        autocommit=True,  # transactions are explicit, see tenant_transaction
        prepare_threshold=None,  # no server-side prepared statements: safe behind RDS Proxy and PgBouncer
        connect_timeout=settings.db_connect_timeout_seconds,
        options=f"-c statement_timeout={settings.db_statement_timeout_ms}",
        application_name="support-backend",
        row_factory=dict_row,
    )


def get_connection() -> Connection:
    global _connection
    if _connection is None or _connection.closed or _connection.broken:
        _connection = _connect(get_settings())
    return _connection


def reset_connection() -> None:
    """Close the cached connection (tests, and after a failure that leaves it unusable)."""
    global _connection
    if _connection is not None:
        _connection.close()
    _connection = None


SET_TENANT = "SELECT set_config('app.tenant_id', %s, true)"


def _enter(conn: Connection, tenant_id: str | None, snapshot: bool) -> tuple[ExitStack, Cursor]:
    # BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY (psycopg builds it from these two attributes): part of the
    # transaction's own BEGIN, no session SET.
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ if snapshot else None
    conn.read_only = True if snapshot else None
    with ExitStack() as stack:
        stack.enter_context(conn.transaction())
        cur = stack.enter_context(conn.cursor())
        if tenant_id is not None:
            cur.execute(SET_TENANT, (tenant_id,))
        return stack.pop_all(), cur


@contextmanager
def _transaction(tenant_id: str | None, snapshot: bool) -> Iterator[Cursor]:
    try:
        stack, cur = _enter(get_connection(), tenant_id, snapshot)
    except psycopg.OperationalError:
        logger.warning("database connection was unusable; reconnecting once")
        reset_connection()
        stack, cur = _enter(get_connection(), tenant_id, snapshot)
    with stack:
        yield cur


@contextmanager
def tenant_transaction(tenant_id: UUID, *, snapshot: bool = False) -> Iterator[Cursor]:
    """A transaction bound to one tenant. Reconnects once if the cached connection went stale.

    `snapshot=True` makes it REPEATABLE READ READ ONLY: every statement reads the same snapshot, so figures
    read by several statements (the dashboard's) agree with each other, and nothing can be written."""
    with _transaction(str(tenant_id), snapshot) as cur:
        yield cur


@contextmanager
def anonymous_transaction() -> Iterator[Cursor]:
    """A transaction bound to no tenant, for the one thing a public route does before it knows the tenant: a
    lookup through a SECURITY DEFINER function (the widget key's). Every tenant table fails closed in it."""
    with _transaction(None, snapshot=False) as cur:
        yield cur
