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
    _ticket_at(db, tenant, datetime(day.year, day.month, day.day, hour, tzinfo=UTC), rating)


def _ticket_at(db: DatabaseUrls, tenant: UUID, created: datetime, rating: int | None = None) -> None:
    """A resolved ticket created at `created`, rated 5 minutes later when `rating` is given."""
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


def test_today_and_the_trend_agree_at_every_hour_around_midnight(db: DatabaseUrls, tenant: UUID) -> None:
    # Given a ticket a second before midnight and one a second after it (rated 4 and 2, after midnight)
    midnight = datetime(2025, 3, 10, tzinfo=UTC)
    _ticket_at(db, tenant, midnight - timedelta(seconds=1), rating=4)
    _ticket_at(db, tenant, midnight + timedelta(seconds=1), rating=2)
    principal = Principal(tenant_id=tenant, role=Role.ADMIN, subject="t")
    # When the dashboard is read with a clock half a second before midnight (the second ticket is created between
    # the clock's reading and the snapshot), then at midnight and at every hour of the next day
    clocks = [midnight - timedelta(milliseconds=500), midnight, *(midnight + timedelta(hours=h) for h in range(24))]
    for now in clocks:
        data = dashboard.get_dashboard(principal, now=now)
        volume = {p.date: p.count for p in data.ticket_volume_trend_last_week}
        scores = {p.date: p.score for p in data.satisfaction_trend_last_week}
        today = now.date()
        # Then "today" is the clock's UTC day, its count is the trend's last point, and each ticket is counted on
        # the day it was created, never in the day before's "today"
        assert data.ticket_volume_trend_last_week[-1].date == today, now
        assert data.tickets_created_today == volume[today], now
        assert (volume.get(date(2025, 3, 9)), volume.get(date(2025, 3, 10))) == (
            (1, None) if today.day == 9 else (1, 1)
        )
        # (both ratings are given after midnight, 5 minutes after their tickets: none on the day before)
        assert (scores.get(date(2025, 3, 9)), scores.get(date(2025, 3, 10))) == (
            (None, None) if today.day == 9 else (None, 3.0)
        )
    # and the day before, once rolled up, keeps what its "today" said
    with job_connection(db):
        assert analytics.roll_up(date(2025, 3, 9), date(2025, 3, 9), tenant).failed == {}
    late = dashboard.get_dashboard(principal, now=midnight + timedelta(hours=1))
    assert [(p.date, p.count) for p in late.ticket_volume_trend_last_week][-2:] == [
        (date(2025, 3, 9), 1),
        (date(2025, 3, 10), 1),
    ]
