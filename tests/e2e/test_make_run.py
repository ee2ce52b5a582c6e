"""`make run` as a newcomer uses it: it serves, its printed curl returns the demo tickets, and SIGTERM
stops everything, leaving no process behind. It runs on a data folder of the test's own, so `make test`
never touches (nor stops) the database a developer's `make run` serves from `.local/pg-run`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.local_run import LocalRun, postgres_serving, scratch_data_dir


@pytest.fixture
def data_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    yield from scratch_data_dir(request.node.name)


def test_run_serves_demo_tickets_and_stops_cleanly(data_dir: Path) -> None:
    run = LocalRun(data_dir)
    children: list[psutil.Process] = []
    try:
        run.wait_ready()
        assert run.url == f"http://127.0.0.1:{run.port}/api/support/tickets"
        assert f"Database: {data_dir}" in run.output

        reply = httpx.get(run.url, headers=run.auth, timeout=10)

        assert reply.status_code == 200
        subjects = {t["subject"] for t in reply.json()["data"]}
        assert "Order arrived damaged" in subjects
        chats = run.get("/chat/sessions").json()["data"]
        assert sorted(c["status"] for c in chats) == ["active", "closed", "waiting"]
        assert run.get("/canned-responses").json()["data"]
        created = httpx.post(
            f"{run.base}/api/support/tickets",
            json={"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "From the test"},
            headers=run.auth,
            timeout=10,
        )
        assert created.status_code == 201, created.text  # a route that publishes a metric, too
        dashboard = run.get("/dashboard").json()["data"]
        assert (dashboard["totalTickets"], dashboard["totalChats"]) == (len(reply.json()["data"]) + 1, 3)
        assert postgres_serving(data_dir), "the embedded PostgreSQL should be running in the test's folder"
        children = psutil.Process(run.proc.pid).children(recursive=True)  # the handlers' workers among them
        assert children
    finally:
        code = run.stop()

    assert code == 0, run.output
    assert "stopping" in run.output
    assert postgres_serving(data_dir) == []
    assert [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE] == []


def test_the_data_persists_between_runs(data_dir: Path) -> None:
    first = LocalRun(data_dir)
    try:
        first.wait_ready()
        created = httpx.post(
            f"{first.base}/api/support/tickets",
            json={"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "Still here tomorrow"},
            headers=first.auth,
            timeout=10,
        )
        assert created.status_code == 201, created.text
    finally:
        assert first.stop() == 0, first.output

    second = LocalRun(data_dir)
    try:
        second.wait_ready()
        subjects = [t["subject"] for t in second.get("/tickets").json()["data"]]
        # The ticket of the first run is still there, and the demo data was not loaded a second time.
        assert subjects.count("Still here tomorrow") == 1
        assert subjects.count("Order arrived damaged") == 1
    finally:
        assert second.stop() == 0, second.output
