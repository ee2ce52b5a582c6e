"""`make backfill` and `make invoke` as a developer's shell runs them: real `make` subprocesses against a data folder
of the test's own (never `.local/pg-run`), whose PostgreSQL this test holds open so that they join it, as they
join a running `make run`. What they write is checked against the test's own recount of its raw rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from local.database import DatabaseUrls
from support.services import analytics
from tests.e2e.local_run import REPO, held_run_database, make
from tests.integration.test_analytics_rollup import DAYS, Data, build, expected

EVENTS = REPO / "events"


@pytest.fixture(scope="module")
def run_db(request: pytest.FixtureRequest) -> Iterator[tuple[Path, DatabaseUrls]]:
    """make run's database in a scratch folder, held open (the make targets join the server)."""
    yield from held_run_database("backfill-invoke")


@pytest.fixture(scope="module")
def tenant_data(run_db: tuple[Path, DatabaseUrls]) -> Data:
    return build(run_db[1], uuid4(), 21, DAYS)


def stored(urls: DatabaseUrls, tenant: UUID) -> dict[date, dict[str, Any]]:
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in ("analytics_date", *analytics.ROLLUP_COLUMNS))
    with psycopg.connect(urls.admin, row_factory=dict_row) as conn:
        rows = conn.execute(
            sql.SQL("SELECT {} FROM support_analytics WHERE user_id = %s").format(columns), (tenant,)
        ).fetchall()
    result = {}
    for row in rows:
        day = row.pop("analytics_date")
        score = row["customer_satisfaction_score"]
        row["customer_satisfaction_score"] = None if score is None else float(score)
        rate = row["chat_abandon_rate"]
        row["chat_abandon_rate"] = None if rate is None else float(rate)
        result[day] = row
    return result


def test_make_backfill_rolls_up_the_days_with_a_progress_bar(
    run_db: tuple[Path, DatabaseUrls], tenant_data: Data
) -> None:
    folder, urls = run_db
    tenant = tenant_data.tenant
    run = make(folder, "backfill", f"FROM={DAYS[0]}", f"TO={DAYS[-1]}", f"TENANT={tenant}")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result == {"ok": True, "from": str(DAYS[0]), "to": str(DAYS[-1]), "tenants": 1, "failed": []}
    assert "backfill: 100%" in run.stderr and f"{len(DAYS)}/{len(DAYS)}" in run.stderr
    rows = stored(urls, tenant)
    assert sorted(rows) == DAYS
    for day in DAYS:
        assert rows[day] == expected(tenant_data, day), day


def test_make_backfill_refuses_a_bad_range(run_db: tuple[Path, DatabaseUrls]) -> None:
    # (make exits 2 whatever the failed command's status)
    run = make(run_db[0], "backfill", "FROM=2024-06-03", "TO=2024-06-01")
    assert run.returncode == 2
    assert json.loads(run.stdout)["ok"] is False and "before" in json.loads(run.stdout)["error"]
    run = make(run_db[0], "backfill", "FROM=2024-06-31", "TO=2024-07-01")
    assert run.returncode == 2 and "argument --from: invalid fromisoformat value" in run.stderr


def test_make_invoke_runs_the_scheduled_event(run_db: tuple[Path, DatabaseUrls], tenant_data: Data) -> None:
    folder, urls = run_db
    event = folder.parent / "scheduled.json"
    event.write_text(json.dumps({"scheduledTime": f"{DAYS[-1]}T00:15:00Z"}))
    with psycopg.connect(urls.admin) as conn:
        for table in ("support_analytics_cumulative", "support_analytics"):  # the running totals refer to the days
            conn.execute(f"DELETE FROM {table} WHERE user_id = %s", (tenant_data.tenant,))
    run = make(folder, "invoke", "FUNCTION=AnalyticsFunction", f"EVENT={event}")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)  # the result alone on stdout; the handler's log lines on stderr
    assert (result["ok"], result["from"], result["to"]) == (True, str(DAYS[0]), str(DAYS[1]))
    assert '"analytics rollup finished"' in run.stderr
    rows = stored(urls, tenant_data.tenant)
    assert sorted(rows) == DAYS[:2]  # yesterday and the day before
    assert all(rows[day] == expected(tenant_data, day) for day in DAYS[:2])


def test_make_invoke_runs_an_http_function_as_the_runtime_role(
    run_db: tuple[Path, DatabaseUrls], tenant_data: Data
) -> None:
    folder, _ = run_db
    sample = json.loads((EVENTS / "dashboard" / "summary.json").read_text())
    sample["queryStringParameters"] = {"from": str(DAYS[0]), "to": str(DAYS[-1])}
    sample["rawQueryString"] = f"from={DAYS[0]}&to={DAYS[-1]}"
    sample["requestContext"]["authorizer"]["jwt"]["claims"]["tenant_id"] = str(tenant_data.tenant)
    event = folder.parent / "summary.json"
    event.write_text(json.dumps(sample))
    run = make(folder, "invoke", "FUNCTION=DashboardFunction", f"EVENT={event}")
    assert run.returncode == 0, run.stderr
    response = json.loads(run.stdout)
    assert response["statusCode"] == 200
    summary = json.loads(response["body"])["data"]
    assert summary["totalTicketsCreated"] == sum(expected(tenant_data, d)["total_tickets_created"] for d in DAYS)


def test_make_invoke_reports_a_function_error_and_an_unknown_function(run_db: tuple[Path, DatabaseUrls]) -> None:
    folder, _ = run_db
    event = folder.parent / "missing-tenant.json"
    event.write_text(json.dumps({"from": "2024-06-01", "to": "2024-06-01", "tenantId": "not-a-uuid"}))
    run = make(folder, "invoke", "FUNCTION=AnalyticsFunction", f"EVENT={event}")
    assert run.returncode == 0 and json.loads(run.stdout)["ok"] is False  # refused by the handler: a result
    run = make(folder, "invoke", "FUNCTION=NoSuchFunction", f"EVENT={event}")
    assert run.returncode == 2 and "AnalyticsFunction" in run.stderr
