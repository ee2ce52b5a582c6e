"""The post cost bench still runs end to end (a few posts per path), so it cannot rot unnoticed. It asserts that
the bench exited 0, timed both paths and checked that every post arrived, not the figures' values: timing belongs
to the bench (bench/RESULTS.md)."""

from __future__ import annotations

import re

from tests.contract.bench_runs import run_bench


def test_the_post_cost_bench_times_boto3_and_realtime_side_by_side() -> None:
    run = run_bench("bench.post_cost", ["--posts", "20", "--rounds", "2"], timeout=120, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    for path in ("boto3", "realtime"):
        assert re.search(rf"^{path} +x20: \d+\.\d+ ms CPU of the posting thread per post, wall p50 ", out, re.M), out
    assert re.search(r"^ratio boto3 / realtime: \d+\.\dx the CPU per post; realtime \d+\.\d+ ms against", out, re.M)
    assert "check delivered: OK (140 of 140 posts received)" in out
