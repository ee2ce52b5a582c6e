"""`make smoke` against the local gateway (real HTTP and WebSocket), as a user runs it against a deployed stack."""

from __future__ import annotations

import subprocess
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from local.gateway import WebSocketEndpoints
from local.token import mint_token

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def _smoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "smoke", *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def test_make_smoke_passes_against_a_running_stack(gateway_url: str, chat_gateway: WebSocketEndpoints) -> None:
    tenant = str(uuid4())
    token = mint_token(tenant, "admin")

    done = _smoke(f"URL={gateway_url}", f"TOKEN={token}", f"WS_URL={chat_gateway.websocket_url}")

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(" (")[0] for line in lines[:-1]] == [
        "ok   GET /api/support/tickets",
        "ok   GET /api/support/dashboard",
        "ok   POST /api/support/tickets",
        "ok   GET /api/support/tickets/{id}",
        "ok   WebSocket ping",
    ]
    assert lines[-1] == "smoke test passed"
    # the ticket it created is really there, in the token's tenant
    listed = httpx.get(f"{gateway_url}/api/support/tickets", headers={"Authorization": f"Bearer {token}"}).json()
    assert [t["customerEmail"] for t in listed["data"]] == ["smoke@example.com"]


def test_make_smoke_fails_on_a_token_the_api_refuses(gateway_url: str) -> None:
    done = _smoke(f"URL={gateway_url}", "TOKEN=not-a-jwt")

    assert done.returncode != 0
    assert "FAIL GET /api/support/tickets: SmokeFailure: HTTP 401" in done.stdout


def test_make_smoke_without_its_arguments_says_how_to_call_it() -> None:
    done = _smoke()

    assert done.returncode != 0
    assert "usage: make smoke URL=" in done.stderr


def test_the_tickets_step_counts_the_whole_first_page(gateway_url: str) -> None:
    """A tenant with 41 tickets: the first page holds all 41, and the step says so (it said 1: it asked limit=1)."""
    from io import StringIO

    from local import smoke

    tenant = str(uuid4())
    token = mint_token(tenant, "admin")
    with httpx.Client(base_url=gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        for n in range(41):
            body = {"customerName": "Ada", "customerEmail": "ada@example.com", "subject": f"Ticket {n}"}
            assert client.post("/api/support/tickets", json=body).status_code == 201
    out = StringIO()

    assert smoke.run(gateway_url, token, None, out=out), out.getvalue()

    first = out.getvalue().splitlines()[0]
    assert first.startswith("ok   GET /api/support/tickets ("), first
    assert first.endswith(": 41 ticket(s) on the first page"), first
