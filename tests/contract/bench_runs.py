"""One benchmark module run as `make bench*` runs it, in a subprocess on the tests' database (DATABASE_URL only
when the tests were given one): the bench smoke tests' shared runner."""

from __future__ import annotations

import os
import subprocess
import sys

from local.template import REPO
from tests.conftest import GIVEN_DATABASE_URL

# What tests/conftest.py sets for the tests' own process: a developer's shell running `make bench` on a fresh clone
# has none of them, so neither has the bench here (a bench that needs one must provide it, as `make run` does).
TEST_ONLY_VARIABLES = frozenset(
    {"DATABASE_URL", "VISITOR_TOKEN_SECRET", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}
)


def bench_environment() -> dict[str, str]:
    """This process's environment without the tests' own variables (and the tests' DATABASE_URL, if given)."""
    return {k: v for k, v in os.environ.items() if k not in TEST_ONLY_VARIABLES} | (
        {"DATABASE_URL": GIVEN_DATABASE_URL} if GIVEN_DATABASE_URL else {}
    )


def run_bench(
    module: str, args: list[str], *, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=bench_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def run_make(target: str, *, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`make -s <target>` as the docs give it to a developer, in the same environment as run_bench."""
    return subprocess.run(
        ["make", "-s", target],
        cwd=REPO,
        env=bench_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
