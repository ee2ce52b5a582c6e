"""Several users of one embedded PostgreSQL data folder, as real processes: two `make run`, the test
database beside a run, a busy port, a run killed hard, and `make reset-demo` beside a run. Nobody stops a
PostgreSQL that another process still uses; the last one to leave stops it; an orphan is cleaned up."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from local.database import EmbeddedPostgres, database
from local.run import _port_is_taken
from tests.e2e.local_run import (
    REPO,
    LocalRun,
    developer_env,
    free_port,
    postgres_serving,
    postmaster_pid,
    scratch_data_dir,
    wait_until_gone,
)


@pytest.fixture
def data_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    yield from scratch_data_dir(request.node.name)


def _create_ticket(run: LocalRun, subject: str) -> None:
    created = httpx.post(
        f"{run.base}/api/support/tickets",
        json={"customerName": "Ada", "customerEmail": "ada@example.com", "subject": subject},
        headers=run.auth,
        timeout=10,
    )
    assert created.status_code == 201, created.text


def test_a_second_run_on_the_same_folder_shares_the_database(data_dir: Path) -> None:
    first = LocalRun(data_dir).wait_ready()
    second: LocalRun | None = None
    try:
        postmaster = postmaster_pid(data_dir)
        second = LocalRun(data_dir).wait_ready()
        assert "the PostgreSQL another make run started" in second.output
        assert postmaster_pid(data_dir) == postmaster  # joined, not restarted
        _create_ticket(second, "Seen by both")
        for run in (first, second):
            reply = run.get("/tickets")
            assert reply.status_code == 200, reply.text
            subjects = [t["subject"] for t in reply.json()["data"]]
            assert subjects.count("Seen by both") == 1
            assert subjects.count("Order arrived damaged") == 1  # the demo data once, not twice

        # The first one stops: the second keeps its database.
        assert first.stop() == 0, first.output
        assert second.get("/tickets").status_code == 200
        assert postgres_serving(data_dir)
        assert second.stop() == 0, second.output
        # The last one out stopped it.
        assert wait_until_gone(data_dir) == []
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_the_test_database_beside_a_run_leaves_the_run_serving(data_dir: Path) -> None:
    run = LocalRun(data_dir).wait_ready()
    try:
        postmaster = postmaster_pid(data_dir)
        # What the test suite's `db` fixture does, here on the run's own folder.
        fixture = database("support_test", purpose="test", recreate=True, quiet=True, server_url="", data_dir=data_dir)
        with fixture as urls:
            assert urls.joined
            with psycopg.connect(urls.owner) as conn:
                assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() != (0,)
            assert run.get("/tickets").status_code == 200
        # The test database is done with the server; the run still uses it.
        assert postmaster_pid(data_dir) == postmaster
        assert psutil.pid_exists(postmaster)
        reply = run.get("/tickets")
        assert reply.status_code == 200, reply.text
    finally:
        assert run.stop() == 0, run.output
    assert wait_until_gone(data_dir) == []


def test_a_busy_port_is_one_line_and_harms_nobody(data_dir: Path) -> None:
    run = LocalRun(data_dir).wait_ready()
    try:
        postmaster = postmaster_pid(data_dir)
        busy = subprocess.run(
            [sys.executable, "-m", "local.run"],
            cwd=REPO,
            env=developer_env(data_dir, run.port),  # the port the first run serves
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert busy.returncode == 1
        assert busy.stdout == ""
        assert busy.stderr.count("\n") == 1, busy.stderr
        assert f"port {run.port}" in busy.stderr and "already in use" in busy.stderr
        assert "Traceback" not in busy.stderr
        assert postmaster_pid(data_dir) == postmaster
        assert run.get("/tickets").status_code == 200
    finally:
        assert run.stop() == 0, run.output


@pytest.mark.parametrize("name", ["PORT", "WS_PORT", "MERCHANT_PORT"])
def test_a_port_taken_by_another_program_is_refused_before_any_database(data_dir: Path, name: str) -> None:
    """Any of the three, the WebSocket API's and the demo shop's too (not a run that serves half a stack): one line
    naming it and a set of three free ports."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        busy = subprocess.run(
            [sys.executable, "-m", "local.run"],
            cwd=REPO,
            env=developer_env(data_dir, free_port()) | {name: str(port)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert busy.returncode == 1, busy.stdout
    assert busy.stderr.count("\n") == 1, busy.stderr
    line = busy.stderr.strip()
    assert line.startswith(f"make run: port {port} ({name}) on 127.0.0.1 is already in use (another make run?); ")
    suggested = re.search(r"e\.g\. PORT=(\d+) WS_PORT=(\d+) MERCHANT_PORT=(\d+) make run \(", line)
    assert suggested, line  # the test's environment names WS_PORT and MERCHANT_PORT, so all three are suggested
    assert all(not _port_is_taken(int(p)) for p in suggested.groups())
    assert not (data_dir).exists()  # nothing was started for it


def test_a_run_killed_hard_leaves_an_orphan_that_the_next_run_replaces(data_dir: Path) -> None:
    killed = LocalRun(data_dir).wait_ready()
    _create_ticket(killed, "Before the crash")
    orphan = postmaster_pid(data_dir)
    assert killed.stop(signal.SIGKILL) == -signal.SIGKILL
    assert psutil.pid_exists(orphan)  # nobody stopped it: an orphan now

    run = LocalRun(data_dir).wait_ready()
    try:
        assert postmaster_pid(data_dir) != orphan
        assert not psutil.pid_exists(orphan)
        subjects = [t["subject"] for t in run.get("/tickets").json()["data"]]
        assert "Before the crash" in subjects
    finally:
        assert run.stop() == 0, run.output
    assert wait_until_gone(data_dir) == []


def test_in_process_users_of_one_folder_share_its_server(data_dir: Path) -> None:
    """What the bench and the test fixture do: a second user joins the server instead of stopping it, and
    only the last one to leave stops it."""
    data_dir = data_dir
    first = EmbeddedPostgres(data_dir)
    first.start()
    try:
        second = EmbeddedPostgres(data_dir)
        second.start()
        assert second.joined and second.port == first.port
        second.stop()
        with psycopg.connect(first.url) as conn:  # still up for the first
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        first.stop()
    assert first.running_port() is None


def test_reset_demo_beside_a_run_reloads_the_demo_data(data_dir: Path) -> None:
    run = LocalRun(data_dir).wait_ready()
    try:
        _create_ticket(run, "Gone after the reset")
        postmaster = postmaster_pid(data_dir)
        reset = subprocess.run(
            ["make", "-s", "reset-demo"],
            cwd=REPO,
            env=developer_env(data_dir, run.port),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert reset.returncode == 0, reset.stdout + reset.stderr
        assert "Demo data loaded afresh" in reset.stdout
        assert postmaster_pid(data_dir) == postmaster  # the run's server, not stopped

        # The run keeps serving, from the fresh demo data (its handlers reconnect once).
        deadline = time.monotonic() + 10
        while (reply := run.get("/tickets")).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert reply.status_code == 200, reply.text
        subjects = [t["subject"] for t in reply.json()["data"]]
        assert "Gone after the reset" not in subjects
        assert subjects.count("Order arrived damaged") == 1
        assert len(run.get("/chat/sessions").json()["data"]) == 3
    finally:
        assert run.stop() == 0, run.output


def test_reset_demo_without_a_run_starts_and_stops_the_database(data_dir: Path) -> None:
    env = developer_env(data_dir, 0)
    reset = subprocess.run(
        [sys.executable, "-m", "local.run", "--reset"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert (data_dir / "PG_VERSION").exists()
    assert postgres_serving(data_dir) == []
