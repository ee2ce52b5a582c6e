"""The daily analytics rollup against known data: two tenants over several days, rows written as the owner with
chosen timestamps, every stored figure checked against what this test computes from its own raw data."""

from __future__ import annotations

import json
import math
import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql

from local.database import ANALYTICS_JOB_ROLE, DatabaseUrls, connected_as
from support.averages import mean_score, mean_seconds
from support.services import analytics
from support.services.analytics import bucket_of, bucket_value

EVENTS = Path(__file__).resolve().parents[2] / "events" / "analytics"
DAYS = [date(2024, 6, 1) + timedelta(days=i) for i in range(3)]  # rolled up
BEFORE = DAYS[0] - timedelta(days=1)  # activity before the range: resolved and answered inside it


@pytest.fixture
def as_job(db: DatabaseUrls) -> Iterator[None]:
    """The service's connection as the job's role, as the AnalyticsFunction's configuration has it."""
    with connected_as(db.analytics_job):
        yield


def _at(day: date, seconds: int) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=seconds)


@dataclass
class Data:
    """What one tenant's rows hold, as the test wrote them."""

    tenant: UUID
    agents: list[UUID] = field(default_factory=list)
    tickets: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)


def build(db: DatabaseUrls, tenant: UUID, seed: int, days: list[date]) -> Data:
    rng = random.Random(seed)
    data = Data(tenant)
    with psycopg.connect(db.owner) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        for i in range(2):
            row = conn.execute(
                "INSERT INTO support_agents (user_id, agent_name, agent_email) VALUES (%s, %s, %s) RETURNING id",
                (tenant, f"Agent {i}", f"agent{i}-{tenant}@example.com"),
            ).fetchone()
            assert row is not None
            data.agents.append(row[0])
        for day in days:
            for _ in range(rng.randint(4, 9)):
                created = _at(day, rng.randint(0, 86_399))
                first = rng.choice([None, rng.randint(0, 30), rng.randint(60, 200_000)])
                status = rng.choice(["open", "in_progress", "waiting_customer", "resolved", "closed"])
                resolution = rng.randint(first or 0, 300_000) if status in ("resolved", "closed") else None
                ticket = {
                    "created_at": created,
                    "status": status,
                    "priority": rng.choice(["low", "medium", "high", "urgent"]),
                    "category": rng.choice(["billing", "shipping", None]),
                    "channel": rng.choice(["api", "email", "web_form", "chat", "phone", "social"]),
                    "first_response_time": first,
                    "resolution_time": resolution,
                    "resolved_at": None if resolution is None else created + timedelta(seconds=resolution),
                }
                row = conn.execute(
                    "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, status, priority,"
                    " category, channel, created_at, first_response_time, resolution_time, resolved_at)"
                    " VALUES (%s, 'C', 'c@example.com', 'S', %s, %s, %s, %s, %s, %s, %s, %s)"
                    # the SLA columns as the trigger computed them (sql/0033), which the SLA block aggregates
                    " RETURNING id, first_responded_at, first_response_due_at, first_response_business_seconds,"
                    " resolution_due_at, resolution_business_seconds",
                    (
                        tenant,
                        status,
                        ticket["priority"],
                        ticket["category"],
                        ticket["channel"],
                        created,
                        first,
                        resolution,
                        ticket["resolved_at"],
                    ),
                ).fetchone()
                assert row is not None
                ticket["id"] = row[0]
                ticket["sla"] = row[1:]
                data.tickets.append(ticket)
                if ticket["resolved_at"] is not None and rng.random() < 0.7:
                    given = ticket["resolved_at"] + timedelta(seconds=rng.randint(0, 100_000))
                    rating = rng.randint(1, 5)
                    conn.execute(
                        "INSERT INTO ticket_feedback (user_id, ticket_id, rating, created_at) VALUES (%s, %s, %s, %s)",
                        (tenant, row[0], rating, given),
                    )
                    data.feedback.append({"created_at": given, "rating": rating})
            for _ in range(rng.randint(3, 7)):
                start = _at(day, rng.randint(0, 86_399))
                duration = rng.choice([rng.randint(0, 5), rng.randint(30, 20_000), rng.randint(80_000, 200_000)])
                ended = rng.random() < 0.8
                agent = rng.choice([None, *data.agents]) if ended else None
                session = {
                    "start": start,
                    "end": start + timedelta(seconds=duration) if ended else None,
                    "duration": duration if ended else None,
                    "agent": agent,
                    "first_agent_message": None,
                    # issue 18: who ended it (None: before sql/0035), and when its agent got it (the insert's
                    # trigger: its start, unless given)
                    "ended_by": rng.choice(["visitor", "visitor", "agent", None]) if ended else None,
                    "assigned_at": None,
                }
                if agent is not None and rng.random() < 0.5:
                    session["assigned_at"] = start + timedelta(seconds=rng.randint(0, min(duration, 600)))
                row = conn.execute(
                    "INSERT INTO live_chat_sessions (user_id, visitor_id, status, assigned_agent_id,"
                    " session_start_time, session_end_time, duration, created_at, ended_by, assigned_at)"
                    " VALUES (%s, 'v', %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (
                        tenant,
                        "closed" if ended else "waiting",
                        agent,
                        start,
                        session["end"],
                        session["duration"],
                        start,
                        session["ended_by"],
                        session["assigned_at"],
                    ),
                ).fetchone()
                if agent is not None and session["assigned_at"] is None:
                    session["assigned_at"] = start
                assert row is not None
                conn.execute(
                    "INSERT INTO chat_messages (user_id, session_id, sender_type, message, created_at)"
                    " VALUES (%s, %s, 'customer', 'hello', %s)",
                    (tenant, row[0], start),
                )
                if rng.random() < 0.75:
                    waits = sorted(rng.sample(range(1, 900), 2))
                    for wait in waits:  # two agent messages: only the first counts
                        conn.execute(
                            "INSERT INTO chat_messages (user_id, session_id, sender_type, message, created_at)"
                            " VALUES (%s, %s, 'agent', 'hi', %s)",
                            (tenant, row[0], start + timedelta(seconds=wait)),
                        )
                    session["first_agent_message"] = start + timedelta(seconds=waits[0])
                data.sessions.append(session)
    return data


def _on(moment: datetime | None, day: date) -> bool:
    return moment is not None and moment.astimezone(UTC).date() == day


def _percentile(values: list[int], fraction: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def _histogram(values: list[int]) -> dict[str, int]:
    return {str(k): n for k, n in Counter(bucket_of(v) for v in values).items()}


def expected(data: Data, day: date) -> dict[str, Any]:
    created = [t for t in data.tickets if _on(t["created_at"], day)]
    resolved = [t for t in data.tickets if _on(t["resolved_at"], day)]
    resolutions = [t["resolution_time"] for t in resolved]
    answered = [
        t["first_response_time"]
        for t in data.tickets
        if t["first_response_time"] is not None
        and _on(t["created_at"] + timedelta(seconds=t["first_response_time"]), day)
    ]
    started = [s for s in data.sessions if _on(s["start"], day)]
    ended = [s for s in data.sessions if _on(s["end"], day)]
    durations = [s["duration"] for s in ended]
    waits = [int((s["first_agent_message"] - s["start"]).total_seconds()) for s in started if s["first_agent_message"]]
    ratings = [f["rating"] for f in data.feedback if _on(f["created_at"], day)]
    abandoned = [
        int((s["end"] - s["start"]).total_seconds())
        for s in ended
        if s["ended_by"] == "visitor" and (s["first_agent_message"] is None or s["first_agent_message"] >= s["end"])
    ]
    return {
        "total_tickets_created": len(created),
        "total_tickets_resolved": len(resolved),
        "total_chats_started": len(started),
        "total_chats_completed": len(ended),
        "average_resolution_time": mean_seconds(sum(resolutions), len(resolutions)),
        "average_first_response_time": mean_seconds(sum(answered), len(answered)),
        "average_chat_duration": mean_seconds(sum(durations), len(durations)),
        "customer_satisfaction_score": mean_score(sum(ratings), len(ratings)),
        "agent_response_time": mean_seconds(sum(waits), len(waits)),
        "tickets_by_status": dict(Counter(t["status"] for t in created)),
        "tickets_by_priority": dict(Counter(t["priority"] for t in created)),
        "tickets_by_category": dict(Counter(t["category"] or "uncategorized" for t in created)),
        "tickets_by_channel": dict(Counter(t["channel"] for t in created)),
        "chats_by_agent": dict(Counter(str(s["agent"]) for s in ended if s["agent"] is not None)),
        "first_response_histogram": _histogram(answered),
        "resolution_histogram": _histogram(resolutions),
        "chat_duration_histogram": _histogram(durations),
        "first_response_p50": _percentile(answered, 0.5),
        "first_response_p90": _percentile(answered, 0.9),
        "resolution_p50": _percentile(resolutions, 0.5),
        "resolution_p90": _percentile(resolutions, 0.9),
        "chat_duration_p50": _percentile(durations, 0.5),
        "chat_duration_p90": _percentile(durations, 0.9),
        "first_response_count": len(answered),
        "first_response_seconds": sum(answered),
        "resolution_count": len(resolutions),
        "resolution_seconds": sum(resolutions),
        "chat_duration_count": len(durations),
        "chat_duration_seconds": sum(durations),
        "agent_response_count": len(waits),
        "agent_response_seconds": sum(waits),
        "rating_count": len(ratings),
        "rating_sum": sum(ratings),
        "sla_compliance": _sla_compliance(data, day),
        # issue 18 (an)
        "chats_abandoned": len(abandoned),
        "chat_abandon_rate": analytics.abandon_rate(len(abandoned), len(ended)),
        "abandoned_wait_seconds": sum(abandoned),
        "abandoned_wait_p50_seconds": _percentile(abandoned, 0.5),
        "abandoned_wait_p90_seconds": _percentile(abandoned, 0.9),
        "abandoned_wait_histogram": _histogram(abandoned),
        "tickets_by_hour": dict(Counter(str(t["created_at"].astimezone(UTC).hour) for t in created)),
        "chats_by_hour": dict(Counter(str(s["start"].astimezone(UTC).hour) for s in started)),
        "tickets_by_weekday": dict(Counter(str(day.isoweekday()) for _ in created)),
        "chats_by_weekday": dict(Counter(str(day.isoweekday()) for _ in started)),
        "agent_concurrent_load": expected_load(
            [(s["agent"], s["assigned_at"], s["end"]) for s in data.sessions if s["agent"] is not None], day
        ),
    }


def _sla_compliance(data: Data, day: date) -> dict[str, int]:
    """The SLA block's counts (sql/0033): targets met or missed on the day, by priority, in time, business seconds."""
    counts: Counter[str] = Counter()
    for t in data.tickets:
        responded_at, first_due, first_seconds, resolution_due, resolution_seconds = t["sla"]
        for target, done, due, seconds in (
            ("first_response", responded_at, first_due, first_seconds),
            ("resolution", t["resolved_at"], resolution_due, resolution_seconds),
        ):
            if _on(done, day) and due is not None and seconds is not None:
                counts[f"{t['priority']}.{target}.measured"] += 1
                counts[f"{t['priority']}.{target}.met"] += done <= due
                counts[f"{t['priority']}.{target}.business_seconds"] += seconds
    return {key: n for key, n in counts.items() if n}


def expected_load(
    held: list[tuple[UUID, datetime, datetime | None]], day: date, now: datetime | None = None
) -> dict[str, dict[str, list[int]]]:
    """Each agent's chats by UTC hour of `day`, counted the plain way: per hour, the seconds of each holding inside
    it, and the most held at once (at the hour's start or at a holding's start inside it)."""
    lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
    hi = lo + timedelta(days=1)
    now = now or datetime.now(UTC)
    spans: dict[UUID, list[tuple[datetime, datetime]]] = {}
    for agent, a, b in held:
        a, b = max(a, lo), min(b or now, hi)
        if a < b:
            spans.setdefault(agent, []).append((a, b))
    result = {}
    for agent, intervals in spans.items():
        peak, seconds = [0] * 24, [0.0] * 24
        for h in range(24):
            start, end = lo + timedelta(hours=h), lo + timedelta(hours=h + 1)
            for a, b in intervals:
                overlap = (min(b, end) - max(a, start)).total_seconds()
                seconds[h] += max(0.0, overlap)
            points = [start] + [a for a, _ in intervals if start <= a < end]
            peak[h] = max(sum(1 for a, b in intervals if a <= p < b) for p in points)
        result[str(agent)] = {"peak": peak, "seconds": [round(x) for x in seconds]}
    return result


def stored(db: DatabaseUrls, tenant: UUID) -> dict[date, dict[str, Any]]:
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in ("id", "analytics_date", *analytics.ROLLUP_COLUMNS))
    with psycopg.connect(db.admin) as conn:
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        cur.execute(
            sql.SQL("SELECT {} FROM support_analytics WHERE user_id = %s ORDER BY analytics_date").format(columns),
            (tenant,),
        )
        rows = cur.fetchall()
    result = {}
    for row in rows:
        day = row.pop("analytics_date")
        if row["customer_satisfaction_score"] is not None:
            row["customer_satisfaction_score"] = float(row["customer_satisfaction_score"])
        if row["chat_abandon_rate"] is not None:
            row["chat_abandon_rate"] = float(row["chat_abandon_rate"])
        result[day] = row
    return result


def _without_id(rows: dict[date, dict[str, Any]]) -> dict[date, dict[str, Any]]:
    return {day: {k: v for k, v in row.items() if k != "id"} for day, row in rows.items()}


@pytest.fixture
def two_tenants(db: DatabaseUrls) -> tuple[Data, Data]:
    return build(db, uuid4(), 1, [BEFORE, *DAYS]), build(db, uuid4(), 2, [BEFORE, *DAYS])


def test_the_bucket_scheme_reads_back_within_five_percent() -> None:
    assert bucket_of(0) == 0 and bucket_value(0) == 0
    assert bucket_of(1) == 1
    for seconds in [*range(1, 5000), 86_400, 1_000_000, 30_000_000]:
        value = bucket_value(bucket_of(seconds))
        assert abs(value - seconds) / seconds <= 0.05, seconds
    assert bucket_of(10**12) == analytics.LAST_BUCKET


def test_every_figure_of_every_day_matches_the_raw_data(
    db: DatabaseUrls, as_job: None, two_tenants: tuple[Data, Data]
) -> None:
    # When the range is rolled up (every tenant with activity in it: at least these two)
    report = analytics.roll_up(DAYS[0], DAYS[-1])

    # Then both tenants succeeded, and each day's row holds exactly what the raw data says
    assert report.failed == {}
    for data in two_tenants:
        assert data.tenant in report.succeeded
        rows = _without_id(stored(db, data.tenant))
        assert sorted(rows) == DAYS
        for day in DAYS:
            assert rows[day] == expected(data, day), (data.tenant, day)
    # and the data is rich enough for the check to mean something
    assert any(expected(d, day)["total_tickets_resolved"] > 1 for d in two_tenants for day in DAYS)
    assert any(len(expected(d, day)["chat_duration_histogram"]) > 2 for d in two_tenants for day in DAYS)
    assert any(expected(d, day)["chats_by_agent"] for d in two_tenants for day in DAYS)
    assert any(expected(d, day)["agent_response_time"] for d in two_tenants for day in DAYS)


def test_the_lister_finds_the_tenants_with_activity_and_only_in_the_range(
    db: DatabaseUrls, as_job: None, two_tenants: tuple[Data, Data]
) -> None:
    found = set(analytics.tenants_with_activity(DAYS[0], DAYS[-1]))
    assert {d.tenant for d in two_tenants} <= found
    assert not {d.tenant for d in two_tenants} & set(
        analytics.tenants_with_activity(date(2001, 1, 1), date(2001, 1, 2))
    )


def test_a_rerun_changes_nothing(db: DatabaseUrls, as_job: None, two_tenants: tuple[Data, Data]) -> None:
    tenant = two_tenants[0].tenant
    analytics.roll_up(DAYS[0], DAYS[-1], tenant)
    first = stored(db, tenant)
    with psycopg.connect(db.admin) as conn:
        created = conn.execute(
            "SELECT array_agg(created_at ORDER BY analytics_date) FROM support_analytics WHERE user_id = %s", (tenant,)
        ).fetchone()
    analytics.roll_up(DAYS[0], DAYS[-1], tenant)
    assert stored(db, tenant) == first  # same rows (same ids), same figures
    with psycopg.connect(db.admin) as conn:
        again = conn.execute(
            "SELECT array_agg(created_at ORDER BY analytics_date) FROM support_analytics WHERE user_id = %s", (tenant,)
        ).fetchone()
    assert again == created


def test_a_later_change_is_picked_up_by_the_next_run(
    db: DatabaseUrls, as_job: None, two_tenants: tuple[Data, Data]
) -> None:
    data = two_tenants[0]
    analytics.roll_up(DAYS[0], DAYS[-1], data.tenant)
    # A ticket created on the first day gets another status: the by-status breakdown follows on the next run
    ticket = next(t for t in data.tickets if _on(t["created_at"], DAYS[0]))
    new_status = "closed" if ticket["status"] != "closed" else "open"
    with psycopg.connect(db.owner) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(data.tenant),))
        conn.execute("UPDATE support_tickets SET status = %s WHERE id = %s", (new_status, ticket["id"]))
    ticket["status"] = new_status
    analytics.roll_up(DAYS[0], DAYS[0], data.tenant)
    assert _without_id(stored(db, data.tenant))[DAYS[0]] == expected(data, DAYS[0])


def test_two_concurrent_runs_leave_one_row_per_tenant_and_day(db: DatabaseUrls, two_tenants: tuple[Data, Data]) -> None:
    # Two runs of the same days on their own connections as the job role, started together
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(db.analytics_job, row_factory=psycopg.rows.dict_row) as conn:
                for data in two_tenants:
                    with conn.transaction(), conn.cursor() as cur:
                        cur.execute("SELECT set_config('app.tenant_id', %s, true)", (str(data.tenant),))
                        barrier.wait(timeout=30)
                        for day in DAYS:
                            cur.execute(analytics._UPSERT, analytics.day_figures(cur, data.tenant, day))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with psycopg.connect(db.admin) as conn:
        counts = conn.execute(
            "SELECT user_id, analytics_date, count(*) FROM support_analytics WHERE user_id = ANY(%s)"
            " GROUP BY 1, 2 ORDER BY 1, 2",
            ([d.tenant for d in two_tenants],),
        ).fetchall()
    assert sorted(counts) == sorted((d.tenant, day, 1) for d in two_tenants for day in DAYS)
    for data in two_tenants:
        rows = _without_id(stored(db, data.tenant))
        assert all(rows[day] == expected(data, day) for day in DAYS)


@pytest.fixture
def refused_tenant(db: DatabaseUrls) -> Iterator[UUID]:
    """A tenant whose rows support_analytics refuses: a real CHECK violation on the job's INSERT."""
    tenant = uuid4()
    name = sql.Identifier("test_refuses_one_tenant")
    with psycopg.connect(db.owner, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER TABLE support_analytics ADD CONSTRAINT {} CHECK (user_id <> {}) NOT VALID").format(
                name, sql.Literal(str(tenant))
            )
        )
    try:
        yield tenant
    finally:
        with psycopg.connect(db.owner, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER TABLE support_analytics DROP CONSTRAINT {}").format(name))


FAILING_DAY = date(2024, 7, 1)


def test_a_failing_tenant_is_reported_and_the_others_are_rolled_up(
    db: DatabaseUrls, as_job: None, refused_tenant: UUID
) -> None:
    from functions.analytics import app

    # Given three tenants with activity on one day, one of which the table refuses
    tenants = [uuid4(), refused_tenant, uuid4()]
    data = {t: build(db, t, i + 10, [FAILING_DAY]) for i, t in enumerate(tenants)}

    # When the day is backfilled, the invocation fails, naming the tenant
    event = {"from": FAILING_DAY.isoformat(), "to": FAILING_DAY.isoformat()}
    with pytest.raises(app.RollupFailed, match=str(refused_tenant)):
        app.lambda_handler(event, _context())

    # And the others' rows were stored, the refused one's not
    for tenant in tenants:
        rows = _without_id(stored(db, tenant))
        if tenant == refused_tenant:
            assert rows == {}
        else:
            assert rows == {FAILING_DAY: expected(data[tenant], FAILING_DAY)}

    # And the service reports it too (and the connection is fine for the next tenant)
    report = analytics.roll_up(FAILING_DAY, FAILING_DAY)
    assert list(report.failed) == [refused_tenant]
    assert "CheckViolation" in report.failed[refused_tenant]
    assert set(tenants) - {refused_tenant} <= set(report.succeeded)


def test_the_failure_count_is_emitted_as_a_metric(
    db: DatabaseUrls, as_job: None, refused_tenant: UUID, capsys: pytest.CaptureFixture[str]
) -> None:
    from functions.analytics import app

    build(db, refused_tenant, 20, [FAILING_DAY + timedelta(days=1)])
    day = (FAILING_DAY + timedelta(days=1)).isoformat()
    capsys.readouterr()
    with pytest.raises(app.RollupFailed):
        app.lambda_handler({"from": day, "to": day, "tenantId": str(refused_tenant)}, _context())
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(
        m.get("AnalyticsRollupFailedTenants") == [1.0] or m.get("AnalyticsRollupFailedTenants") == 1.0 for m in emf
    ), emf


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"from": "2024-01-02", "to": "2024-01-01"},
        {"from": "2024-01-01", "to": "2025-01-02"},  # 368 days
        {"from": "yesterday", "to": "2024-01-01"},
        {"from": "2024-01-01", "to": "2024-01-01", "tenantId": "not-a-uuid"},
        {"from": "2024-01-01", "to": "2024-01-01", "extra": 1},
        {"scheduledTime": "not a time"},
        {"scheduledTime": "2024-01-01T00:15:00"},  # no zone
        [],
        "x",
    ],
)
def test_a_bad_event_is_an_error_result(db: DatabaseUrls, as_job: None, event: Any) -> None:
    from functions.analytics import app

    result = app.lambda_handler(event, _context())
    assert result["ok"] is False
    assert result["error"]


def test_a_backfill_of_366_days_is_accepted(db: DatabaseUrls, as_job: None) -> None:
    from functions.analytics import app

    # (a tenant with no activity: nothing to do, but the range is valid)
    result = app.lambda_handler({"from": "2000-01-01", "to": "2000-12-31", "tenantId": str(uuid4())}, _context())
    assert result["ok"] is True and result["tenants"] == 1


SAMPLE_TENANT = UUID("11111111-1111-4111-8111-111111111111")


def test_the_sample_events_run_the_handler(db: DatabaseUrls, as_job: None) -> None:
    from functions.analytics import app

    scheduled = json.loads((EVENTS / "scheduled.json").read_text())
    backfill = json.loads((EVENTS / "backfill.json").read_text())
    at = datetime.fromisoformat(scheduled["scheduledTime"])
    yesterday = at.date() - timedelta(days=1)
    # Given the sample tenant with activity on the two days the schedule rolls up and the backfill covers
    data = build(db, SAMPLE_TENANT, 30, [yesterday - timedelta(days=1), yesterday])
    assert date.fromisoformat(backfill["from"]) <= yesterday - timedelta(days=1)
    assert date.fromisoformat(backfill["to"]) >= yesterday

    result = app.lambda_handler(scheduled, _context())
    assert result["ok"] is True
    assert (result["from"], result["to"]) == ((yesterday - timedelta(days=1)).isoformat(), yesterday.isoformat())
    rows = _without_id(stored(db, SAMPLE_TENANT))
    for day in (yesterday - timedelta(days=1), yesterday):
        assert rows[day] == expected(data, day)

    result = app.lambda_handler(backfill, _context())
    assert result == {"ok": True, "from": backfill["from"], "to": backfill["to"], "tenants": 1, "failed": []}
    rows = _without_id(stored(db, SAMPLE_TENANT))
    span = (date.fromisoformat(backfill["to"]) - date.fromisoformat(backfill["from"])).days + 1
    assert len(rows) == span  # a row for every day, zeros where nothing happened
    for day in (yesterday - timedelta(days=1), yesterday):
        assert rows[day] == expected(data, day)


def test_the_job_role_cannot_do_more_than_the_rollup(db: DatabaseUrls, tenant: UUID) -> None:
    with psycopg.connect(db.analytics_job) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        for statement in (
            "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject)"
            " VALUES (%(t)s, 'a', 'a@b.c', 's')",
            "UPDATE support_tickets SET status = 'closed' WHERE user_id = %(t)s",
            "DELETE FROM support_analytics WHERE user_id = %(t)s",
            "UPDATE support_analytics SET user_id = %(t)s WHERE user_id = %(t)s",
            "SELECT * FROM support_agents",
            "SELECT * FROM ticket_totals",
            "SELECT * FROM widget_keys",
            "SELECT * FROM public.search_ticket_ids('x', 1)",
            # the columns no figure is made of (sql/0020): texts, names, emails, comments
            "SELECT message FROM chat_messages",
            "SELECT sender_name FROM chat_messages",
            "SELECT customer_email, customer_name FROM support_tickets",
            "SELECT description FROM support_tickets",
            "SELECT visitor_email, visitor_ip FROM live_chat_sessions",
            "SELECT feedback FROM ticket_feedback",
            "SELECT * FROM support_tickets",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(statement.encode(), {"t": tenant})
    with psycopg.connect(db.admin) as conn:
        assert conn.execute(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = %s",
            (ANALYTICS_JOB_ROLE,),
        ).fetchone() == (False, False, False, False)


def test_the_job_role_reads_one_tenant_at_a_time(db: DatabaseUrls, two_tenants: tuple[Data, Data]) -> None:
    with psycopg.connect(db.analytics_job) as conn:
        with pytest.raises(psycopg.errors.UndefinedObject):  # no tenant set: fails closed
            conn.execute("SELECT count(*) FROM support_tickets")
        conn.rollback()
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(two_tenants[0].tenant),))
        seen = conn.execute("SELECT DISTINCT user_id FROM support_tickets").fetchall()
    assert seen == [(two_tenants[0].tenant,)]


class _Context:
    function_name = "AnalyticsFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:AnalyticsFunction"
    aws_request_id = "test-request"


def _context() -> Any:
    return _Context()


def test_a_first_answer_through_the_api_records_its_moment(db: DatabaseUrls, tickets_api: Any, tenant: UUID) -> None:
    """The runtime role answers a ticket; the trigger of sql/0012 keeps when (it may not write that column)."""
    from tests.integration.test_tickets_api import BASE, new_ticket

    ticket = new_ticket(tickets_api)
    reply = tickets_api.post(
        f"{BASE}/{ticket['id']}/conversations", {"senderType": "agent", "senderName": "Grace", "message": "On it"}
    )
    assert reply.status == 201
    with psycopg.connect(db.admin) as conn:
        row = conn.execute(
            "SELECT first_response_time, first_responded_at, created_at + make_interval(secs => first_response_time)"
            " FROM support_tickets WHERE id = %s",
            (ticket["id"],),
        ).fetchone()
    assert row is not None and row[0] is not None
    assert row[1] == row[2]
