"""The schema's layout: versioned migrations (sql/NNNN_*.sql) for what must be ordered, and one current definition
of every function, trigger, view and policy in sql/definitions/ (support.db.migrations says how they apply).

Given/When/Then against real databases: the session's test database, and scratch databases of this module made
from a copy of sql/ so that nothing here changes what the other tests run against.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from local.database import MIGRATIONS, DatabaseUrls
from support.db.migrations import DEFINITIONS, MigrationError, migrate

LAST_RELEASE_BEFORE_DEFINITIONS = "0017"  # the last version deployed before sql/definitions existed
DEFINITION_FILES = sorted((MIGRATIONS / DEFINITIONS).glob("*.sql"))


def _definitions_text() -> dict[str, str]:
    return {path.name: path.read_text() for path in DEFINITION_FILES}


def catalog(url: str) -> dict[str, Any]:
    """What the definitions decide, as PostgreSQL prints it back: function bodies and settings, triggers,
    policies, views, row-level security flags, and the functions' owners and ACLs."""
    with psycopg.connect(url) as conn:
        return {
            "functions": conn.execute(
                """SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid), pg_get_userbyid(p.proowner),
                          p.proacl::text
                   FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                   WHERE n.nspname = 'public' ORDER BY 1"""
            ).fetchall(),
            "triggers": conn.execute(
                "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid), tgenabled FROM pg_trigger"
                " WHERE NOT tgisinternal ORDER BY 1, 2"
            ).fetchall(),
            "policies": conn.execute(
                "SELECT tablename, policyname, permissive, roles::text, cmd, qual, with_check FROM pg_policies"
                " ORDER BY 1, 2"
            ).fetchall(),
            "views": conn.execute(
                "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' ORDER BY 1"
            ).fetchall(),
            "row_level_security": conn.execute(
                """SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1"""
            ).fetchall(),
        }


def _in(url: str, dbname: str) -> str:
    return make_conninfo(url, dbname=dbname)


@pytest.fixture
def scratch(db: DatabaseUrls) -> Iterator[str]:
    """An empty database of the test server, owned by the schema owner (its URL as the owner), dropped after."""
    name = "support_definitions_scratch"
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(_in(db.admin, "postgres"), autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER support_owner").format(sql.Identifier(name)))
    yield _in(db.owner, name)
    with psycopg.connect(_in(db.admin, "postgres"), autocommit=True) as conn:
        conn.execute(drop)


def _copy_sql(to: Path, *, versions_before: str | None = None, definitions: bool = True) -> Path:
    to.mkdir()
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if versions_before is None or path.name < versions_before:
            shutil.copy(path, to / path.name)
    if definitions:
        shutil.copytree(MIGRATIONS / DEFINITIONS, to / DEFINITIONS)
    return to


# --- one hop: every replaceable object has its one current definition in sql/definitions ------------------------


# The audit capture's triggers, which sql/definitions/audit.sql attaches to every tenant table (but the exempt ones)
# by one block that reads the catalog, rather than by one statement per table.
AUDIT_TRIGGERS = {"audit_capture_write", "audit_capture_update"}


def _defined_in(kind: str, name: str, on: str | None = None) -> list[str]:
    if kind == "function":
        pattern = rf"CREATE OR REPLACE FUNCTION public\.{name}\("
    elif kind == "trigger":
        pattern = rf"CREATE OR REPLACE TRIGGER {name}\s[^;]*\sON public\.{on}\s"
    else:  # views
        pattern = rf"CREATE OR REPLACE VIEW public\.{name}\s"
    return [file for file, text in _definitions_text().items() if re.search(pattern, text)]


def test_every_function_trigger_and_view_has_exactly_one_current_definition(db: DatabaseUrls) -> None:
    found = catalog(db.owner)
    missing_or_twice = {}
    for signature, *_ in found["functions"]:
        name = signature.split("(")[0]
        if len(files := _defined_in("function", name)) != 1:
            missing_or_twice[f"function {signature}"] = files
    for table, trigger, *_ in found["triggers"]:
        if trigger in AUDIT_TRIGGERS:
            continue  # attached to every tenant table by one block (tests/integration/test_audit.py checks them)
        if len(files := _defined_in("trigger", trigger, on=table)) != 1:
            missing_or_twice[f"trigger {trigger} on {table}"] = files
    for view, _ in found["views"]:
        if len(files := _defined_in("view", view)) != 1:
            missing_or_twice[f"view {view}"] = files
    assert missing_or_twice == {}


def test_the_row_level_security_list_is_every_table_with_a_user_id_column(db: DatabaseUrls) -> None:
    text = _definitions_text()["row_level_security.sql"]
    listed = set(re.findall(r"\('([a-z_]+)', (?:true|false)\)", text))
    with psycopg.connect(db.owner) as conn:
        tenant_tables = {
            row[0]
            for row in conn.execute(
                """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped
                   WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"""
            )
        }
        policies = {
            row[0] for row in conn.execute("SELECT tablename FROM pg_policies WHERE policyname = 'tenant_isolation'")
        }
    assert listed == tenant_tables
    assert policies == tenant_tables


# The SQL-language functions with a SET clause (search_path): PostgreSQL 16 neither inlines such a function nor keeps
# its plan, so every call from another statement plans its body again (about 0.3 ms a call for chat_participants:
# the live chat's PostgreSQL CPU per message fell from 1.49 to 0.83 ms when it and chat_refusal became PL/pgSQL, whose
# statements keep their plans per connection; a ticket update's from 1.9 to 1.17 ms when the figures' and totals'
# per-row helpers lost their SET, so that they are inlined, and the SLA's and routing's became PL/pgSQL). A per-row
# helper without SET is written in the standard form (`RETURN expression`), whose names are bound when it is
# created, so no caller's search_path changes what it means. These stay SQL with SET: the jobs' and the sweep's
# listers and batch steps, signing and sealing, and the few called once per request at most. A new one is a
# decision: PL/pgSQL, an inlined `RETURN` helper, or named here with its reason.
SQL_FUNCTIONS_PLANNED_PER_CALL = {
    # the webhook capture's one insert, for a desk with endpoints (webhook_deliveries_add sets a setting too)
    "webhook_envelope",
    "webhook_ticket_data",
    "webhook_deliveries_add",
    # the jobs' and the sweep's listers and batch steps (once per run or per tenant)
    "analytics_tenants",
    "audit_chained_tenants",
    "audit_oldest_entry_at",
    "automation_sweep_work",
    "contacts_backfill_tenants",
    "email_inbound_tenant",
    "email_outbox_claim",
    "email_outbox_sent_as",
    "idempotency_keys_purge",
    "privacy_requests_due",
    "retention_tenants_due",
    "routing_tenants_waiting",
    "routing_lock_tickets",
    "sla_sweep",
    "webhook_sweep_work",
    "webhook_log_tenants_due",
    "webhook_delivery_log_cutoff",
    "attachments_tenants_unclaimed",
    "refresh_agent_metrics",
    "automation_seed_own_defaults",
    # signing, sealing, and the rest called once per request at most
    "audit_entry_canonical",
    "audit_entry_hash",
    "channel_hmac_sha256",
    "channel_secret_overlap_ends",
    "webhook_hmac_pads",
    "webhook_secret_overlap_ends",
    "webhook_signatures",
    "broadcast_request",
}


def test_sql_functions_planned_at_every_call_are_only_those_named(db: DatabaseUrls) -> None:
    with psycopg.connect(db.owner) as conn:
        found = {
            row[0]
            for row in conn.execute(
                """SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                   JOIN pg_language l ON l.oid = p.prolang
                   WHERE n.nspname = 'public' AND l.lanname = 'sql' AND p.proconfig IS NOT NULL"""
            )
        }
    assert found - SQL_FUNCTIONS_PLANNED_PER_CALL == set(), "make these PL/pgSQL, or name them with a reason"
    assert SQL_FUNCTIONS_PLANNED_PER_CALL - found == set(), "no longer SQL functions with a SET clause"


def test_sql_functions_without_a_set_clause_are_bound_when_created(db: DatabaseUrls) -> None:
    # `RETURN expression` (prosqlbody): its names resolved at CREATE, not by the caller's search_path
    with psycopg.connect(db.owner) as conn:
        unbound = conn.execute(
            """SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
               JOIN pg_language l ON l.oid = p.prolang
               WHERE n.nspname = 'public' AND l.lanname = 'sql' AND p.proconfig IS NULL AND p.prosqlbody IS NULL"""
        ).fetchall()
    assert unbound == []


def test_versioned_migrations_after_the_last_release_define_nothing_replaceable() -> None:
    # A data move that needs a function makes a pg_temp one (as sql/0016 does); everything else lives in
    # sql/definitions, where the next reader looks for it.
    # Anywhere in the text, comments aside: dynamic SQL in a DO block (EXECUTE 'CREATE POLICY ...') counts too.
    replaceable = re.compile(
        r"(CREATE\s+(OR\s+REPLACE\s+)?(FUNCTION\s+(?!pg_temp\.)|TRIGGER|VIEW|POLICY)|ALTER\s+POLICY)", re.IGNORECASE
    )
    texts = {
        path.name: re.sub(r"--[^\n]*", "", path.read_text())
        for path in sorted(MIGRATIONS.glob("*.sql"))
        if path.name[:4] > LAST_RELEASE_BEFORE_DEFINITIONS
    }
    offenders = {name: [m.group(0) for m in replaceable.finditer(text)] for name, text in texts.items()}
    offenders = {name: found for name, found in offenders.items() if found}
    assert offenders == {}


# --- applying them ------------------------------------------------------------------------------------------------


def test_a_database_at_the_last_release_upgrades_to_what_a_fresh_install_has(
    db: DatabaseUrls, scratch: str, tmp_path: Path
) -> None:
    # Given a database as the last release left it (sql/0001-0017, no definitions), holding a tenant's ticket
    released = _copy_sql(tmp_path / "released", versions_before="0018", definitions=False)
    migrate(scratch, released, log=lambda _: None)
    tenant = "6f2c1a9e-0000-4000-8000-000000000001"
    with psycopg.connect(scratch) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant,))
        conn.execute(
            "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, priority, status)"
            " VALUES (%s, 'Ada', 'ada@example.com', 'Parcel late', 'high', 'open')",
            (tenant,),
        )

    # When this revision's migrations run on it, as a deploy's migrate function would
    applied = migrate(scratch, MIGRATIONS, log=lambda _: None)

    # Then it took the new versions and the definitions, and its catalog is the fresh test database's
    assert applied[-len(DEFINITION_FILES) :] == [f"{DEFINITIONS}/{p.name}" for p in DEFINITION_FILES]
    assert catalog(scratch) == catalog(db.owner)
    with psycopg.connect(scratch) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant,))
        assert conn.execute("SELECT subject FROM support_tickets").fetchall() == [("Parcel late",)]
        # the triggers the definitions replaced still keep the figures: the running totals counted the ticket
        assert conn.execute("SELECT sum(tickets) FROM ticket_totals").fetchone() == (1,)
    # and a second run changes nothing
    assert migrate(scratch, MIGRATIONS, log=lambda _: None) == []


def test_a_changed_definition_is_applied_and_a_broken_one_changes_nothing(scratch: str, tmp_path: Path) -> None:
    # Given a database migrated from a copy of sql/ with one more definition of our own
    sql_dir = _copy_sql(tmp_path / "sql")
    probe = sql_dir / DEFINITIONS / "zz_probe.sql"
    probe.write_text("CREATE OR REPLACE FUNCTION public.definitions_probe() RETURNS int LANGUAGE sql RETURN 1;\n")
    migrate(scratch, sql_dir, log=lambda _: None)

    def probe_answer() -> object:
        with psycopg.connect(scratch) as conn:
            row = conn.execute("SELECT public.definitions_probe()").fetchone()
            return row[0] if row else None

    assert probe_answer() == 1

    # When the definition changes, the next run applies it (and every other file, in one transaction)
    probe.write_text("CREATE OR REPLACE FUNCTION public.definitions_probe() RETURNS int LANGUAGE sql RETURN 2;\n")
    assert len(migrate(scratch, sql_dir, log=lambda _: None)) == len(DEFINITION_FILES) + 1
    assert probe_answer() == 2

    # When a definition is broken, the run fails naming it, and nothing of the definitions changed
    probe.write_text(
        "CREATE OR REPLACE FUNCTION public.definitions_probe() RETURNS int LANGUAGE sql RETURN 3;\nSELEC broken;\n"
    )
    with pytest.raises(MigrationError, match=r"definitions/zz_probe\.sql failed"):
        migrate(scratch, sql_dir, log=lambda _: None)
    assert probe_answer() == 2


def test_definitions_are_owed_again_after_any_versioned_migration(scratch: str, tmp_path: Path) -> None:
    # Given a database up to date with a copy of sql/
    sql_dir = _copy_sql(tmp_path / "sql")
    migrate(scratch, sql_dir, log=lambda _: None)

    # When a new versioned migration drops a trigger the definitions keep (as a table rebuild would)
    (sql_dir / "9999_drop_a_trigger.sql").write_text(
        "DROP TRIGGER support_tickets_updated_at ON public.support_tickets;\n"
    )
    applied = migrate(scratch, sql_dir, log=lambda _: None)

    # Then the definitions ran after it and the trigger is back
    assert applied == ["9999_drop_a_trigger.sql"] + [f"{DEFINITIONS}/{p.name}" for p in DEFINITION_FILES]
    with psycopg.connect(scratch) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'support_tickets_updated_at'"
        ).fetchone() == (1,)


def test_a_badly_named_definition_is_refused(tmp_path: Path) -> None:
    (tmp_path / DEFINITIONS).mkdir()
    (tmp_path / DEFINITIONS / "Bad Name.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match=r"area_name\.sql"):
        migrate("dbname=unused", tmp_path, log=lambda _: None)
