"""The privacy bench still runs end to end and its checks pass (the erasure is done, the recount agrees, the figures
are unchanged, no column holds the customer), so it cannot rot unnoticed. Timing belongs to the bench
(bench/RESULTS.md)."""

from __future__ import annotations

import re

from tests.contract.bench_runs import run_bench


def test_the_privacy_bench_runs_and_its_checks_pass() -> None:
    args = ["--tickets", "20", "--entries-per-ticket", "3", "--chats", "2", "--chat-messages", "5"]
    run = run_bench("bench.privacy", args, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert len(re.findall(r"^check: .* PASS$", run.stdout, re.M)) == 4, run.stdout
    assert re.search(r"^\| 20 tickets, 70 messages \| \d+ \| \d+ \| \d+\.\d\d \| ≤ 5 \| PASS \|$", run.stdout, re.M)
