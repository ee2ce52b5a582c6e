"""The routing bench still runs end to end and its check passes (the ticket decision picks a skilled available agent
with the fewest open tickets), so it cannot rot unnoticed. Timing belongs to the bench (bench/RESULTS.md)."""

from __future__ import annotations

import re

from tests.contract.bench_runs import run_bench


def test_the_routing_bench_runs_and_its_check_passes() -> None:
    run = run_bench(
        "bench.routing", ["--agents", "60", "--available", "20", "--iterations", "20"], timeout=300, check=False
    )
    assert run.returncode in (0, 2), run.stdout[-3000:] + run.stderr[-3000:]  # 2: a target missed, not broken
    assert re.search(r"^check: the ticket goes to .*: PASS$", run.stdout, re.M), run.stdout
    assert re.search(r"^\| ticket \| \d+\.\d\d \| \d+\.\d\d \|", run.stdout, re.M), run.stdout
    assert re.search(r"^\| chat \| \d+\.\d\d \| \d+\.\d\d \|", run.stdout, re.M), run.stdout
