"""Issue 18's troubleshooting analytics against known data: chat abandonment (who ended a chat, and whether an agent
had answered it), tickets and chats by UTC hour and weekday, and each agent's concurrent chats per hour; in the
day rows the job writes, after a backfill, and in the range summary. Rows are written as the owner with chosen
times (the service's own paths are used where the test is about them: chat_end records who ended a chat, the
trigger records when a session got its agent)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.rows import dict_row

from local.database import MIGRATIONS, DatabaseUrls, connected_as, create_database
from support.auth import Principal, Role
from support.db.migrations import migrate
from support.models.agents import AgentCreate, AgentStatus
from support.models.chat import ChatSessionStart, VisitorContext
from support.services import agents, analytics, chat
from tests.http_events import HandlerClient

DAY = date(2024, 3, 4)  # a Monday (ISO weekday 1)
SUNDAY = date(2024, 3, 10)
NOW = datetime(2024, 3, 20, 12, tzinfo=UTC)  # the summary's test clock: every day above is past
SUMMARY = "/api/support/analytics/summary"


def at(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=UTC)


@pytest.fixture
def as_job(db: DatabaseUrls) -> Iterator[None]:
    with connected_as(db.analytics_job):
        yield


class Writer:
    """Rows of one tenant, written as the owner (row-level security: the tenant bound per transaction)."""

    def __init__(self, db: DatabaseUrls, tenant: UUID) -> None:
        self.db, self.tenant = db, tenant

    def _run(self, statement: str, params: tuple[Any, ...]) -> Any:
        with psycopg.connect(self.db.owner) as conn:
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(self.tenant),))
            row = conn.execute(statement.encode(), params).fetchone()
        return None if row is None else row[0]

    def agent(self, name: str) -> UUID:
        return self._run(
            "INSERT INTO support_agents (user_id, agent_name, agent_email) VALUES (%s, %s, %s) RETURNING id",
            (self.tenant, name, f"{uuid4()}@desk.example"),
        )

    def session(
        self,
        start: datetime,
        end: datetime | None = None,
        *,
        ended_by: str | None = None,
        agent: UUID | None = None,
        assigned_at: datetime | None = None,
    ) -> UUID:
        status = "closed" if end is not None else ("active" if agent is not None else "waiting")
        return self._run(
            "INSERT INTO live_chat_sessions (user_id, visitor_id, status, assigned_agent_id, assigned_at,"
            " session_start_time, session_end_time, duration, created_at, ended_by)"
            " VALUES (%s, 'v', %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                self.tenant,
                status,
                agent,
                assigned_at,
                start,
                end,
                None if end is None else round((end - start).total_seconds()),
                start,
                ended_by,
            ),
        )

    def message(self, session: UUID, sender_type: str, moment: datetime) -> None:
        self._run(
            "INSERT INTO chat_messages (user_id, session_id, sender_type, message, created_at)"
            " VALUES (%s, %s, %s, 'text', %s) RETURNING id",
            (self.tenant, session, sender_type, moment),
        )

    def ticket(self, created: datetime) -> None:
        self._run(
            "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, created_at)"
            " VALUES (%s, 'C', 'c@example.com', 'S', %s) RETURNING id",
            (self.tenant, created),
        )


def day_row(db: DatabaseUrls, tenant: UUID, day: date) -> dict[str, Any]:
    with psycopg.connect(db.admin, row_factory=dict_row) as conn:
        row = conn.execute(
            "SELECT * FROM support_analytics WHERE user_id = %s AND analytics_date = %s", (tenant, day)
        ).fetchone()
    assert row is not None
    return row


def summary(tenant: UUID, start: date, end: date, *, by_agent: bool = True) -> dict[str, Any]:
    principal = Principal(tenant_id=tenant, role=Role.ADMIN, subject="test")
    return analytics.summarize(principal, start, end, now=NOW, by_agent=by_agent).model_dump(mode="json", by_alias=True)


# ----------------------------------------------------------------------------------------------- abandonment


@pytest.fixture
def abandonment(db: DatabaseUrls, tenant: UUID, other_tenant: UUID) -> Writer:
    """DAY's ended sessions: three abandoned (waits 120, 300 and 1000 s), three not; and another tenant's."""
    w = Writer(db, tenant)
    # abandoned: the visitor ended it and no agent had written
    w.session(at(DAY, 9), at(DAY, 9, 2), ended_by="visitor")  # 120 s
    only_system = w.session(at(DAY, 10), at(DAY, 10, 16, 40), ended_by="visitor")  # 1000 s
    w.message(only_system, "system", at(DAY, 10, 1))  # a system notice is no answer
    w.message(only_system, "customer", at(DAY, 10, 2))
    late = w.session(at(DAY, 23, 55), at(DAY + timedelta(days=1), 0, 0), ended_by="visitor")  # ends the next day
    assert late
    queued = w.session(at(DAY - timedelta(days=1), 23, 58), at(DAY, 0, 3), ended_by="visitor")  # 300 s, ends on DAY
    w.message(queued, "agent", at(DAY, 0, 3))  # at the very end: not before it, so not an answer
    # not abandoned
    answered = w.session(at(DAY, 11), at(DAY, 11, 1), ended_by="visitor")
    w.message(answered, "agent", at(DAY, 11, 0, 30))
    w.session(at(DAY, 12), at(DAY, 12, 0, 50), ended_by="agent")  # the agent closed it unanswered
    w.session(at(DAY, 13), at(DAY, 13, 5))  # ended before sql/0035: nobody knows who ended it
    w.session(at(DAY, 14))  # still waiting: not ended
    # another tenant's visitor gave up on DAY too: never counted here
    Writer(db, other_tenant).session(at(DAY, 9), at(DAY, 9, 30), ended_by="visitor")
    return w


def test_abandoned_chats_their_rate_and_waits(db: DatabaseUrls, as_job: None, abandonment: Writer) -> None:
    # When DAY is rolled up
    assert analytics.roll_up(DAY, DAY, abandonment.tenant).failed == {}

    # Then 3 of the 6 sessions that ended on DAY were abandoned, waiting 120, 300 and 1000 s
    row = day_row(db, abandonment.tenant, DAY)
    assert row["total_chats_completed"] == 6
    assert (row["chats_abandoned"], float(row["chat_abandon_rate"])) == (3, 0.5)
    assert row["abandoned_wait_seconds"] == 120 + 300 + 1000
    assert (row["abandoned_wait_p50_seconds"], row["abandoned_wait_p90_seconds"]) == (300, 1000)
    assert row["abandoned_wait_histogram"] == {
        str(analytics.bucket_of(120)): 1,
        str(analytics.bucket_of(300)): 1,
        str(analytics.bucket_of(1000)): 1,
    }
    # and the one ended just after midnight counts on the next day, with its 300 s wait
    analytics.roll_up(DAY + timedelta(days=1), DAY + timedelta(days=1), abandonment.tenant)
    after = day_row(db, abandonment.tenant, DAY + timedelta(days=1))
    assert (after["chats_abandoned"], after["abandoned_wait_p50_seconds"], float(after["chat_abandon_rate"])) == (
        1,
        300,
        1.0,
    )


def test_the_summary_reports_abandonment_and_never_another_tenants(
    db: DatabaseUrls, as_job: None, abandonment: Writer, other_tenant: UUID
) -> None:
    analytics.roll_up(DAY, DAY, abandonment.tenant)
    # DAY rolled up, the next day live: 4 of 7 ended sessions abandoned
    got = summary(abandonment.tenant, DAY, DAY + timedelta(days=1))
    assert (got["rolledUpDays"], got["liveDays"]) == (1, [(DAY + timedelta(days=1)).isoformat()])
    assert (got["chatsAbandoned"], got["totalChatsCompleted"], got["chatAbandonRate"]) == (4, 7, 0.5714)
    # percentiles from the merged histogram: 120, 300, 300, 1000 -> p50 300, p90 1000, within the stated error
    for key, truth in (("abandonedWaitP50Seconds", 300), ("abandonedWaitP90Seconds", 1000)):
        assert abs(got[key] - truth) <= got["percentileError"] * truth + 0.5
    # the other tenant's own summary has its one abandoned chat, and nothing of this tenant's
    with connected_as(db.analytics_job):
        analytics.roll_up(DAY, DAY, other_tenant)
    theirs = summary(other_tenant, DAY, DAY + timedelta(days=1))
    assert (theirs["chatsAbandoned"], theirs["totalChatsCompleted"], theirs["chatAbandonRate"]) == (1, 1, 1.0)


def test_no_ended_chat_means_no_rate(db: DatabaseUrls, as_job: None, tenant: UUID) -> None:
    Writer(db, tenant).ticket(at(DAY, 8))
    analytics.roll_up(DAY, DAY, tenant)
    row = day_row(db, tenant, DAY)
    assert (row["chats_abandoned"], row["chat_abandon_rate"], row["abandoned_wait_p50_seconds"]) == (0, None, None)
    assert summary(tenant, DAY, DAY)["chatAbandonRate"] is None


def _visitor(tenant: UUID, visitor_id: str) -> Principal:
    return Principal(
        tenant_id=tenant, role=Role.VISITOR, subject=f"visitor:{visitor_id}", visitor_id=visitor_id, widget_key="k"
    )


def test_ending_a_chat_records_who_ended_it(db: DatabaseUrls, tenant: UUID) -> None:
    admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="test-admin")
    agent_id = agents.create_agent(
        admin, AgentCreate(agent_name="Ann", agent_email=f"{uuid4()}@desk.example", status=AgentStatus.OFFLINE)
    ).id
    agent = Principal(tenant_id=tenant, role=Role.AGENT, subject="ann", agent_id=agent_id)
    # A visitor ends their own chat; an agent and an admin end others
    by_visitor = chat.start_chat_session(_visitor(tenant, "v1"), ChatSessionStart(visitor_id="v1"), VisitorContext())
    chat.end_chat_session(_visitor(tenant, "v1"), by_visitor.id)
    by_agent = chat.start_chat_session(_visitor(tenant, "v2"), ChatSessionStart(visitor_id="v2"), VisitorContext())
    chat.end_chat_session(agent, by_agent.id)
    by_admin = chat.start_chat_session(_visitor(tenant, "v3"), ChatSessionStart(visitor_id="v3"), VisitorContext())
    chat.end_chat_session(admin, by_admin.id)
    open_one = chat.start_chat_session(_visitor(tenant, "v4"), ChatSessionStart(visitor_id="v4"), VisitorContext())
    with psycopg.connect(db.admin) as conn:
        ended_by = dict(
            conn.execute("SELECT id, ended_by FROM live_chat_sessions WHERE user_id = %s", (tenant,)).fetchall()
        )
    assert ended_by == {by_visitor.id: "visitor", by_agent.id: "agent", by_admin.id: "admin", open_one.id: None}


def test_the_runtime_role_writes_who_ended_a_chat_but_not_when_it_was_assigned(db: DatabaseUrls, tenant: UUID) -> None:
    session = Writer(db, tenant).session(at(DAY, 9))
    with psycopg.connect(db.app) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE live_chat_sessions SET assigned_at = now() WHERE id = %s", (session,))
        conn.rollback()
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
        with pytest.raises(psycopg.errors.CheckViolation):  # only the known enders
            conn.execute("UPDATE live_chat_sessions SET ended_by = 'someone' WHERE id = %s", (session,))


# ------------------------------------------------------------------------------------------- peak hours (UTC)


def test_tickets_and_chats_by_utc_hour_and_weekday(db: DatabaseUrls, tenant: UUID, other_tenant: UUID) -> None:
    w = Writer(db, tenant)
    for moment in (at(DAY, 0, 0), at(DAY, 0, 59, 59), at(DAY, 9, 30), at(DAY, 23, 59, 59), at(SUNDAY, 9, 15)):
        w.ticket(moment)
    for moment in (at(DAY, 9), at(DAY, 9, 45), at(SUNDAY, 23, 30)):
        w.session(moment)
    other = Writer(db, other_tenant)
    other.ticket(at(DAY, 5))
    other.session(at(DAY, 5))
    # The job's connection in a zone far from UTC (and across a half hour): the hours stay UTC
    with psycopg.connect(db.analytics_job, row_factory=dict_row) as conn:
        conn.execute("SET TIME ZONE 'Asia/Kolkata'")
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        figures = analytics.figures_of(analytics.raw_figures(conn.cursor(), tenant, *analytics.day_bounds(DAY)))
    assert figures["tickets_by_hour"] == {"0": 2, "9": 1, "23": 1}
    assert figures["chats_by_hour"] == {"9": 2}
    assert figures["tickets_by_weekday"] == {"1": 4}
    assert figures["chats_by_weekday"] == {"1": 2}

    # Rolled up (a backfill of the week) and summed over it: every hour and weekday present, in order
    with connected_as(db.analytics_job):
        assert analytics.roll_up(DAY, SUNDAY, tenant).failed == {}
    assert day_row(db, tenant, SUNDAY)["tickets_by_weekday"] == {"7": 1}
    got = summary(tenant, DAY, SUNDAY)
    assert list(got["ticketsByHour"]) == [str(h) for h in range(24)]
    assert got["ticketsByHour"] == {str(h): {0: 2, 9: 2, 23: 1}.get(h, 0) for h in range(24)}
    assert got["chatsByHour"] == {str(h): {9: 2, 23: 1}.get(h, 0) for h in range(24)}
    assert got["ticketsByWeekday"] == {"1": 4, "2": 0, "3": 0, "4": 0, "5": 0, "6": 0, "7": 1}
    assert got["chatsByWeekday"] == {"1": 2, "2": 0, "3": 0, "4": 0, "5": 0, "6": 0, "7": 1}


# ------------------------------------------------------------------------------------- agents' concurrent load


@pytest.fixture
def load(db: DatabaseUrls, tenant: UUID, other_tenant: UUID) -> dict[str, UUID]:
    """Two agents' chats around DAY, with the load each must give (see the test)."""
    w = Writer(db, tenant)
    ann, bob, cy = w.agent("Ann"), w.agent("Bob"), w.agent("Cy")
    before, after = DAY - timedelta(days=1), DAY + timedelta(days=1)
    # Ann: three at once in hour 9, one of which runs into hour 10
    w.session(at(DAY, 9, 10), at(DAY, 9, 50), agent=ann, ended_by="agent")
    w.session(at(DAY, 9, 20), at(DAY, 10, 30), agent=ann, ended_by="agent")
    w.session(at(DAY, 9, 30), at(DAY, 9, 40), agent=ann, ended_by="agent")
    # one ends at 11:00 exactly as another starts: never two at once
    w.session(at(DAY, 10, 45), at(DAY, 11), agent=ann, ended_by="agent")
    w.session(at(DAY, 11), at(DAY, 11, 15), agent=ann, ended_by="agent")
    # a chat from the evening before to 02:00: hours 0 and 1 whole
    w.session(at(before, 22), at(DAY, 2), agent=ann, ended_by="agent")
    # assigned half an hour after the visitor came: held from 14:30
    w.session(at(DAY, 14), at(DAY, 15), agent=ann, assigned_at=at(DAY, 14, 30), ended_by="agent")
    # Bob: one chat over the whole of DAY (found through the day-long index), one still open since the day before
    w.session(at(before, 12), at(after, 12), agent=bob, ended_by="agent")
    w.session(at(before, 18), agent=bob)
    # Cy: no chat; a visitor who waited half an hour and left (abandoned), assigned to nobody: no load
    w.session(at(DAY, 16), at(DAY, 16, 30), ended_by="visitor")
    w.ticket(at(DAY, 7))
    # another tenant's agent, busy all day
    other = Writer(db, other_tenant)
    other.session(at(DAY, 8), at(DAY, 20), agent=other.agent("Zed"), ended_by="agent")
    return {"ann": ann, "bob": bob, "cy": cy}


def test_each_agents_concurrent_chats_per_hour(
    db: DatabaseUrls, as_job: None, tenant: UUID, load: dict[str, UUID]
) -> None:
    assert analytics.roll_up(DAY, DAY, tenant).failed == {}
    stored = day_row(db, tenant, DAY)["agent_concurrent_load"]
    assert set(stored) == {str(load["ann"]), str(load["bob"])}  # Cy held nothing; nobody of the other tenant

    ann = stored[str(load["ann"])]
    peak, seconds = [0] * 24, [0] * 24
    peak[0], seconds[0] = 1, 3600
    peak[1], seconds[1] = 1, 3600
    peak[9], seconds[9] = 3, 40 * 60 + 40 * 60 + 10 * 60
    peak[10], seconds[10] = 1, 30 * 60 + 15 * 60  # 10:30 end before 10:45 start
    peak[11], seconds[11] = 1, 15 * 60
    peak[14], seconds[14] = 1, 30 * 60
    assert ann == {"peak": peak, "seconds": seconds}

    bob = stored[str(load["bob"])]
    assert bob == {"peak": [2] * 24, "seconds": [7200] * 24}


def test_the_summary_gives_the_load_with_by_agent_only(
    db: DatabaseUrls, as_job: None, tenant: UUID, load: dict[str, UUID]
) -> None:
    analytics.roll_up(DAY, DAY, tenant)
    # DAY rolled up, the day after live (Bob's open chat and his day-long one run into it until noon)
    got = summary(tenant, DAY, DAY + timedelta(days=1))
    assert summary(tenant, DAY, DAY + timedelta(days=1), by_agent=False)["agentConcurrentLoad"] is None
    bob = got["agentConcurrentLoad"][str(load["bob"])]
    # over 2 days: hours 0-11 held 2 chats on both days, 12-23 two on DAY and one (the open one) the day after
    assert bob["peakByHour"] == [2] * 24
    assert bob["averageByHour"] == [2.0] * 12 + [1.5] * 12
    assert (bob["peak"], bob["average"]) == (2, 1.75)
    ann = got["agentConcurrentLoad"][str(load["ann"])]
    assert ann["peakByHour"][9] == 3 and ann["peak"] == 3
    assert ann["averageByHour"][9] == round(5400 / 7200, 2)  # 0.75 over two days
    assert set(got["agentConcurrentLoad"]) == {str(load["ann"]), str(load["bob"])}


def test_the_backfill_recomputes_them(db: DatabaseUrls, as_job: None, tenant: UUID, load: dict[str, UUID]) -> None:
    from functions.analytics import app
    from tests.integration.test_analytics_rollup import _context

    event = {"from": (DAY - timedelta(days=1)).isoformat(), "to": DAY.isoformat(), "tenantId": str(tenant)}
    assert app.lambda_handler(event, _context())["ok"] is True
    first = day_row(db, tenant, DAY)
    assert first["chats_abandoned"] == 1  # Cy's queue: the visitor left after 30 min
    # Stale figures in the stored row (an owner's edit), and a new chat Ann held on DAY
    with psycopg.connect(db.owner) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        conn.execute(
            "UPDATE support_analytics SET chats_abandoned = 0, tickets_by_hour = '{}', agent_concurrent_load = '{}'"
            " WHERE user_id = %s",
            (tenant,),
        )
    Writer(db, tenant).session(at(DAY, 20), at(DAY, 20, 30), agent=load["ann"], ended_by="agent")
    assert app.lambda_handler(event, _context())["ok"] is True
    again = day_row(db, tenant, DAY)
    assert again["chats_abandoned"] == 1
    assert again["agent_concurrent_load"][str(load["ann"])]["seconds"][20] == 1800
    assert again["agent_concurrent_load"][str(load["ann"])]["peak"][9] == 3
    assert again["tickets_by_hour"] == {"7": 1}
    assert (again["total_chats_started"], again["total_chats_completed"]) == (8, 9)
    # and the running totals follow: the summary of the two stored days
    got = summary(tenant, DAY - timedelta(days=1), DAY)
    assert (got["rolledUpDays"], got["chatsAbandoned"]) == (2, 1)
    assert got["chatsByHour"]["20"] == 1


def test_the_route_answers_them(db: DatabaseUrls, as_job: None, tenant: UUID, load: dict[str, UUID]) -> None:
    from functions.dashboard import app

    analytics.roll_up(DAY, DAY, tenant)
    api = HandlerClient(app.lambda_handler, tenant=tenant)
    with connected_as(db.app):  # the route as the API's role, as deployed (its tenant's request budget included)
        reply = api.get(SUMMARY, query={"from": DAY.isoformat(), "to": DAY.isoformat(), "byAgent": "true"})
        rows = api.get("/api/support/analytics", query={"from": DAY.isoformat(), "to": DAY.isoformat()})
    assert reply.status == 200
    assert reply.data["agentConcurrentLoad"][str(load["ann"])]["peakByHour"][9] == 3
    assert (reply.data["chatsAbandoned"], reply.data["chatsByWeekday"]["1"]) == (1, 7)
    assert rows.status == 200
    (row,) = rows.data
    assert row["agentConcurrentLoad"][str(load["bob"])]["peak"] == [2] * 24
    assert (row["chatsAbandoned"], row["chatAbandonRate"]) == (1, 0.125)


# ----------------------------------------------------------------------------------------------- the migration


def test_the_migration_fills_the_weekdays_of_the_days_already_rolled_up(db: DatabaseUrls, tmp_path: Path) -> None:
    # Given a database at sql/0034 with day rows and their running totals, as the rollup left them
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if path.name < "0035":
            shutil.copy(path, tmp_path / path.name)
    urls = create_database(db.admin, "support_abandon_migration", recreate=True, quiet=True)
    with psycopg.connect(urls.admin.replace("dbname=support_abandon_migration", "dbname=postgres")) as conn:
        conn.autocommit = True
        conn.execute("DROP DATABASE support_abandon_migration WITH (FORCE)")
        conn.execute("CREATE DATABASE support_abandon_migration OWNER support_owner")
    migrate(urls.owner, tmp_path, log=lambda _: None)
    tenant = uuid4()
    # (day, created, started, completed): two Mondays and a Tuesday
    days = [(date(2024, 3, 4), 3, 2, 1), (date(2024, 3, 5), 1, 0, 0), (date(2024, 3, 11), 2, 1, 0)]
    with psycopg.connect(urls.owner) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        created = started = 0
        for n, (day, c, s, e) in enumerate(days, start=1):
            created, started = created + c, started + s
            conn.execute(
                "INSERT INTO support_analytics (user_id, analytics_date, total_tickets_created, total_chats_started,"
                " total_chats_completed) VALUES (%s, %s, %s, %s, %s)",
                (tenant, day, c, s, e),
            )
            conn.execute(
                "INSERT INTO support_analytics_cumulative (user_id, analytics_date, days, total_tickets_created,"
                " total_chats_started) VALUES (%s, %s, %s, %s, %s)",
                (tenant, day, n, created, started),
            )

    # When sql/0035 is applied
    shutil.copy(MIGRATIONS / "0035_chat_abandonment_analytics.sql", tmp_path)
    assert migrate(urls.owner, tmp_path, log=lambda _: None) == ["0035_chat_abandonment_analytics.sql"]

    # Then each day has its weekday maps (the by-hour maps wait for a re-run), a zero rate where chats ended,
    # and the running totals carry the weekdays
    with psycopg.connect(urls.admin, row_factory=dict_row) as conn:
        stored = conn.execute(
            "SELECT analytics_date, tickets_by_weekday, chats_by_weekday, chat_abandon_rate, chats_abandoned,"
            " tickets_by_hour FROM support_analytics ORDER BY analytics_date"
        ).fetchall()
        running = conn.execute(
            "SELECT analytics_date, tickets_by_weekday, chats_by_weekday FROM support_analytics_cumulative"
            " ORDER BY analytics_date"
        ).fetchall()
    assert [
        (r["tickets_by_weekday"], r["chats_by_weekday"], r["chat_abandon_rate"], r["chats_abandoned"]) for r in stored
    ] == [({"1": 3}, {"1": 2}, 0, 0), ({"2": 1}, {}, None, 0), ({"1": 2}, {"1": 1}, None, 0)]
    assert all(r["tickets_by_hour"] == {} for r in stored)
    assert [(r["tickets_by_weekday"], r["chats_by_weekday"]) for r in running] == [
        ({"1": 3}, {"1": 2}),
        ({"1": 3, "2": 1}, {"1": 2}),
        ({"1": 5, "2": 1}, {"1": 3}),
    ]
