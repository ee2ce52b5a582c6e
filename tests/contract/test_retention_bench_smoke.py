"""The retention bench still runs end to end and its checks pass (every closed ticket archived with its thread and
deleted, the open ones kept, every figure unchanged and the recount clean), so it cannot rot unnoticed. Timing belongs
to the bench (bench/RESULTS.md)."""

from __future__ import annotations

import re

from tests.contract.bench_runs import run_bench


def test_the_retention_bench_runs_and_its_checks_pass() -> None:
    run = run_bench("bench.retention", ["--tickets", "3000"], timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert len(re.findall(r"^check: .* PASS$", run.stdout, re.M)) == 3, run.stdout
    assert re.search(r"^\| 3,000 \| \d+ \| \d+ \| [\d,]+ \| \d+\.\d \| 60 \|$", run.stdout, re.M), run.stdout
