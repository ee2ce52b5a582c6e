"""Archiving closed tickets (issue 19: 100,000 closed tickets archived in at most 60 s).

    .venv/bin/python -m bench.retention [--tickets 100000] [--check]

On an embedded PostgreSQL (or DATABASE_URL), one tenant is seeded with SQL as the owner (INSERT ... SELECT
generate_series, the figure triggers running as for any write): `--tickets` tickets closed 400 days ago, each with two
conversation entries and one in three with feedback, assigned to 10 agents, and 1,000 open ones, with a retention
policy `archive` after 30 days. S3 is moto in server mode in a process of its own (as `make run` serves it; its own
interpreter, so its request handling does not share the job's). Then the workflow sweep's step runs as in AWS:
`support.services.retention.run(now)` as the runtime role, with its per-run budget (ROWS_PER_RUN rows or
SECONDS_PER_RUN seconds), again and again until nothing is due, as the every-minute schedule would; the figure is the
sum of the runs' times (the minutes between them left out).

Before it prints a figure it checks what it timed: every closed ticket is gone and every open one stays, the archive
holds one line per closed ticket (each with its two conversation entries), and the running totals, the day totals and
the agents' figures are what they were, with `recount_tenant_figures` / `recount_tenant_day_totals` finding no
difference (the tombstones count what was deleted).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from bench import handler_environment

TARGET_SECONDS = 60.0
BUCKET = "desk-archive-bench"
OPEN_TICKETS = 1_000
AGENTS = 10


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.retention", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=100_000, help="closed tickets to archive")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args()
    handler_environment(POWERTOOLS_LOG_LEVEL="WARNING")

    from local import s3 as local_s3
    from local import ses as local_ses
    from local.database import connected_as, database

    moto = local_ses.start_process()
    try:
        os.environ["AWS_ENDPOINT_URL_S3"] = moto.endpoint
        os.environ["ARCHIVE_BUCKET"] = BUCKET
        for name, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
            os.environ.setdefault(name, value)
        os.environ.setdefault("AWS_DEFAULT_REGION", local_ses.REGION)
        s3 = local_s3.client(moto.endpoint)
        s3.create_bucket(Bucket=BUCKET)
        with database("retention", purpose="bench", recreate=True, quiet=True) as urls:
            tenant = uuid4()
            started = time.perf_counter()
            _seed(urls.owner, tenant, args.tickets)
            seeded = time.perf_counter() - started
            print(f"seeded {args.tickets:,} closed and {OPEN_TICKETS:,} open tickets in {seeded:.1f} s")
            before = _figures(urls.owner, tenant)
            with connected_as(urls.app):
                runs, seconds, rows, objects = _archive()
            passed = _check(urls.owner, tenant, args.tickets, before, s3)
    finally:
        moto.stop()

    print()
    print("| closed tickets | sweep runs | archive objects | rows/s | total s | target s |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {rows:,} | {runs} | {objects} | {rows / seconds:,.0f} | {seconds:.1f} | {TARGET_SECONDS:.0f} |")
    if not passed:
        raise SystemExit(2)  # a broken bench, not a slow one
    if args.check and seconds > TARGET_SECONDS:
        raise SystemExit(1)


def _seed(owner_url: str, tenant: UUID, tickets: int) -> None:
    import psycopg
    from psycopg.types.json import Jsonb

    with psycopg.connect(owner_url) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
        agents = [
            row[0]
            for row in conn.execute(
                """INSERT INTO support_agents (user_id, agent_name, agent_email)
                SELECT %s, 'Agent ' || n, 'agent' || n || '@bench.example' FROM generate_series(1, %s) n
                RETURNING id""",
                (tenant, AGENTS),
            )
        ]
        for lo in range(0, tickets + OPEN_TICKETS, 50_000):
            hi = min(lo + 50_000, tickets + OPEN_TICKETS)
            conn.execute(
                """INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, description, category,
                       priority, status, assigned_agent_id, created_at, resolved_at, resolution_time,
                       first_response_time)
                SELECT %(tenant)s, 'Customer ' || n, 'customer' || n || '@example.com', 'Order ' || n || ' late',
                       'Where is order ' || n || '? It was due last week.',
                       (ARRAY['billing', 'shipping', 'returns'])[n %% 3 + 1],
                       (ARRAY['low', 'medium', 'high', 'urgent'])[n %% 4 + 1],
                       CASE WHEN n >= %(closed)s THEN 'open' WHEN n %% 2 = 0 THEN 'closed' ELSE 'resolved' END,
                       (%(agents)s::uuid[])[n %% %(agent_count)s + 1],
                       now() - interval '401 days' + n * interval '1 second',
                       CASE WHEN n < %(closed)s THEN now() - interval '400 days' + n * interval '1 second' END,
                       CASE WHEN n < %(closed)s THEN 86400 END,
                       600 + n %% 3600
                FROM generate_series(%(lo)s, %(hi)s - 1) n""",
                {"tenant": tenant, "closed": tickets, "agents": agents, "agent_count": AGENTS, "lo": lo, "hi": hi},
            )
        conn.execute(
            """INSERT INTO ticket_conversations (user_id, ticket_id, sender_type, sender_name, message, created_at)
            SELECT t.user_id, t.id, s.sender_type, s.sender_name, s.message, t.created_at + s.after
            FROM support_tickets t
            CROSS JOIN (VALUES ('customer', 'Customer', 'Any news on my order?', interval '5 minutes'),
                               ('agent', 'Agent', 'It ships today, sorry for the wait.', interval '10 minutes'))
                AS s (sender_type, sender_name, message, after)
            WHERE t.user_id = %s""",
            (tenant,),
        )
        conn.execute(
            """INSERT INTO ticket_feedback (user_id, ticket_id, rating, agent_rating, feedback, created_at)
            SELECT t.user_id, t.id, 1 + (t.reference %% 5), 1 + (t.reference %% 4), 'Thanks',
                   t.resolved_at + interval '1 hour'
            FROM support_tickets t
            WHERE t.user_id = %s AND t.resolved_at IS NOT NULL AND t.reference %% 3 = 0""",
            (tenant,),
        )
        policy = {
            "tickets": {"mode": "archive", "days": 30},
            "chats": {"mode": "keep", "days": None},
            "audit_days": None,
        }
        conn.execute(
            "INSERT INTO tenant_settings (user_id, area, settings) VALUES (%s, 'retention', %s)",
            (tenant, Jsonb(policy)),
        )
        conn.execute("ANALYZE support_tickets, ticket_conversations, ticket_feedback")


def _figures(owner_url: str, tenant: UUID) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(owner_url) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
        read = {
            "ticket_totals": "SELECT * FROM ticket_totals WHERE user_id = %s ORDER BY 2, 3, 4, 5",
            "feedback_totals": "SELECT * FROM feedback_totals WHERE user_id = %s",
            "ticket_day_totals": "SELECT * FROM ticket_day_totals WHERE user_id = %s ORDER BY day",
            "feedback_day_totals": "SELECT * FROM feedback_day_totals WHERE user_id = %s ORDER BY day",
            "ticket_sla_totals": "SELECT * FROM ticket_sla_totals WHERE user_id = %s ORDER BY priority",
            "agents": """SELECT id, total_tickets_resolved, resolution_seconds, resolution_count,
                first_response_seconds, first_response_count, rating_sum, rating_count, average_resolution_time,
                response_time_average, average_rating FROM support_agents WHERE user_id = %s ORDER BY id""",
        }
        return {name: conn.execute(sql.encode(), (tenant,)).fetchall() for name, sql in read.items()}


def _archive() -> tuple[int, float, int, int]:
    """The step's runs until nothing is due: (runs, seconds, rows deleted, objects written)."""
    from support.services import retention

    now = datetime.now(UTC)
    runs, seconds, rows, objects = 0, 0.0, 0, 0
    while True:
        started = time.perf_counter()
        report = retention.run(now)
        seconds += time.perf_counter() - started
        if report.failed:
            raise SystemExit(f"the retention run failed: {report.failed}")
        if not report.rows:
            return runs, seconds, rows, objects
        runs += 1
        rows += report.rows
        objects += len(report.objects)
        phases = ", ".join(f"{name} {spent:.1f} s" for name, spent in report.seconds.items())
        print(
            f"run {runs}: {report.rows:,} tickets, {len(report.objects)} objects, "
            f"{time.perf_counter() - started:.1f} s ({phases})"
        )


def _check(owner_url: str, tenant: UUID, tickets: int, before: dict[str, Any], s3: Any) -> bool:
    import psycopg

    with psycopg.connect(owner_url) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
        left = conn.execute(
            "SELECT count(*) FILTER (WHERE status IN ('resolved', 'closed')), count(*) FROM support_tickets"
            " WHERE user_id = %s",
            (tenant,),
        ).fetchone()
        differences = conn.execute(  # nothing writes now: one READ COMMITTED report is the whole truth
            "SELECT count(*) FROM (SELECT * FROM recount_tenant_day_totals(%s)"
            " UNION ALL SELECT * FROM recount_tenant_figures(%s)) d",
            (tenant, tenant),
        ).fetchone()
    assert left is not None
    assert differences is not None
    gone = left == (0, OPEN_TICKETS)
    print(f"check: {tickets:,} closed tickets gone, {OPEN_TICKETS:,} open ones left: {left[1]:,} left {_verdict(gone)}")

    lines = threads = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"archive/{tenant}/"):
        for item in page.get("Contents", []):
            for raw in s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read().splitlines():
                line = json.loads(raw)
                lines += 1
                threads += len(line["conversations"]) == 2
    archived = lines == threads == tickets
    print(f"check: the archive holds {lines:,} tickets, {threads:,} with their thread {_verdict(archived)}")

    same = _figures(owner_url, tenant) == before and differences[0] == 0
    print(
        f"check: the totals, day totals, SLA totals and agents' figures unchanged, {differences[0]} recount "
        f"differences {_verdict(same)}"
    )
    return gone and archived and same


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


if __name__ == "__main__":
    main()
