"""The live chat bench's own logic, on synthetic events: the burst scenario's queue checks (a staff connection's
newest queue.updated against the waiting sessions read over HTTP, a visitor's newest chat.queued against its
position), the targets' verdicts, and how a scenario's options come from the command line, --quick and its
defaults. The bench runs end to end in tests/contract/test_live_chat_bench_smoke.py."""

from __future__ import annotations

import math
from typing import Any

from bench.live_chat import (
    SCENARIOS,
    Target,
    answer_to,
    arguments,
    first_arrival,
    newest,
    resolve,
    staff_queue_problem,
    visitor_position_problem,
)

WAITING = [
    {"id": f"00000000-0000-4000-8000-00000000000{n}", "visitorName": f"V{n}", "createdAt": f"2026-12-07T03:00:0{n}Z"}
    for n in range(1, 5)
]


def queue_updated(as_of: str, waiting: list[dict[str, Any]], *, count: int | None = None) -> dict[str, Any]:
    sessions = [
        {"id": w["id"], "visitorName": w["visitorName"], "position": n, "createdAt": w["createdAt"]}
        for n, w in enumerate(waiting, start=1)
    ]
    return {
        "type": "queue.updated",
        "data": {"waiting": len(waiting) if count is None else count, "sessions": sessions, "asOf": as_of},
    }


def queued(session: str, position: int, as_of: str) -> dict[str, Any]:
    return {"type": "chat.queued", "data": {"sessionId": session, "position": position, "asOf": as_of}}


def test_the_newest_queue_updated_by_as_of_is_the_one_checked_whatever_the_arrival_order() -> None:
    right = queue_updated("2026-12-07T03:00:10.000002Z", WAITING)
    stale = queue_updated("2026-12-07T03:00:10.000001Z", WAITING[:3])
    assert staff_queue_problem([right, stale], WAITING) is None  # the stale one arrived last: it is not the newest
    assert staff_queue_problem([stale], WAITING) == "waiting 3, but 4 sessions wait"
    assert staff_queue_problem([right, stale], WAITING[:3]) == "waiting 4, but 3 sessions wait"
    assert newest([right, stale], "queue.updated") is right
    assert newest([{"type": "chat.waiting", "data": {}}], "queue.updated") is None


def test_a_staff_connection_without_queue_updated_or_with_a_wrong_list_is_a_problem() -> None:
    assert staff_queue_problem([{"type": "chat.waiting", "data": {"id": WAITING[0]["id"]}}], WAITING) == (
        "no queue.updated event"
    )
    swapped = queue_updated("2026-12-07T03:01:00Z", [WAITING[1], WAITING[0], *WAITING[2:]])
    assert staff_queue_problem([swapped], WAITING) == "the waiting sessions listed out of their order"
    lost = queue_updated("2026-12-07T03:01:00Z", WAITING[:3], count=4)
    assert staff_queue_problem([lost], WAITING) == "3 sessions listed: 1 waiting ones missing, 0 not waiting"
    event = queue_updated("2026-12-07T03:01:00Z", WAITING)
    event["data"]["sessions"][2]["position"] = 4
    assert staff_queue_problem([event], WAITING) == f"session {WAITING[2]['id']} at position 4, it is number 3"
    event = queue_updated("2026-12-07T03:01:00Z", WAITING)
    event["data"]["sessions"][0]["visitorName"] = "someone"
    assert "names visitor 'someone', not 'V1'" in str(staff_queue_problem([event], WAITING))


def test_only_the_first_hundred_waiting_are_listed_but_waiting_counts_them_all() -> None:
    many = [
        {
            "id": f"00000000-0000-4000-8000-{n:012d}",
            "visitorName": f"V{n}",
            "createdAt": f"2026-12-07T03:{n // 60:02d}:{n % 60:02d}Z",
        }
        for n in range(150)
    ]
    event = queue_updated("2026-12-07T04:00:00Z", many[:100], count=150)
    assert staff_queue_problem([event], many) is None
    event = queue_updated("2026-12-07T04:00:00Z", many[:100], count=100)
    assert staff_queue_problem([event], many) == "waiting 100, but 150 sessions wait"
    # created times compare as times, whatever the offset's spelling
    same = queue_updated(
        "2026-12-07T04:00:00Z", [{**w, "createdAt": w["createdAt"][:-1] + "+00:00"} for w in many[:100]], count=150
    )
    assert staff_queue_problem([same], many) is None


def test_a_visitors_newest_chat_queued_of_its_own_session_gives_its_position() -> None:
    mine, other = WAITING[0]["id"], WAITING[1]["id"]
    events = [
        queued(mine, 2, "2026-12-07T03:00:02Z"),
        queued(other, 1, "2026-12-07T03:00:09Z"),  # not this visitor's session: ignored
        queued(mine, 1, "2026-12-07T03:00:05Z"),
        queued(mine, 3, "2026-12-07T03:00:01Z"),  # older, arrived last
    ]
    assert visitor_position_problem(events, mine, 1) is None
    assert visitor_position_problem(events, mine, 2) == "position 1, it is 2"
    assert visitor_position_problem(events, WAITING[2]["id"], 3) == "no chat.queued"
    assert visitor_position_problem(events, mine, None) == "position 1, it is None"  # no longer waiting


def test_the_burst_times_a_visitor_to_the_first_chat_queued_of_its_session() -> None:
    mine = WAITING[0]["id"]
    log = [
        (1.0, queued(WAITING[1]["id"], 1, "2026-12-07T03:00:01Z")),
        (2.0, {"type": "chat.started", "requestId": "b0", "data": {"id": mine, "status": "waiting"}}),
        (3.0, queued(mine, 2, "2026-12-07T03:00:02Z")),
        (4.0, queued(mine, 1, "2026-12-07T03:00:03Z")),
    ]
    assert first_arrival(log, "chat.queued", mine) == 3.0
    assert first_arrival(log, "chat.queued", WAITING[3]["id"]) is None
    answer = answer_to(log, "chat.started", "b0")
    assert answer is not None and answer["data"]["id"] == mine
    assert answer_to(log, "chat.started", "b1") is None


def test_targets_pass_fail_or_are_not_run() -> None:
    assert Target("p99", 39.9, 40, "ms").verdict == "PASS"
    assert Target("p99", 40.1, 40, "ms").verdict == "FAIL"
    assert Target("p99", math.nan, 40, "ms").verdict == "FAIL"  # nothing measured
    assert Target("rate", 300, 300, "msg/s", at_least=True).verdict == "PASS"
    assert Target("rate", 200, 300, "msg/s", at_least=True).verdict == "FAIL"
    assert Target("rate", 0, 300, "msg/s", at_least=True).verdict == "FAIL"  # the ramp's first step missed
    assert Target("rate", None, 300, "msg/s", at_least=True).verdict == "not run"  # --no-ramp
    assert Target("cpu", 1.234, 2, "ms", decimals=2).row() == "| cpu | 1.23 ms | <= 2 ms | PASS |"


def test_each_scenario_takes_its_defaults_and_the_command_line_wins() -> None:
    per_agent = resolve(arguments([]), SCENARIOS["per-agent"])
    assert (per_agent.sessions, per_agent.agents, per_agent.agent_connections) == (200, 200, "agent")
    assert (per_agent.messages, per_agent.rate, per_agent.ramp) == (10_000, 100.0, [100.0, 150.0, 200.0, 300.0])
    per_chat = resolve(arguments(["--scenario", "per-chat"]), SCENARIOS["per-chat"])
    assert (per_chat.sessions, per_chat.agents, per_chat.agent_connections, per_chat.ramp) == (200, 8, "session", [])
    burst = resolve(arguments(["--scenario", "burst"]), SCENARIOS["burst"])
    assert (burst.staff, burst.chats, burst.burst_seconds, burst.settle) == (200, 100, 1.0, 5.0)

    args = arguments(["--scenario", "all", "--agents", "2", "--no-ramp", "--staff", "10", "--quick"])
    assert resolve(args, SCENARIOS["per-agent"]).agents == 2
    assert resolve(args, SCENARIOS["per-agent"]).ramp == []
    assert resolve(args, SCENARIOS["per-chat"]).agent_connections == "session"
    assert (resolve(args, SCENARIOS["per-chat"]).sessions, resolve(args, SCENARIOS["per-chat"]).messages) == (20, 400)
    assert (resolve(args, SCENARIOS["burst"]).staff, resolve(args, SCENARIOS["burst"]).chats) == (10, 10)
