"""The webhook fan-out bench still runs end to end and its checks pass (every delivery delivered once on its first
attempt, one POST per delivery id, every signature verified), so it cannot rot unnoticed. Timing belongs to the
bench (bench/RESULTS.md)."""

from __future__ import annotations

import re

from tests.contract.bench_runs import run_bench


def test_the_webhook_bench_runs_and_its_checks_pass() -> None:
    arguments = ["--events", "20", "--endpoints", "3", "--workers", "2"]
    run = run_bench("bench.webhooks", arguments, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert re.search(r"^check: 60 of 60 delivered, each on its first attempt \(60\) PASS$", run.stdout, re.M)
    assert re.search(r"^check: the receiver got 60 POSTs for 60 delivery ids PASS$", run.stdout, re.M), run.stdout
    assert re.search(r"^check: 0 signatures did not verify PASS$", run.stdout, re.M), run.stdout
    assert re.search(r"^\| fan-out: 20 events x 3 endpoints delivered \(2 workers\) \| \d+\.\d\d \|", run.stdout, re.M)
