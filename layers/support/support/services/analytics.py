"""The daily analytics rollup: one support_analytics row per tenant and UTC day, written by the analytics job
(functions/analytics) as the role support_analytics_job (sql/0012), never by the API.

What each figure of a day D (a UTC day) counts, and why:

* total_tickets_created: tickets created on D. total_tickets_resolved: tickets whose resolved_at is on D.
* total_chats_started: chat sessions started on D. total_chats_completed: sessions that ended on D.
* average_resolution_time, resolution_p50/p90, resolution_histogram: over the tickets RESOLVED on D (their
  resolution_time). average_first_response_time, first_response_p50/p90, first_response_histogram: over the
  tickets FIRST ANSWERED on D (first_responded_at, = created_at + first_response_time, falls on D).
  average_chat_duration, chat_duration_p50/p90, chat_duration_histogram: over the sessions that ENDED on D
  (their duration).
  Each counts an event on the day it happened, so a day's figure is final once the day is over (a re-run a
  month later gives the same row), and a week of them reads as "how fast were we that day". Averaging over the
  tickets created on D instead would keep changing for weeks and flatter the newest days (only the fast ones
  are answered yet).
* agent_response_time: in live chat, the mean wait from a session's start to its first agent message, over
  the sessions started on D that got one: the chat counterpart of the tickets' first response time.
* customer_satisfaction_score: the mean ticket feedback rating given on D.
* tickets_by_status, tickets_by_priority, tickets_by_category: the tickets created on D, as they stand at
  rollup time (category "uncategorized" for none). They answer "what came in that day and where is it now";
  the scheduled run rolls up yesterday and the day before, so the day before is refreshed once more. (The open
  backlog at the end of D would read history, not D's activity: its cost would grow with the table.)
* chats_by_agent: {agent id: sessions that agent ended on D} (the session's assigned agent when it ended).

Averages follow support.averages (whole seconds, half away from zero; scores to two decimals). Percentiles are
percentile_disc: the smallest value with at least 50% (90%) of the day's values at or below it, so always a
value that occurred. The histograms use the fixed logarithmic buckets of sql/0012 (`bucket_of`).

Each day's work reads only that day's rows of one tenant, along the (user_id, time) indexes of sql/0001 and
sql/0012. A tenant's days are rolled up in one transaction with app.tenant_id set; the row is an upsert on
(user_id, analytics_date), so a re-run and two concurrent runs leave exactly one row per tenant and day.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from support.averages import mean_score, mean_seconds
from support.db import tenant_transaction
from support.db.connection import Cursor, anonymous_transaction
from support.observability import logger
from support.services.dashboard import MAX_ANALYTICS_DAYS, UNCATEGORIZED

# The buckets (sql/0012): 0 holds 0 s, k >= 1 holds [BASE^(k-1), BASE^k) s, LAST_BUCKET holds the rest too.
BUCKET_BASE = 1.1
LAST_BUCKET = 200
MAX_DAYS = MAX_ANALYTICS_DAYS


def bucket_of(seconds: int) -> int:
    """The histogram bucket of a duration, as the SQL below computes it (the same IEEE doubles)."""
    if seconds < 1:
        return 0
    return min(LAST_BUCKET, 1 + math.floor(math.log(seconds) / math.log(BUCKET_BASE)))


def bucket_value(bucket: int) -> float:
    """A bucket read back: its geometric middle, within sqrt(BASE) - 1 (4.9%) of any value in it."""
    return 0.0 if bucket == 0 else float(BUCKET_BASE ** (bucket - 0.5))


_BUCKET_SQL = "LEAST(%(last)s, CASE WHEN v < 1 THEN 0 ELSE 1 + floor(ln(v::float8) / ln(%(base)s::float8))::int END)"


def _distribution(name: str, source: str) -> str:
    return f"""{name} AS (
        SELECT count(v)::int AS n, coalesce(sum(v), 0)::bigint AS total,
               percentile_disc(0.5) WITHIN GROUP (ORDER BY v) AS p50,
               percentile_disc(0.9) WITHIN GROUP (ORDER BY v) AS p90,
               coalesce((SELECT jsonb_object_agg(b.bucket::text, b.n)
                         FROM (SELECT {_BUCKET_SQL} AS bucket, count(*) AS n FROM {source} GROUP BY 1) b),
                        '{{}}') AS histogram
        FROM {source})"""  # noqa: S608 - names are this module's constants, values are bound


# One statement per tenant-day: every figure's inputs. %(t)s the tenant, [%(lo)s, %(hi)s) the day.
_DAY_FIGURES = f"""
WITH created AS (
    SELECT t.status, t.priority, coalesce(t.category, %(uncategorized)s) AS category
    FROM support_tickets t WHERE t.user_id = %(t)s AND t.created_at >= %(lo)s AND t.created_at < %(hi)s
), resolved AS (
    SELECT t.resolution_time AS v
    FROM support_tickets t
    WHERE t.user_id = %(t)s AND t.resolved_at IS NOT NULL AND t.resolved_at >= %(lo)s AND t.resolved_at < %(hi)s
), resolved_times AS (
    SELECT v FROM resolved WHERE v IS NOT NULL
), answered AS (
    SELECT t.first_response_time AS v
    FROM support_tickets t
    WHERE t.user_id = %(t)s AND t.first_responded_at IS NOT NULL
      AND t.first_responded_at >= %(lo)s AND t.first_responded_at < %(hi)s AND t.first_response_time IS NOT NULL
), started AS (
    SELECT s.id, s.session_start_time
    FROM live_chat_sessions s
    WHERE s.user_id = %(t)s AND s.session_start_time >= %(lo)s AND s.session_start_time < %(hi)s
), ended AS (
    SELECT s.duration, s.assigned_agent_id
    FROM live_chat_sessions s
    WHERE s.user_id = %(t)s AND s.session_end_time IS NOT NULL
      AND s.session_end_time >= %(lo)s AND s.session_end_time < %(hi)s
), durations AS (
    SELECT duration AS v FROM ended WHERE duration IS NOT NULL
), waits AS (
    SELECT greatest(0, floor(extract(epoch FROM m.first_at - s.session_start_time)))::int AS v
    FROM started s
    CROSS JOIN LATERAL (SELECT min(c.created_at) AS first_at FROM chat_messages c
                        WHERE c.session_id = s.id AND c.user_id = %(t)s AND c.sender_type = 'agent') m
    WHERE m.first_at IS NOT NULL
), ratings AS (
    SELECT f.rating FROM ticket_feedback f
    WHERE f.user_id = %(t)s AND f.created_at >= %(lo)s AND f.created_at < %(hi)s
),
{_distribution("resolution", "resolved_times")},
{_distribution("first_response", "answered")},
{_distribution("chat_duration", "durations")}
SELECT
    (SELECT count(*) FROM created)::int AS created,
    (SELECT count(*) FROM resolved)::int AS resolved,
    (SELECT count(*) FROM started)::int AS started,
    (SELECT count(*) FROM ended)::int AS ended,
    (SELECT coalesce(jsonb_object_agg(x.k, x.n), '{{}}')
     FROM (SELECT status AS k, count(*) AS n FROM created GROUP BY 1) x) AS by_status,
    (SELECT coalesce(jsonb_object_agg(x.k, x.n), '{{}}')
     FROM (SELECT priority AS k, count(*) AS n FROM created GROUP BY 1) x) AS by_priority,
    (SELECT coalesce(jsonb_object_agg(x.k, x.n), '{{}}')
     FROM (SELECT category AS k, count(*) AS n FROM created GROUP BY 1) x) AS by_category,
    (SELECT coalesce(jsonb_object_agg(x.k, x.n), '{{}}')
     FROM (SELECT assigned_agent_id::text AS k, count(*) AS n FROM ended
           WHERE assigned_agent_id IS NOT NULL GROUP BY 1) x) AS by_agent,
    (SELECT count(*) FROM waits)::int AS wait_n, (SELECT coalesce(sum(v), 0) FROM waits)::bigint AS wait_total,
    (SELECT count(*) FROM ratings)::int AS rating_n,
    (SELECT coalesce(sum(rating), 0) FROM ratings)::bigint AS rating_total,
    r.n AS resolution_n, r.total AS resolution_total, r.p50 AS resolution_p50, r.p90 AS resolution_p90,
    r.histogram AS resolution_histogram,
    f.n AS first_response_n, f.total AS first_response_total, f.p50 AS first_response_p50,
    f.p90 AS first_response_p90, f.histogram AS first_response_histogram,
    d.n AS chat_duration_n, d.total AS chat_duration_total, d.p50 AS chat_duration_p50,
    d.p90 AS chat_duration_p90, d.histogram AS chat_duration_histogram
FROM resolution r, first_response f, chat_duration d
"""  # noqa: S608 - the CTEs above are this module's constants, values are bound

ROLLUP_COLUMNS = (
    "total_tickets_created",
    "total_tickets_resolved",
    "total_chats_started",
    "total_chats_completed",
    "average_resolution_time",
    "average_first_response_time",
    "average_chat_duration",
    "customer_satisfaction_score",
    "agent_response_time",
    "tickets_by_status",
    "tickets_by_priority",
    "tickets_by_category",
    "chats_by_agent",
    "first_response_histogram",
    "resolution_histogram",
    "chat_duration_histogram",
    "first_response_p50",
    "first_response_p90",
    "resolution_p50",
    "resolution_p90",
    "chat_duration_p50",
    "chat_duration_p90",
)

_UPSERT = (
    "INSERT INTO support_analytics (user_id, analytics_date, "  # noqa: S608 - fixed column names, values bound
    + ", ".join(ROLLUP_COLUMNS)
    + ") VALUES (%(user_id)s, %(analytics_date)s, "
    + ", ".join(f"%({c})s" for c in ROLLUP_COLUMNS)
    + ") ON CONFLICT (user_id, analytics_date) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in ROLLUP_COLUMNS)
)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def days_in(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def day_figures(cur: Cursor, tenant_id: UUID, day: date) -> dict[str, Any]:
    """Every stored figure of one tenant's day, computed from its rows (read in the caller's transaction)."""
    lo, hi = day_bounds(day)
    cur.execute(
        _DAY_FIGURES,
        {"t": tenant_id, "lo": lo, "hi": hi, "uncategorized": UNCATEGORIZED, "last": LAST_BUCKET, "base": BUCKET_BASE},
    )
    row = cur.fetchone()
    assert row is not None  # an aggregate over FROM of three one-row CTEs: always one row
    return {
        "user_id": tenant_id,
        "analytics_date": day,
        "total_tickets_created": row["created"],
        "total_tickets_resolved": row["resolved"],
        "total_chats_started": row["started"],
        "total_chats_completed": row["ended"],
        "average_resolution_time": mean_seconds(row["resolution_total"], row["resolution_n"]),
        "average_first_response_time": mean_seconds(row["first_response_total"], row["first_response_n"]),
        "average_chat_duration": mean_seconds(row["chat_duration_total"], row["chat_duration_n"]),
        "customer_satisfaction_score": mean_score(row["rating_total"], row["rating_n"]),
        "agent_response_time": mean_seconds(row["wait_total"], row["wait_n"]),
        "tickets_by_status": Jsonb(row["by_status"]),
        "tickets_by_priority": Jsonb(row["by_priority"]),
        "tickets_by_category": Jsonb(row["by_category"]),
        "chats_by_agent": Jsonb(row["by_agent"]),
        "first_response_histogram": Jsonb(row["first_response_histogram"]),
        "resolution_histogram": Jsonb(row["resolution_histogram"]),
        "chat_duration_histogram": Jsonb(row["chat_duration_histogram"]),
        "first_response_p50": row["first_response_p50"],
        "first_response_p90": row["first_response_p90"],
        "resolution_p50": row["resolution_p50"],
        "resolution_p90": row["resolution_p90"],
        "chat_duration_p50": row["chat_duration_p50"],
        "chat_duration_p90": row["chat_duration_p90"],
    }


def roll_up_tenant(tenant_id: UUID, days: Iterable[date]) -> None:
    """Roll up `days` of one tenant, in one transaction bound to it: all of them are stored or none."""
    with tenant_transaction(tenant_id) as cur:
        for day in days:
            cur.execute(_UPSERT, day_figures(cur, tenant_id, day))


def tenants_with_activity(start: date, end: date) -> list[UUID]:
    """The tenants with any activity the rollup counts on a day from `start` to `end` (sql/0012's
    analytics_tenants, the job's one look across tenants: ids only)."""
    with anonymous_transaction() as cur:
        cur.execute("SELECT t FROM public.analytics_tenants(%s, %s) AS t ORDER BY t", (start, end))
        return [row["t"] for row in cur.fetchall()]


@dataclass
class RollupReport:
    start: date
    end: date
    succeeded: list[UUID] = field(default_factory=list)
    failed: dict[UUID, str] = field(default_factory=dict)  # tenant: the error, as logged


def roll_up(start: date, end: date, tenant_id: UUID | None = None) -> RollupReport:
    """Roll up every day from `start` to `end` (both included) of `tenant_id`, or of every tenant with activity
    in those days. One tenant's failure is logged and reported, and the others are still rolled up."""
    if end < start:
        raise ValueError("`to` is before `from`")
    if (end - start).days + 1 > MAX_DAYS:
        raise ValueError(f"a range covers at most {MAX_DAYS} days")
    days = days_in(start, end)
    tenants = [tenant_id] if tenant_id is not None else tenants_with_activity(start, end)
    report = RollupReport(start=start, end=end)
    for tenant in tenants:
        try:
            roll_up_tenant(tenant, days)
        except Exception as exc:
            logger.exception("analytics rollup failed", extra={"tenant_id": str(tenant)})
            report.failed[tenant] = f"{type(exc).__name__}: {exc}"
        else:
            report.succeeded.append(tenant)
    return report
