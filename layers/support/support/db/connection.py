"""One PostgreSQL connection per execution environment, opened lazily and reused across invocations.

Every unit of work runs in `tenant_transaction`, whose first statement binds the tenant and the statement
timeout with `set_config(..., true)`: transaction-local, so neither can leak into the next invocation, and no
session state for RDS Proxy to pin the connection on (a session `SET` would; a startup `options` parameter is
refused by the proxy outright). One statement for both: the timeout costs no extra round trip.

In AWS the credentials come from a Secrets Manager secret, and the connection verifies the server's
certificate and host name (`sslmode=verify-full`, see support/db/secrets.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.abc import Params
from psycopg.rows import DictRow, dict_row

from support.audit_actor import actor_setting
from support.config import Settings, get_settings
from support.db.secrets import DATABASE_CA_BUNDLE, DatabaseSecret, read_secret, verified_conninfo
from support.observability import logger

Connection = psycopg.Connection[DictRow]
Cursor = psycopg.Cursor[DictRow]

_connection: Connection | None = None


def _not_the_aborted_rest(record: logging.LogRecord) -> bool:
    """psycopg's note, when a pipeline ends with an error raised inside it, that the rest was aborted: the error
    itself goes on up (a check's refusal among them: one a request over its tenant's budget, so a flood would
    otherwise log a warning per refused request). Every other psycopg record passes."""
    aborted = isinstance(record.args, tuple) and any(isinstance(a, psycopg.errors.PipelineAborted) for a in record.args)
    return not (str(record.msg).startswith("error ignored terminating") and aborted)


logging.getLogger("psycopg").addFilter(_not_the_aborted_rest)


APPLICATION_NAME = "support-backend"


def conninfo(settings: Settings) -> str:
    """DATABASE_URL as given (local runs and tests), else a verified TLS connection from the secret."""
    if settings.database_url:
        return settings.database_url
    secret = read_secret(
        settings.db_secret_arn or "", DatabaseSecret, max_age_seconds=settings.db_secret_max_age_seconds
    )
    return verified_conninfo(
        host=settings.db_host or secret.host,
        port=secret.port,
        dbname=secret.dbname,
        login=secret,
        application_name=APPLICATION_NAME,
        connect_timeout=settings.db_connect_timeout_seconds,
        root_cert=settings.db_ssl_root_cert or DATABASE_CA_BUNDLE,
    )


def _connect(settings: Settings) -> Connection:
    return psycopg.connect(
        conninfo(settings),
        autocommit=True,  # transactions are explicit, see tenant_transaction
        prepare_threshold=None,  # no server-side prepared statements: safe behind RDS Proxy and PgBouncer
        connect_timeout=settings.db_connect_timeout_seconds,
        application_name=APPLICATION_NAME,
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
# What a transaction's first statement binds: the tenant (when there is one), the statement timeout, and the actor
# the audit trail records (support.audit_actor; '' when none is known): one statement, one round trip, for all three.
_BIND_TENANT = (
    "SELECT set_config('app.tenant_id', %s, true), set_config('statement_timeout', %s, true),"
    " set_config('app.actor', %s, true)"
)
_BIND_TIMEOUT = "SELECT set_config('statement_timeout', %s, true), set_config('app.actor', %s, true)"


def _timeout() -> str:
    return f"{get_settings().db_statement_timeout_ms}ms"


def _tenant_binding(tenant_id: str) -> tuple[str, str, str]:
    return (tenant_id, _timeout(), actor_setting())


def _enter(conn: Connection, tenant_id: str | None) -> tuple[ExitStack, Cursor]:
    check = _pending_admission(tenant_id)
    if check is not None:
        return _enter_admitted(conn, check)
    with ExitStack() as stack:
        stack.enter_context(conn.transaction())
        cur = stack.enter_context(conn.cursor())
        if tenant_id is not None:
            cur.execute(_BIND_TENANT, _tenant_binding(tenant_id))
        else:
            cur.execute(_BIND_TIMEOUT, (_timeout(), actor_setting()))
        return stack.pop_all(), cur


def _enter_admitted(conn: Connection, check: Admission) -> tuple[ExitStack, Cursor]:
    """_enter for the first transaction of a request with an admission pending: the check's transaction, BEGIN and
    the binding in one pipeline (one round trip, where _enter takes two), and the transaction then ended by hand
    (COMMIT, or ROLLBACK on an error), as psycopg's transaction() would. A transaction() inside is a savepoint.
    The check's answer is read before any of the work is sent: refused, the transaction just begun is rolled back
    (the round trip a refusal's rollback always took) and the refusal raised."""
    try:
        with conn.cursor() as answer:  # open until its answer is read, after the pipeline's one Sync
            with conn.pipeline(), conn.cursor() as first:
                _send_admission(answer, check)
                first.execute(_BEGIN_WRITE)
                first.execute(_BIND_TENANT, _tenant_binding(str(check.tenant_id)))
            _admitted_or_refused(conn, check, answer)
    except BaseException as error:
        _end_failed(conn)
        refused = _admission_failed(check, error)
        if refused is not None:
            raise refused from None
        raise
    with ExitStack() as stack:
        stack.enter_context(_ended_by_hand(conn))
        cur = stack.enter_context(conn.cursor())
        return stack.pop_all(), cur


@contextmanager
def _ended_by_hand(conn: Connection) -> Iterator[None]:
    try:
        yield
    except BaseException:
        _end_failed(conn)
        raise
    conn.execute(b"COMMIT")


@contextmanager
def _transaction(tenant_id: str | None) -> Iterator[Cursor]:
    try:
        stack, cur = _enter(get_connection(), tenant_id)
    except psycopg.OperationalError:
        logger.warning("database connection was unusable; reconnecting once")
        reset_connection()
        stack, cur = _enter(get_connection(), tenant_id)
    with stack:
        yield cur


@contextmanager
def tenant_transaction(tenant_id: UUID) -> Iterator[Cursor]:
    """A transaction bound to one tenant (READ COMMITTED, read-write). Reconnects once if the cached connection
    went stale. For reads that must agree with each other, see read_snapshot."""
    with _transaction(str(tenant_id)) as cur:
        yield cur


_BEGIN_SNAPSHOT = b"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
_BEGIN_WRITE = b"BEGIN"


@dataclass
class Prelude:
    """A statement that goes first, right after BEGIN and the binding, into the next write transaction that the
    code run under `prelude` opens through a pipeline for the tenant: a check that must commit with the work it
    guards, or fail it, without a transaction and a round trip of its own (a WebSocket message's token: support.
    services.connections). The check refuses by raising, which aborts the pipeline: nothing of the work is done.
    `committed` tells whether it did go in and commit; if not (the code wrote nothing through a pipeline), the
    caller makes the check on its own."""

    tenant_id: UUID
    query: str | sql.Composed
    params: Params
    committed: bool = False


_prelude: ContextVar[Prelude | None] = ContextVar("support_db_prelude", default=None)


@dataclass
class Admission:
    """A check that goes, as a transaction of its own, in front of the first transaction a request opens for its
    tenant, in the same pipeline: no round trip of its own (a tenant's API budget: support.services.rate_limits).
    `query` is one statement that binds the tenant itself (it is sent alone, or between a BEGIN and a COMMIT).

    Its own transaction, committed before the work's begins (the server runs the two back to back, without a wait
    for the client in between): the check's row is locked for the statement and its commit only, never for the
    work, so a tenant's requests do not queue on it; and the request counts whether its work commits or not.

    How it refuses depends on what follows it on the wire. `query` answers one row whose first column is NULL
    (admitted) or the whole seconds to wait: where the answer is read before any of the work is sent (the check
    alone, or with BEGIN and the binding only: tenant_transaction, pipelined(once=True)), a refusal is an answer,
    and no error reaches the server's log. `stopping_query` is the same check raising SQLSTATE `sqlstate` with the
    seconds as its detail instead: where the work is already in the pipeline behind it (read_snapshot, write_one,
    pipelined), only an error makes the server skip the work, so there the refusal stays an error (knowing the
    answer first would cost those requests a round trip). Either way nothing of the work is done and
    `refusal(seconds)` is raised. `done` tells whether it went in; if not (the request opened no transaction for
    its tenant), the caller makes it on its own (check_admission)."""

    tenant_id: UUID
    query: str | sql.Composed
    stopping_query: str | sql.Composed
    params: Params
    sqlstate: str
    refusal: Callable[[int], Exception]
    done: bool = False


_admission: ContextVar[Admission | None] = ContextVar("support_db_admission", default=None)


@contextmanager
def admission(check: Admission) -> Iterator[Admission]:
    """Put `check` in front of the first transaction opened for its tenant inside the block."""
    token = _admission.set(check)
    try:
        yield check
    finally:
        _admission.reset(token)


def _pending_admission(tenant_id: str | None) -> Admission | None:
    pending = _admission.get()
    if pending is None or pending.done or tenant_id is None or str(pending.tenant_id) != tenant_id:
        return None
    return pending


def _send_admission(cur: Cursor, check: Admission, *, stopping: bool = False) -> None:
    """The check's transaction, into the open pipeline (the check's statement binds what it needs). `cur` is the
    check's own cursor, whose result is then the check's answer; `stopping`: the form that raises (see Admission)."""
    cur.connection.execute(_BEGIN_WRITE)
    cur.execute(check.stopping_query if stopping else check.query, check.params)
    cur.connection.execute(b"COMMIT")


def _refusal(check: Admission, cur: Cursor) -> Exception | None:
    """The check's answer, read from its cursor: None when admitted, else the refusal to raise."""
    row = cur.fetchone()
    wait = next(iter(row.values())) if row else None
    check.done = True
    return None if wait is None else check.refusal(int(wait))


def _admitted_or_refused(conn: Connection, check: Admission, answer: Cursor) -> None:
    """After a pipeline that carried `check` (its answer in `answer`) and then opened a transaction: raise the
    refusal, that transaction rolled back, if the check refused."""
    refused = _refusal(check, answer)
    if refused is not None:
        _end_failed(conn)
        raise refused


def _admission_failed(check: Admission | None, error: BaseException) -> BaseException | None:
    """After a pipeline that carried `check` failed: the refusal to raise instead, if the check refused. Otherwise
    the check committed before the failing statement (it goes first), unless the connection died."""
    if check is None:
        return None
    if isinstance(error, psycopg.Error) and error.diag.sqlstate == check.sqlstate:
        check.done = True
        detail = error.diag.message_detail or ""
        return check.refusal(int(detail) if detail.isdigit() else 1)
    if isinstance(error, psycopg.Error) and not isinstance(error, psycopg.OperationalError):
        check.done = True
    return None


def check_admission(check: Admission) -> None:
    """`check` alone on the autocommit connection (its own transaction, one round trip), for a request that opened
    no transaction for its tenant: raises its refusal when it refuses. On a connection found broken, once more on a
    new one (a check counted twice is harmless)."""
    for attempt in range(2):
        if check.done:
            return
        conn = get_connection()
        try:
            with conn.cursor() as cur:
                cur.execute(check.query, check.params)
                refused = _refusal(check, cur)
        except psycopg.OperationalError:
            if attempt or not (conn.broken or conn.closed):
                raise
            logger.warning("database connection was unusable; reconnecting once")
            reset_connection()
            continue
        if refused is not None:
            raise refused


@contextmanager
def prelude(statement: Prelude) -> Iterator[Prelude]:
    """Put `statement` first into the next pipelined write transaction opened for its tenant inside the block."""
    token = _prelude.set(statement)
    try:
        yield statement
    finally:
        _prelude.reset(token)


def _pending_prelude(begin: bytes | None, tenant_id: str) -> Prelude | None:
    pending = _prelude.get()
    if pending is None or pending.committed or begin != _BEGIN_WRITE or str(pending.tenant_id) != tenant_id:
        return None
    return pending


def _pipelined[T](
    conn: Connection, begin: bytes | None, tenant_id: str, work: Callable[[Cursor], T], carried: Prelude | None = None
) -> T:
    # BEGIN and COMMIT are statements of the pipeline, not psycopg's transaction(): that one syncs after its
    # BEGIN, a round trip of its own. Nothing before work's first fetch waits, and COMMIT waits with the Sync.
    # `begin` None: the transaction is open and bound already (_pipelined_once), with `carried`, its prelude.
    first = _pending_prelude(begin, tenant_id)
    check = _pending_admission(tenant_id) if begin is not None else None
    try:
        with conn.pipeline(), conn.cursor() as cur:
            if check is not None:  # the work follows on the wire: the form that stops the pipeline (see Admission)
                _send_admission(cur, check, stopping=True)
            if begin is not None:
                cur.execute(begin)
                cur.execute(_BIND_TENANT, _tenant_binding(tenant_id))
                if first is not None:
                    cur.execute(first.query, first.params)
            result = work(cur)
            cur.execute(b"COMMIT")
    except BaseException as error:
        _end_failed(conn)
        refused = _admission_failed(check, error)
        if refused is not None:
            raise refused from None
        raise
    if check is not None:
        check.done = True
    for done in (first, carried):
        if done is not None:
            done.committed = True
    return result


def _end_failed(conn: Connection) -> None:
    """After a failure: end the transaction (open, or aborted) unless the connection died."""
    if not (conn.closed or conn.broken) and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.execute(b"ROLLBACK")


def read_snapshot[T](tenant_id: UUID, read: Callable[[Cursor], T]) -> T:
    """`read(cur)` in a REPEATABLE READ READ ONLY transaction bound to the tenant: every statement reads the same
    snapshot, so figures read by several statements (the dashboard's) agree with each other, and nothing can be
    written. Pipelined (psycopg's pipeline mode): BEGIN, the tenant binding and read's first statement reach the
    server together, and COMMIT goes with the end of the pipeline, so a one-statement read waits two round trips
    instead of four (bench/RESULTS.md).

    Pipelined, a broken connection may show only when results are read, inside `read`. Nothing is written, so it
    is safe to run `read` again: on a connection found broken it is replaced and `read` runs once more (a
    statement that fails on a sound connection, a timeout included, is raised as it is)."""
    return _pipelined_twice(_BEGIN_SNAPSHOT, tenant_id, read)


def write_one(tenant_id: UUID, query: str | sql.Composed, params: Params) -> DictRow | None:
    """One statement in a READ COMMITTED transaction of its own, bound to the tenant, and its first row. BEGIN, the
    binding, the statement and COMMIT go in one pipeline with one Sync, and the row is read after it: one round
    trip (a transaction with tenant_transaction takes four). For a small write such as a rate limit's token.

    Only for statements that may run twice: on a connection found broken midway it runs again once, and the first
    attempt may have committed (a token bucket then counts one request twice, which is harmless)."""

    def send(cur: Cursor) -> Cursor:
        statement = cur.connection.cursor()
        statement.execute(query, params)
        return statement

    return _pipelined_twice(_BEGIN_WRITE, tenant_id, send).fetchone()


def _pipelined_twice[T](
    begin: bytes, tenant_id: UUID, work: Callable[[Cursor], T], on_rerun: Callable[[], None] | None = None
) -> T:
    for attempt in range(2):
        conn = get_connection()
        try:
            return _pipelined(conn, begin, str(tenant_id), work)
        except psycopg.OperationalError:
            if attempt or not (conn.broken or conn.closed):
                raise
            logger.warning("database connection was unusable; reconnecting once")
            reset_connection()
            if on_rerun is not None:
                on_rerun()
    raise AssertionError("unreachable: the second attempt returns or raises")


def _pipelined_once[T](begin: bytes, tenant_id: UUID, work: Callable[[Cursor], T]) -> T:
    """BEGIN and the binding first, on their own (one round trip, on a new connection once if the cached one is
    found broken: nothing has been written yet), then work's statements and COMMIT in a second pipeline, never
    sent again: as tenant_transaction's retry rule, in two round trips instead of four."""
    first = _pending_prelude(begin, str(tenant_id))
    for attempt in range(2):
        conn = get_connection()
        check = _pending_admission(str(tenant_id))
        try:
            with conn.cursor() as answer:  # the check's: open until its answer is read, after the pipeline
                with conn.pipeline(), conn.cursor() as cur:
                    if check is not None:
                        _send_admission(answer, check)
                    cur.execute(begin)
                    cur.execute(_BIND_TENANT, _tenant_binding(str(tenant_id)))
                    if first is not None:
                        cur.execute(first.query, first.params)
                if check is not None:
                    _admitted_or_refused(conn, check, answer)
            break
        except psycopg.OperationalError:
            _end_failed(conn)
            if attempt or not (conn.broken or conn.closed):
                raise
            logger.warning("database connection was unusable; reconnecting once")
            reset_connection()
        except BaseException as error:
            _end_failed(conn)
            refused = _admission_failed(check, error)
            if refused is not None:
                raise refused from None
            raise
    return _pipelined(conn, None, str(tenant_id), work, first)


type Statement = tuple[str | sql.Composed, Params | None]


def pipelined(
    tenant_id: UUID,
    statements: Sequence[Statement],
    *,
    snapshot: bool = False,
    once: bool = False,
    on_rerun: Callable[[], None] | None = None,
) -> list[list[DictRow]]:
    """Several statements in one transaction bound to the tenant, and each one's rows: BEGIN, the binding, the
    statements and COMMIT in one pipeline with one Sync, the rows read after it, so one round trip whatever the
    number of statements (tenant_transaction waits for each). The statements cannot depend on each other's
    results in Python (only in SQL): for a read that checks its caller's right to the answer after the fact, or a
    write whose checks are SQL (a function such as chat_send_message).

    `snapshot`: REPEATABLE READ READ ONLY, as read_snapshot. Like write_one, the statements may run twice (on a
    connection found broken midway they run again once, and the first attempt may have committed), unless
    `once`: then BEGIN and the binding go first, on their own, and the statements are sent only on a connection
    that has just answered, and never again (two round trips). `on_rerun` is called before a second run: the first
    one's outcome is unknown (it may have committed), and whatever the caller does after a commit (announce it) was
    not done for it."""

    def send(cur: Cursor) -> list[Cursor]:
        cursors = []
        for query, params in statements:
            statement = cur.connection.cursor()
            statement.execute(query, params)
            cursors.append(statement)
        return cursors

    begin = _BEGIN_SNAPSHOT if snapshot else _BEGIN_WRITE
    cursors = _pipelined_once(begin, tenant_id, send) if once else _pipelined_twice(begin, tenant_id, send, on_rerun)
    return [statement.fetchall() if statement.description else [] for statement in cursors]


@contextmanager
def anonymous_transaction() -> Iterator[Cursor]:
    """A transaction bound to no tenant, for the one thing a public route does before it knows the tenant: a
    lookup through a SECURITY DEFINER function (the widget key's). Every tenant table fails closed in it."""
    with _transaction(None) as cur:
        yield cur
