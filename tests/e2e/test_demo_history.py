"""The demo data's two weeks of history, as `make reset-demo` (the same start-up as `make run`) loads and rolls it
up in a data folder of the test's own: realistic times, and a dashboard that teaches something (non-zero averages,
a trend that moves), while the demo facts the other tests and the walkthrough use stay true."""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from local.database import DatabaseUrls, connected_as, database
from local.demo_data import DEMO_TENANTS, HISTORY_DAYS
from support.auth import Principal, Role
from support.services import analytics, dashboard
from tests.e2e.local_run import REPO, developer_env, free_port, scratch_data_dir

ACME, GLOBEX = DEMO_TENANTS.values()


@pytest.fixture(scope="module")
def demo(request: pytest.FixtureRequest) -> Iterator[DatabaseUrls]:
    for folder in scratch_data_dir("demo-history"):
        run = subprocess.run(
            [sys.executable, "-m", "local.run", "--reset"],
            cwd=REPO,
            env=developer_env(folder, free_port()),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        with database("support", purpose="run", data_dir=folder, quiet=True, server_url="") as urls:
            yield urls


def as_app(urls: DatabaseUrls) -> AbstractContextManager[None]:
    return connected_as(urls.app)


def rows(urls: DatabaseUrls, query: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(urls.admin, row_factory=dict_row) as conn:
        return conn.execute(query.encode(), params).fetchall()


def test_the_history_has_realistic_times(demo: DatabaseUrls) -> None:
    now = datetime.now(UTC)
    for tenant in (ACME, GLOBEX):
        tickets = rows(
            demo,
            "SELECT created_at, first_response_time, resolution_time, status FROM support_tickets WHERE user_id = %s",
            tenant,
        )
        created = [t["created_at"] for t in tickets]
        assert min(created) < now - timedelta(days=HISTORY_DAYS - 2)  # spread over the past two weeks
        assert len({c.date() for c in created}) >= 10
        firsts = [t["first_response_time"] for t in tickets if t["first_response_time"] is not None]
        assert 60 <= statistics.median(firsts) <= 3 * 3600 and max(firsts) > 3600  # minutes to hours
        resolutions = [t["resolution_time"] for t in tickets if t["resolution_time"] is not None]
        assert len(resolutions) >= 10
        assert 3600 <= statistics.median(resolutions) <= 3 * 86400 and max(resolutions) > 86400  # hours to days
        ratings = rows(demo, "SELECT rating FROM ticket_feedback WHERE user_id = %s", tenant)
        assert len({r["rating"] for r in ratings}) >= 3
        assert len(tickets) <= 49  # one page of the list, as the make-run tests read it
    durations = [
        r["duration"]
        for r in rows(demo, "SELECT duration FROM live_chat_sessions WHERE user_id = %s AND duration > 0", GLOBEX)
    ]
    assert len(durations) >= 20 and 60 <= statistics.median(durations) <= 3600
    # Acme keeps exactly its three demo chats, the ended one with a real duration now
    chats = rows(demo, "SELECT status, duration FROM live_chat_sessions WHERE user_id = %s ORDER BY status", ACME)
    assert [(c["status"], c["duration"]) for c in chats] == [("active", None), ("closed", 540), ("waiting", None)]


def test_the_past_two_weeks_are_rolled_up_and_the_dashboard_shows_them(demo: DatabaseUrls) -> None:
    today = datetime.now(UTC).date()
    for tenant in (ACME, GLOBEX):
        days = [
            r["analytics_date"]
            for r in rows(demo, "SELECT analytics_date FROM support_analytics WHERE user_id = %s ORDER BY 1", tenant)
        ]
        assert days == [today - timedelta(days=n) for n in range(HISTORY_DAYS, 0, -1)]
        principal = Principal(tenant_id=tenant, role=Role.ADMIN, subject="test")
        with as_app(demo):
            data = dashboard.get_dashboard(principal)
            summary = analytics.summarize(principal, today - timedelta(days=HISTORY_DAYS), today)
        assert data.average_first_response_time and data.average_resolution_time
        assert data.customer_satisfaction_score and data.average_chat_duration
        counts = [p.count for p in data.ticket_volume_trend_last_week]
        assert len(set(counts)) > 1 and sum(counts[:-1]) > 0  # a trend that moves, from the rollup days
        assert len({p.score for p in data.satisfaction_trend_last_week}) > 1
        assert summary.rolled_up_days == HISTORY_DAYS and summary.resolution_p90
        # the rolled-up days agree with the tickets they count
        created = rows(
            demo,
            "SELECT count(*) AS n FROM support_tickets WHERE user_id = %s AND created_at < %s",
            tenant,
            datetime.combine(today, datetime.min.time(), UTC),
        )[0]["n"]
        assert summary.total_tickets_created - (summary.today.total_tickets_created if summary.today else 0) == created


def test_every_demo_ticket_and_chat_has_its_contact(demo: DatabaseUrls) -> None:
    # make run's demo data ends with contacts: the history written by hand is linked as the backfill links old rows
    for tenant in (ACME, GLOBEX):
        unlinked = rows(
            demo,
            "SELECT (SELECT count(*) FROM support_tickets WHERE user_id = %s AND contact_id IS NULL) AS tickets,"
            " (SELECT count(*) FROM live_chat_sessions WHERE user_id = %s AND contact_id IS NULL) AS sessions,"
            " (SELECT count(*) FROM support_contacts WHERE user_id = %s) AS contacts",
            tenant,
            tenant,
            tenant,
        )[0]
        assert unlinked["tickets"] == 0 and unlinked["sessions"] == 0
        assert unlinked["contacts"] > 1
