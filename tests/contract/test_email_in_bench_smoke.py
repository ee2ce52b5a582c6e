"""The email-in bench still runs end to end and its checks pass (every call created or threaded as it should, one
inbound row per call, each ticket's text the answer on top), so it cannot rot unnoticed. It asserts the bench's
shape, not its figures: timing belongs to the bench (bench/RESULTS.md)."""

from __future__ import annotations

import re

from tests.contract.bench_runs import run_bench


def test_the_email_in_bench_checks_then_times_every_case() -> None:
    run = run_bench("bench.email_in", ["--iterations", "3", "--warmup", "1"], timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    for case in ("parse + store, new ticket", "parse + store, reply threaded", "whole function, new ticket"):
        assert f"check {case}: OK" in out, out
        assert re.search(rf"^\| {re.escape(case)} \| \d+\.\d\d \| \d+\.\d\d \| \d+\.\d\d \|$", out, re.M), out
    assert re.search(r", (5[01]),\d{3} bytes, ", out), "the issue's case is a 50 KB message"
    assert re.search(r"^target: parse and store a 50 KB text message p50 <= 20 ms; p50 \d+\.\d\d ms", out, re.M)
