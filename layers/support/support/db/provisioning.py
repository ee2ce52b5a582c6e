"""What the migrate function does on every deploy: the schema owner, the migrations, the login roles' passwords.

Aurora's master user is not a superuser (it is a member of rds_superuser, with CREATEROLE and CREATEDB), and the
objects must belong to the same role as locally (`support_owner`, see local/database.py), not to the master:
row-level security is FORCEd for the owner and the SECURITY DEFINER functions run as it, so an owner that is the
all-powerful master would weaken both. So, as the master:

1. create `support_owner` if it is missing: NOLOGIN (nobody logs in as it; the master becomes it with SET ROLE),
   CREATEROLE (the migrations create the runtime roles), NOSUPERUSER NOBYPASSRLS;
2. let the master SET ROLE to it (PostgreSQL 16 gives the creator of a role ADMIN on it but not SET);
3. hand it the database (and the `public` schema, on a database whose schema the master owns): ALTER DATABASE
   ... OWNER TO asks that the new owner may create databases, so it gets CREATEDB for that statement only;
4. as the owner, grant the master CONNECT of its own (sql/0010 takes it from PUBLIC, and the master neither
   owns the database any more nor inherits the owner's rights), so that the next deploy can connect;
5. SET ROLE support_owner and apply `sql/` (support.db.migrations), so every object, and every role the
   migrations create, is the owner's exactly as locally: then, still as the owner and after that commit, number the
   tickets older than references in batches within a time budget (support.db.references);
6. still as the owner (who created them, so holds ADMIN on them), give each login role the password of its
   secret: `ALTER ROLE ... LOGIN PASSWORD` with a SCRAM verifier computed here by libpq, so the plain password
   never reaches the server or its statement log. A role that already logs in with its secret's password is
   left alone (checked by logging in), so a second deploy changes nothing at all;
7. back as the master, take from PUBLIC what initdb gives every role outside this schema (`revoke_public_defaults`):
   CONNECT (and TEMPORARY) on the cluster's other databases, `postgres` and `template1`, and EXECUTE on the
   functions that create large objects (`lo_create` and its two siblings) in this database. The runtime roles need
   none of it: with it a stolen runtime credential could create temporary objects in `postgres` or fill this
   database with large objects that no row-level security or allow-list sees. Only what the master may revoke is
   revoked: the databases it owns (on RDS and Aurora the master owns `postgres` and `template1`), the functions
   whose owner it is a member of (on Aurora rdsadmin owns pg_catalog, so `lo_create` stays callable there); what
   it may not is logged, never a failure. Locally `make run` and the tests call the same step as the server's
   superuser (local/database.py), which may revoke all of it.

Every step checks before it changes, and all of them are serialised by the migrations' advisory lock, so two
runs at once or a run after a run are harmless. Nothing here ever drops anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from support.db.migrations import LOCK_KEY, apply_migrations
from support.db.references import backfill_references
from support.db.secrets import LoginSecret

OWNER_ROLE = "support_owner"


@dataclass(frozen=True)
class RoleLogin:
    """A login role the migrations create, and the secret whose password it must accept."""

    role: str  # the role's name in the migrations (support_app, support_analytics_job)
    secret: LoginSecret

    def __post_init__(self) -> None:
        if self.secret.username != self.role:
            # The secret is what the function logs in with: a different name would log in as another role.
            raise ValueError(f"the secret for {self.role} names the user {self.secret.username!r}")


@dataclass
class ProvisioningReport:
    owner_created: bool = False
    owner_granted_to_master: bool = False
    database_handed_to_owner: bool = False
    schema_handed_to_owner: bool = False
    master_may_connect: bool = False
    migrations_applied: list[str] = field(default_factory=list)
    references_numbered: int = 0  # old tickets given their reference (sql/0025) by this run
    references_left: bool = False  # some are left for the next run (the time budget was spent)
    passwords_set: list[str] = field(default_factory=list)
    public_rights_revoked: list[str] = field(default_factory=list)
    public_rights_kept: list[str] = field(default_factory=list)  # what the master may not revoke (logged)

    @property
    def changed(self) -> bool:
        return bool(
            self.owner_created
            or self.owner_granted_to_master
            or self.database_handed_to_owner
            or self.schema_handed_to_owner
            or self.master_may_connect
            or self.migrations_applied
            or self.references_numbered
            or self.passwords_set
            or self.public_rights_revoked
        )

    def summary(self) -> str:
        if not self.changed:
            return "nothing to change"
        parts = []
        if self.owner_created:
            parts.append(f"created {OWNER_ROLE}")
        if self.owner_granted_to_master:
            parts.append(f"let the master user SET ROLE {OWNER_ROLE}")
        if self.database_handed_to_owner:
            parts.append(f"the database now belongs to {OWNER_ROLE}")
        if self.schema_handed_to_owner:
            parts.append(f"schema public now belongs to {OWNER_ROLE}")
        if self.master_may_connect:
            parts.append("granted the master user CONNECT")
        if self.migrations_applied:
            parts.append("applied " + ", ".join(self.migrations_applied))
        if self.references_numbered:
            left = " (more left for the next run)" if self.references_left else ""
            parts.append(f"numbered {self.references_numbered} old tickets{left}")
        if self.passwords_set:
            parts.append("set the password of " + ", ".join(self.passwords_set))
        if self.public_rights_revoked:
            parts.append("revoked from PUBLIC " + ", ".join(self.public_rights_revoked))
        return "; ".join(parts)


def provision(
    master_conninfo: str,
    migrations: Path,
    logins: Sequence[RoleLogin],
    *,
    can_log_in: Callable[[RoleLogin], bool],
    log: Callable[[str], None] = print,
) -> ProvisioningReport:
    """Bring the database to the state `migrations` and `logins` describe; see the module's docstring.

    `can_log_in` tells whether a role already logs in with its secret's password (the migrate function tries a
    real login to the same endpoint)."""
    report = ProvisioningReport()
    with psycopg.connect(master_conninfo, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            _ensure_owner(conn, report)
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(OWNER_ROLE)))
        with conn.transaction():
            _ensure_master_may_connect(conn, report)
        report.migrations_applied = apply_migrations(conn, migrations, log=log)
        report.references_numbered, report.references_left = backfill_references(conn, log=log)
        for login in logins:
            if can_log_in(login):
                continue
            _set_password(conn, login)
            report.passwords_set.append(login.role)
            log(f"set the password of {login.role}")
        conn.execute("RESET ROLE")
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            report.public_rights_revoked, report.public_rights_kept = revoke_public_defaults(conn, log=log)
    return report


# The cluster's other databases: initdb lets PUBLIC connect to both, and create temporary objects in `postgres`.
OTHER_DATABASES = ("postgres", "template1")
# Every function that creates a large object (lo_import from a server file is superuser-only already); the others
# act on an existing object, which a role that creates none has no rights on (lo_compat_privileges is off).
LARGE_OBJECT_CREATORS = ("lo_create(oid)", "lo_creat(integer)", "lo_from_bytea(oid, bytea)")


def revoke_public_defaults(
    conn: psycopg.Connection[Any], *, log: Callable[[str], None] = print
) -> tuple[list[str], list[str]]:
    """Take from PUBLIC CONNECT and TEMPORARY on OTHER_DATABASES and EXECUTE on LARGE_OBJECT_CREATORS in the
    connected database, where the current role may (it owns the object, is a member of its owner, or is a
    superuser); returns (what was revoked now, what PUBLIC keeps because the current role may not revoke it).
    Checks before it changes: a second call revokes nothing. Runs inside the caller's transaction."""
    revoked: list[str] = []
    kept: list[str] = []
    superuser = bool(_one(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
    for name in OTHER_DATABASES:
        row = conn.execute(
            "SELECT pg_get_userbyid(datdba), pg_has_role(current_user, datdba, 'USAGE'),"
            " has_database_privilege('public', oid, 'CONNECT'), has_database_privilege('public', oid, 'TEMPORARY')"
            " FROM pg_database WHERE datname = %s",
            (name,),
        ).fetchone()
        if row is None:
            continue
        owner, may, connect, temporary = row
        if not (connect or temporary):
            continue
        what = f"CONNECT and TEMPORARY on database {name}"
        if not (may or superuser):
            kept.append(what)
            log(f"PUBLIC keeps {what}: it belongs to {owner}, which this role may not act for")
            continue
        conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
        revoked.append(what)
    for signature in LARGE_OBJECT_CREATORS:
        row = conn.execute(
            "SELECT pg_get_userbyid(p.proowner), pg_has_role(current_user, p.proowner, 'USAGE'),"
            " has_function_privilege('public', p.oid, 'EXECUTE') FROM pg_proc p WHERE p.oid = %s::regprocedure",
            (f"pg_catalog.{signature}",),
        ).fetchone()
        assert row is not None  # every PostgreSQL since 9.4 has them
        owner, may, executable = row
        if not executable:
            continue
        what = f"EXECUTE on {signature}"
        if not (may or superuser):
            kept.append(what)
            log(f"PUBLIC keeps {what}: it belongs to {owner}, which this role may not act for")
            continue
        conn.execute(sql.SQL("REVOKE EXECUTE ON FUNCTION pg_catalog.{} FROM PUBLIC").format(sql.SQL(signature)))
        revoked.append(what)
    if revoked:
        log("revoked from PUBLIC " + ", ".join(revoked))
    return revoked, kept


def _one(conn: psycopg.Connection[Any], query: str, params: Sequence[object] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None  # every query here selects exactly one row
    return row[0]


def _ensure_owner(conn: psycopg.Connection[Any], report: ProvisioningReport) -> None:
    owner = sql.Identifier(OWNER_ROLE)
    if not _one(conn, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)", (OWNER_ROLE,)):
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN CREATEROLE NOSUPERUSER NOBYPASSRLS").format(owner))
        report.owner_created = True

    # PostgreSQL 16 separates SET (may become the role) from membership; 15 and earlier only know membership.
    modern = conn.info.server_version >= 160000
    may_become = _one(conn, "SELECT pg_has_role(current_user, %s, %s)", (OWNER_ROLE, "SET" if modern else "MEMBER"))
    if not may_become:
        grant = "GRANT {} TO CURRENT_USER WITH INHERIT FALSE, SET TRUE" if modern else "GRANT {} TO CURRENT_USER"
        conn.execute(sql.SQL(grant).format(owner))
        report.owner_granted_to_master = True

    database_owner = _one(conn, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()")
    if database_owner != OWNER_ROLE:
        database = sql.Identifier(_one(conn, "SELECT current_database()"))
        conn.execute(sql.SQL("ALTER ROLE {} CREATEDB").format(owner))
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(database, owner))
        conn.execute(sql.SQL("ALTER ROLE {} NOCREATEDB").format(owner))
        report.database_handed_to_owner = True

    # Since PostgreSQL 15 `public` belongs to pg_database_owner (so to the owner now); older databases, or one the
    # master changed, have it owned by the master.
    schema_owner = _one(conn, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'public'")
    if schema_owner not in (OWNER_ROLE, "pg_database_owner"):
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(owner))
        report.schema_handed_to_owner = True


def _ensure_master_may_connect(conn: psycopg.Connection[Any], report: ProvisioningReport) -> None:
    # sql/0010 takes CONNECT from PUBLIC, and the master no longer owns the database (nor inherits the owner's
    # rights: its membership is SET only), so without a grant of its own the next deploy could not connect.
    granted = _one(
        conn,
        "SELECT EXISTS (SELECT FROM pg_database d, aclexplode(d.datacl) a"
        " WHERE d.datname = current_database() AND a.privilege_type = 'CONNECT'"
        " AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = session_user))",
    )
    if not granted:
        database = sql.Identifier(_one(conn, "SELECT current_database()"))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO SESSION_USER").format(database))
        report.master_may_connect = True


def _set_password(conn: psycopg.Connection[Any], login: RoleLogin) -> None:
    # libpq computes the verifier the server's password_encryption asks for (scram-sha-256 on Aurora): the plain
    # password is never sent, so it appears in no statement log. (The algorithm is read first: left to find it
    # itself, libpq would run a blocking query on psycopg's non-blocking connection.)
    algorithm = str(_one(conn, "SELECT current_setting('password_encryption')"))
    verifier = conn.pgconn.encrypt_password(
        login.secret.password.get_secret_value().encode(), login.role.encode(), algorithm.encode()
    ).decode()
    conn.execute(
        sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(sql.Identifier(login.role), sql.Literal(verifier))
    )
