"""What the audit trail adds to a ticket update (issue 19): the tickets function's `PATCH /api/support/tickets/{id}`,
in process, with the audit capture on and off, measured in one run.

    .venv/bin/python -m bench.audit [--iterations 1000] [--warmup 100]

Two databases on one embedded PostgreSQL (or DATABASE_URL), migrated alike: in `audit off` the capture's triggers
are disabled on every table (ALTER TABLE ... DISABLE TRIGGER, as the owner), in `audit on` they are as deployed. The
handler runs as the runtime role under row-level security, its connection switched between the two databases each
round (one update of each per round, each case first every other round, so that the load of a shared
machine hits them alike); each update changes the
priority and the status of a ticket of its own tenant (the same work in both).

The figure is `audit on` minus `audit off` at p50 (target: at most 1 ms), and the median of the per-round
differences. Before it prints a figure it checks what it timed: each update of `audit on` wrote exactly one entry
with the two changes, `audit off` none, and the sealer chains the entries into a chain that verifies.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any
from uuid import uuid4

from bench import handler_environment
from bench.timing import print_ab_table

TARGET_MS = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    handler_environment()

    from local.database import connected_as, database

    with (
        database("audit_on", purpose="bench", recreate=True, quiet=True) as on,
        database("audit_off", purpose="bench", recreate=True, quiet=True) as off,
        connected_as(on.app),
    ):
        passed = _run(on, off, args.iterations, args.warmup)
    if not passed:
        raise SystemExit("a check failed (FAIL above): the figures are not worth recording")


def _disable_audit(owner_url: str) -> int:
    import psycopg

    with psycopg.connect(owner_url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT tgrelid::regclass::text FROM pg_trigger WHERE tgname LIKE 'audit_capture_%'"
            )
        ]
        for table in tables:
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER audit_capture_write".encode())
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER audit_capture_update".encode())
    return len(tables)


def _run(on: Any, off: Any, iterations: int, warmup: int) -> bool:
    import psycopg

    from functions.tickets import app
    from support.db import connection
    from tests.http_events import HandlerClient

    disabled = _disable_audit(off.owner)
    links = {
        "audit off": psycopg.connect(
            off.app, autocommit=True, prepare_threshold=None, row_factory=psycopg.rows.dict_row
        ),
        "audit on": psycopg.connect(on.app, autocommit=True, prepare_threshold=None, row_factory=psycopg.rows.dict_row),
    }
    tenant = uuid4()
    api = HandlerClient(app.lambda_handler, tenant=tenant)
    path = "/api/support/tickets"
    tickets: dict[str, str] = {}
    for name, link in links.items():
        connection._connection = link  # the handler's cached connection, to this case's database
        created = api.post(path, {"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "Broken mug"})
        assert created.status == 201, created.body
        tickets[name] = created.data["id"]

    priorities = ["high", "low"]
    statuses = ["in_progress", "waiting_customer"]

    def update(name: str, n: int) -> None:
        connection._connection = links[name]
        body = {"priority": priorities[n % 2], "status": statuses[n % 2]}
        assert api.patch(f"{path}/{tickets[name]}", body).status == 200

    samples: dict[str, list[float]] = {name: [] for name in links}
    for n in range(warmup + iterations):
        for name in list(links)[:: 1 if n % 2 else -1]:  # each case first every other round
            started = time.perf_counter()
            update(name, n)
            if n >= warmup:
                samples[name].append(time.perf_counter() - started)
    connection._connection = None

    # Check what was timed: one entry per update with audit on (and its two changes), none with audit off, and a
    # chain that verifies once sealed.
    counts = {}
    for name, urls in (("audit on", on), ("audit off", off)):
        with psycopg.connect(urls.owner) as conn:
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE changes ?& array['priority', 'status'])"
                " FROM audit_entries WHERE user_id = %s AND action = 'update'",
                (tenant,),
            ).fetchone()
            counts[name] = tuple(row) if row else (0, 0)
    updates = warmup + iterations
    captured = counts["audit on"] == (updates, updates) and counts["audit off"] == (0, 0)
    print(
        f"check: audit on wrote {counts['audit on'][0]} update entries for {updates} updates (each with both "
        f"changes: {counts['audit on'][1]}), audit off {counts['audit off'][0]} ({disabled} tables) "
        f"{_verdict(captured)}"
    )
    with psycopg.connect(on.owner) as conn:
        conn.execute("SELECT audit_seal(%s)", (10_000_000,))
        verified = conn.execute(
            "SELECT checked, problem FROM audit_verify(%s, NULL, NULL, 10000000)", (tenant,)
        ).fetchone()
    whole = verified is not None and verified[1] is None and verified[0] >= updates
    print(f"check: the sealed chain of {verified[0] if verified else 0} entries verifies {_verdict(whole)}")

    trigger_ms = _trigger_times(on, tenant, tickets["audit on"], iterations)

    added, paired = print_ab_table(samples, f"{iterations} updates per case", "audit on", "audit off")
    within = added <= TARGET_MS
    print(
        f"\nadded by the audit at p50: {added:.2f} ms (median of the per-round differences {paired:.2f} ms); "
        f"target <= {TARGET_MS:.0f} ms {_verdict(within)}"
    )
    print(
        f"the capture trigger's own time per update, server side (EXPLAIN ANALYZE, {len(trigger_ms)} updates): "
        f"p50 {statistics.median(trigger_ms):.3f} ms, p95 {sorted(trigger_ms)[int(len(trigger_ms) * 0.95) - 1]:.3f} ms"
    )
    print(
        json.dumps(
            {
                "added_p50_ms": round(added, 3),
                "paired_median_ms": round(paired, 3),
                "trigger_p50_ms": round(statistics.median(trigger_ms), 3),
            }
        )
    )
    for link in links.values():
        link.close()
    return captured and whole


def _trigger_times(urls: Any, tenant: Any, ticket: str, count: int) -> list[float]:
    """What the capture trigger itself takes on the server for the same update (EXPLAIN ANALYZE's trigger time, in
    ms): the audit's CPU on the database, apart from the round trips and the scheduling of a shared machine. Each
    update rolled back, so the ticket stays as it was."""
    import psycopg

    times = []
    with psycopg.connect(urls.owner) as conn:
        for n in range(max(count // 4, 20)):
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
            plan = conn.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) UPDATE support_tickets SET priority = %s, status = %s"
                " WHERE user_id = %s AND id = %s",
                (["urgent", "medium"][n % 2], ["open", "waiting_customer"][n % 2], tenant, ticket),
            ).fetchone()
            conn.rollback()
            assert plan is not None
            triggers = plan[0][0].get("Triggers", [])
            times += [t["Time"] for t in triggers if t["Trigger Name"] == "audit_capture_update"]
    return times


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


if __name__ == "__main__":
    main()
