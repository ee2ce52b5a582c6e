"""The audit trail (issue 19): capture on every tenant table, the actor, personal values apart, the runtime role's
rights, the hash chain and its checks, pruning and erasure (sql/definitions/audit.sql, support.services.audit)."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from local.verify_audit import verify_chain
from support.audit_actor import Actor, acting_as, job
from support.db.connection import SET_TENANT, tenant_transaction
from support.services import audit
from tests.http_events import HandlerClient
from tests.integration.test_tickets_api import BASE, new_agent, new_ticket

AUDIT_SQL = Path(__file__).parents[2] / "sql" / "definitions" / "audit.sql"
EXEMPT = set(
    re.findall(r"'([a-z_]+)'", AUDIT_SQL.read_text().split("exempt constant text[] := ARRAY[")[1].split("];")[0])
)
TRIGGERS = {"audit_capture_write", "audit_capture_update"}


def uncaptured(conn: psycopg.Connection[Any]) -> dict[str, set[str]]:
    """Tenant tables (a user_id column) that lack one of the capture's triggers and are not exempt."""
    rows = conn.execute(
        """SELECT c.relname, array_remove(array_agg(t.tgname::text), NULL)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_trigger t ON t.tgrelid = c.oid AND t.tgname LIKE 'audit_capture_%'
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
             AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'user_id'
                         AND NOT a.attisdropped)
           GROUP BY c.relname"""
    ).fetchall()
    return {name: TRIGGERS - set(found) for name, found in rows if name not in EXEMPT and TRIGGERS - set(found)}


def entries(db: DatabaseUrls, tenant: UUID, table: str | None = None) -> list[dict[str, Any]]:
    with psycopg.connect(db.admin, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            "SELECT * FROM audit_entries WHERE user_id = %s AND (%s::text IS NULL OR table_name = %s) ORDER BY id",
            (tenant, table, table),
        ).fetchall()


def seal(db: DatabaseUrls) -> int:
    with psycopg.connect(db.owner) as conn:
        row = conn.execute("SELECT audit_seal()").fetchone()
        assert row is not None
        return int(row[0])


def verify(db: DatabaseUrls, tenant: UUID) -> tuple[Any, ...]:
    """(checked, broken_seq, problem) of the whole chain, by the database's check (audit_verify, the scheduled
    check's) and by make verify-audit's recomputation in Python, which must agree."""
    with psycopg.connect(db.owner) as conn:
        row = conn.execute(
            "SELECT checked, broken_seq, problem FROM audit_verify(%s, NULL, NULL, 1000000)", (tenant,)
        ).fetchone()
        assert row is not None
        checked, found = verify_chain(conn, tenant, progress=False)
    assert (checked, found.seq if found else None, found.problem if found else None) == tuple(row)
    return tuple(row)


# --- capture --------------------------------------------------------------------------------------------------------


def test_every_tenant_table_is_captured_or_exempt(db: DatabaseUrls) -> None:
    with psycopg.connect(db.owner) as conn:
        assert uncaptured(conn) == {}
        # every exemption names a real table (a stale entry would hide nothing, but mislead)
        tables = {
            r[0] for r in conn.execute("SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace")
        }
        assert tables >= EXEMPT


def test_the_catalog_check_fails_for_a_table_without_capture(db: DatabaseUrls) -> None:
    with psycopg.connect(db.owner) as conn, conn.transaction(force_rollback=True):
        conn.execute("DROP TRIGGER audit_capture_update ON support_tickets")
        conn.execute("CREATE TABLE public.audit_probe (id uuid PRIMARY KEY, user_id uuid NOT NULL)")
        assert uncaptured(conn) == {"support_tickets": {"audit_capture_update"}, "audit_probe": TRIGGERS}


def test_a_table_added_later_is_captured_when_the_definitions_run(db: DatabaseUrls, tenant: UUID) -> None:
    with psycopg.connect(db.owner) as conn, conn.transaction(force_rollback=True):
        conn.execute(  # a json column too: a type without equality, compared by its text in the WHEN clause
            "CREATE TABLE public.audit_probe (id uuid PRIMARY KEY, user_id uuid NOT NULL, note text, meta json)"
        )
        conn.execute(AUDIT_SQL.read_text().encode())
        assert uncaptured(conn) == {}
        probe = uuid4()
        conn.execute("INSERT INTO audit_probe VALUES (%s, %s, 'secret words', '{}')", (probe, tenant))
        conn.execute("UPDATE audit_probe SET meta = '{\"a\": 1}'")
        rows = conn.execute(
            "SELECT table_name, action, changes FROM audit_entries WHERE user_id = %s ORDER BY id", (tenant,)
        ).fetchall()
        assert rows == [
            ("audit_probe", "insert", {"id": {"new": str(probe)}, "note": {"redacted": True}, "meta": {"new": {}}}),
            ("audit_probe", "update", {"meta": {"old": {}, "new": {"a": 1}}}),
        ]


def test_a_ticket_change_records_who_what_and_when(db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID) -> None:
    # Given an agent's ticket, created by an admin
    agent = new_agent(tickets_api)
    ticket = new_ticket(tickets_api, description="Card number 4111 1111 1111 1111")
    # When the agent changes its status and priority
    as_agent = HandlerClient(tickets_api.handler, tenant=tenant, role="agent", agent_id=UUID(agent["id"]))
    reply = as_agent.patch(f"{BASE}/{ticket['id']}", {"status": "in_progress", "priority": "high"})
    assert reply.status == 200, reply.body
    # Then the ticket's entries: the admin's insert, the agent's update with only what changed, before and after
    rows = entries(db, tenant, "support_tickets")
    assert [(r["action"], r["actor_type"]) for r in rows] == [("insert", "admin"), ("update", "agent")]
    created, updated = rows
    assert created["row_id"] == ticket["id"] and created["request_id"] and created["db_role"] == "support_app"
    assert updated["actor_id"] == agent["id"]
    assert updated["changes"]["status"] == {"old": "open", "new": "in_progress"}
    assert updated["changes"]["priority"] == {"old": "medium", "new": "high"}
    assert "updated_at" not in updated["changes"] and "customer_email" not in updated["changes"]
    # and no text or personal value is in the entries themselves
    assert created["changes"]["description"] == {"redacted": True}
    assert created["changes"]["customer_email"] == {"personal": True}
    text = str([r["changes"] for r in entries(db, tenant)])
    assert "4111" not in text and "ada@example.com" not in text and "Ada Lovelace" not in text
    # the personal values are apart, under the customer's email, and match the entry's digest
    with psycopg.connect(db.admin) as conn:
        subject, vals, digest_ok = conn.execute(
            "SELECT v.subject, v.vals, sha256(v.salt || convert_to(v.vals::text, 'UTF8')) = e.personal_digest"
            " FROM audit_personal_values v JOIN audit_entries e ON e.id = v.entry_id WHERE e.id = %s",
            (created["id"],),
        ).fetchone() or (None, None, None)
    assert subject == "ada@example.com" and digest_ok
    assert vals["customer_email"] == {"new": "ada@example.com"}


def test_derived_counters_alone_make_no_entry(db: DatabaseUrls, tenant: UUID) -> None:
    # as the owner: the counters are the owner's functions' to write (the live chat's hot path)
    with psycopg.connect(db.owner, autocommit=True) as conn, conn.transaction(force_rollback=True):
        conn.execute(SET_TENANT, (str(tenant),))
        session = conn.execute(
            "INSERT INTO live_chat_sessions (user_id, visitor_id) VALUES (%s, 'v1') RETURNING id", (tenant,)
        ).fetchone()
        assert session is not None
        message = conn.execute(
            "INSERT INTO chat_messages (user_id, session_id, sender_type, message) VALUES (%s, %s, 'customer', 'hi')"
            " RETURNING id",
            (tenant, session[0]),
        ).fetchone()
        assert message is not None
        before = conn.execute("SELECT count(*) FROM audit_entries WHERE user_id = %s", (tenant,)).fetchone()
        # a message's counters and a read receipt: no entry
        conn.execute(
            "UPDATE live_chat_sessions SET total_messages = 1, message_count = 1, updated_at = now()"
            " WHERE user_id = %s",
            (tenant,),
        )
        conn.execute("UPDATE chat_messages SET is_read = true, read_at = now() WHERE user_id = %s", (tenant,))
        assert conn.execute("SELECT count(*) FROM audit_entries WHERE user_id = %s", (tenant,)).fetchone() == before
        # a status change: one entry, with the message text never copied
        conn.execute(
            "UPDATE live_chat_sessions SET status = 'active', total_messages = 2 WHERE user_id = %s", (tenant,)
        )
        rows = conn.execute(
            "SELECT table_name, action, changes FROM audit_entries WHERE user_id = %s ORDER BY id", (tenant,)
        ).fetchall()
    assert rows[-1] == ("live_chat_sessions", "update", {"status": {"old": "waiting", "new": "active"}})
    assert ("chat_messages", "insert") in [(r[0], r[1]) for r in rows]
    assert all(r[2].get("message", {"redacted": True}) == {"redacted": True} for r in rows)


def test_without_an_actor_the_entry_says_unknown_and_a_job_names_itself(db: DatabaseUrls, tenant: UUID) -> None:
    with psycopg.connect(db.owner) as conn:
        conn.execute(SET_TENANT, (str(tenant),))
        conn.execute(
            "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject)"
            " VALUES (%s, 'A', 'a@x.io', 's')",
            (tenant,),
        )
    with acting_as(job("workflow_sweep")), tenant_transaction(tenant) as cur:
        cur.execute("UPDATE support_tickets SET priority = 'low' WHERE user_id = %s", (tenant,))
    with acting_as(Actor("visitor", "visitor-7", "req-1")), tenant_transaction(tenant) as cur:
        cur.execute("UPDATE support_tickets SET priority = 'high' WHERE user_id = %s", (tenant,))
    rows = entries(db, tenant, "support_tickets")
    assert [(r["actor_type"], r["actor_id"], r["request_id"], r["db_role"]) for r in rows] == [
        ("unknown", None, None, "support_owner"),
        ("job", "workflow_sweep", None, "support_app"),
        ("visitor", "visitor-7", "req-1", "support_app"),
    ]


# --- the runtime role's rights --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO audit_entries (user_id, occurred_at, actor_type, db_role, table_name, row_id, action, changes)"
        " VALUES (current_setting('app.tenant_id')::uuid, now(), 'x', 'x', 'x', 'x', 'insert', '{}')",
        "UPDATE audit_entries SET changes = '{}'",
        "UPDATE audit_entries SET seq = NULL, entry_hash = NULL",
        "DELETE FROM audit_entries",
        "TRUNCATE audit_entries",
        "SELECT * FROM audit_personal_values",
        "DELETE FROM audit_personal_values",
        "SELECT * FROM audit_chain_state",
        "UPDATE audit_chain_state SET last_seq = 0",
        "SELECT * FROM audit_verify(current_setting('app.tenant_id')::uuid, NULL, NULL, 10)",
    ],
)
def test_the_runtime_role_cannot_change_or_delete_entries(
    db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID, statement: str
) -> None:
    new_ticket(tickets_api)
    with psycopg.connect(db.app, autocommit=True) as conn, conn.transaction(force_rollback=True):
        conn.execute(SET_TENANT, (str(tenant),))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement.encode())


def test_the_runtime_role_reads_only_its_tenants_entries(
    db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID, other_tenant: UUID
) -> None:
    new_ticket(tickets_api)
    new_ticket(tickets_api.as_tenant(other_tenant))
    with psycopg.connect(db.app, autocommit=True) as conn, conn.transaction(force_rollback=True):
        conn.execute(SET_TENANT, (str(tenant),))
        seen = {row[0] for row in conn.execute("SELECT DISTINCT user_id FROM audit_entries")}
    assert seen == {tenant}


def test_the_runtime_role_cannot_prune_recent_entries_or_another_tenants(
    db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID, other_tenant: UUID
) -> None:
    new_ticket(tickets_api)
    seal(db)
    with tenant_transaction(tenant) as cur, pytest.raises(psycopg.errors.InvalidParameterValue):
        audit.prune(cur, tenant, datetime.now(UTC))
    with tenant_transaction(tenant) as cur, pytest.raises(psycopg.errors.InsufficientPrivilege):
        audit.prune(cur, other_tenant, datetime.now(UTC) - timedelta(days=400))
    with tenant_transaction(tenant) as cur, pytest.raises(psycopg.errors.InsufficientPrivilege):
        audit.erase_subjects(cur, other_tenant, ["ada@example.com"])
    assert len(entries(db, tenant)) >= 1


# --- the chain ------------------------------------------------------------------------------------------------------


def _chained(db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID, tickets: int = 3) -> list[dict[str, Any]]:
    for n in range(tickets):
        ticket = new_ticket(tickets_api, subject=f"Ticket {n}")
        tickets_api.patch(f"{BASE}/{ticket['id']}", {"priority": "high"})
    seal(db)
    rows = entries(db, tenant)
    assert all(r["seq"] is not None for r in rows)
    assert verify(db, tenant) == (len(rows), None, None)
    return sorted(rows, key=lambda r: r["seq"])


def test_an_edit_by_the_owner_is_detected(db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID) -> None:
    rows = _chained(db, tickets_api, tenant)
    target = rows[2]
    with psycopg.connect(db.owner) as conn:  # the table's owner: no grant or trigger stops it
        conn.execute(
            "UPDATE audit_entries SET actor_type = 'agent', actor_id = 'someone else' WHERE id = %s", (target["id"],)
        )
    assert verify(db, tenant) == (2, target["seq"], "changed")


def test_a_deletion_by_the_owner_is_detected(db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID) -> None:
    rows = _chained(db, tickets_api, tenant)
    with psycopg.connect(db.owner) as conn:
        conn.execute("DELETE FROM audit_entries WHERE id = %s", (rows[3]["id"],))
    assert verify(db, tenant) == (3, rows[3]["seq"], "missing")


def test_a_deleted_tail_is_detected(db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID) -> None:
    rows = _chained(db, tickets_api, tenant)
    with psycopg.connect(db.owner) as conn:
        conn.execute("DELETE FROM audit_entries WHERE id = %s", (rows[-1]["id"],))
    assert verify(db, tenant) == (len(rows) - 1, rows[-1]["seq"], "truncated")


def test_a_swap_by_the_owner_is_detected(db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID) -> None:
    rows = _chained(db, tickets_api, tenant)
    first, second = rows[1], rows[2]
    with psycopg.connect(db.owner) as conn:  # the two entries trade places in the chain, hashes and all
        conn.execute("UPDATE audit_entries SET seq = -seq WHERE id IN (%s, %s)", (first["id"], second["id"]))
        conn.execute(
            "UPDATE audit_entries SET seq = %s, entry_hash = %s WHERE id = %s",
            (second["seq"], second["entry_hash"], first["id"]),
        )
        conn.execute(
            "UPDATE audit_entries SET seq = %s, entry_hash = %s WHERE id = %s",
            (first["seq"], first["entry_hash"], second["id"]),
        )
    assert verify(db, tenant) == (1, first["seq"], "changed")


def test_edited_personal_values_are_detected(db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID) -> None:
    rows = _chained(db, tickets_api, tenant, tickets=1)
    with psycopg.connect(db.owner) as conn:
        conn.execute(
            'UPDATE audit_personal_values SET vals = \'{"customer_email": {"new": "x@y.z"}}\' WHERE entry_id = %s',
            (rows[0]["id"],),
        )
    assert verify(db, tenant) == (0, rows[0]["seq"], "personal values changed")


def test_an_erasure_leaves_the_chain_verifiable(db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID) -> None:
    # Given a customer's tickets, chained, and another customer's
    rows = _chained(db, tickets_api, tenant, tickets=2)
    new_ticket(tickets_api, customerEmail="grace@example.com", customerName="Grace")
    seal(db)
    # When the customer's subjects are erased: her email (as she gave it, any case) and her contact's row
    with psycopg.connect(db.admin) as conn:
        contact = conn.execute(
            "SELECT contact_id FROM contact_identities WHERE user_id = %s AND value = 'ada@example.com'", (tenant,)
        ).fetchone()
    assert contact is not None
    subjects = [audit.subject_of_email(" Ada@Example.com "), f"support_contacts:{contact[0]}"]
    with tenant_transaction(tenant) as cur:
        erased = audit.erase_subjects(cur, tenant, subjects)
    # the two tickets' inserts, her contact's and its email identity's (the priority updates named nothing of hers)
    assert erased == 4
    # Then no trace of her email or name in the audit, the other customer's kept, and the chain still verifies
    with psycopg.connect(db.admin) as conn:
        kept = conn.execute(
            "SELECT string_agg(vals::text, ' ') FROM audit_personal_values WHERE user_id = %s", (tenant,)
        ).fetchone()
    assert kept is not None and "ada@example.com" not in kept[0] and "Ada Lovelace" not in kept[0]
    assert "grace@example.com" in kept[0]
    assert len(rows) < len(entries(db, tenant))
    assert verify(db, tenant) == (len(entries(db, tenant)), None, None)


def test_an_entry_that_commits_late_is_chained_after_the_later_ones(
    db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID
) -> None:
    # Given a transaction that wrote an entry (a lower id) and has not committed
    late = psycopg.connect(db.app)
    late.execute(SET_TENANT, (str(tenant),))
    late.execute(  # not a ticket: a tenant's ticket creates wait for each other's reference number
        "INSERT INTO canned_responses (user_id, response_title, response_content, shortcut_key)"
        " VALUES (%s, 'Late', 'Sorry for the wait', 'late')",
        (tenant,),
    )
    try:
        # When later entries commit and are sealed, and then the late one commits and is sealed
        new_ticket(tickets_api)
        seal(db)
        late.commit()
    finally:
        late.close()
    seal(db)
    # Then the late entry is chained last, although its id is the lowest, and the chain verifies
    rows = sorted(entries(db, tenant), key=lambda r: r["seq"])
    assert rows[-1]["id"] == min(r["id"] for r in rows)
    assert verify(db, tenant) == (len(rows), None, None)


def test_concurrent_writers_and_sealers_keep_one_chain(
    db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID
) -> None:
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(5):
                new_ticket(tickets_api)
        except BaseException as exc:
            errors.append(exc)

    def sealing() -> None:
        try:
            for _ in range(10):
                seal(db)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sealing) for _ in range(2)]
    for thread in threads:
        thread.start()
    write()
    for thread in threads:
        thread.join()
    assert errors == []
    seal(db)
    rows = entries(db, tenant)
    assert sorted(r["seq"] for r in rows) == list(range(1, len(rows) + 1))
    assert verify(db, tenant) == (len(rows), None, None)


def test_the_scheduled_check_reports_a_broken_chain(db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID) -> None:
    from functions.workflow_sweep import app as sweep

    def check_all(now: datetime) -> list[dict[str, Any]]:  # the step, with a budget for every tenant of the tests
        return audit.check(now, budget=10_000_000)

    steps: list[tuple[str, sweep.Step]] = [("audit", audit.seal), ("audit_check", check_all)]
    # Given a chain the check found whole
    rows = _chained(db, tickets_api, tenant, tickets=1)
    sweep.run_steps(datetime.now(UTC), steps)
    # When the owner edits an entry
    with psycopg.connect(db.owner) as conn:
        conn.execute("UPDATE audit_entries SET action = 'delete' WHERE id = %s", (rows[0]["id"],))
    # Then the sweep's next check counts it (the WorkflowSweep_audit_check metric), and the state names the entry
    result = sweep.run_steps(datetime.now(UTC), steps)
    assert result["ok"] and result["steps"]["audit_check"] >= 1
    with psycopg.connect(db.owner) as conn:
        state = conn.execute(
            "SELECT broken_seq, broken_problem FROM audit_chain_state WHERE user_id = %s", (tenant,)
        ).fetchone()
    assert state == (rows[0]["seq"], "changed")


# --- pruning --------------------------------------------------------------------------------------------------------


def test_pruning_keeps_the_rest_of_the_chain_verifiable(
    db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID
) -> None:
    # Given entries of two years ago and of today, chained
    long_ago = datetime.now(UTC) - timedelta(days=730)
    with psycopg.connect(db.admin) as conn:
        for n in range(4):
            conn.execute(
                "INSERT INTO audit_entries (user_id, occurred_at, actor_type, db_role, table_name, row_id, action,"
                " changes) VALUES (%s, %s, 'job', 'support_app', 'support_tickets', %s, 'update', '{}')",
                (tenant, long_ago + timedelta(minutes=n), str(n)),
            )
    new_ticket(tickets_api)
    seal(db)
    total = len(entries(db, tenant))
    # When the entries older than 400 days are pruned, in batches of 3
    with tenant_transaction(tenant) as cur:
        assert audit.prune(cur, tenant, datetime.now(UTC) - timedelta(days=400), batch=3) == 3
    with tenant_transaction(tenant) as cur:
        assert audit.prune(cur, tenant, datetime.now(UTC) - timedelta(days=400), batch=3) == 1
    with tenant_transaction(tenant) as cur:
        assert audit.prune(cur, tenant, datetime.now(UTC) - timedelta(days=400)) == 0
    # Then today's remain, and the chain verifies from its new anchor
    assert len(entries(db, tenant)) == total - 4
    assert verify(db, tenant) == (total - 4, None, None)
    # and a deletion right after the anchor is still found
    first = min(entries(db, tenant), key=lambda r: r["seq"])
    with psycopg.connect(db.owner) as conn:
        conn.execute("DELETE FROM audit_entries WHERE id = %s", (first["id"],))
    assert verify(db, tenant)[1:] == (first["seq"], "missing")


def test_make_verify_audit_reports_the_first_break(
    db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID, capsys: pytest.CaptureFixture[str]
) -> None:
    import local.verify_audit

    rows = _chained(db, tickets_api, tenant, tickets=2)
    assert local.verify_audit.verify(db.owner, tenant=tenant) == []
    assert f"{tenant}  ok: {len(rows)} entries" in capsys.readouterr().out
    with psycopg.connect(db.owner) as conn:
        conn.execute("DELETE FROM audit_entries WHERE id = %s", (rows[1]["id"],))
    breaks = local.verify_audit.verify(db.owner, tenant=tenant)
    assert [(b.seq, b.problem) for b in breaks] == [(rows[1]["seq"], "missing")]
    assert f"{tenant}  BROKEN at entry {rows[1]['seq']}: missing (1 verified before it)" in capsys.readouterr().out


def test_websocket_actions_record_the_visitor_and_the_agent(db: DatabaseUrls, tenant: UUID, monkeypatch: Any) -> None:
    from support.auth import Principal, Role, authorizer_context
    from support.models.agents import AgentCreate
    from support.models.widgets import WidgetCreate
    from support.services import agents, widgets
    from tests.integration.test_websocket_route_response import Connection, ManagementApi, _answer
    from tests.management_api import management_api_serving

    admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="admin")
    agent = agents.create_agent(admin, AgentCreate(agent_name="Grace", agent_email=f"{uuid4()}@desk.example"))
    staff = Principal(tenant_id=tenant, role=Role.AGENT, subject="grace", agent_id=agent.id)
    key = widgets.create_widget(admin, WidgetCreate(name="Shop", allowed_origins=["https://shop.example"])).widget_key
    visitor_principal = Principal(
        tenant_id=tenant, role=Role.VISITOR, subject="visitor:v-1", visitor_id="v-1", widget_key=key
    )
    recorder = ManagementApi()
    with management_api_serving(recorder.post, monkeypatch, delete=recorder.delete):
        grace, visitor = Connection(authorizer_context(staff)), Connection(authorizer_context(visitor_principal))
        request_id, result = visitor.send("startChat", visitorName="Lin")
        session_id = _answer(result, request_id)["data"]["id"]
        request_id, result = grace.send("setStatus", status="available")
        _answer(result, request_id)
        request_id, result = visitor.send(
            "sendMessage", sessionId=session_id, message="My card is 4111", clientMessageId="m-1"
        )
        assert _answer(result, request_id)["type"] == "message.new", result
    rows = entries(db, tenant)
    started = [r for r in rows if r["table_name"] == "live_chat_sessions" and r["action"] == "insert"]
    assert [(r["actor_type"], r["actor_id"]) for r in started] == [("visitor", "v-1")]
    assert started[0]["request_id"]  # API Gateway's request id of the event
    status = [r for r in rows if r["table_name"] == "support_agents" and "status" in r["changes"]]
    assert [(r["actor_type"], r["actor_id"]) for r in status][-1] == ("agent", str(agent.id))
    sent = [r for r in rows if r["table_name"] == "chat_messages"]
    assert [(r["actor_type"], r["changes"]["message"]) for r in sent] == [("visitor", {"redacted": True})]
    assert "4111" not in str([r["changes"] for r in rows])
