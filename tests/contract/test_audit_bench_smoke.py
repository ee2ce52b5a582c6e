"""The audit bench still runs end to end and its checks pass (one entry per audited update, none with the capture
disabled, a chain that verifies), so it cannot rot unnoticed. Timing belongs to the bench (bench/RESULTS.md)."""

from __future__ import annotations

import re

from tests.contract.bench_runs import run_bench


def test_the_audit_bench_runs_and_its_checks_pass() -> None:
    run = run_bench("bench.audit", ["--iterations", "5", "--warmup", "2"], timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert re.search(r"^check: audit on wrote 7 update entries for 7 updates .* PASS$", run.stdout, re.M), run.stdout
    assert re.search(r"^check: the sealed chain of \d+ entries verifies PASS$", run.stdout, re.M), run.stdout
    assert re.search(r"^the capture trigger's own time per update, server side .*: p50 \d+\.\d+ ms", run.stdout, re.M)
    for case in ("audit off", "audit on"):
        assert re.search(rf"^\| {case} \| \d+\.\d\d \| \d+\.\d\d \|$", run.stdout, re.M), run.stdout
