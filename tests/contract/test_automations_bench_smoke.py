"""The automation rules bench still runs end to end and its check passes (the evaluation chooses the rules a plain
re-implementation chooses, for every event), so it cannot rot unnoticed. Timing belongs to the bench
(bench/RESULTS.md)."""

from __future__ import annotations

import re

from tests.contract.bench_runs import run_bench


def test_the_automations_bench_runs_and_its_check_passes() -> None:
    run = run_bench("bench.automations", ["--iterations", "50", "--runs", "5"], timeout=300, check=False)
    assert run.returncode in (0, 2), run.stdout[-3000:] + run.stderr[-3000:]  # 2: a target missed, not broken
    assert re.search(r"^check: the evaluation chooses .* for every event: PASS$", run.stdout, re.M), run.stdout
    assert re.search(r"^\| evaluate 100 rules on one event \| \d+\.\d+ \| \d+\.\d+ \|", run.stdout, re.M), run.stdout
