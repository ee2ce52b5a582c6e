"""What a rate limit check costs (issue 15): the token buckets of support.services.rate_limits, measured alone.

    .venv/bin/python -m bench.rate_limits [--iterations 2000]

On an embedded PostgreSQL (or DATABASE_URL), as the runtime role under row-level security, one call at a time:

* `floor`: a transaction of one `SELECT 1`, as tenant_transaction runs it (four round trips) and as
  support.db.write_one does (one pipeline, one round trip): what any check in a transaction of its own costs at
  least;
* `action`: a WebSocket action's check (connections.check_action: the UPDATE of the connection's bucket and the
  widget key's read), admitted, and refused (a dry bucket: the same statement, nothing updated);
* `session`: the widget session route's check (two buckets, per address and per key, one statement through
  write_one), over 1,000 addresses;
* `connect`: the statement $connect adds inside the authorizer's existing transaction (measured inside an open
  transaction: the statement alone).

Before timing it checks what it times: a bucket of 30 admits exactly 30 of 80 takes from 8 processes at once
(the counters hold across execution environments), and a connection's bucket answers `retryAfter` once dry.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from uuid import UUID, uuid4

BIG = 10**9  # a bucket that never runs dry: the admitted path every time


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in samples)
    return statistics.median(ms), ms[int(len(ms) * 0.95) - 1]


def _time(call: Callable[[int], object], iterations: int) -> tuple[float, float]:
    for n in range(min(200, iterations)):  # warm up: plans, the connection, the pages
        call(n)
    samples = []
    for n in range(iterations):
        started = time.perf_counter()
        call(n)
        samples.append(time.perf_counter() - started)
    return _percentiles(samples)


def _take_ten(tenant: str) -> list[int | None]:
    """In a process of its own (an execution environment): ten takes from the shared bucket of 30."""
    from support.services.rate_limits import Bucket, take_tokens_alone

    checks = [(Bucket("session-ip", burst=30, per_second=0.001), "203.0.113.1")]
    return [take_tokens_alone(UUID(tenant), checks) for _ in range(10)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rate_limits", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "support")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SupportDesk")

    from local.database import connected_as, database

    with database("rate_limits", purpose="bench", recreate=True, quiet=True) as urls, connected_as(urls.app):
        passed = _run(args.iterations)
    if not passed:
        raise SystemExit("a check failed (FAIL above): the figures are not worth recording")


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def _address(n: int) -> str:
    return f"198.18.{n % 1000 // 256}.{n % 256}"


def _run(iterations: int) -> bool:
    """Run the checks, then time each case; whether every check passed."""
    from support.auth import Principal, Role
    from support.db import tenant_transaction, write_one
    from support.models.widgets import WidgetCreate
    from support.services import connections
    from support.services.rate_limits import ACTIONS_PER_CONNECTION, Bucket, take_tokens, take_tokens_alone
    from support.services.widgets import create_widget

    tenant = uuid4()
    # A live widget key: a visitor's connection is recorded (and its bucket kept) only for a key that admits it
    admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="bench-admin")
    key = create_widget(admin, WidgetCreate(name="Bench", allowed_origins=["https://shop.example"])).widget_key
    visitor = Principal(tenant_id=tenant, role=Role.VISITOR, subject="v", visitor_id="v-1", widget_key=key)

    # Checks first: the counters hold across processes, and a dry connection bucket answers a wait.
    with ProcessPoolExecutor(8, mp_context=multiprocessing.get_context("spawn")) as pool:  # fresh environments
        answers = [a for part in pool.map(_take_ten, [str(tenant)] * 8) for a in part]
    admitted = answers.count(None)
    shared = admitted == 30
    print(f"check: 8 processes x 10 takes at once from a bucket of 30: {admitted} admitted {_verdict(shared)}")
    connections.open_connection(visitor, "bench-dry")
    quick = ACTIONS_PER_CONNECTION.burst + 5
    waits = [connections.check_action(visitor, "bench-dry").retry_after for _ in range(quick)]
    dry = [w for w in waits if w is not None]
    waited = len(dry) >= 5 and set(dry) == {1}
    refused = f"{len(dry)} refused with retryAfter {set(dry)}"
    print(f"check: a connection's {quick} quick actions: {refused} {_verdict(waited)}")

    def in_transaction(n: int) -> None:
        with tenant_transaction(tenant) as cur:
            cur.execute("SELECT 1")
            cur.fetchone()

    connections.open_connection(visitor, "bench-open")
    rows: list[tuple[str, float, float]] = [
        ("floor: SELECT 1 in tenant_transaction", *_time(in_transaction, iterations)),
        ("floor: SELECT 1 through write_one", *_time(lambda n: write_one(tenant, "SELECT 1", ()), iterations)),
    ]
    connections.ACTIONS_PER_CONNECTION = Bucket("connection", burst=BIG, per_second=BIG)
    admitted_action = _time(lambda n: connections.check_action(visitor, "bench-open"), iterations)
    rows.append(("action: admitted", *admitted_action))
    connections.ACTIONS_PER_CONNECTION = ACTIONS_PER_CONNECTION
    refused_action = _time(lambda n: connections.check_action(visitor, "bench-dry"), iterations)
    rows.append(("action: refused", *refused_action))
    per_ip, per_key = Bucket("session-ip", BIG, BIG), Bucket("session-key", BIG, BIG)
    session = _time(lambda n: take_tokens_alone(tenant, [(per_ip, _address(n)), (per_key, "wk_bench")]), iterations)
    rows.append(("session: two buckets, 1,000 addresses", *session))
    connect_ip, connect_key = Bucket("connect-ip", BIG, BIG), Bucket("connect-key", BIG, BIG)
    samples = []
    for n in range(iterations + 200):
        with tenant_transaction(tenant) as cur:
            started = time.perf_counter()
            take_tokens(cur, tenant, [(connect_ip, _address(n)), (connect_key, "wk_bench")])
            if n >= 200:
                samples.append(time.perf_counter() - started)
    rows.append(("connect: the statement added to $connect's transaction", *_percentiles(samples)))

    load = os.getloadavg()[0]
    print(f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {iterations} calls per case, load average {load:.2f}")
    print("| case | p50 ms | p95 ms |\n|---|---:|---:|")
    for name, p50, p95 in rows:
        print(f"| {name} | {p50:.2f} | {p95:.2f} |")
    return shared and waited


if __name__ == "__main__":
    main()
