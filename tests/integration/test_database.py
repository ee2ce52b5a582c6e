"""The schema's own guarantees, the migration runner and the connection handling."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from uuid import UUID

import psycopg
import pytest

from local.database import MIGRATIONS, DatabaseUrls, create_database
from support.db import get_connection, read_snapshot, tenant_transaction
from support.db.connection import Cursor
from support.db.migrations import MigrationError, migrate


def _owner(db: DatabaseUrls, tenant: UUID) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(db.owner)
    conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
    return conn


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, status) "
        "VALUES (%(t)s, 'a', 'a@b.c', 's', 'pending')",
        "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, priority) "
        "VALUES (%(t)s, 'a', 'a@b.c', 's', 'critical')",
        "INSERT INTO support_agents (user_id, agent_name, agent_email, status) VALUES (%(t)s, 'a', 'a@b.c', 'gone')",
        "INSERT INTO support_agents (user_id, agent_name, agent_email, max_concurrent_chats) "
        "VALUES (%(t)s, 'a', 'a@b.c', 0)",
        "INSERT INTO live_chat_sessions (user_id, visitor_id, status) VALUES (%(t)s, 'v', 'lost')",
        "INSERT INTO live_chat_sessions (user_id, visitor_id, rating) VALUES (%(t)s, 'v', 6)",
        "INSERT INTO canned_responses (user_id, response_title, response_content, shortcut_key) "
        "VALUES (%(t)s, 't', 'c', 'has space')",
        "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject) "
        "VALUES (%(t)s, 'a', 'a@b.c', '')",
    ],
)
def test_check_constraints_refuse_values_outside_the_domain(db: DatabaseUrls, tenant: UUID, statement: str) -> None:
    with _owner(db, tenant) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(statement.encode(), {"t": tenant})


def test_updated_at_is_kept_current(db: DatabaseUrls, tenant: UUID) -> None:
    with _owner(db, tenant) as conn:
        row = conn.execute(
            "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject) "
            "VALUES (%s, 'a', 'a@b.c', 's') RETURNING id, updated_at",
            (tenant,),
        ).fetchone()
        assert row is not None
        conn.commit()
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        after = conn.execute("UPDATE support_tickets SET subject = 't' WHERE id = %s RETURNING updated_at", (row[0],))
        assert after.fetchone()[0] > row[1]  # type: ignore[index]


def test_migrations_apply_once_and_rerun_as_a_no_op(db: DatabaseUrls) -> None:
    assert migrate(db.owner, MIGRATIONS, log=lambda _: None) == []
    with psycopg.connect(db.owner) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [p.name[:4] for p in sorted(MIGRATIONS.glob("*.sql"))]


def test_two_runners_at_once_apply_each_migration_exactly_once(db: DatabaseUrls) -> None:
    urls = create_database(db.admin, "support_race", recreate=True, quiet=True)
    # Start from an empty database again, then race two runners.
    with psycopg.connect(db.admin.replace("dbname=support_test", "dbname=postgres"), autocommit=True) as conn:
        conn.execute("DROP DATABASE support_race WITH (FORCE)")
        conn.execute("CREATE DATABASE support_race OWNER support_owner")
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrate(urls.owner, MIGRATIONS, log=lambda _: None))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    applied = sorted(name for names in results for name in names)
    definitions = [f"definitions/{p.name}" for p in (MIGRATIONS / "definitions").glob("*.sql")]
    assert applied == sorted([p.name for p in MIGRATIONS.glob("*.sql")] + definitions)


def test_an_edited_migration_is_reported_not_skipped(db: DatabaseUrls, tmp_path: Path) -> None:
    for path in MIGRATIONS.glob("*.sql"):
        shutil.copy(path, tmp_path / path.name)
    first = sorted(tmp_path.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after the fact\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(db.owner, tmp_path, log=lambda _: None)


def test_badly_named_migration_is_refused(tmp_path: Path) -> None:
    (tmp_path / "create_things.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match=r"0001_name\.sql"):
        migrate("dbname=unused", tmp_path, log=lambda _: None)


def test_a_killed_connection_is_replaced_once(db: DatabaseUrls, tenant: UUID) -> None:
    conn = get_connection()
    pid = conn.info.backend_pid
    with psycopg.connect(db.admin) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    with tenant_transaction(tenant) as cur:
        cur.execute("SELECT current_setting('app.tenant_id') AS t, pg_backend_pid() AS pid")
        row = cur.fetchone()
    assert row is not None
    assert row["t"] == str(tenant)
    assert row["pid"] != pid
    assert get_connection().info.backend_pid == row["pid"]  # and reused afterwards


def test_a_snapshot_read_on_a_killed_connection_runs_again_on_a_new_one(db: DatabaseUrls, tenant: UUID) -> None:
    # Pipelined, a connection that breaks shows only when the read fetches a result: here midway, after one read
    calls: list[int] = []

    def read(cur: Cursor) -> object:
        calls.append(1)
        cur.execute("SELECT current_setting('app.tenant_id') AS t, pg_backend_pid() AS pid")
        row = cur.fetchone()
        assert row is not None
        if len(calls) == 1:
            with psycopg.connect(db.admin) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (row["pid"],))
            cur.execute("SELECT 1")
            cur.fetchone()
        return row, get_connection().info.backend_pid

    first = get_connection().info.backend_pid
    row, pid = read_snapshot(tenant, read)
    assert isinstance(row, dict)
    assert row["t"] == str(tenant)
    assert row["pid"] != first
    assert len(calls) == 2  # the first run met the dead connection, the second read on a new one
    assert get_connection().info.backend_pid == row["pid"] == pid


def test_a_snapshot_read_that_fails_on_a_sound_connection_is_not_run_again(db: DatabaseUrls, tenant: UUID) -> None:
    calls: list[int] = []

    def read(cur: Cursor) -> object:
        calls.append(1)
        cur.execute("SELECT set_config('statement_timeout', '50ms', true)")
        cur.execute("SELECT pg_sleep(1)")
        return cur.fetchone()

    with pytest.raises(psycopg.errors.QueryCanceled):
        read_snapshot(tenant, read)
    assert calls == [1]  # a timeout is an OperationalError too, but the connection is sound: no second run
    assert read_snapshot(tenant, lambda cur: cur.execute("SELECT 1 AS one").fetchone()) == {"one": 1}


@pytest.mark.parametrize("failure", ["statement", "python"])
def test_a_snapshot_read_that_fails_leaves_no_transaction_open(db: DatabaseUrls, tenant: UUID, failure: str) -> None:
    class Refused(Exception):
        pass

    def read(cur: Cursor) -> object:
        cur.execute("SELECT 1 AS one")
        cur.fetchone()
        if failure == "statement":
            cur.execute("SELECT 1 / 0")
        else:
            raise Refused
        return cur.fetchone()

    with pytest.raises(psycopg.errors.DivisionByZero if failure == "statement" else Refused):
        read_snapshot(tenant, read)
    conn = get_connection()
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # rolled back, not left open
    with tenant_transaction(tenant) as cur:  # and the next transaction is an ordinary one, bound afresh
        cur.execute("SELECT current_setting('transaction_isolation') AS i, current_setting('app.tenant_id') AS t")
        assert cur.fetchone() == {"i": "read committed", "t": str(tenant)}


def test_connection_settings(db: DatabaseUrls, tenant: UUID) -> None:
    conn = get_connection()
    assert conn.prepare_threshold is None
    with tenant_transaction(tenant) as cur:
        cur.execute("SELECT current_setting('statement_timeout') AS timeout, current_user AS who")
        row = cur.fetchone()
    assert row == {"timeout": "5s", "who": "support_app"}
