"""The dashboard's week trends (satisfactionTrendLastWeek, ticketVolumeTrendLastWeek) with a test clock: the past
six days from their rollup rows, today and any day not rolled up yet from the raw rows, in the same snapshot."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID

import psycopg
import pytest

from local.database import DatabaseUrls
from support.auth import Principal, Role
from support.averages import mean_score
from support.services import analytics, dashboard
from tests.integration.test_analytics_summary import job_connection

TODAY = date(2025, 3, 10)
NOW = datetime(2025, 3, 10, 15, 0, tzinfo=UTC)
WEEK = [TODAY - timedelta(days=offset) for offset in range(6, -1, -1)]


def _ticket(db: DatabaseUrls, tenant: UUID, day: date, hour: int, rating: int | None = None) -> None:
    created = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
    with psycopg.connect(db.owner) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        row = conn.execute(
            "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, created_at, status,"
            " resolved_at, resolution_time) VALUES (%s, 'C', 'c@example.com', 'S', %s, 'resolved', %s, 60)"
            " RETURNING id",
            (tenant, created, created + timedelta(seconds=60)),
        ).fetchone()
        assert row is not None
        if rating is not None:
            conn.execute(
                "INSERT INTO ticket_feedback (user_id, ticket_id, rating, created_at) VALUES (%s, %s, %s, %s)",
                (tenant, row[0], rating, created + timedelta(minutes=5)),
            )


@pytest.fixture
def week(db: DatabaseUrls, tenant: UUID) -> dict[date, list[int]]:
    """Tickets on every day of the week (and the day before it), some rated: {day: the ratings given}."""
    plan = {day: [(i % 5) + 1 for i in range(n)] for n, day in enumerate([WEEK[0] - timedelta(days=1), *WEEK], 1)}
    for day, ratings in plan.items():
        for i, rating in enumerate(ratings):
            _ticket(db, tenant, day, i % 20, rating if i % 2 == 0 else None)
    return {day: [r for i, r in enumerate(ratings) if i % 2 == 0] for day, ratings in plan.items()}


def _trends(tenant: UUID) -> tuple[list[tuple[str, int]], list[tuple[str, float | None]]]:
    data = dashboard.get_dashboard(Principal(tenant_id=tenant, role=Role.ADMIN, subject="t"), now=NOW)
    return (
        [(p.date.isoformat(), p.count) for p in data.ticket_volume_trend_last_week],
        [(p.date.isoformat(), p.score) for p in data.satisfaction_trend_last_week],
    )


def test_the_past_days_come_from_the_rollup_and_today_from_the_rows(
    db: DatabaseUrls, tenant: UUID, week: dict[date, list[int]]
) -> None:
    # Given the past six days rolled up
    with job_connection(db):
        assert analytics.roll_up(WEEK[0], WEEK[5], tenant).failed == {}
    # and then, without a new rollup, a late ticket (rated 1) on a rolled-up day and one more today
    _ticket(db, tenant, WEEK[2], 23, rating=1)
    _ticket(db, tenant, TODAY, 14, rating=1)
    volume, scores = _trends(tenant)

    # Then the past days say what their rows say (the late ticket is not in them: the rollup was read),
    counts = {day: n for n, day in enumerate([WEEK[0] - timedelta(days=1), *WEEK], 1)}
    assert volume[:6] == [(d.isoformat(), counts[d]) for d in WEEK[:6]]
    assert scores[:6] == [(d.isoformat(), mean_score(sum(week[d]), len(week[d]))) for d in WEEK[:6]]
    # and today is live: the new ticket and its rating are in it
    assert volume[6] == (TODAY.isoformat(), counts[TODAY] + 1)
    assert scores[6] == (TODAY.isoformat(), mean_score(sum(week[TODAY]) + 1, len(week[TODAY]) + 1))


def test_a_day_not_rolled_up_is_computed_live(db: DatabaseUrls, tenant: UUID, week: dict[date, list[int]]) -> None:
    # Given only some of the past days rolled up (the job has not reached the others yet)
    with job_connection(db):
        analytics.roll_up(WEEK[1], WEEK[2], tenant)
        analytics.roll_up(WEEK[4], WEEK[4], tenant)
    _ticket(db, tenant, WEEK[3], 23, rating=1)  # on a day without a row: the live count sees it
    volume, scores = _trends(tenant)

    counts = {day: n for n, day in enumerate([WEEK[0] - timedelta(days=1), *WEEK], 1)}
    late = {WEEK[3]: 1}
    assert volume == [(d.isoformat(), counts[d] + late.get(d, 0)) for d in WEEK]
    ratings = {d: week[d] + ([1] if d in late else []) for d in WEEK}
    assert scores == [(d.isoformat(), mean_score(sum(ratings[d]), len(ratings[d]))) for d in WEEK]
    # and without any rollup at all the trend is the same live week (nothing missing, no zeros)
    with psycopg.connect(db.owner) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        for table in ("support_analytics_cumulative", "support_analytics"):  # the running totals refer to the days
            conn.execute(f"DELETE FROM {table} WHERE user_id = %s", (tenant,))
    assert _trends(tenant) == (volume, scores)


def test_a_day_without_activity_is_zero_and_no_score(db: DatabaseUrls, tenant: UUID) -> None:
    _ticket(db, tenant, WEEK[1], 10, rating=4)
    with job_connection(db):
        analytics.roll_up(WEEK[0], WEEK[5], tenant)  # writes rows for the empty days too
    volume, scores = _trends(tenant)
    assert volume == [(d.isoformat(), 1 if d == WEEK[1] else 0) for d in WEEK]
    assert scores == [(d.isoformat(), 4.0 if d == WEEK[1] else None) for d in WEEK]
