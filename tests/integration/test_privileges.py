"""What a stolen runtime credential can do: exactly the allow-list (sql/privileges.toml), and never run its own
code as the schema owner through a SECURITY DEFINER function."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql

from local.database import APP_ROLE, MIGRATIONS, DatabaseUrls
from tests.http_events import HandlerClient
from tests.integration.test_tickets_api import BASE, new_agent, new_ticket, resolve

ALLOW_LIST = tomllib.loads((MIGRATIONS / "privileges.toml").read_text())

TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
COLUMN_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "REFERENCES")


def _effective_privileges(admin_url: str, role: str) -> dict[str, Any]:
    """What `role` can do in schema public, as the catalog says (has_*_privilege counts grants to the role, to
    PUBLIC and to any role it is a member of), in the allow-list's shape."""
    with psycopg.connect(admin_url) as conn:
        tables: dict[str, dict[str, Any]] = {}
        relations = conn.execute(
            "SELECT c.oid, c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
            " AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY c.relname"
        ).fetchall()
        for oid, name in relations:
            granted: dict[str, Any] = {}
            for privilege in TABLE_PRIVILEGES:
                if conn.execute("SELECT has_table_privilege(%s, %s, %s)", (role, oid, privilege)).fetchone()[0]:  # type: ignore[index]
                    granted[privilege.lower()] = True
            for privilege in COLUMN_PRIVILEGES:
                columns = [
                    row[0]
                    for row in conn.execute(
                        "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped"
                        " AND has_column_privilege(%s, attrelid, attnum, %s) ORDER BY attname",
                        (oid, role, privilege),
                    )
                ]
                key = privilege.lower()
                if columns and key not in granted:
                    granted[key] = sorted(columns)  # column-level only
                elif key in ("insert", "update") and granted.get(key) is True:
                    granted[key] = "every column"  # table-level: wider than any allow-list entry
            if granted:
                tables[name] = granted
        functions = sorted(
            row[0]
            for row in conn.execute(
                "SELECT p.proname FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace"
                " AND has_function_privilege(%s, p.oid, 'EXECUTE')",
                (role,),
            )
        )
        database = [
            p
            for p in ("CONNECT", "CREATE", "TEMPORARY")
            if conn.execute("SELECT has_database_privilege(%s, current_database(), %s)", (role, p)).fetchone()[0]  # type: ignore[index]
        ]
        schema = [
            p
            for p in ("USAGE", "CREATE")
            if conn.execute("SELECT has_schema_privilege(%s, 'public', %s)", (role, p)).fetchone()[0]  # type: ignore[index]
        ]
        sequences = [
            row[0]
            for row in conn.execute(
                "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'S'"
                " AND (has_sequence_privilege(%s, c.oid, 'USAGE') OR has_sequence_privilege(%s, c.oid, 'UPDATE'))",
                (role, role),
            )
        ]
    return {"tables": tables, "functions": functions, "database": database, "schema": schema, "sequences": sequences}


def _allowed(role: str) -> dict[str, Any]:
    entry = ALLOW_LIST[role]
    tables: dict[str, dict[str, Any]] = {}
    for name, rules in entry["tables"].items():
        granted: dict[str, Any] = {}
        if rules.get("select") is True:
            granted["select"] = True
        elif rules.get("select"):
            granted["select"] = sorted(rules["select"])  # column-level only
        if rules.get("delete"):
            granted["delete"] = True
        for key in ("insert", "update"):
            if rules.get(key):
                granted[key] = sorted(rules[key])
        tables[name] = granted
    return {
        "tables": tables,
        "functions": sorted(entry["functions"]),
        "database": sorted(entry["database"]),
        "schema": sorted(entry["schema"]),
        "sequences": [],
    }


# Every role of the allow-list: the API's runtime role and the analytics rollup's two (sql/0012).
ROLES = sorted(ALLOW_LIST)


def test_the_allow_list_names_every_role_the_migrations_create(db: DatabaseUrls) -> None:
    with psycopg.connect(db.admin) as conn:
        roles = {row[0] for row in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'support\\_%'")}
    assert roles - {"support_owner"} == set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_runtime_role_has_exactly_the_allow_listed_privileges(db: DatabaseUrls, role: str) -> None:
    actual = _effective_privileges(db.admin, role)
    allowed = _allowed(role)

    # Table by table first, so a failure names the table that was widened (or narrowed).
    for table in sorted(set(actual["tables"]) | set(allowed["tables"])):
        assert actual["tables"].get(table) == allowed["tables"].get(table), table
    assert actual == allowed


@pytest.mark.parametrize("role", ROLES)
def test_runtime_role_has_no_role_attributes_or_memberships(db: DatabaseUrls, role: str) -> None:
    with psycopg.connect(db.admin) as conn:
        attributes = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication, rolinherit"
            " FROM pg_roles WHERE rolname = %s",
            (role,),
        ).fetchone()
        memberships = conn.execute(
            "SELECT count(*) FROM pg_auth_members WHERE member = %s::regrole", (role,)
        ).fetchone()
        # (PostgreSQL 16 records its creator as a member WITH ADMIN, but neither SET nor INHERIT: that one may only
        # grant it, which the creator could do anyway)
        members = conn.execute(
            "SELECT count(*) FROM pg_auth_members WHERE roleid = %s::regrole AND (set_option OR inherit_option)",
            (role,),
        ).fetchone()
        owns = conn.execute("SELECT count(*) FROM pg_class WHERE relowner = %s::regrole", (role,)).fetchone()
        functions = [
            row[0] for row in conn.execute("SELECT proname FROM pg_proc WHERE proowner = %s::regrole", (role,))
        ]
    assert attributes is not None
    assert attributes[:5] == (False, False, False, False, False)
    assert memberships == (0,)
    assert members == (0,)  # nobody can become it or use its privileges
    assert owns == (0,)
    # the lister owns its SECURITY DEFINER functions (the analytics job's tenants, the contacts backfill's tenants,
    # the waiting chats' tenants of the routing expiry, the retention step's tenants with something due, the uploads
    # step's tenants with unclaimed uploads), so that they run as it; the others own nothing
    lists = [
        "analytics_tenants",
        "attachments_tenants_unclaimed",
        "contacts_backfill_tenants",
        "retention_tenants_due",
        "routing_tenants_waiting",
    ]
    expected = lists if role == "support_analytics_lister" else []
    assert sorted(functions) == expected


def test_a_widened_grant_fails_the_allow_list_comparison(db: DatabaseUrls) -> None:
    """The comparison itself catches a widening: granted inside a transaction that is rolled back."""
    with psycopg.connect(db.owner) as conn:
        conn.execute(sql.SQL("GRANT INSERT ON ticket_totals TO {}").format(sql.Identifier(APP_ROLE)))
        conn.execute(sql.SQL("GRANT UPDATE (average_rating) ON support_agents TO {}").format(sql.Identifier(APP_ROLE)))
        # has_*_privilege sees the uncommitted grants only in this session, so read them here.
        widened_totals = conn.execute("SELECT has_table_privilege(%s, 'ticket_totals', 'INSERT')", (APP_ROLE,))
        assert widened_totals.fetchone() == (True,)
        conn.rollback()
    assert _effective_privileges(db.admin, APP_ROLE) == _allowed(APP_ROLE)


def test_every_security_definer_function_pins_search_path_with_pg_temp_last(db: DatabaseUrls) -> None:
    with psycopg.connect(db.admin) as conn:
        rows = conn.execute(
            "SELECT p.proname, p.proconfig FROM pg_proc p"
            " WHERE p.prosecdef AND p.pronamespace = 'public'::regnamespace ORDER BY 1"
        ).fetchall()
    assert {name for name, _ in rows} >= {
        "index_ticket_for_search",
        "search_ticket_ids",
        "add_ticket_totals",
        "add_chat_totals",
        "add_feedback_totals",
        "add_ticket_day_totals",
        "add_feedback_day_totals",
        "add_agent_figures_for_tickets",
        "add_agent_figures_for_feedback",
        "analytics_tenants",
    }
    for name, config in rows:
        paths = [entry.removeprefix("search_path=") for entry in config or [] if entry.startswith("search_path=")]
        assert paths, f"{name} does not set search_path"
        schemas = [part.strip().strip('"') for part in paths[0].split(",")]
        assert schemas[-1] == "pg_temp", f"{name}: search_path {paths[0]!r} does not end in pg_temp"


def test_public_has_no_temporary_and_no_execute(db: DatabaseUrls) -> None:
    with psycopg.connect(db.admin) as conn:
        public_on_database = conn.execute(
            "SELECT array_agg(a.privilege_type ORDER BY a.privilege_type) FROM pg_database d,"
            " aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a"
            " WHERE d.datname = current_database() AND a.grantee = 0"
        ).fetchone()
        public_functions = conn.execute(
            "SELECT array_agg(p.proname) FROM pg_proc p,"
            " aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a"
            " WHERE p.pronamespace = 'public'::regnamespace AND a.grantee = 0"
        ).fetchone()
    assert public_on_database == (None,)
    assert public_functions == (None,)


def test_a_function_created_later_starts_closed(db: DatabaseUrls) -> None:
    with psycopg.connect(db.owner) as conn:
        conn.execute("CREATE FUNCTION public.added_by_a_later_migration() RETURNS int LANGUAGE sql RETURN 1")
        callable_by_app = conn.execute(
            "SELECT has_function_privilege(%s, 'public.added_by_a_later_migration()', 'EXECUTE')", (APP_ROLE,)
        ).fetchone()
        conn.rollback()
    assert callable_by_app == (False,)


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TEMPORARY TABLE ticket_search_index (ticket_id uuid)",
        "CREATE TEMPORARY VIEW support_tickets AS SELECT 1",
        "CREATE FUNCTION public.planted() RETURNS int LANGUAGE sql RETURN 1",
        "CREATE TABLE public.planted (id int)",
    ],
)
def test_runtime_role_cannot_create_objects(db: DatabaseUrls, statement: str) -> None:
    with psycopg.connect(db.app) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement.encode())


@pytest.mark.parametrize(
    "statement",
    [
        # the running totals: only the owner's triggers write them
        "INSERT INTO ticket_totals (user_id, status, priority, tickets) VALUES (%(t)s, 'open', 'low', 1000000)",
        "UPDATE ticket_totals SET tickets = 0 WHERE user_id = %(t)s",
        "INSERT INTO chat_totals (user_id, status, sessions) VALUES (%(t)s, 'active', 1)",
        "INSERT INTO feedback_totals (user_id, ratings, rating_sum) VALUES (%(t)s, 1, 5)",
        "INSERT INTO ticket_day_totals (user_id, day, tickets) VALUES (%(t)s, current_date, 1000)",
        "UPDATE feedback_day_totals SET ratings = 0 WHERE user_id = %(t)s",
        "SELECT add_to_ticket_day_totals(ARRAY[]::ticket_day_totals[])",
        # the agents' figures
        "UPDATE support_agents SET total_tickets_resolved = 1000 WHERE user_id = %(t)s",
        "UPDATE support_agents SET average_rating = 5, rating_sum = 50, rating_count = 10 WHERE user_id = %(t)s",
        # stamps the database sets
        "UPDATE support_tickets SET created_at = now() - interval '1 year' WHERE user_id = %(t)s",
        "UPDATE support_tickets SET first_responded_at = now() WHERE user_id = %(t)s",
        "UPDATE canned_responses SET created_at = now() WHERE user_id = %(t)s",
        # deletes nothing routes do not delete
        "DELETE FROM support_tickets WHERE user_id = %(t)s",
        "DELETE FROM ticket_feedback WHERE user_id = %(t)s",
        "DELETE FROM chat_messages WHERE user_id = %(t)s",
        "DELETE FROM support_agents WHERE user_id = %(t)s",
        "TRUNCATE canned_responses",
        # analytics rows: written by the analytics job
        "INSERT INTO support_analytics (user_id, analytics_date) VALUES (%(t)s, current_date)",
        "UPDATE support_analytics SET total_tickets_created = 1 WHERE user_id = %(t)s",
        "UPDATE support_analytics SET resolution_histogram = '{}', resolution_p50 = 1 WHERE user_id = %(t)s",
        # the analytics job's tenant list (sql/0012): only the job's role may call it
        "SELECT * FROM analytics_tenants(current_date, current_date)",
        # internal functions
        "SELECT add_agent_figures(ARRAY[]::agent_figures_delta[])",
        "SELECT refresh_agent_metrics(ARRAY[%(t)s]::uuid[])",
        "SELECT * FROM recount_tenant_figures(%(t)s, true)",
        "SELECT * FROM recount_tenant_day_totals(%(t)s, true)",
        "SELECT ticket_search_query('x')",
        # the search side tables: only through search_ticket_ids and suggest_canned_responses
        "SELECT * FROM ticket_search_index",
        "SELECT * FROM canned_response_search",
        "SELECT * FROM canned_response_terms",
        "SELECT canned_response_document('a', 'b')",
        "SELECT * FROM schema_migrations",
    ],
)
def test_runtime_role_cannot_write_what_the_database_keeps(db: DatabaseUrls, tenant: UUID, statement: str) -> None:
    with psycopg.connect(db.app) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement.encode(), {"t": tenant})


# --- Shadowing: even with TEMPORARY granted, a SECURITY DEFINER function never uses the caller's objects --------

# Every relation the SECURITY DEFINER functions name, shadowed by a temporary table of the same shape whose
# trigger records who ran it. If a definer function resolved a name to the shadow, its trigger would run as
# the owner and record it, or the shadow would hold the row written.
SHADOWED = {
    "ticket_search_index": "ticket_id uuid, user_id uuid, created_at timestamptz, search_vector tsvector",
    "ticket_totals": "user_id uuid, status text, priority text, category text, tickets bigint,"
    " resolution_seconds bigint, resolution_count bigint, first_response_seconds bigint, first_response_count bigint",
    "chat_totals": "user_id uuid, status text, sessions bigint, duration_seconds bigint, duration_count bigint",
    "feedback_totals": "user_id uuid, ratings bigint, rating_sum bigint",
    "ticket_day_totals": "user_id uuid, day date, tickets bigint",
    "feedback_day_totals": "user_id uuid, day date, ratings bigint, rating_sum bigint",
    "ticket_feedback": "id uuid, ticket_id uuid, user_id uuid, rating smallint, agent_rating smallint",
    "support_tickets": "id uuid, user_id uuid, status text, priority text, category text, assigned_agent_id uuid,"
    " resolution_time integer, first_response_time integer",
    "support_agents": "id uuid, user_id uuid, total_tickets_resolved integer, rating_sum integer, rating_count integer",
}


@contextmanager
def _temporary_allowed(db: DatabaseUrls) -> Iterator[None]:
    grant = sql.SQL("GRANT TEMPORARY ON DATABASE {} TO {}")
    revoke = sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM {}")
    with psycopg.connect(db.admin, autocommit=True) as conn:
        name = sql.Identifier(conn.info.dbname)
        conn.execute(grant.format(name, sql.Identifier(APP_ROLE)))
        try:
            yield
        finally:
            conn.execute(revoke.format(name, sql.Identifier(APP_ROLE)))


def _plant_shadows(conn: psycopg.Connection[Any], decoy_ticket: UUID, tenant: UUID) -> None:
    # An attacker opens its shadows to everyone, so that the owner may write them when fooled into it.
    conn.execute("CREATE TEMPORARY TABLE evidence (ran_as text, on_table text)")
    conn.execute("GRANT ALL ON pg_temp.evidence TO PUBLIC")
    conn.execute(
        "CREATE FUNCTION pg_temp.record_who_ran() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN INSERT INTO pg_temp.evidence VALUES (current_user, TG_TABLE_NAME); RETURN NULL; END $$"
    )
    for name, columns in SHADOWED.items():
        conn.execute(sql.SQL("CREATE TEMPORARY TABLE {} ({})").format(sql.Identifier(name), sql.SQL(columns)))
        conn.execute(sql.SQL("GRANT ALL ON pg_temp.{} TO PUBLIC").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER record AFTER INSERT OR UPDATE OR DELETE ON pg_temp.{} "
                "FOR EACH ROW EXECUTE FUNCTION pg_temp.record_who_ran()"
            ).format(sql.Identifier(name))
        )
    # A decoy in the search side table's shadow: a search that read the shadow would return it.
    conn.execute(
        "INSERT INTO pg_temp.ticket_search_index VALUES (%s, %s, now(), to_tsvector('simple', 'shadowword'))",
        (decoy_ticket, tenant),
    )
    conn.execute("DELETE FROM pg_temp.evidence")  # the decoy's own insert


def test_shadow_objects_of_the_runtime_role_never_run_or_get_read(
    db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID
) -> None:
    # Given an agent, and a session of the runtime role that may create temporary objects (granted for this
    # test only: the migrations revoke it) and shadows every relation the definer functions name
    agent = new_agent(tickets_api)
    decoy = uuid4()
    with _temporary_allowed(db), psycopg.connect(db.app) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
        _plant_shadows(conn, decoy, tenant)
        conn.commit()

        # When it creates, assigns, resolves and rates a ticket and searches (naming public tables explicitly:
        # its own unqualified names would resolve to its shadows, which only fools itself)
        ticket = conn.execute(
            "INSERT INTO public.support_tickets (user_id, customer_name, customer_email, subject, category)"
            " VALUES (%s, 'Eve', 'eve@example.com', 'shadowword order', 'billing') RETURNING id",
            (tenant,),
        ).fetchone()
        assert ticket is not None
        conn.execute(
            "UPDATE public.support_tickets SET assigned_agent_id = %s, status = 'resolved', resolution_time = 60"
            " WHERE id = %s",
            (agent["id"], ticket[0]),
        )
        conn.execute(
            "INSERT INTO public.ticket_feedback (user_id, ticket_id, rating, agent_rating) VALUES (%s, %s, 4, 5)",
            (tenant, ticket[0]),
        )
        conn.execute(
            "INSERT INTO public.live_chat_sessions (user_id, visitor_id, status) VALUES (%s, 'v', 'waiting')",
            (tenant,),
        )
        found = [
            row[0]
            for row in conn.execute("SELECT ticket_id FROM public.search_ticket_ids('shadowword', 10)").fetchall()
        ]
        evidence = conn.execute("SELECT ran_as, on_table FROM pg_temp.evidence").fetchall()
        shadow_rows = {
            name: conn.execute(sql.SQL("SELECT count(*) FROM pg_temp.{}").format(sql.Identifier(name))).fetchone()
            for name in SHADOWED
        }
        real = conn.execute(
            "SELECT (SELECT sum(tickets) FROM public.ticket_totals WHERE user_id = %(t)s),"
            " (SELECT ratings FROM public.feedback_totals WHERE user_id = %(t)s),"
            " (SELECT sessions FROM public.chat_totals WHERE user_id = %(t)s),"
            " (SELECT rating_count FROM public.support_agents WHERE id = %(a)s)",
            {"t": tenant, "a": agent["id"]},
        ).fetchone()
        conn.commit()

    # Then no shadow ran or was written, the search did not read the decoy, and the real tables were kept
    assert evidence == []
    assert shadow_rows == {name: (1 if name == "ticket_search_index" else 0,) for name in SHADOWED}
    assert found == [ticket[0]]
    assert real == (1, 1, 1, 1)


def test_the_shadow_test_detects_a_function_without_pg_temp_last(db: DatabaseUrls, tenant: UUID) -> None:
    """Control: the same shadows DO capture a definer function written as 0003 wrote them (pg_temp unlisted,
    names unqualified), so the test above would fail on that code."""
    with psycopg.connect(db.owner, autocommit=True) as owner:
        owner.execute(
            "CREATE FUNCTION public.old_style_index(t uuid) RETURNS void LANGUAGE plpgsql SECURITY DEFINER"
            " SET search_path = pg_catalog, public AS $$ BEGIN"
            " INSERT INTO ticket_search_index (ticket_id, user_id, created_at, search_vector)"
            " VALUES (gen_random_uuid(), t, now(), ''); END $$"
        )
        owner.execute(
            sql.SQL("GRANT EXECUTE ON FUNCTION public.old_style_index(uuid) TO {}").format(sql.Identifier(APP_ROLE))
        )
    try:
        with _temporary_allowed(db), psycopg.connect(db.app) as conn:
            conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
            _plant_shadows(conn, uuid4(), tenant)
            conn.execute("SELECT public.old_style_index(%s)", (tenant,))
            evidence = conn.execute("SELECT ran_as, on_table FROM pg_temp.evidence").fetchall()
            conn.rollback()
    finally:
        with psycopg.connect(db.owner, autocommit=True) as owner:
            owner.execute("DROP FUNCTION public.old_style_index(uuid)")
    assert evidence == [("support_owner", "ticket_search_index")]


# --- The recount ----------------------------------------------------------------------------------------------


def _recount(db: DatabaseUrls, tenant: UUID, *, repair: bool = False) -> list[tuple[str, str, str | None, str | None]]:
    with psycopg.connect(db.owner) as conn:
        if not repair:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        rows = conn.execute("SELECT * FROM recount_tenant_figures(%s, %s)", (tenant, repair)).fetchall()
        conn.commit()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def test_recount_finds_and_repairs_drift(db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID) -> None:
    # Given a tenant whose figures the triggers kept
    agent = new_agent(tickets_api)
    ticket = new_ticket(tickets_api, category="billing")
    tickets_api.post(f"{BASE}/{ticket['id']}/assign", {"agentId": agent["id"]})
    resolve(tickets_api, ticket["id"])
    tickets_api.post(f"{BASE}/{ticket['id']}/feedback", {"rating": 4, "agentRating": 5})
    assert _recount(db, tenant) == []

    # When the stored figures drift (as after a manual fix or a partial restore)
    with psycopg.connect(db.admin) as conn:
        conn.execute("UPDATE ticket_totals SET tickets = tickets + 3 WHERE user_id = %s", (tenant,))
        conn.execute("UPDATE feedback_totals SET ratings = 0, rating_sum = 0 WHERE user_id = %s", (tenant,))
        conn.execute(
            "UPDATE support_agents SET rating_sum = rating_sum + 4, current_chats = 2 WHERE id = %s", (agent["id"],)
        )

    # Then the recount names each difference, repair mends them, and a second recount finds none
    found = _recount(db, tenant)
    assert sorted((figure, key) for figure, key, _, _ in found) == [
        ("feedback_totals", str(tenant)),
        ("support_agents", agent["id"]),
        ("ticket_totals", "resolved/medium/billing/api"),
    ]
    seconds = _resolution_seconds(db, tenant)
    by_key = {(figure, key): (stored, recounted) for figure, key, stored, recounted in found}
    assert by_key[("ticket_totals", "resolved/medium/billing/api")] == (f"(4,{seconds},1,0,0)", f"(1,{seconds},1,0,0)")
    assert by_key[("feedback_totals", str(tenant))] == ("(0,0)", "(1,4)")
    assert _recount(db, tenant, repair=True) == found
    assert _recount(db, tenant) == []
    with psycopg.connect(db.admin) as conn:
        figures = conn.execute(
            "SELECT rating_sum, rating_count, average_rating, current_chats FROM support_agents WHERE id = %s",
            (agent["id"],),
        ).fetchone()
    assert figures is not None
    assert (figures[0], figures[1], float(figures[2]), figures[3]) == (5, 1, 5.0, 0)


def _resolution_seconds(db: DatabaseUrls, tenant: UUID) -> str:
    with psycopg.connect(db.admin) as conn:
        row = conn.execute("SELECT sum(resolution_time) FROM support_tickets WHERE user_id = %s", (tenant,)).fetchone()
    assert row is not None
    return str(row[0])


def test_repair_refuses_a_snapshot_transaction(db: DatabaseUrls, tenant: UUID) -> None:
    with psycopg.connect(db.owner) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        with pytest.raises(psycopg.errors.RaiseException, match="READ COMMITTED"):
            conn.execute("SELECT * FROM recount_tenant_figures(%s, true)", (tenant,))


def test_totals_keep_no_rows_at_zero(db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID) -> None:
    # Given tickets in one category, then all moved to another
    tickets = [new_ticket(tickets_api, category="billing") for _ in range(3)]
    for ticket in tickets:
        assert tickets_api.patch(f"{BASE}/{ticket['id']}", {"category": "shipping"}).status == 200

    # Then the totals hold no row for the category nobody uses
    with psycopg.connect(db.admin) as conn:
        rows = conn.execute(
            "SELECT category, tickets FROM ticket_totals WHERE user_id = %s ORDER BY category", (tenant,)
        ).fetchall()
    assert rows == [("shipping", 3)]
    assert _recount(db, tenant) == []


def test_temporary_views_shadowing_the_search_are_never_read(db: DatabaseUrls, tenant: UUID) -> None:
    """The view form of the attack on search_ticket_ids: temporary views named like the relations it reads,
    answering a decoy for any tenant and any filter. A function that resolved its names to them would return
    the decoy."""
    decoy = uuid4()
    with _temporary_allowed(db), psycopg.connect(db.app) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
        conn.execute(
            f"CREATE TEMPORARY VIEW ticket_search_index AS SELECT '{decoy}'::uuid AS ticket_id,"
            f" '{tenant}'::uuid AS user_id, now() AS created_at, to_tsvector('simple', 'viewdecoy') AS search_vector"
        )
        conn.execute(
            f"CREATE TEMPORARY VIEW support_tickets AS SELECT '{decoy}'::uuid AS id, '{tenant}'::uuid AS user_id,"
            " 'open'::text AS status, 'low'::text AS priority, NULL::uuid AS assigned_agent_id, NULL::text AS category"
        )
        found = conn.execute(
            "SELECT ticket_id FROM public.search_ticket_ids('viewdecoy', 10, want_status => 'open')"
        ).fetchall()
        unfiltered = conn.execute("SELECT ticket_id FROM public.search_ticket_ids('viewdecoy', 10)").fetchall()
        conn.rollback()
    assert found == [] and unfiltered == []
