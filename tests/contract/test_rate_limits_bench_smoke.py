"""The rate limit bench still runs end to end and its checks pass (the counters hold across processes, a dry
connection bucket answers a wait), so it cannot rot unnoticed. Timing belongs to the bench (bench/RESULTS.md)."""

from __future__ import annotations

import re

from tests.contract.bench_runs import run_bench


def test_the_rate_limit_bench_runs_and_its_checks_pass() -> None:
    run = run_bench("bench.rate_limits", ["--iterations", "20"], timeout=180, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert re.search(r"^check: 8 processes .*: 30 admitted PASS$", run.stdout, re.M), run.stdout
    assert re.search(r"^check: a connection's \d+ quick actions: \d+ refused .* PASS$", run.stdout, re.M), run.stdout
    assert re.search(r"^\| action: admitted \| \d+\.\d\d \| \d+\.\d\d \|$", run.stdout, re.M), run.stdout
