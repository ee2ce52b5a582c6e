"""Timing cases for the benchmarks: warm up, then time calls one by one, cycling through varied inputs."""

from __future__ import annotations

import gc
import itertools
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from psycopg import sql


def p95(values: list[float]) -> float:
    """The 95th percentile of `values` (inclusive method: within the values); the value itself when it is alone."""
    return statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 1 else values[0]


def median_and_p95_ms(samples: list[float]) -> tuple[float, float]:
    """The median and the 95th percentile of `samples` (seconds), in milliseconds, as the A/B benches (bench.audit,
    bench.idempotency) report them: this percentile is the sample of rank floor(0.95 n), never interpolated (unlike
    p95 above)."""
    ms = sorted(s * 1000 for s in samples)
    return statistics.median(ms), ms[max(0, int(len(ms) * 0.95) - 1)]


def print_ab_table(samples: dict[str, list[float]], run: str, with_case: str, without_case: str) -> tuple[float, float]:
    """An A/B bench's report (bench.audit, bench.idempotency): a line of when, `run` (what was timed) and the load
    average, then each case's p50 and p95 (median_and_p95_ms) as a markdown table. Answers what `with_case` adds to
    `without_case`, in ms: the difference of their p50s, and the median of the per-round differences."""
    load = os.getloadavg()[0]
    print(f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {run}, load average {load:.2f}")
    print("| case | p50 ms | p95 ms |\n|---|---:|---:|")
    for name, values in samples.items():
        p50, p95 = median_and_p95_ms(values)
        print(f"| {name} | {p50:.2f} | {p95:.2f} |")
    added = median_and_p95_ms(samples[with_case])[0] - median_and_p95_ms(samples[without_case])[0]
    paired = statistics.median((a - b) * 1000 for a, b in zip(samples[with_case], samples[without_case], strict=True))
    return added, paired


@dataclass
class Case:
    name: str
    target_ms: float | None
    inputs: list[tuple[str, Any]]  # (label, input), cycled
    matches: str = ""  # how many rows the inputs select, for the reader
    iterations: int | None = None  # timed calls for this case, when not the run's --iterations
    warmup: int | None = None  # untimed calls first, when not the run's --warmup
    samples: list[float] = field(default_factory=list)
    by_input: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    error: str = ""  # the call raised (a statement timeout, say): the case stopped there

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples) * 1000 if self.samples else float("nan")

    @property
    def p95_ms(self) -> float:
        return p95(self.samples) * 1000 if self.samples else float("nan")

    @property
    def verdict(self) -> str:
        if self.error:
            return "FAIL (error)"
        if self.target_ms is None:
            return ""
        return "PASS" if self.median_ms <= self.target_ms else "FAIL"

    def slowest_input(self) -> str:
        if len(self.by_input) < 2:
            return ""
        label, times = max(self.by_input.items(), key=lambda item: statistics.median(item[1]))
        return f"{label} ({statistics.median(times) * 1000:.1f})"


def run_case(case: Case, call: Callable[[Any], Any], *, iterations: int, warmup: int, budget: float) -> Case:
    """Warm up, then time `iterations` calls (stopping early past `budget` seconds), cycling the inputs. The case's
    own `iterations` and `warmup`, when set, win."""
    return run_alternating([case], call, iterations=iterations, warmup=warmup, budget=budget)[0]


def run_alternating(
    cases: list[Case], call: Callable[[Any], Any], *, iterations: int, warmup: int, budget: float
) -> list[Case]:
    """Cases timed in turn, one call of each, so that the load of a shared machine hits them alike (one service on a
    big and a small tenant, whose ratio is the figure); otherwise as run_case, with the first case's own
    `iterations` and `warmup` if set. A call that raises stops them all (the error is its case's)."""
    iterations = cases[0].iterations if cases[0].iterations is not None else iterations
    warmup = cases[0].warmup if cases[0].warmup is not None else warmup
    sources = [itertools.cycle(case.inputs) for case in cases]
    for case in cases:
        case.iterations = iterations
    current = cases[0]
    try:
        deadline = time.perf_counter() + budget / 4
        for _ in range(warmup):
            for case, source in zip(cases, sources, strict=True):
                current = case
                call(next(source)[1])
            if time.perf_counter() > deadline:
                break
        gc.collect()
        deadline = time.perf_counter() + budget * len(cases)
        for _ in range(iterations):
            for case, source in zip(cases, sources, strict=True):
                current = case
                label, value = next(source)
                started = time.perf_counter()
                call(value)
                elapsed = time.perf_counter() - started
                case.samples.append(elapsed)
                case.by_input[label].append(elapsed)
            if time.perf_counter() > deadline:
                break
    except Exception as exc:  # reported in the table; the other cases still run
        current.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        print(f"bench: {current.name} stopped: {current.error}", flush=True)
    return cases


@contextmanager
def explaining(
    module: Any, plans: list[tuple[str, list[str]]], label: str, tables: tuple[str, ...] | None = ("support_tickets",)
) -> Iterator[None]:
    """Run the service with its SELECTs (those naming one of `tables`; every one with None) also EXPLAINed:
    the exact statement and parameters it sends, in its own transaction."""
    original = module.tenant_transaction

    class ExplainingCursor:
        def __init__(self, cur: Any) -> None:
            self._cur = cur

        def execute(self, query: Any, params: Any = None) -> Any:
            if isinstance(query, bytes):
                query = query.decode()
            text = query.as_string(self._cur) if hasattr(query, "as_string") else str(query)
            named = tables is None or any(table in text for table in tables)
            if text.lstrip().upper().startswith("SELECT") and named:
                prefix = "EXPLAIN (ANALYZE, BUFFERS) "
                explain = sql.SQL(prefix) + query if hasattr(query, "as_string") else prefix + query
                self._cur.execute(explain, params)
                plans.append((label, [row["QUERY PLAN"] for row in self._cur.fetchall()]))
            return self._cur.execute(query, params)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._cur, name)

    @contextmanager
    def explaining_transaction(tenant_id: UUID) -> Iterator[Any]:
        with original(tenant_id) as cur:
            yield ExplainingCursor(cur)

    # A snapshot read (read_snapshot, the dashboard's) is explained statement by statement the same way.
    original_snapshot = getattr(module, "read_snapshot", None)

    def explaining_snapshot(tenant_id: UUID, read: Callable[[Any], Any]) -> Any:
        assert original_snapshot is not None
        return original_snapshot(tenant_id, lambda cur: read(ExplainingCursor(cur)))

    module.tenant_transaction = explaining_transaction
    if original_snapshot is not None:
        module.read_snapshot = explaining_snapshot
    try:
        yield
    finally:
        module.tenant_transaction = original
        if original_snapshot is not None:
            module.read_snapshot = original_snapshot
