"""The README's archive run (its step 8, a `bash` block), run as written in one bash against `python -m local.run` on a
data folder of the test's own: a retention policy on the demo desk, `make archive` (the workflow sweep's retention step
now, on make run's database and moto S3), the archive's objects listed and one shown, and the dashboard's ticket count
the same before and after.

(test_readme_examples.py runs the `sh` blocks; this block is a `bash` one so that it runs here, with checks of its
own.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.local_run import LocalRun, make, readme_bash_step, run_bash, scratch_data_dir


@pytest.fixture
def data_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    yield from scratch_data_dir(request.node.name)


def test_the_readme_archive_run(data_dir: Path) -> None:
    script = readme_bash_step("**8. Archive what the desk no longer needs.**")
    assert "make -s archive" in script and "settings/retention" in script
    run = LocalRun(data_dir).wait_ready()
    try:
        result = run_bash(script, data_dir, run)
    finally:
        assert run.stop() == 0, run.output
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    out = result.stdout
    counts = re.findall(r"^(\d+)$", out, re.M)
    assert len(counts) == 2 and counts[0] == counts[1] and int(counts[0]) > 0, out  # totalTickets before == after
    assert re.search(r"^retention: \d+ tenant\(s\) with something due; archived \d+ ticket\(s\)", out, re.M), out
    listed = re.findall(r"^(archive/[0-9a-f-]{36}/\d{4}-\d{2}-\d{2}/tickets-\S+\.jsonl)  \d+ bytes$", out, re.M)
    assert listed, out  # archived by make archive, or by make run's sweep in the minute before it
    # the first line of the first object, pretty-printed (its first 20 lines): a ticket, its row
    assert re.search(r'^    "kind": "ticket",\n    "ticket": \{$', out, re.M), out


def test_make_archive_without_make_run_says_so(tmp_path: Path) -> None:
    answer = make(tmp_path / "pg", "-s", "archive", timeout=120)
    assert answer.returncode != 0, answer
    assert "no make run is serving" in answer.stderr and "start `make run`" in answer.stderr
