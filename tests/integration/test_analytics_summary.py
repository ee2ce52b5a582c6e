"""GET /api/support/analytics/summary: a range's figures from the stored days (and the raw rows for today and
any day not rolled up), checked against an exact recount from the raw rows the test wrote; its percentiles,
read from the merged histograms, within the stated error of the exact ones."""

from __future__ import annotations

import math
import shutil
from collections import Counter
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from local.database import MIGRATIONS, DatabaseUrls, connected_as, create_database
from support.auth import Principal, Role
from support.averages import mean_score, mean_seconds
from support.db.migrations import migrate
from support.services import analytics
from tests.http_events import HandlerClient
from tests.integration.test_analytics_rollup import BEFORE, DAYS, Data, _on, _percentile, build, expected

SUMMARY = "/api/support/analytics/summary"
TODAY = DAYS[-1]  # the test clock's today: DAYS[0] and DAYS[1] rolled up, BEFORE not, TODAY live
NOW = datetime(TODAY.year, TODAY.month, TODAY.day, 23, 59, 59, tzinfo=UTC)


def job_connection(db: DatabaseUrls) -> AbstractContextManager[None]:
    """The service connected as the analytics job's role for the duration (the API's role otherwise)."""
    return connected_as(db.analytics_job)


def recount(data: Data, days: list[date]) -> dict[str, Any]:
    """The range's figures straight from the raw rows (not from the days' figures)."""
    answered = [
        t["first_response_time"]
        for t in data.tickets
        if t["first_response_time"] is not None
        and any(_on(t["created_at"] + timedelta(seconds=t["first_response_time"]), d) for d in days)
    ]
    resolutions = [t["resolution_time"] for t in data.tickets if any(_on(t["resolved_at"], d) for d in days)]
    created = [t for t in data.tickets if any(_on(t["created_at"], d) for d in days)]
    started = [s for s in data.sessions if any(_on(s["start"], d) for d in days)]
    ended = [s for s in data.sessions if any(_on(s["end"], d) for d in days)]
    durations = [s["duration"] for s in ended]
    waits = [int((s["first_agent_message"] - s["start"]).total_seconds()) for s in started if s["first_agent_message"]]
    ratings = [f["rating"] for f in data.feedback if any(_on(f["created_at"], d) for d in days)]
    abandoned = [
        int((s["end"] - s["start"]).total_seconds())
        for s in ended
        if s["ended_by"] == "visitor" and (s["first_agent_message"] is None or s["first_agent_message"] >= s["end"])
    ]
    return {
        "totalTicketsCreated": len(created),
        "totalTicketsResolved": len(resolutions),
        "totalChatsStarted": len(started),
        "totalChatsCompleted": len(ended),
        "averageResolutionTime": mean_seconds(sum(resolutions), len(resolutions)),
        "averageFirstResponseTime": mean_seconds(sum(answered), len(answered)),
        "averageChatDuration": mean_seconds(sum(durations), len(durations)),
        "agentResponseTime": mean_seconds(sum(waits), len(waits)),
        "customerSatisfactionScore": mean_score(sum(ratings), len(ratings)),
        "firstResponseCount": len(answered),
        "resolutionCount": len(resolutions),
        "chatDurationCount": len(durations),
        "agentResponseCount": len(waits),
        "ratingCount": len(ratings),
        "ticketsByStatus": dict(sorted(Counter(t["status"] for t in created).items())),
        "ticketsByPriority": dict(sorted(Counter(t["priority"] for t in created).items())),
        "ticketsByCategory": dict(sorted(Counter(t["category"] or "uncategorized" for t in created).items())),
        "ticketsByChannel": dict(sorted(Counter(t["channel"] for t in created).items())),
        "chatsByAgent": dict(sorted(Counter(str(s["agent"]) for s in ended if s["agent"] is not None).items())),
        # issue 18 (an): every hour and weekday present, UTC
        "chatsAbandoned": len(abandoned),
        "chatAbandonRate": analytics.abandon_rate(len(abandoned), len(ended)),
        "ticketsByHour": {
            str(h): sum(1 for t in created if t["created_at"].astimezone(UTC).hour == h) for h in range(24)
        },
        "chatsByHour": {str(h): sum(1 for c in started if c["start"].astimezone(UTC).hour == h) for h in range(24)},
        "ticketsByWeekday": {
            str(w): sum(1 for t in created if t["created_at"].astimezone(UTC).isoweekday() == w) for w in range(1, 8)
        },
        "chatsByWeekday": {
            str(w): sum(1 for c in started if c["start"].astimezone(UTC).isoweekday() == w) for w in range(1, 8)
        },
        "_values": {
            "firstResponse": answered,
            "resolution": resolutions,
            "chatDuration": durations,
            "abandonedWait": abandoned,
        },
    }


def _summary(tenant: UUID, start: date, end: date, now: datetime = NOW, *, by_agent: bool = True) -> dict[str, Any]:
    principal = Principal(tenant_id=tenant, role=Role.ADMIN, subject="test")
    return analytics.summarize(principal, start, end, now=now, by_agent=by_agent).model_dump(mode="json", by_alias=True)


@pytest.fixture
def tenants(db: DatabaseUrls) -> tuple[Data, Data]:
    """Two tenants with activity on BEFORE and DAYS; DAYS[0] and DAYS[1] rolled up, BEFORE and TODAY not."""
    data = build(db, uuid4(), 11, [BEFORE, *DAYS]), build(db, uuid4(), 12, [BEFORE, *DAYS])
    with job_connection(db):
        for one in data:
            assert analytics.roll_up(DAYS[0], DAYS[1], one.tenant).failed == {}
    return data


def test_a_range_summary_matches_an_exact_recount(db: DatabaseUrls, tenants: tuple[Data, Data]) -> None:
    for data in tenants:
        # A range past today: counted up to today, rolled-up days from their rows, the others live
        summary = _summary(data.tenant, BEFORE, TODAY + timedelta(days=10))
        counted = [BEFORE, *DAYS]
        assert (summary["from"], summary["to"]) == (BEFORE.isoformat(), (TODAY + timedelta(days=10)).isoformat())
        assert (summary["days"], summary["rolledUpDays"]) == (4, 2)
        assert summary["liveDays"] == [BEFORE.isoformat(), TODAY.isoformat()]
        exact = recount(data, counted)
        values = exact.pop("_values")
        assert {k: summary[k] for k in exact} == exact
        for name, observed in values.items():
            for fraction, key in ((0.5, "P50"), (0.9, "P90")):
                truth = _percentile(observed, fraction)
                suffix = "Seconds" if name == "abandonedWait" else ""
                estimate = summary[f"{name[0].lower()}{name[1:]}{key}{suffix}"]
                if name == "abandonedWait" and truth is None:  # none abandoned in this tenant's range
                    assert estimate is None
                    continue
                assert truth is not None and estimate is not None
                assert abs(estimate - truth) <= summary["percentileError"] * truth + 0.5, (name, key)
            # and the merged histogram is the histogram of the range's values
            assert summary[f"{name}Histogram"] == {
                str(b): n for b, n in sorted(Counter(analytics.bucket_of(v) for v in observed).items())
            }
        # Today's partial figures, exact, beside the totals
        today = summary["today"]
        assert today["analyticsDate"] == TODAY.isoformat()
        assert today["totalTicketsCreated"] == expected(data, TODAY)["total_tickets_created"]
        assert today["resolutionP90"] == expected(data, TODAY)["resolution_p90"]
        assert today["firstResponseHistogram"] == expected(data, TODAY)["first_response_histogram"]
    assert summary["percentileError"] == pytest.approx(math.sqrt(1.1) - 1, abs=1e-4)
    # the agents' map only when asked for; everything else the same
    without = _summary(tenants[0].tenant, BEFORE, TODAY, by_agent=False)
    assert without["chatsByAgent"] is None and recount(tenants[0], [BEFORE, *DAYS])["chatsByAgent"]
    assert without["agentConcurrentLoad"] is None
    per_agent = ("chatsByAgent", "agentConcurrentLoad")
    assert {k: v for k, v in without.items() if k not in per_agent} == {
        k: v for k, v in _summary(tenants[0].tenant, BEFORE, TODAY).items() if k not in per_agent
    }


def test_the_means_are_weighted_by_their_counts_not_means_of_daily_means(
    db: DatabaseUrls, tenants: tuple[Data, Data]
) -> None:
    differs = 0
    for data in tenants:
        summary = _summary(data.tenant, DAYS[0], DAYS[1])
        assert (summary["rolledUpDays"], summary["liveDays"], summary["today"]) == (2, [], None)
        days = [expected(data, d) for d in DAYS[:2]]
        for figure, mean in (
            ("resolution", "averageResolutionTime"),
            ("first_response", "averageFirstResponseTime"),
            ("chat_duration", "averageChatDuration"),
        ):
            n = sum(d[f"{figure}_count"] for d in days)
            assert summary[mean] == mean_seconds(sum(d[f"{figure}_seconds"] for d in days), n)
            daily = [
                d[f"average_{figure}_time" if figure != "chat_duration" else "average_chat_duration"] for d in days
            ]
            if None not in daily and summary[mean] != mean_seconds(sum(daily), 2):
                differs += 1
    # the data makes the difference visible: a mean of the daily means would have been wrong
    assert differs >= 2


def test_a_day_rolled_up_late_gives_the_same_summary(db: DatabaseUrls, tenants: tuple[Data, Data]) -> None:
    data = tenants[0]
    live = _summary(data.tenant, BEFORE, DAYS[1])
    with job_connection(db):
        analytics.roll_up(BEFORE, BEFORE, data.tenant)
    stored = _summary(data.tenant, BEFORE, DAYS[1])
    assert (live["liveDays"], stored["liveDays"], stored["rolledUpDays"]) == ([BEFORE.isoformat()], [], 3)
    assert {k: v for k, v in live.items() if k not in ("liveDays", "rolledUpDays")} == {
        k: v for k, v in stored.items() if k not in ("liveDays", "rolledUpDays")
    }


def test_a_range_in_the_future_counts_nothing(db: DatabaseUrls, tenants: tuple[Data, Data]) -> None:
    summary = _summary(tenants[0].tenant, TODAY + timedelta(days=1), TODAY + timedelta(days=3))
    assert (summary["days"], summary["totalTicketsCreated"], summary["resolutionP50"], summary["today"]) == (
        0,
        0,
        None,
        None,
    )


@pytest.fixture
def dashboard_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.dashboard import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


def test_the_route_answers_the_summary(
    db: DatabaseUrls, tenants: tuple[Data, Data], dashboard_api: HandlerClient
) -> None:
    data = tenants[1]
    reply = dashboard_api.as_tenant(data.tenant).get(
        SUMMARY, query={"from": DAYS[0].isoformat(), "to": DAYS[1].isoformat(), "byAgent": "true"}
    )
    assert reply.status == 200
    assert reply.data == _summary(data.tenant, DAYS[0], DAYS[1], now=datetime.now(UTC))
    plain = dashboard_api.as_tenant(data.tenant).get(SUMMARY, query={"from": str(DAYS[0]), "to": str(DAYS[1])})
    assert plain.data["agentConcurrentLoad"] is None
    assert plain.data["chatsByAgent"] is None and plain.data["totalChatsCompleted"] == reply.data["totalChatsCompleted"]
    exact = recount(data, DAYS[:2])
    exact.pop("_values")
    assert {k: reply.data[k] for k in exact} == exact
    # another tenant sees none of it
    other = dashboard_api.get(SUMMARY, query={"from": DAYS[0].isoformat(), "to": DAYS[1].isoformat()}).data
    assert (other["totalTicketsCreated"], other["rolledUpDays"], other["resolutionHistogram"]) == (0, 0, {})
    assert other["chatsByAgent"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "2026-01-05", "to": "2026-01-03"}, "query.to"),
        ({"from": "2025-01-01", "to": "2026-01-02"}, "query.to"),  # 367 days
        ({"from": "2026-02-30", "to": "2026-03-02"}, "query.from"),
        ({"from": "2026-01-01"}, "query.to"),
        ({"from": "2026-01-01", "to": "2026-01-02", "byAgent": "maybe"}, "query.byAgent"),
    ],
)
def test_bad_ranges_are_422(dashboard_api: HandlerClient, query: dict[str, str], field: str) -> None:
    reply = dashboard_api.get(SUMMARY, query=query)
    assert reply.status == 422
    assert reply.error["details"][0]["field"] == field


def test_366_days_is_allowed(dashboard_api: HandlerClient) -> None:
    reply = dashboard_api.get(SUMMARY, query={"from": "2025-01-01", "to": "2026-01-01"})
    assert reply.status == 200
    assert reply.data["days"] == 366


def _cumulative_rows(db: DatabaseUrls, tenant: UUID) -> list[dict[str, Any]]:
    with psycopg.connect(db.admin, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT * FROM support_analytics_cumulative WHERE user_id = %s ORDER BY analytics_date", (tenant,)
        ).fetchall()


_SUMMED = ("total_tickets_created", "total_tickets_resolved", "resolution_seconds", "rating_sum")
_MAPS = ("tickets_by_status", "chats_by_agent", "resolution_histogram", "chat_duration_histogram")


def _prefix_sums(data: Data, days: list[date]) -> list[dict[str, Any]]:
    """The running totals the test expects, added up from its own per-day recounts of the raw rows."""
    sums: list[dict[str, Any]] = []
    running: dict[str, Any] = {}
    for i, day in enumerate(days):
        figures = expected(data, day)
        running = {
            "analytics_date": day,
            "days": i + 1,
            **{key: running.get(key, 0) + figures[key] for key in _SUMMED},
            **{key: dict(Counter(running.get(key, {})) + Counter(figures[key])) for key in _MAPS},
        }
        sums.append(running)
    return sums


def _stored_running_totals(db: DatabaseUrls, tenant: UUID) -> list[dict[str, Any]]:
    keys = ("analytics_date", "days", *_SUMMED, *_MAPS)
    return [{k: row[k] for k in keys} for row in _cumulative_rows(db, tenant)]


def test_any_range_is_read_from_two_running_totals(db: DatabaseUrls) -> None:
    days = analytics.days_in(date(2024, 5, 30), date(2024, 7, 2))
    data = build(db, uuid4(), 31, days)
    later = datetime(2024, 7, 10, tzinfo=UTC)
    # Given every day rolled up but June 30, the later days first: the earlier run carries the totals over them
    with job_connection(db):
        analytics.roll_up(date(2024, 7, 1), days[-1], data.tenant)
        analytics.roll_up(days[0], date(2024, 6, 29), data.tenant)
    stored = [d for d in days if d != date(2024, 6, 30)]
    assert _stored_running_totals(db, data.tenant) == _prefix_sums(data, stored)
    exact = recount(data, days)
    values = exact.pop("_values")
    partial = _summary(data.tenant, days[0], days[-1], now=later)
    assert (partial["rolledUpDays"], partial["liveDays"]) == (len(days) - 1, ["2024-06-30"])
    assert {k: partial[k] for k in exact} == exact

    # When June 30 is rolled up too, every running total is its days' sum, and the whole range is stored
    with job_connection(db):
        analytics.roll_up(date(2024, 6, 30), date(2024, 6, 30), data.tenant)
    assert _stored_running_totals(db, data.tenant) == _prefix_sums(data, days)
    complete = _summary(data.tenant, days[0], days[-1], now=later)
    assert (complete["rolledUpDays"], complete["liveDays"]) == (len(days), [])
    assert {k: complete[k] for k in exact} == exact
    for name, observed in values.items():
        assert complete[f"{name}Histogram"] == {
            str(b): n for b, n in sorted(Counter(analytics.bucket_of(v) for v in observed).items())
        }
    # A range inside: the running totals at its last day less those at the day before it, as a recount says
    june = [d for d in days if date(2024, 6, 2) <= d <= date(2024, 6, 30)]
    inside = recount(data, june)
    inside.pop("_values")
    summary = _summary(data.tenant, june[0], june[-1], now=later)
    assert {k: summary[k] for k in inside} == inside
    assert summary["rolledUpDays"] == len(june)
    # A re-run that changes no figure rewrites no running total (their row versions stay as they were)
    xmin = "SELECT analytics_date, xmin::text FROM support_analytics_cumulative WHERE user_id = %s"
    with psycopg.connect(db.admin) as conn:
        versions = conn.execute(xmin, (data.tenant,)).fetchall()
    with job_connection(db):
        analytics.roll_up(date(2024, 6, 3), date(2024, 6, 4), data.tenant)
    with psycopg.connect(db.admin) as conn:
        assert conn.execute(xmin, (data.tenant,)).fetchall() == versions
    # A re-run of an early day after a late change carries it into every later running total
    with psycopg.connect(db.owner) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(data.tenant),))
        conn.execute(
            "UPDATE support_tickets SET status = 'closed' WHERE user_id = %s AND created_at >= %s AND created_at < %s",
            (data.tenant, datetime(2024, 6, 10, tzinfo=UTC), datetime(2024, 6, 11, tzinfo=UTC)),
        )
    for ticket in data.tickets:
        if ticket["created_at"].date() == date(2024, 6, 10):
            ticket["status"] = "closed"
    with job_connection(db):
        analytics.roll_up(date(2024, 6, 10), date(2024, 6, 10), data.tenant)
    assert _stored_running_totals(db, data.tenant) == _prefix_sums(data, days)
    # and it is those two rows that are read: a figure changed in either alone shows
    with psycopg.connect(db.admin) as conn:
        for day, delta in ((date(2024, 6, 30), 1000), (date(2024, 6, 1), 10)):
            conn.execute(
                "UPDATE support_analytics_cumulative SET total_tickets_created = total_tickets_created + %s"
                " WHERE user_id = %s AND analytics_date = %s",
                (delta, data.tenant, day),
            )
    assert (
        _summary(data.tenant, june[0], june[-1], now=later)["totalTicketsCreated"]
        == inside["totalTicketsCreated"] + 1000 - 10
    )


def test_the_running_totals_migration_sums_the_days_stored_before_it(db: DatabaseUrls, tmp_path: Path) -> None:
    # Given a database at sql/0015 with day rows of two tenants (one with a gap), as the rollup left them
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if path.name < "0016":
            shutil.copy(path, tmp_path / path.name)
    urls = create_database(db.admin, "support_cumulative_migration", recreate=True, quiet=True)
    with psycopg.connect(urls.admin.replace("dbname=support_cumulative_migration", "dbname=postgres")) as conn:
        conn.autocommit = True
        conn.execute("DROP DATABASE support_cumulative_migration WITH (FORCE)")
        conn.execute("CREATE DATABASE support_cumulative_migration OWNER support_owner")
    migrate(urls.owner, tmp_path, log=lambda _: None)
    tenants = {uuid4(): [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 5)], uuid4(): [date(2025, 12, 31)]}
    with psycopg.connect(urls.owner) as conn:
        for tenant, days in tenants.items():
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
            for i, day in enumerate(days):
                conn.execute(
                    "INSERT INTO support_analytics (user_id, analytics_date, total_tickets_created, rating_sum,"
                    " tickets_by_status, resolution_histogram) VALUES (%s, %s, %s, %s, %s, %s)",
                    (tenant, day, i + 2, 10 * i, Jsonb({"open": i + 1}), Jsonb({"40": 1, str(41 + i): 2})),
                )
            conn.commit()

    # When sql/0016 is applied
    shutil.copy(MIGRATIONS / "0016_analytics_cumulative.sql", tmp_path)
    assert migrate(urls.owner, tmp_path, log=lambda _: None) == ["0016_analytics_cumulative.sql"]

    # Then each stored day has the running totals of its tenant's days up to it, and the month level is gone
    with psycopg.connect(urls.admin, row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT user_id, analytics_date, days, total_tickets_created, rating_sum, tickets_by_status,"
            " resolution_histogram, chats_by_agent FROM support_analytics_cumulative ORDER BY user_id, analytics_date"
        ).fetchall()
        assert conn.execute("SELECT to_regclass('public.support_analytics_months') AS t").fetchone() == {"t": None}
    first, second = tenants
    assert [r for r in rows if r["user_id"] == first] == [
        {"user_id": first, "analytics_date": date(2026, 1, 1), "days": 1, "total_tickets_created": 2,
         "rating_sum": 0, "tickets_by_status": {"open": 1}, "resolution_histogram": {"40": 1, "41": 2},
         "chats_by_agent": {}},
        {"user_id": first, "analytics_date": date(2026, 1, 2), "days": 2, "total_tickets_created": 5,
         "rating_sum": 10, "tickets_by_status": {"open": 3}, "resolution_histogram": {"40": 2, "41": 2, "42": 2},
         "chats_by_agent": {}},
        {"user_id": first, "analytics_date": date(2026, 1, 5), "days": 3, "total_tickets_created": 9,
         "rating_sum": 30, "tickets_by_status": {"open": 6},
         "resolution_histogram": {"40": 3, "41": 2, "42": 2, "43": 2}, "chats_by_agent": {}},
    ]  # fmt: skip
    assert [r for r in rows if r["user_id"] == second] == [
        {"user_id": second, "analytics_date": date(2025, 12, 31), "days": 1, "total_tickets_created": 2,
         "rating_sum": 0, "tickets_by_status": {"open": 1}, "resolution_histogram": {"40": 1, "41": 2},
         "chats_by_agent": {}},
    ]  # fmt: skip
    with psycopg.connect(urls.admin.replace("dbname=support_cumulative_migration", "dbname=postgres")) as conn:
        conn.autocommit = True
        conn.execute("DROP DATABASE support_cumulative_migration WITH (FORCE)")
