"""GET /api/support/analytics/summary: a range's figures from the stored days (and the raw rows for today and
any day not rolled up), checked against an exact recount from the raw rows the test wrote; its percentiles,
read from the merged histograms, within the stated error of the exact ones."""

from __future__ import annotations

import math
from collections import Counter
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.rows import dict_row

from local.database import DatabaseUrls, connected_as
from support.auth import Principal, Role
from support.averages import mean_score, mean_seconds
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
        "chatsByAgent": dict(sorted(Counter(str(s["agent"]) for s in ended if s["agent"] is not None).items())),
        "_values": {"firstResponse": answered, "resolution": resolutions, "chatDuration": durations},
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
                estimate = summary[f"{name[0].lower()}{name[1:]}{key}"]
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
    assert {k: v for k, v in without.items() if k != "chatsByAgent"} == {
        k: v for k, v in _summary(tenants[0].tenant, BEFORE, TODAY).items() if k != "chatsByAgent"
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


def test_whole_months_are_read_from_their_month_rows(db: DatabaseUrls) -> None:
    days = analytics.days_in(date(2024, 5, 30), date(2024, 7, 2))
    june = [d for d in days if d.month == 6]
    data = build(db, uuid4(), 31, days)
    later = datetime(2024, 7, 10, tzinfo=UTC)
    # Given every day rolled up but June 30: June's month row holds 29 days, so the summary reads June's days
    with job_connection(db):
        analytics.roll_up(days[0], date(2024, 6, 29), data.tenant)
        analytics.roll_up(date(2024, 7, 1), days[-1], data.tenant)
    exact = recount(data, days)
    values = exact.pop("_values")
    partial = _summary(data.tenant, days[0], days[-1], now=later)
    assert (partial["rolledUpDays"], partial["liveDays"]) == (len(days) - 1, ["2024-06-30"])
    assert {k: partial[k] for k in exact} == exact

    # When June 30 is rolled up too, the month row holds June: its figures are its days' sums
    with job_connection(db):
        analytics.roll_up(date(2024, 6, 30), date(2024, 6, 30), data.tenant)
    with psycopg.connect(db.admin, row_factory=dict_row) as conn:
        month = conn.execute(
            "SELECT * FROM support_analytics_months WHERE user_id = %s AND month = '2024-06-01'", (data.tenant,)
        ).fetchone()
    assert month is not None
    by_day = [expected(data, d) for d in june]
    assert month["days"] == 30
    assert month["total_tickets_created"] == sum(d["total_tickets_created"] for d in by_day)
    assert month["resolution_seconds"] == sum(d["resolution_seconds"] for d in by_day)
    assert month["resolution_histogram"] == dict(sum((Counter(d["resolution_histogram"]) for d in by_day), Counter()))
    complete = _summary(data.tenant, days[0], days[-1], now=later)
    assert (complete["rolledUpDays"], complete["liveDays"]) == (len(days), [])
    assert {k: complete[k] for k in exact} == exact
    for name, observed in values.items():
        assert complete[f"{name}Histogram"] == {
            str(b): n for b, n in sorted(Counter(analytics.bucket_of(v) for v in observed).items())
        }
    # and it is the month row that was read (a figure changed in it alone shows)
    with psycopg.connect(db.admin) as conn:
        conn.execute(
            "UPDATE support_analytics_months SET total_tickets_created = total_tickets_created + 1000"
            " WHERE user_id = %s AND month = '2024-06-01'",
            (data.tenant,),
        )
    assert (
        _summary(data.tenant, days[0], days[-1], now=later)["totalTicketsCreated"]
        == exact["totalTicketsCreated"] + 1000
    )
    # a range that covers June only in part reads its days
    assert _summary(data.tenant, date(2024, 6, 2), date(2024, 6, 30), now=later)["totalTicketsCreated"] == len(
        [t for t in data.tickets if date(2024, 6, 2) <= t["created_at"].date() <= date(2024, 6, 30)]
    )
