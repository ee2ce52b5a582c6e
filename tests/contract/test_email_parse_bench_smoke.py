"""The email parse bench still runs end to end and its checks pass (each case's new text is the answer on top,
the attachment comes back byte for byte), so it cannot rot unnoticed. It asserts the bench's shape, not its
figures: timing belongs to the bench (bench/RESULTS.md)."""

from __future__ import annotations

import re

from tests.contract.bench_runs import run_bench


def test_the_email_parse_bench_checks_then_times_every_case() -> None:
    run = run_bench("bench.email_parse", ["--iterations", "5", "--warmup", "1"], timeout=120, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    for case in ("text 50 KB", "alternative 50 KB", "html only 50 KB", "text + 1 MB PDF"):
        assert f"check {case}: OK" in out, out
        assert re.search(
            rf"^\| {re.escape(case)} \| [\d,]+ \| \d+\.\d\d \| \d+\.\d\d \| \d+\.\d\d \| \d+\.\d\d \|$", out, re.M
        )
    assert re.search(r"^\| text 50 KB \| (5[01]),\d{3} \|", out, re.M), "the issue's case is a 50 KB message"
    assert re.search(
        r"^target: parse and store a 50 KB text message p50 <= 20 ms; parse \+ new_text p50 \d+\.\d\d ms", out, re.M
    )
