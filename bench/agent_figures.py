"""Cost of keeping the agents' figures true, and a check that they are.

    .venv/bin/python -m bench.agent_figures

On the bench database (`make bench` seeds it): times closing one ticket of the busiest agent as the runtime
role (each in a transaction that is rolled back, so the data set stays the same), then recounts the tenant's
running totals and every agent's figures with the database's recount (recount_tenant_figures, sql/0010) and
prints each difference from the kept ones.
"""

from __future__ import annotations

import statistics
import time

import psycopg

from local.database import database
from local.verify_totals import recount

RUNS = 20


def main() -> None:
    with database("bench", purpose="bench", quiet=True) as urls:
        with psycopg.connect(urls.admin) as conn:
            row = conn.execute(
                "SELECT user_id, assigned_agent_id, count(*) FROM support_tickets WHERE assigned_agent_id IS NOT NULL"
                " GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 1"
            ).fetchone()
            if row is None:
                raise SystemExit("no assigned tickets: run `make bench` first to seed the bench database")
            tenant, agent, tickets = row
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM support_tickets WHERE assigned_agent_id = %s AND status <> 'closed' LIMIT %s",
                    (agent, RUNS),
                )
            ]
        times = []
        with psycopg.connect(urls.app) as conn:
            for ticket_id in ids:
                conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
                started = time.perf_counter()
                conn.execute(
                    "UPDATE support_tickets SET status = 'closed', resolved_at = coalesce(resolved_at, now()),"
                    " resolution_time = coalesce(resolution_time, 3600) WHERE user_id = %s AND id = %s",
                    (tenant, ticket_id),
                )
                times.append((time.perf_counter() - started) * 1000)
                conn.rollback()
        # The database's own recount (sql/0010), over the whole tenant: totals and every agent's figures.
        differences = recount(urls.owner, tenant, repair=False)
    print(f"busiest agent: {tickets:,} tickets")
    print(
        f"close one of their tickets (ms, n={len(times)}): p50 {statistics.median(times):.2f}, "
        f"p95 {statistics.quantiles(times, n=20)[-1]:.2f}, max {max(times):.2f}"
    )
    print(f"figures that differ from recount_tenant_figures: {len(differences)}")
    for figure, key, stored, recounted in differences:
        print(f"  {figure} {key}: stored {stored}, recount {recounted}")


if __name__ == "__main__":
    main()
