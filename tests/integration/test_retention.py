"""Retention (issue 19): the policy's settings, and the archive run of the workflow sweep's `retention` step.

Real PostgreSQL, real handlers and services; moto in server mode (local.ses, as `make run` runs it) stands in for S3.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local.database import DatabaseUrls, connected_as
from local.verify_totals import verify
from support.services import analytics, retention
from support.services.retention import RetentionRule
from tests import recount
from tests.http_events import HandlerClient
from tests.integration.test_tickets_api import BASE, new_agent, new_ticket, resolve

SETTINGS = "/api/support/settings/retention"
BUCKET = "desk-archive-test"
DEFAULTS = {
    "tickets": {"mode": "keep", "days": None},
    "chats": {"mode": "keep", "days": None},
    "auditDays": None,
}
ARCHIVE_30 = {"tickets": {"mode": "archive", "days": 30}, "chats": {"mode": "archive", "days": 30}, "auditDays": 400}


@pytest.fixture
def settings_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.settings import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


@pytest.fixture
def s3_buckets() -> dict[str, str]:
    """The bucket the `s3` fixture (tests/integration/conftest.py) makes in moto."""
    return {"ARCHIVE_BUCKET": BUCKET}


def archived(s3: Any, tenant: UUID) -> dict[str, list[dict[str, Any]]]:
    """Every archive object of `tenant`: key -> its JSON lines."""
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"archive/{tenant}/").get("Contents", [])
    return {
        o["Key"]: [json.loads(line) for line in s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read().splitlines()]
        for o in listed
    }


def age(db: DatabaseUrls, tenant: UUID, ticket_ids: list[str], days: int) -> None:
    """Tickets closed (and made) `days` ago, as an owner's correction would set them."""
    with psycopg.connect(db.admin) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
        conn.execute(
            """UPDATE support_tickets SET created_at = now() - make_interval(days => %s + 1),
                   resolved_at = now() - make_interval(days => %s)
            WHERE user_id = %s AND id = ANY(%s)""",
            (days, days, tenant, [UUID(t) for t in ticket_ids]),
        )


def ended_chat(db: DatabaseUrls, tenant: UUID, agent_id: str | None, days_ago: int, messages: int = 2) -> str:
    """A chat that ended `days_ago` days ago, with its messages, written as the owner (as an import would)."""
    with psycopg.connect(db.admin) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
        row = conn.execute(
            """INSERT INTO live_chat_sessions (user_id, visitor_id, visitor_name, visitor_email, status,
                   assigned_agent_id, session_start_time, session_end_time, duration, created_at)
            VALUES (%s, %s, 'Vic Visitor', 'vic@example.com', 'closed', %s,
                    now() - make_interval(days => %s, mins => 10), now() - make_interval(days => %s), 600,
                    now() - make_interval(days => %s, mins => 10))
            RETURNING id""",
            (tenant, f"v-{uuid4()}", agent_id, days_ago, days_ago, days_ago),
        ).fetchone()
        assert row is not None
        for n in range(messages):
            conn.execute(
                "INSERT INTO chat_messages (user_id, session_id, sender_type, message) VALUES (%s, %s, 'customer', %s)",
                (tenant, row[0], f"message {n}"),
            )
    return str(row[0])


def ticket_ids(db: DatabaseUrls, tenant: UUID) -> set[str]:
    return {str(r["id"]) for r in recount.rows(db, tenant, "support_tickets")}


def chat_ids(db: DatabaseUrls, tenant: UUID) -> set[str]:
    return {str(r["id"]) for r in recount.rows(db, tenant, "live_chat_sessions")}


def figures(db: DatabaseUrls, tenant: UUID) -> dict[str, Any]:
    """What the dashboard and the analytics count, as stored (running totals, day totals, SLA totals, agents,
    the rolled-up days) and as the API answers it."""
    from functions.dashboard import app as dashboard_app

    dashboard = HandlerClient(dashboard_app.lambda_handler, tenant=tenant)
    today = datetime.now(UTC).date()
    with psycopg.connect(db.admin) as conn:
        sla = conn.execute("SELECT * FROM ticket_sla_totals WHERE user_id = %s ORDER BY priority", (tenant,)).fetchall()
        days = conn.execute(
            """SELECT analytics_date, total_tickets_created, total_tickets_resolved, total_chats_started,
                      total_chats_completed, rating_count, rating_sum, resolution_seconds
            FROM support_analytics WHERE user_id = %s ORDER BY analytics_date""",
            (tenant,),
        ).fetchall()
    board = dashboard.get("/api/support/dashboard")
    assert board.status == 200, board.body
    data = dict(board.data)
    data.pop("recentTickets", None)  # the newest five rows: a list of rows present, not a figure
    for agent in data.get("topAgents", []):
        agent.pop("updatedAt")  # the row's, touched by a repair's rewrite of the figures (which stay equal)
    summary = dashboard.get(
        "/api/support/analytics/summary",
        query={"from": str(today - timedelta(days=50)), "to": str(today - timedelta(days=1))},
    )
    return {
        "tickets": recount.stored_ticket_totals(db, tenant),
        "chats": recount.stored_chat_totals(db, tenant),
        "feedback": recount.stored_feedback_totals(db, tenant),
        "days": recount.stored_day_totals(db, tenant),
        "agents": recount.stored_agent_figures(db, tenant),
        "sla": sla,
        "rolled_up": days,
        "dashboard": data,
        "summary": (summary.status, summary.body),
    }


@pytest.fixture
def desk(
    db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient, settings_api: HandlerClient
) -> Iterator[dict[str, Any]]:
    """A desk with an archive policy (30 days): three old closed tickets with their threads and feedback, an old
    open ticket, a young closed ticket, two old ended chats and a young one."""
    agent = new_agent(tickets_api)
    old: list[str] = []
    for n in range(3):
        ticket = new_ticket(tickets_api, subject=f"Old {n}", category="billing", priority="high")
        tickets_api.patch(f"{BASE}/{ticket['id']}", {"assignedAgentId": agent["id"]})
        reply = tickets_api.post(
            f"{BASE}/{ticket['id']}/conversations",
            {"senderType": "agent", "senderName": "Grace", "message": f"answer {n}"},
        )
        assert reply.status == 201, reply.body
        resolve(tickets_api, ticket["id"])
        rated = tickets_api.post(f"{BASE}/{ticket['id']}/feedback", {"rating": 4 + n % 2, "agentRating": 5})
        assert rated.status == 201, rated.body
        old.append(ticket["id"])
    old_open = new_ticket(tickets_api, subject="Old but open")["id"]
    young = new_ticket(tickets_api, subject="Young")["id"]
    resolve(tickets_api, young)
    age(db, tenant, [*old, old_open], 40)
    chats = [ended_chat(db, tenant, agent["id"], 45), ended_chat(db, tenant, None, 31)]
    young_chat = ended_chat(db, tenant, None, 2)
    # the days before today rolled up, as the daily job did
    today = datetime.now(UTC).date()
    with connected_as(db.analytics_job):
        report = analytics.roll_up(today - timedelta(days=50), today - timedelta(days=1), tenant)
    assert not report.failed
    assert settings_api.put(SETTINGS, ARCHIVE_30).status == 200
    yield {"agent": agent, "old": old, "old_open": old_open, "young": young, "chats": chats, "young_chat": young_chat}
    # The policy goes with the test: the workflow sweep's tests run every step across the database's tenants, and a
    # tenant left with rows due would be archived there (to a bucket they do not configure).
    with psycopg.connect(db.admin) as conn:
        conn.execute("DELETE FROM tenant_settings WHERE user_id = %s AND area = 'retention'", (tenant,))


# --- the settings -------------------------------------------------------------------------------------------------


def test_retention_settings_default_to_keeping_everything_then_round_trip(
    settings_api: HandlerClient, other_tenant: UUID
) -> None:
    assert settings_api.get(SETTINGS).data == DEFAULTS

    reply = settings_api.put(SETTINGS, ARCHIVE_30)

    assert reply.status == 200, reply.body
    assert reply.data == ARCHIVE_30 == settings_api.get(SETTINGS).data
    assert settings_api.as_tenant(other_tenant).get(SETTINGS).data == DEFAULTS
    # a field left out takes its default (the whole model is sent)
    assert settings_api.put(SETTINGS, {"chats": {"mode": "delete", "days": 7}}).data == {
        **DEFAULTS,
        "chats": {"mode": "delete", "days": 7},
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tickets": {"mode": "archive"}}, "body.tickets"),  # archive needs days
        ({"tickets": {"mode": "keep", "days": 30}}, "body.tickets"),  # keep takes none
        ({"chats": {"mode": "shred", "days": 30}}, "body.chats.mode"),
        ({"tickets": {"mode": "delete", "days": 0}}, "body.tickets.days"),
        ({"auditDays": 364}, "body.auditDays"),  # at least a year
        ({"auditDays": "forever"}, "body.auditDays"),
        ({"ticketDays": 30}, "body.ticketDays"),  # unknown field
    ],
)
def test_invalid_retention_settings_are_422_and_change_nothing(
    settings_api: HandlerClient, body: dict[str, Any], field: str
) -> None:
    reply = settings_api.put(SETTINGS, body)

    assert reply.status == 422, reply.body
    assert any(d["field"] == field for d in reply.body["error"]["details"]), reply.body
    assert settings_api.get(SETTINGS).data == DEFAULTS


def test_only_an_admin_changes_the_retention_settings(settings_api: HandlerClient, tenant: UUID) -> None:
    agent = settings_api.as_tenant(tenant, role="agent")

    assert agent.get(SETTINGS).status == 200
    assert agent.put(SETTINGS, ARCHIVE_30).status == 403
    assert settings_api.get(SETTINGS).data == DEFAULTS


# --- the archive run ----------------------------------------------------------------------------------------------


def test_an_archive_run_writes_the_due_rows_to_s3_then_deletes_them_and_every_figure_stays(
    db: DatabaseUrls, tenant: UUID, desk: dict[str, Any], s3: Any
) -> None:
    # Given the desk's figures before
    before = figures(db, tenant)
    assert verify(db.owner, db.admin, repair=False, tenant=tenant) == 0

    # When the retention step runs
    report = retention.run(datetime.now(UTC), tenants=[tenant])

    # Then the old closed tickets and the old ended chats are gone, and nothing else
    assert report.deleted == {"tickets": 3, "chats": 2} == report.archived
    assert ticket_ids(db, tenant) == {desk["old_open"], desk["young"]}
    assert chat_ids(db, tenant) == {desk["young_chat"]}
    for table in ("ticket_conversations", "ticket_feedback", "chat_messages"):
        kept = {str(r.get("ticket_id") or r.get("session_id")) for r in recount.rows(db, tenant, table)}
        assert kept <= {desk["old_open"], desk["young"], desk["young_chat"]}, table
    # and S3 holds them, each with what hung from it, encrypted, under archive/<tenant>/<day>/
    objects = archived(s3, tenant)
    # one object per kind and closing day (UTC): the tickets closed 40 days ago, the chats ended 45 and 31 days ago
    assert sorted(objects) == sorted(report.objects) and len(objects) == 3
    lines = [line for batch in objects.values() for line in batch]
    tickets = {line["ticket"]["id"]: line for line in lines if line["kind"] == "ticket"}
    assert set(tickets) == set(desk["old"])
    for line in tickets.values():
        assert [c["message"] for c in line["conversations"]] == [f"answer {line['ticket']['subject'][-1]}"]
        assert line["feedback"]["agent_rating"] == 5 and "search_vector" not in line["ticket"]
    chats = {line["session"]["id"]: line for line in lines if line["kind"] == "chat"}
    assert set(chats) == set(desk["chats"])
    assert all(sorted(m["message"] for m in c["messages"]) == ["message 0", "message 1"] for c in chats.values())
    for key, batch in objects.items():
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ServerSideEncryption"] == "AES256"
        day, name = key.split("/")[2:]
        assert datetime.strptime(day, "%Y-%m-%d") and name.endswith(".jsonl")
        closed = [
            line["ticket"]["resolved_at"] if line["kind"] == "ticket" else line["session"]["session_end_time"]
            for line in batch
        ]
        assert {datetime.fromisoformat(c).astimezone(UTC).strftime("%Y-%m-%d") for c in closed} == {day}
    # and every figure is as it was: the dashboard, the analytics, the totals, the agents' figures
    assert figures(db, tenant) == before
    # and the recount (make verify-totals) still agrees with them: the tombstones count what was deleted
    assert verify(db.owner, db.admin, repair=False, tenant=tenant) == 0

    # When it runs again: nothing is due, nothing is written
    again = retention.run(datetime.now(UTC), tenants=[tenant])
    assert (again.rows, again.objects) == (0, [])
    assert len(archived(s3, tenant)) == 3


def test_the_audit_records_a_retention_delete_by_row_and_keeps_none_of_its_values(
    db: DatabaseUrls, tenant: UUID, desk: dict[str, Any], s3: Any
) -> None:
    # When the retention step deletes the old tickets (with their threads and feedback)
    retention.run(datetime.now(UTC), tenants=[tenant])

    # Then each deleted row has its audit entry, naming the row and saying retention, with none of its values: the
    # audit keeps nothing retention removed (no personal values either), while an ordinary delete records them all
    with psycopg.connect(db.owner) as conn:
        entries = conn.execute(
            """SELECT e.table_name, e.row_id, e.changes, e.personal_digest,
                      EXISTS (SELECT FROM audit_personal_values v WHERE v.entry_id = e.id) AS has_values
               FROM audit_entries e WHERE e.user_id = %s AND e.action = 'delete'""",
            (tenant,),
        ).fetchall()
    deleted_tickets = {row_id for table, row_id, *_ in entries if table == "support_tickets"}
    assert deleted_tickets == set(desk["old"])
    assert {table for table, *_ in entries} >= {"support_tickets", "ticket_conversations", "live_chat_sessions"}
    assert all(changes == {"retention": True} for _, _, changes, _, _ in entries)
    assert not any(digest or has_values for *_, digest, has_values in entries)


def test_a_repair_of_the_totals_after_an_archive_keeps_the_history(
    db: DatabaseUrls, tenant: UUID, desk: dict[str, Any], s3: Any
) -> None:
    before = figures(db, tenant)
    retention.run(datetime.now(UTC), tenants=[tenant])

    # `make verify-totals REPAIR=1` rewrites every figure from the rows and the tombstones
    assert verify(db.owner, db.admin, repair=True, tenant=tenant) == 0

    assert figures(db, tenant) == before


def test_the_step_finds_the_due_tenants_itself_and_leaves_the_others(
    db: DatabaseUrls, tenant: UUID, other_tenant: UUID, desk: dict[str, Any], s3: Any, tickets_api: HandlerClient
) -> None:
    # Given another tenant with old closed tickets and no policy (keep forever)
    other = tickets_api.as_tenant(other_tenant)
    kept = new_ticket(other)["id"]
    resolve(other, kept)
    age(db, other_tenant, [kept], 400)

    # When the sweep's step runs (it lists the tenants with something due itself)
    with psycopg.connect(db.app) as conn:
        due = {r[0] for r in conn.execute("SELECT retention_tenants_due(now())").fetchall()}
    deleted = retention.sweep_step(datetime.now(UTC))

    # Then only the tenant with a policy is visited
    assert tenant in due and other_tenant not in due
    assert deleted >= 5
    assert ticket_ids(db, other_tenant) == {kept}
    assert ticket_ids(db, tenant) == {desk["old_open"], desk["young"]}


def test_a_ticket_reopened_between_the_read_and_the_delete_is_not_deleted(
    db: DatabaseUrls, tenant: UUID, desk: dict[str, Any], s3: Any, tickets_api: HandlerClient
) -> None:
    now = datetime.now(UTC)
    rule = RetentionRule(mode="archive", days=30)
    batch = retention.select_batch(tenant, "tickets", rule, now)
    assert batch is not None and {str(i) for i in batch.ids} == set(desk["old"])

    # an agent reopens one after the read (the customer wrote again)
    reopened = desk["old"][1]
    reply = tickets_api.patch(f"{BASE}/{reopened}", {"status": "open"})
    assert reply.status == 200, reply.body
    before = figures(db, tenant)

    retention.write_batch(batch, retention.s3_store)
    gone = retention.delete_batch(batch, now)

    assert gone == 2
    assert reopened in ticket_ids(db, tenant)
    assert len(recount.rows(db, tenant, "ticket_conversations")) >= 1  # its thread stays with it
    thread = [r for r in recount.rows(db, tenant, "ticket_conversations") if str(r["ticket_id"]) == reopened]
    assert [r["message"] for r in thread] == ["answer 1"]
    assert figures(db, tenant) == before
    assert verify(db.owner, db.admin, repair=False, tenant=tenant) == 0


def test_a_crash_between_the_upload_and_the_delete_loses_nothing_and_the_rerun_rewrites_the_same_object(
    db: DatabaseUrls, tenant: UUID, desk: dict[str, Any], s3: Any
) -> None:
    now = datetime.now(UTC)
    rule = RetentionRule(mode="archive", days=30)
    first = retention.select_batch(tenant, "tickets", rule, now)
    assert first is not None
    retention.write_batch(first, retention.s3_store)  # ... and the invocation dies here
    assert set(desk["old"]) <= ticket_ids(db, tenant)

    report = retention.run(now, tenants=[tenant])

    objects = archived(s3, tenant)
    assert first.key in objects and len(objects) == 3  # the tickets' object once (rewritten), the chats' two days
    assert {line["ticket"]["id"] for line in objects[first.key]} == set(desk["old"])
    assert report.deleted["tickets"] == 3
    assert not set(desk["old"]) & ticket_ids(db, tenant)


def test_mode_delete_deletes_without_writing_to_s3(
    db: DatabaseUrls, tenant: UUID, desk: dict[str, Any], s3: Any, settings_api: HandlerClient
) -> None:
    settings_api.put(SETTINGS, {"tickets": {"mode": "delete", "days": 30}})
    before = figures(db, tenant)

    report = retention.run(datetime.now(UTC), tenants=[tenant])

    assert report.deleted == {"tickets": 3, "chats": 0} and report.objects == []
    assert archived(s3, tenant) == {}
    assert chat_ids(db, tenant) == {*desk["chats"], desk["young_chat"]}  # chats: keep
    assert figures(db, tenant) == before


def test_a_run_stops_at_its_budget_and_the_next_goes_on(
    db: DatabaseUrls, tenant: UUID, desk: dict[str, Any], s3: Any
) -> None:
    first = retention.run(datetime.now(UTC), tenants=[tenant], max_rows=2)
    assert (first.rows, first.more) == (2, True)

    second = retention.run(datetime.now(UTC), tenants=[tenant], max_rows=100)
    assert second.rows == 3 and not second.more
    assert ticket_ids(db, tenant) == {desk["old_open"], desk["young"]}


# --- what the runtime role cannot do -------------------------------------------------------------------------------


def _as_app(db: DatabaseUrls, tenant: UUID, statement: str, params: Any = ()) -> Any:
    with psycopg.connect(db.app, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        cur = conn.execute(statement.encode(), params)
        return cur.fetchall() if cur.description else cur.rowcount


def test_the_runtime_role_cannot_switch_the_figure_triggers_off(db: DatabaseUrls, tenant: UUID) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as_app(db, tenant, "INSERT INTO retention_deleting (xact) VALUES (pg_current_xact_id())")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as_app(db, tenant, "SELECT retention_deleting_now()")
    for table in ("retention_ticket_tombstones", "retention_chat_tombstones"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            _as_app(db, tenant, f"SELECT * FROM {table}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as_app(db, tenant, "DELETE FROM support_tickets WHERE user_id = %s", (tenant,))


def test_the_delete_functions_delete_only_what_the_tenants_own_policy_makes_due(
    db: DatabaseUrls, tenant: UUID, other_tenant: UUID, desk: dict[str, Any], settings_api: HandlerClient
) -> None:
    everything = [UUID(t) for t in [*desk["old"], desk["old_open"], desk["young"]]]
    now = datetime.now(UTC)
    # another tenant's binding: refused
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as_app(db, other_tenant, "SELECT retention_delete_tickets(%s, %s, %s)", (tenant, everything, now))
    # a clock in the future does not make young tickets due (the database's clock bounds it)
    gone = _as_app(
        db, tenant, "SELECT retention_delete_tickets(%s, %s, %s)", (tenant, everything, now + timedelta(days=3650))
    )
    assert gone == [(3,)]
    assert ticket_ids(db, tenant) == {desk["old_open"], desk["young"]}
    # with the policy back at keep, nothing is due at all
    settings_api.put(SETTINGS, DEFAULTS)
    chats = [UUID(c) for c in desk["chats"]]
    assert _as_app(db, tenant, "SELECT retention_delete_chats(%s, %s, %s)", (tenant, chats, now)) == [(0,)]


def test_an_ordinary_delete_still_moves_the_figures(db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient) -> None:
    # The skip belongs to the retention functions' transactions only: the owner deleting a ticket by hand (no
    # retention_deleting row) takes it out of the totals as before.
    ticket = new_ticket(tickets_api, category="skip-check")
    with psycopg.connect(db.owner) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
        conn.execute("DELETE FROM support_tickets WHERE id = %s", (ticket["id"],))
    assert not any(group[2] == "skip-check" for group in recount.stored_ticket_totals(db, tenant))
    assert verify(db.owner, db.admin, repair=False, tenant=tenant) == 0


def test_audit_entries_past_the_tenants_audit_days_are_pruned_and_the_rest_still_verifies(
    db: DatabaseUrls, tenant: UUID, other_tenant: UUID, settings_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    from local.verify_audit import verify as verify_audit
    from support.services import audit

    # Given a tenant that keeps audit entries 400 days, whose first entries were written 500 days ago
    put = settings_api.put(SETTINGS, {**DEFAULTS, "auditDays": 400})
    assert put.status == 200, put.body
    new_ticket(tickets_api)
    new_ticket(tickets_api.as_tenant(other_tenant))
    with psycopg.connect(db.admin) as conn:
        old = conn.execute(
            "UPDATE audit_entries SET occurred_at = now() - interval '500 days'"
            " WHERE user_id = ANY(%s) AND seq IS NULL RETURNING id, user_id",
            ([tenant, other_tenant],),
        ).fetchall()
    assert {row[1] for row in old} == {tenant, other_tenant}
    audit.seal()
    recent = new_ticket(tickets_api)["id"]
    audit.seal()
    with psycopg.connect(db.app) as conn:
        assert tenant in {r[0] for r in conn.execute("SELECT retention_tenants_due(now())").fetchall()}

    # When the retention step runs
    retention.sweep_step(datetime.now(UTC))

    # Then the tenant's old entries are gone, its recent ones stay, the other tenant (no policy) keeps everything,
    # and both chains still verify from their anchors
    with psycopg.connect(db.admin) as conn:
        left = {r[0] for r in conn.execute("SELECT id FROM audit_entries WHERE id = ANY(%s)", ([r[0] for r in old],))}
        about_recent = conn.execute(
            "SELECT count(*) FROM audit_entries WHERE user_id = %s AND row_id = %s", (tenant, str(recent))
        ).fetchone()
    assert left == {r[0] for r in old if r[1] == other_tenant}
    assert about_recent is not None and about_recent[0] >= 1
    assert verify_audit(db.owner, tenant=tenant) == []
    assert verify_audit(db.owner, tenant=other_tenant) == []
