"""The live chat bench still runs end to end (4 chats, 40 messages, no ramp), so it cannot rot unnoticed.
It asserts that the bench exited 0 and printed its checks and figures, not the figures' values: timing
belongs to the bench (bench/RESULTS.md)."""

from __future__ import annotations

import re

from tests.contract.bench_runs import run_bench

TINY = ["--sessions", "4", "--agents", "2", "--agent-connections", "session", "--messages", "40", "--rate", "20"]
TINY += ["--warmup", "0", "--no-ramp"]  # 2 agents with a connection per chat: each message reaches 2 agent connections


def test_the_live_chat_bench_runs_and_checks_its_messages() -> None:
    run = run_bench("bench.live_chat", TINY, timeout=120, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert "set-up: 8 connections (4 agent, 4 visitor)" in out
    assert re.search(r"40 messages, \d+ expected deliveries, 40 reached their chat.s designated connection", out), out
    for name in ("lost", "duplicated", "sender order", "no foreign events", "every sender answered"):
        assert f"check {name}: OK" in out, name
    assert re.search(r"^\| send-to-delivery p50 \(other side\) \| \d+\.\d ms \|", out, re.M)
    assert re.search(r"^\| send-to-delivery p99 \(other side\) \| \d+\.\d ms \|", out, re.M)
    assert re.search(r"^connect .*: p50 \d+\.\d ms", out, re.M)
    assert "checks: PASS" in out


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
