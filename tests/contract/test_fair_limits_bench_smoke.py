"""The fair limits bench still runs end to end and its checks pass (a budget holds across 8 processes through the
real handler, B is never refused, A's flood gets no more than its budget), so it cannot rot unnoticed. Timing
belongs to the bench (bench/RESULTS.md)."""

from __future__ import annotations

import re

from tests.contract.bench_runs import run_bench


def test_the_fair_limits_bench_runs_and_its_checks_pass() -> None:
    run = run_bench("bench.fair_limits", ["--iterations", "20", "--seconds", "2"], timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert re.search(r"^check: 8 processes .*: 30 admitted, 50 refused PASS$", run.stdout, re.M), run.stdout
    assert re.search(r"^check: B never refused; A's flood admitted \d+ of \d+ .* PASS$", run.stdout, re.M), run.stdout
    assert re.search(r"^\| check alone .* \| \d+\.\d\d \| \d+\.\d\d \|$", run.stdout, re.M), run.stdout
    for phase in ("quiet", "flood", "unlimited"):
        assert re.search(rf"^\| {phase} \|( [\d.]+ \|){{7}}$", run.stdout, re.M), run.stdout
