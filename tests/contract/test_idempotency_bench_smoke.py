"""The idempotency bench still runs end to end and its check passes (a retry answers the first body and creates
nothing), so it cannot rot unnoticed. Timing belongs to the bench (bench/RESULTS.md)."""

from __future__ import annotations

import re

from tests.contract.bench_runs import run_bench


def test_the_idempotency_bench_runs_and_its_check_passes() -> None:
    run = run_bench("bench.idempotency", ["--iterations", "5", "--warmup", "2"], timeout=180, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert re.search(r"^check: a retry answers the first 201 and body, the tenant has 1 ticket PASS$", run.stdout, re.M)
    for case in ("plain", "keyed", "replay", "key alone"):
        assert re.search(rf"^\| {case} \| \d+\.\d\d \| \d+\.\d\d \|$", run.stdout, re.M), run.stdout
