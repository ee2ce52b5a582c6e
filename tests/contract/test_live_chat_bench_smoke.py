"""The live chat bench still runs end to end, every scenario small in one run (`--scenario all`: 4 chats and 40
messages with one connection per agent, then with one per chat, then a burst of 5 chats before 10 staff
connections), so it cannot rot unnoticed. It asserts that the bench's checks passed and that it printed its figures
and its targets' verdicts, not the figures' values: timing belongs to the bench (bench/RESULTS.md). The checks'
logic on synthetic events: tests/unit/test_live_chat_bench_checks.py."""

from __future__ import annotations

import re

from tests.contract.bench_runs import run_bench

# Per-agent: 2 agents, one connection each. Per-chat: the same 2 agents with a connection per chat, so each message
# to an agent reaches 2 of its connections. Burst: 10 staff connections, 5 new chats.
TINY = ["--scenario", "all", "--sessions", "4", "--agents", "2", "--messages", "40", "--rate", "20", "--warmup", "0"]
TINY += ["--no-ramp", "--staff", "10", "--chats", "5", "--settle", "2"]
MESSAGE_CHECKS = ("lost", "duplicated", "sender order", "no foreign events", "every sender answered")
BURST_CHECKS = ("every visitor answered and queued", "every chat waits", "visitor positions", "no error events")
STAFF_QUEUE = "check staff queue (newest queue.updated)"


def _section(out: str, scenario: str) -> str:
    start = out.index(f"# Scenario {scenario}:")
    end = out.find("\n# ", start + 1)
    return out[start:end]


def test_every_scenario_of_the_live_chat_bench_runs_and_checks() -> None:
    run = run_bench("bench.live_chat", TINY, timeout=180, check=False)
    out = run.stdout
    assert "# Live chat bench" in out and "scenarios: per-agent, per-chat, burst" in out, out + run.stderr[-3000:]
    for scenario, setup in (
        ("per-agent", "6 connections (2 agent, 4 visitor)"),
        ("per-chat", "8 connections (4 agent, 4 visitor)"),
    ):
        section = _section(out, scenario)
        assert f"set-up: {setup}" in section, section
        assert re.search(
            r"40 messages, \d+ expected deliveries, 40 reached their chat.s designated connection", section
        )
        for name in MESSAGE_CHECKS:
            assert f"check {name}: OK" in section, (scenario, name)
        assert re.search(
            r"^\| send-to-delivery p50 \(other side\) \| \d+\.\d ms \| <= \d+ ms \| (PASS|FAIL) \|", section, re.M
        )
        assert re.search(
            r"^\| send-to-delivery p99 \(other side\) \| \d+\.\d ms \| <= \d+ ms \| (PASS|FAIL) \|", section, re.M
        )
        assert re.search(r"^connect .*: p50 \d+\.\d ms", section, re.M)
    assert re.search(
        r"^\| worker CPU per message \(main phase\) \| \d+\.\d\d ms \| <= 2 ms \| (PASS|FAIL) \|",
        _section(out, "per-agent"),
        re.M,
    )
    assert re.search(
        r"^\| per-agent \| highest offered rate with p99 <= 100 ms \| - \| >= 300 msg/s \| not run \|", out, re.M
    )

    burst = _section(out, "burst")
    assert "set-up: 10 staff and 5 visitor connections" in burst, burst
    assert re.search(r"^\| startChat to its chat.queued p99 \| \d+\.\d ms \| <= 100 ms \| (PASS|FAIL) \|", burst, re.M)
    for name in BURST_CHECKS:
        assert f"check {name}: OK" in burst, name
    assert "the desk's queue over HTTP: 5 waiting" in burst
    got = re.search(r"^queue.updated events per staff connection: min (\d+), median \d+, max (\d+)$", burst, re.M)
    assert got, burst
    # The stack announces the queue to staff as queue.updated: every staff connection ends with the right one
    assert int(got[1]) > 0, burst
    assert f"{STAFF_QUEUE}: OK" in burst, burst
    assert "checks: PASS" in out
    assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]


def test_the_live_chat_bench_opens_more_visitors_than_one_address_may() -> None:
    """More visitors than the desk's per-address limits admit from one address (30 widget sessions at once): the
    bench spreads its visitors over loopback addresses, as a shop's visitors come from many."""
    run = run_bench(
        "bench.live_chat",
        ["--sessions", "40", "--agents", "4", "--messages", "40", "--rate", "20", "--warmup", "0", "--no-ramp"],
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "set-up: 44 connections (4 agent, 40 visitor)" in run.stdout
    assert "checks: PASS" in run.stdout
