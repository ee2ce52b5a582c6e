"""`make run` as a newcomer uses it: it serves, its printed curl returns the demo tickets, and SIGTERM
stops everything, leaving no process behind."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_run_serves_demo_tickets_and_stops_cleanly() -> None:
    port = _free_port()
    # As from a developer's shell: none of the Lambda settings the test process gave itself, and the
    # embedded PostgreSQL, as on a fresh laptop.
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_") and k != "DATABASE_URL"}
    env["PORT"] = str(port)
    env["WS_PORT"] = str(_free_port())
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    children: list[psutil.Process] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if line.strip().startswith("curl "):
                break
        curls = [line.strip() for line in output if line.strip().startswith("curl ")]
        assert curls, "make run printed no curl:\n" + "".join(output)
        curl = curls[0]
        args = shlex.split(curl)
        header = args[args.index("-H") + 1]
        url = args[-1]
        assert url == f"http://127.0.0.1:{port}/api/support/tickets"

        reply = httpx.get(url, headers=dict([header.split(": ", 1)]), timeout=10)

        assert reply.status_code == 200
        subjects = {t["subject"] for t in reply.json()["data"]}
        assert "Order arrived damaged" in subjects
        base = url.removesuffix("/api/support/tickets")
        auth = dict([header.split(": ", 1)])
        chats = httpx.get(f"{base}/api/support/chat/sessions", headers=auth, timeout=10).json()["data"]
        assert sorted(c["status"] for c in chats) == ["active", "closed", "waiting"]
        canned = httpx.get(f"{base}/api/support/canned-responses", headers=auth, timeout=10).json()["data"]
        assert canned
        created = httpx.post(
            f"{base}/api/support/tickets",
            json={"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "From the test"},
            headers=auth,
            timeout=10,
        )
        assert created.status_code == 201, created.text  # a route that publishes a metric, too
        dashboard = httpx.get(f"{base}/api/support/dashboard", headers=auth, timeout=10).json()["data"]
        assert (dashboard["totalTickets"], dashboard["totalChats"]) == (len(reply.json()["data"]) + 1, 3)
        assert _embedded_postgres(), "the embedded PostgreSQL should be running"
        children = psutil.Process(proc.pid).children(recursive=True)  # the handlers' worker processes among them
        assert children
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)

    assert proc.returncode == 0, "".join(output)
    assert _embedded_postgres() == []
    assert [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE] == []


def _embedded_postgres() -> list[psutil.Process]:
    data_dir = str(REPO / ".local" / "pg-run")
    found = []
    for process in psutil.process_iter(["name"]):
        try:
            if process.info["name"] == "postgres" and process.cwd() == data_dir:
                found.append(process)
        except psutil.Error:
            continue
    return found
