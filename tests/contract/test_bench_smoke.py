"""The benchmark still runs end to end (on a small tenant), so `make bench` cannot rot unnoticed.
It asserts that every case ran and printed figures, not the figures themselves: timing belongs to the bench."""

from __future__ import annotations

import re

from tests.contract.bench_runs import run_bench

QUICK = ["--tickets", "2000", "--iterations", "3", "--warmup", "1", "--import-runs", "1"]
CASES = [
    "list: first page",
    "filtered: status + priority",
    "search: customer email (rare)",
    "search: common subject word",
    "create",
    "dashboard: big tenant (handler)",
]


def test_the_bench_runs_on_a_small_tenant() -> None:
    run = run_bench("bench.tickets", QUICK)
    for case in CASES:
        assert re.search(rf"^\| {re.escape(case)} \|.*\| \d+\.\d\d \| \d+\.\d\d \|", run.stdout, re.M), case
    assert re.search(r"^\| functions/tickets/app.py \| \d+ \(1\) \| \d\.\d\d \|", run.stdout, re.M)
