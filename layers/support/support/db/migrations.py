"""Bring the schema to what `sql/` describes: the versioned migrations, then the current definitions.

* Versioned migrations, `sql/NNNN_name.sql`: what must happen in order (tables, columns, indexes, grants, data
  moves). Each is applied once and never edited afterwards: `schema_migrations` records it with a checksum, so an
  edited migration is reported instead of silently skipped.
* Current definitions, `sql/definitions/<area>.sql`: what can be replaced in place (functions, trigger
  functions and their triggers, views, row-level security policies), each object defined in exactly one file,
  where a reader finds it in one hop, as Flyway's repeatable migrations and Supabase's declarative schemas keep
  them. Every file is written to be re-applied (CREATE OR REPLACE, policies changed only where they differ).
  After the versioned migrations, all of them are applied again, in file-name order, whenever any file changed
  or any versioned migration was applied by this run; `schema_definitions` records the checksums. So the
  definitions always have the last word over what a versioned migration (0001-0017 still carry the bodies of
  their day) defined, and a deployed database takes the layout on its next run.

A run is one transaction: the pending migrations and the definitions commit together (a table a migration
backfills gets the triggers that keep it in the same commit, so no write falls between them), and a failure
anywhere leaves the database as it was.

Safe to run twice and from two processes at once: a transaction-level advisory lock serialises runners. Runs as
the schema owner, locally from `make run` and the tests, and in AWS from the migrate function.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from support.db.references import backfill_references

LOCK_KEY = 0x5_0990_47  # any constant shared by every runner of this schema
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_DEFINITION_NAME = re.compile(r"^[a-z][a-z0-9_]*\.sql$")
DEFINITIONS = "definitions"  # the folder of current definitions, inside the migrations folder


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


@dataclass(frozen=True)
class Definition:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover_definitions(directory: Path) -> list[Definition]:
    """The current definitions in `directory`/definitions, in the order they are applied (by file name)."""
    found = []
    for path in sorted((directory / DEFINITIONS).glob("*.sql")):
        if not _DEFINITION_NAME.match(path.name):
            raise MigrationError(f"definition file name must look like area_name.sql: {path.name}")
        found.append(Definition(name=path.name, sql=path.read_text()))
    return found


def migrate(conninfo: str, directory: Path, *, log: Callable[[str], None] = print) -> list[str]:
    """Apply pending migrations as the role `conninfo` logs in as; returns the names applied by this call."""
    discover(directory)  # a badly named file is refused before anything connects
    discover_definitions(directory)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        applied = apply_migrations(conn, directory, log=log)
        backfill_references(conn, log=log)  # after the commit, in batches of their own (support.db.references)
        return applied


def apply_migrations(
    conn: psycopg.Connection[Any], directory: Path, *, log: Callable[[str], None] = print
) -> list[str]:
    """Apply pending migrations, then the definitions, on an autocommit connection, as its current role (the
    migrate function first sets the role to the schema owner); returns the names applied by this call.

    One transaction for all of it: a migration that creates and backfills a table commits together with the
    triggers that keep it (in the definitions), so no write can fall between the two, and a failure anywhere
    leaves the database as it was."""
    pending = discover(directory)
    definitions = discover_definitions(directory)
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_definitions ("
            " name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in pending:
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
            log(f"applying {migration.name}")
        # The definitions are applied again after any migration (it may have replaced what they define), and
        # whenever one of them changed.
        recorded = dict(conn.execute("SELECT name, checksum FROM schema_definitions").fetchall())
        if applied_now or recorded != {d.name: d.checksum for d in definitions}:
            applied_now += _apply_definitions(conn, definitions, log=log)
    return applied_now


def _apply_definitions(
    conn: psycopg.Connection[Any], definitions: list[Definition], *, log: Callable[[str], None]
) -> list[str]:
    """Apply every definition file, in name order, inside the caller's transaction, and record their checksums."""
    for definition in definitions:
        try:
            conn.execute(definition.sql.encode())
        except psycopg.Error as exc:
            raise MigrationError(f"{DEFINITIONS}/{definition.name} failed: {exc}") from exc
    conn.execute("DELETE FROM schema_definitions")
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO schema_definitions (name, checksum) VALUES (%s, %s)",
            [(d.name, d.checksum) for d in definitions],
        )
    names = [f"{DEFINITIONS}/{d.name}" for d in definitions]
    log(f"applying the current definitions ({len(names)} files)")
    return names
