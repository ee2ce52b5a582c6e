"""The email outbox bench still runs end to end and its checks pass (each notification sent once, moto holding one
mail per notification), so it cannot rot unnoticed. Timing belongs to the bench (bench/RESULTS.md)."""

from __future__ import annotations

import re

from tests.contract.bench_runs import run_bench


def test_the_email_outbox_bench_runs_and_its_checks_pass() -> None:
    run = run_bench("bench.email_outbox", ["--notifications", "40"], timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert re.search(r"^check: 40 notifications, each sent once: .* PASS$", run.stdout, re.M), run.stdout
    assert re.search(r"^check: moto holds 40 mails with distinct Message-IDs PASS$", run.stdout, re.M), run.stdout
    assert re.search(r"^\| drain: 40 notifications sent through SES \(moto\) \| \d+\.\d\d \|", run.stdout, re.M)
