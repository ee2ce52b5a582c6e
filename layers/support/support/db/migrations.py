"""Apply the ordered plain-SQL migrations in `sql/` (NNNN_name.sql), each once, each in its own transaction.

Safe to run twice and from two processes at once: a transaction-level advisory lock serialises runners,
and `schema_migrations` records what was applied (with a checksum, so an edited migration is reported
instead of silently skipped). Runs as the schema owner, locally from `make run` and the tests, and in
AWS from the migrate function.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

LOCK_KEY = 0x5_0990_47  # any constant shared by every runner of this schema
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file name must look like 0001_name.sql: {path.name}")
        found.append(Migration(version=match.group(1), name=path.name, sql=path.read_text()))
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise MigrationError("two migration files share a version number")
    return found


def migrate(conninfo: str, directory: Path, *, log: Callable[[str], None] = print) -> list[str]:
    """Apply pending migrations as the role `conninfo` logs in as; returns the names applied by this call."""
    discover(directory)  # a badly named file is refused before anything connects
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return apply_migrations(conn, directory, log=log)


def apply_migrations(
    conn: psycopg.Connection[Any], directory: Path, *, log: Callable[[str], None] = print
) -> list[str]:
    """Apply pending migrations on an autocommit connection, as its current role (the migrate function first
    sets the role to the schema owner); returns the names applied by this call."""
    pending = discover(directory)
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
    for migration in pending:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            row = conn.execute(
                "SELECT checksum FROM schema_migrations WHERE version = %s", (migration.version,)
            ).fetchone()
            if row is not None:
                if row[0] != migration.checksum:
                    raise MigrationError(f"{migration.name} changed after it was applied; add a new one")
                continue
            try:
                conn.execute(migration.sql.encode())
            except psycopg.Error as exc:
                raise MigrationError(f"{migration.name} failed: {exc}") from exc
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
        applied_now.append(migration.name)
        log(f"applied {migration.name}")
    return applied_now
