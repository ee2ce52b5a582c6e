"""What `make run` prints while a developer uses it, and what it answers a page of another site: a real
`python -m local.run`, its printed commands, and requests as a browser rebound by DNS would send them."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.e2e.local_run import REPO, LocalRun, free_port, scratch_data_dir

pytestmark = pytest.mark.e2e

REBIND = "rebind.evil.example"


@pytest.fixture(scope="module")
def run() -> Iterator[LocalRun]:
    """One `make run` for the module, on ports of its own (never the 8080 of a developer's demo shop)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MERCHANT_PORT", str(free_port()))
        for data_dir in scratch_data_dir("output"):
            started = LocalRun(data_dir)
            try:
                yield started.wait_ready()
            finally:
                assert started.stop() == 0, started.output


def _printed(run: LocalRun, pattern: str, timeout: float = 60) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := re.search(pattern, run.output):
            return found
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} never printed:\n{run.output}")


def _chat_client(command: str) -> str:
    """The printed `local.chat` command, run until its input ends (at once): what its terminal shows."""
    args = shlex.split(command)
    assert args[0] == ".venv/bin/python"
    done = subprocess.run(
        [sys.executable, *args[1:]], cwd=REPO, input="", capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_loading_the_demo_data_prints_no_error(run: LocalRun) -> None:
    """The demo data is loaded before the gateway listens: the staff broadcasts its changes ask for run in process
    (no one is connected to hear them), not through a broadcast function that cannot be invoked yet."""
    _printed(run, r"Support API ready on")
    startup = run.output[: run.output.index("Support API ready on")]
    assert '"level":"ERROR"' not in startup and "Traceback" not in startup, startup
    assert "broadcast function was not invoked" not in run.output, run.output


def test_the_workflow_sweep_runs_on_its_schedule(run: LocalRun) -> None:
    """EventBridge Scheduler invokes WorkflowSweepFunction every minute in AWS; make run's local.workflow_sweep does
    it locally, its first sweep as it starts, each printing what its steps did."""
    _printed(run, r"workflow sweep at \S+Z: sla \d+, automations \d+, chat_expiry \d+, idempotency \d+, privacy \d+")


def test_a_request_prints_a_short_access_line_and_no_metrics_or_warnings(run: LocalRun) -> None:
    visitor = _printed(run, r"\.venv/bin/python -m local\.chat visitor [^\n]+").group(0)
    _printed(run, r"Demo shop with the chat widget")
    printed_before = len(run.lines)

    listed = run.get("/tickets")
    body = {"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "Noise"}
    created = httpx.post(f"{run.base}/api/support/tickets", json=body, headers=run.auth, timeout=10)
    client = _chat_client(visitor)  # a visitor: the widget session (a metric), connect, startChat, close
    _printed(run, r"WebSocket \S+ disconnected")
    time.sleep(1)  # the handlers' own output of these requests, if any, is out by then

    assert (listed.status_code, created.status_code) == (200, 201)
    assert "-- connected" in client and "Warning" not in client, client
    output = "".join(run.lines[printed_before:])
    assert '"GET /api/support/tickets HTTP/1.1" 200' in output, output  # one access line per request
    assert '"POST /api/support/tickets HTTP/1.1" 201' in output, output
    assert '"POST /api/support/widget/session HTTP/1.1" 201' in output, output
    assert '"_aws"' not in output and "CloudWatchMetrics" not in output, output  # no EMF documents
    assert "Warning" not in output, output
    assert [line for line in output.splitlines() if len(line) > 200 or line.startswith("{")] == []  # no JSON logs


def test_no_listener_answers_a_site_rebound_to_this_machine(run: LocalRun) -> None:
    """DNS rebinding against everything `make run` serves: the API with the sign-in and the pages, the WebSocket
    API with its management API, and the demo shop; their own names still answer."""
    ws_url = _printed(run, r"WebSocket API on (ws://\S+)/\?token").group(1)
    shop_url = _printed(run, r"Demo shop with the chat widget: (http://\S+)/").group(1)
    api_port, ws_port, shop_port = (urlsplit(url).port for url in (run.base, ws_url, shop_url))
    assert api_port and ws_port and shop_port
    sign_in = {"tenantId": "a0000000-0000-4000-8000-00000000000a", "role": "admin"}

    def answers(name: str) -> dict[str, int]:
        def status(url: str, port: int, method: str = "GET", body: object = None) -> int:
            headers = {"Host": f"{name}:{port}", "Origin": f"http://{name}:{port}"}
            return httpx.request(method, url, json=body, headers=headers, timeout=10).status_code

        return {
            "token": status(f"{run.base}/_local/token", api_port, "POST", sign_in),
            "agents": status(f"{run.base}/_local/agents", api_port),
            "console": status(f"{run.base}/console/", api_port),
            "management": status(f"http://127.0.0.1:{ws_port}/@connections/x", ws_port),
            "shop": status(f"http://127.0.0.1:{shop_port}/", shop_port),
        }

    assert answers(REBIND) == dict.fromkeys(("token", "agents", "console", "management", "shop"), 421)
    # an unknown connection is gone (410): the management API answered
    assert answers("localhost") == {"token": 201, "agents": 200, "console": 200, "management": 410, "shop": 200}
    token = run.auth["Authorization"].split()[1]
    with socket.create_connection(("127.0.0.1", ws_port)) as sock, pytest.raises(InvalidStatus) as refused:
        connect(f"ws://{REBIND}:{ws_port}/?token={token}", sock=sock, open_timeout=10)
    assert refused.value.response.status_code == 421


def test_the_customer_mail_is_sent_through_the_local_ses_and_listed(run: LocalRun) -> None:
    """make run's SES is moto on 127.0.0.1, the outbox is drained every few seconds, and /local/mail lists the mail
    (the demo desk has email settings with a verified sender)."""
    import email
    import email.policy

    _printed(run, r"Mail the desk sent \(local SES, moto on http://127\.0\.0\.1:\d+\): \S+/local/mail")
    body = {"customerName": "Ana Lima", "customerEmail": "ana.lima@customers.example", "subject": "Where is 1043?"}
    created = httpx.post(f"{run.base}/api/support/tickets", json=body, headers=run.auth, timeout=10)
    assert created.status_code == 201, created.text
    ticket, reference = created.json()["data"]["id"], created.json()["data"]["reference"]
    deadline, mine = time.monotonic() + 30, []
    while time.monotonic() < deadline and not mine:
        listed = httpx.get(f"{run.base}/local/mail?limit=100", timeout=10).json()["mail"]
        mine = [m for m in listed if m["messageId"].startswith(f"<ticket-{ticket}.")]
        time.sleep(0.5)
    assert len(mine) == 1, listed
    (mail,) = mine
    assert mail["to"] == "Ana Lima <ana.lima@customers.example>"
    assert mail["from"] == "Acme Outfitters Support <support@acme.example>"
    # the ticket's reference first, where the desk finds it again in the customer's answer
    assert (mail["subject"], mail["autoSubmitted"]) == (f"[{reference}] Where is 1043?", "auto-replied")
    raw = httpx.get(f"{run.base}/local/mail/{mail['sesMessageId']}", timeout=10)
    assert raw.status_code == 200 and raw.headers["content-type"] == "message/rfc822"
    message = email.message_from_bytes(raw.content, policy=email.policy.default)
    assert message["Message-ID"] == mail["messageId"]
    assert httpx.get(f"{run.base}/local/mail/not-a-mail", timeout=10).status_code == 404
