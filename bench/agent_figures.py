"""Cost of keeping the agents' figures true, and a check that they are.

    .venv/bin/python -m bench.agent_figures

On the bench database (`make bench` seeds it): times closing one ticket of the busiest agent as the runtime
role (each in a transaction that is rolled back, so the data set stays the same), then recounts every
agent's figures with a plain aggregate as the superuser and reports how many differ from the kept ones.
"""

from __future__ import annotations

import statistics
import time

import psycopg

from local.database import database

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
        with psycopg.connect(urls.admin) as conn:
            differ = conn.execute(
                """WITH recount AS (
                    SELECT ag.id,
                           count(*) FILTER (WHERE t.status IN ('resolved', 'closed')) AS resolved,
                           round(avg(t.resolution_time) FILTER (WHERE t.status IN ('resolved', 'closed')))::int
                               AS resolution,
                           round(avg(t.first_response_time))::int AS first_response,
                           round(avg(f.agent_rating), 2) AS rating
                    FROM support_agents ag
                    LEFT JOIN support_tickets t ON t.assigned_agent_id = ag.id
                    LEFT JOIN ticket_feedback f ON f.ticket_id = t.id
                    GROUP BY ag.id)
                SELECT count(*) FILTER (WHERE (a.total_tickets_resolved, a.average_resolution_time,
                                               a.response_time_average, a.average_rating)
                                              IS DISTINCT FROM (r.resolved, r.resolution, r.first_response, r.rating)),
                       count(*)
                FROM recount r JOIN support_agents a USING (id)"""
            ).fetchone()
    assert differ is not None
    print(f"busiest agent: {tickets:,} tickets")
    print(
        f"close one of their tickets (ms, n={len(times)}): p50 {statistics.median(times):.2f}, "
        f"p95 {statistics.quantiles(times, n=20)[-1]:.2f}, max {max(times):.2f}"
    )
    print(f"agents whose figures differ from a recount: {differ[0]} of {differ[1]}")


if __name__ == "__main__":
    main()
