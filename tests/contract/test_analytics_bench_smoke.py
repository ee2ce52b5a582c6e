"""The analytics benchmark still runs end to end (on a small tenant), so `make bench-analytics` cannot rot unnoticed.
It asserts that every case and measure ran and printed figures, not the figures themselves: timing is the bench's."""

from __future__ import annotations

import re

from tests.contract.bench_runs import run_bench

QUICK = ["--tickets", "2000", "--iterations", "3", "--warmup", "1", "--explain"]
CASES = [
    "rollup: one day, big tenant",
    "rollup: one day, 1x history",
    "rollup: one day, 100x history",
    "summary: 366 rolled-up days, big tenant",
    "summary: 366 days to today (today live)",
    "dashboard: big tenant (handler)",
    "dashboard: small tenant (handler)",
]
MEASURES = [
    r"backfill: 366 days, big tenant \| \d+\.\d s",
    r"rollup p50, 100x history / 1x history \(same day's activity\) \| \d+\.\d\dx",
    r"dashboard p50, big tenant / small tenant \| \d+\.\d\dx",
]


def test_the_analytics_bench_runs_on_a_small_tenant() -> None:
    run = run_bench("bench.analytics", QUICK)
    for case in CASES:
        assert re.search(rf"^\| {re.escape(case)} \| \d+ \| 3 \| \d+\.\d\d \| \d+\.\d\d \|", run.stdout, re.M), case
    for measure in MEASURES:
        assert re.search(rf"^\| {measure} \| .* \| (PASS|FAIL) \|$", run.stdout, re.M), measure
    assert "-- EXPLAIN (ANALYZE, BUFFERS): rollup statement, one big-tenant day" in run.stdout
    assert "-- EXPLAIN (ANALYZE, BUFFERS): summary statement, 366 days" in run.stdout
