"""The round trips bench runs end to end, covers every WebSocket action and every chat route, and holds the live
chat's hot path to its budget: `sendMessage` costs at most 3 database round trips per invocation, counted on the
wire (issue 16), whoever sends (visitor, assigned agent, joined staff, admin) and on a resend. The HTTP route that
adds a message goes through the same service function and is held to the same budget. A message whose transaction
wrote a webhook delivery starts its dispatch after the commit in the same round trips, and no invocation of a desk
without endpoints starts one (the bench exits 2 otherwise)."""

from __future__ import annotations

import re

from tests.contract.bench_runs import run_bench

SEND_MESSAGE_BUDGET = 3


def _rows(out: str) -> dict[str, int]:
    rows = re.findall(r"^\| (.+?) +\| +(\d+) \| +\d+ \|$", out, re.M)
    return {name: int(trips) for name, trips in rows}


def test_send_message_takes_at_most_three_round_trips() -> None:
    run = run_bench("bench.round_trips", [], timeout=180, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = _rows(run.stdout)

    from functions.websocket.app import ACTIONS

    for action in [*ACTIONS, "$connect", "$disconnect", "$default"]:
        assert any(name.split(" ")[0] == action for name in rows), (action, rows)
    for route in ("POST /sessions", "GET /sessions/{id}/messages", "POST /sessions/{id}/messages"):
        assert route in rows, (route, rows)
    sends = {name: trips for name, trips in rows.items() if name.startswith("sendMessage")}
    assert len(sends) >= 5, sends
    assert "sendMessage (desk with a webhook endpoint)" in sends, sends
    assert all(trips <= SEND_MESSAGE_BUDGET for trips in sends.values()), sends
    assert rows["POST /sessions/{id}/messages"] <= SEND_MESSAGE_BUDGET, rows
