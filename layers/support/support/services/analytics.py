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
* tickets_by_status, tickets_by_priority, tickets_by_category, tickets_by_channel (sql/0025): the tickets
  created on D, as they stand at rollup time (category "uncategorized" for none; a channel never changes). They
  answer "what came in that day and where is it now"; the scheduled run rolls up yesterday and the day before, so
  the day before is refreshed once more. (The open backlog at the end of D would read history, not D's activity:
  its cost would grow with the table.)
* chats_by_agent: {agent id: sessions that agent ended on D} (the session's assigned agent when it ended).
* (issue 18, sql/0035) chats_abandoned: the sessions that ENDED on D, ended by their visitor (ended_by =
  'visitor', which chat_end records from the caller's role), with no agent message (chat_messages sender_type
  'agent') created before the session's end: nobody answered them. A session ended before sql/0035 has no
  ended_by and is never counted. Their wait is start to end in whole seconds: abandoned_wait_seconds (the sum),
  abandoned_wait_p50/p90_seconds (exact, percentile_disc) and abandoned_wait_histogram (the buckets below).
  chat_abandon_rate = chats_abandoned / total_chats_completed (four decimals; NULL when none ended on D).
* tickets_by_hour / chats_by_hour: the tickets created / sessions started on D by UTC hour ("0".."23");
  tickets_by_weekday / chats_by_weekday: the same by ISO weekday of the UTC day ("1" Monday .. "7" Sunday).
  Hours and weekdays are UTC, like the day itself, whatever the database session's TimeZone.
* agent_concurrent_load: {agent id: {"peak": [24], "seconds": [24]}}: for each UTC hour of D, the most chats the
  agent held at once, and the chat-seconds it held (seconds / 3600: the hour's mean number of concurrent chats).
  An agent holds a session from its assignment (assigned_at, kept by a trigger; the session's start for one
  assigned before sql/0035) to its end, or to now while it is open; a transferred session counts for its current
  agent from the transfer on (the earlier agent's part is not kept). Only agents who held a chat on D appear.

Averages follow support.averages (whole seconds, half away from zero; scores to two decimals). Percentiles are
percentile_disc: the smallest value with at least 50% (90%) of the day's values at or below it, so always a
value that occurred. The histograms use the fixed logarithmic buckets of sql/0012 (`bucket_of`).

Each day's work reads only that day's rows of one tenant, along the (user_id, time) indexes of sql/0001 and
sql/0012. A tenant's days are rolled up in one transaction with app.tenant_id set; the row is an upsert on
(user_id, analytics_date), so a re-run and two concurrent runs leave exactly one row per tenant and day.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from support.auth import Principal
from support.averages import mean_score, mean_seconds
from support.db import read_snapshot, tenant_transaction
from support.db.connection import Cursor, anonymous_transaction
from support.models.analytics import AgentLoadSummary, AnalyticsSummary, AnalyticsToday
from support.models.dashboard import SlaCompliance
from support.models.tickets import TicketPriority
from support.observability import logger
from support.services.dashboard import MAX_ANALYTICS_DAYS, UNCATEGORIZED, check_range, sla_compliance

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


# ---- issue 18 (an): chat abandonment and the agents' concurrent load (the module docstring says what they count).
# abandoned: the sessions ended in the window by their visitor with no agent message before the end; their wait,
# whole seconds from start to end. held: each agent's chats over the window, from the assignment (the start for a
# session assigned before sql/0035) to the end (now for one still open), clipped to the window: the sessions that
# started in it, those that started before it and ended in it, those still open, and those that lasted over the
# whole window (the day-long partial index of sql/0035), four disjoint index ranges. hours: the hours each holding
# touches, with the seconds held in each. Peak per hour: the running count of an agent's chats (ends before starts
# at the same instant, each hour's start marked) read at the hour's start and at every start inside it, where the
# count's maximum over the hour must be. Hours are UTC (date_trunc and extract in UTC, whatever the session's
# TimeZone), as the rollup's days.
_ABANDONMENT_AND_LOAD = """abandoned AS (
    SELECT greatest(0, floor(extract(epoch FROM e.session_end_time - e.session_start_time)))::int AS v
    FROM ended e
    WHERE e.ended_by = 'visitor'
      AND NOT EXISTS (SELECT FROM chat_messages c WHERE c.session_id = e.id AND c.user_id = %(t)s
                      AND c.sender_type = 'agent' AND c.created_at < e.session_end_time)
), overlapping AS (
    SELECT s.assigned_agent_id, s.assigned_at, s.session_start_time, s.session_end_time FROM live_chat_sessions s
    WHERE s.user_id = %(t)s AND s.session_start_time >= %(lo)s AND s.session_start_time < %(hi)s
    UNION ALL
    SELECT s.assigned_agent_id, s.assigned_at, s.session_start_time, s.session_end_time FROM live_chat_sessions s
    WHERE s.user_id = %(t)s AND s.session_end_time IS NOT NULL AND s.session_end_time >= %(lo)s
      AND s.session_end_time < %(hi)s AND s.session_start_time < %(lo)s
    UNION ALL
    SELECT s.assigned_agent_id, s.assigned_at, s.session_start_time, s.session_end_time FROM live_chat_sessions s
    WHERE s.user_id = %(t)s AND s.session_end_time IS NULL AND s.assigned_agent_id IS NOT NULL
      AND s.session_start_time < %(lo)s
    UNION ALL
    SELECT s.assigned_agent_id, s.assigned_at, s.session_start_time, s.session_end_time FROM live_chat_sessions s
    WHERE s.user_id = %(t)s AND s.session_end_time - s.session_start_time >= interval '1 day'
      AND s.session_end_time >= %(hi)s AND s.session_start_time < %(lo)s
), held AS (
    SELECT x.agent, x.a, x.b FROM (
        SELECT o.assigned_agent_id AS agent,
               greatest(coalesce(o.assigned_at, o.session_start_time), %(lo)s::timestamptz) AS a,
               least(coalesce(o.session_end_time, now()), %(hi)s::timestamptz) AS b
        FROM overlapping o WHERE o.assigned_agent_id IS NOT NULL) x
    WHERE x.a < x.b
), hours AS (
    SELECT h.agent, hr.at AS hour_start,
           extract(epoch FROM least(h.b, hr.at + interval '1 hour') - greatest(h.a, hr.at)) AS secs
    FROM held h
    CROSS JOIN LATERAL generate_series(date_trunc('hour', h.a, 'UTC'), h.b - interval '1 microsecond',
                                       interval '1 hour') AS hr(at)
), events AS (
    SELECT agent, a AS at, 1 AS delta, 1 AS ord FROM held
    UNION ALL SELECT agent, b, -1, 0 FROM held
    UNION ALL SELECT DISTINCT agent, hour_start, 0, 2 FROM hours
), counts AS (
    SELECT agent, at, delta, sum(delta) OVER (PARTITION BY agent ORDER BY at, ord ROWS UNBOUNDED PRECEDING) AS n
    FROM events
), load AS (
    SELECT agent, hod, max(peak)::int AS peak, round(sum(secs))::bigint AS secs FROM (
        SELECT agent, extract(hour FROM hour_start AT TIME ZONE 'UTC')::int AS hod, 0 AS peak, secs FROM hours
        UNION ALL
        SELECT agent, extract(hour FROM at AT TIME ZONE 'UTC')::int, n, 0 FROM counts
        WHERE delta >= 0 AND at < %(hi)s
    ) p GROUP BY 1, 2
)"""

# One statement per tenant-day: every figure's inputs. %(t)s the tenant, [%(lo)s, %(hi)s) the day.
_DAY_FIGURES = f"""
WITH created AS (
    SELECT t.status, t.priority, coalesce(t.category, %(uncategorized)s) AS category, t.channel,
           t.created_at AT TIME ZONE 'UTC' AS utc
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
    SELECT s.id, s.session_start_time, s.session_start_time AT TIME ZONE 'UTC' AS utc
    FROM live_chat_sessions s
    WHERE s.user_id = %(t)s AND s.session_start_time >= %(lo)s AND s.session_start_time < %(hi)s
), ended AS (
    SELECT s.id, s.duration, s.assigned_agent_id, s.session_start_time, s.session_end_time, s.ended_by
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
-- --- SLA (issue 18, sql/0033) -------------------------------------------------------------------------------
-- The targets met or missed in the window (a first response or a resolution with a due time), whether in time,
-- and the SLA clock's business seconds then, by priority.
sla_measured AS (
    SELECT t.priority, 'first_response' AS target, t.first_responded_at <= t.first_response_due_at AS met,
           t.first_response_business_seconds AS business_seconds
    FROM support_tickets t
    WHERE t.user_id = %(t)s AND t.first_responded_at >= %(lo)s AND t.first_responded_at < %(hi)s
      AND t.first_response_due_at IS NOT NULL AND t.first_response_business_seconds IS NOT NULL
    UNION ALL
    SELECT t.priority, 'resolution', t.resolved_at <= t.resolution_due_at, t.resolution_business_seconds
    FROM support_tickets t
    WHERE t.user_id = %(t)s AND t.resolved_at >= %(lo)s AND t.resolved_at < %(hi)s
      AND t.resolution_due_at IS NOT NULL AND t.resolution_business_seconds IS NOT NULL
),
-- --- end SLA ---------------------------------------------------------------------------------------------------
{_ABANDONMENT_AND_LOAD},
{_distribution("resolution", "resolved_times")},
{_distribution("first_response", "answered")},
{_distribution("chat_duration", "durations")},
{_distribution("abandoned_wait", "abandoned")}
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
     FROM (SELECT channel AS k, count(*) AS n FROM created GROUP BY 1) x) AS by_channel,
    (SELECT coalesce(jsonb_object_agg(x.k, x.n), '{{}}')
     FROM (SELECT assigned_agent_id::text AS k, count(*) AS n FROM ended
           WHERE assigned_agent_id IS NOT NULL GROUP BY 1) x) AS by_agent,
    (SELECT count(*) FROM waits)::int AS wait_n, (SELECT coalesce(sum(v), 0) FROM waits)::bigint AS wait_total,
    (SELECT count(*) FROM ratings)::int AS rating_n,
    (SELECT coalesce(sum(rating), 0) FROM ratings)::bigint AS rating_total,
    -- SLA (sql/0033): counts keyed "<priority>.<target>.measured", ".met", ".business_seconds": additive like the maps
    (SELECT coalesce(jsonb_object_agg(x.k, x.n), '{{}}')
     FROM (SELECT m.priority || '.' || m.target || '.' || v.figure AS k, sum(v.n) AS n
           FROM sla_measured m
           CROSS JOIN LATERAL (VALUES ('measured', 1), ('met', m.met::int), ('business_seconds', m.business_seconds))
               AS v (figure, n)
           GROUP BY 1 HAVING sum(v.n) <> 0) x) AS sla_compliance,
    r.n AS resolution_n, r.total AS resolution_total, r.p50 AS resolution_p50, r.p90 AS resolution_p90,
    r.histogram AS resolution_histogram,
    f.n AS first_response_n, f.total AS first_response_total, f.p50 AS first_response_p50,
    f.p90 AS first_response_p90, f.histogram AS first_response_histogram,
    d.n AS chat_duration_n, d.total AS chat_duration_total, d.p50 AS chat_duration_p50,
    d.p90 AS chat_duration_p90, d.histogram AS chat_duration_histogram,
    -- issue 18 (an): abandonment, peak hours, the agents' concurrent load
    w.n AS abandoned_n, w.total AS abandoned_total, w.p50 AS abandoned_p50, w.p90 AS abandoned_p90,
    w.histogram AS abandoned_histogram,
    (SELECT coalesce(jsonb_object_agg(x.k, x.n), '{{}}')
     FROM (SELECT extract(hour FROM utc)::int::text AS k, count(*) AS n FROM created GROUP BY 1) x) AS tickets_by_hour,
    (SELECT coalesce(jsonb_object_agg(x.k, x.n), '{{}}')
     FROM (SELECT extract(hour FROM utc)::int::text AS k, count(*) AS n FROM started GROUP BY 1) x) AS chats_by_hour,
    (SELECT coalesce(jsonb_object_agg(x.k, x.n), '{{}}')
     FROM (SELECT extract(isodow FROM utc)::int::text AS k, count(*) AS n FROM created GROUP BY 1) x)
        AS tickets_by_weekday,
    (SELECT coalesce(jsonb_object_agg(x.k, x.n), '{{}}')
     FROM (SELECT extract(isodow FROM utc)::int::text AS k, count(*) AS n FROM started GROUP BY 1) x)
        AS chats_by_weekday,
    (SELECT coalesce(jsonb_agg(jsonb_build_array(l.agent, l.hod, l.peak, l.secs)), '[]') FROM load l) AS load_rows
FROM resolution r, first_response f, chat_duration d, abandoned_wait w
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
    # sql/0013: the sums and counts behind the averages, so that a range's means are weighted exactly
    "first_response_count",
    "first_response_seconds",
    "resolution_count",
    "resolution_seconds",
    "chat_duration_count",
    "chat_duration_seconds",
    "agent_response_count",
    "agent_response_seconds",
    "rating_count",
    "rating_sum",
    # sql/0025
    "tickets_by_channel",
    # sql/0033: SLA compliance (see _DAY_FIGURES' SLA block)
    "sla_compliance",
    # ==== issue 18 (an), sql/0035: abandonment, peak hours, the agents' concurrent load ====
    "chats_abandoned",
    "chat_abandon_rate",
    "abandoned_wait_seconds",
    "abandoned_wait_p50_seconds",
    "abandoned_wait_p90_seconds",
    "abandoned_wait_histogram",
    "tickets_by_hour",
    "chats_by_hour",
    "tickets_by_weekday",
    "chats_by_weekday",
    "agent_concurrent_load",
    # ==== end issue 18 (an) ====
)

_UPSERT = (
    "INSERT INTO support_analytics (user_id, analytics_date, "  # noqa: S608 - fixed column names, values bound
    + ", ".join(ROLLUP_COLUMNS)
    + ") VALUES (%(user_id)s, %(analytics_date)s, "
    + ", ".join(f"%({c})s" for c in ROLLUP_COLUMNS)
    + ") ON CONFLICT (user_id, analytics_date) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in ROLLUP_COLUMNS)
)


_RATE_PLACES = Decimal("0.0001")


def abandon_rate(abandoned: int, ended: int) -> float | None:
    """Abandoned chats over the chats ended, four decimals (half away from zero); None with none ended."""
    if not ended:
        return None
    return float((Decimal(abandoned) / Decimal(ended)).quantize(_RATE_PLACES, rounding=ROUND_HALF_UP))


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def days_in(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def raw_figures(cur: Cursor, tenant_id: UUID, lo: datetime, hi: datetime) -> dict[str, Any]:
    """The inputs of every figure over [lo, hi) of one tenant, from its rows (read in the caller's transaction).
    Every one is a count or a sum of events in the window, so a window of several days gives their sum."""
    cur.execute(
        _DAY_FIGURES,
        {"t": tenant_id, "lo": lo, "hi": hi, "uncategorized": UNCATEGORIZED, "last": LAST_BUCKET, "base": BUCKET_BASE},
    )
    row = cur.fetchone()
    assert row is not None  # an aggregate over FROM of three one-row CTEs: always one row
    row["agent_concurrent_load"] = _load_of(row.pop("load_rows"))
    return row


def _load_of(rows: list[list[Any]]) -> dict[str, dict[str, list[int]]]:
    """The statement's (agent, UTC hour, peak, seconds) rows as {agent: {"peak": [24], "seconds": [24]}} (issue 18,
    an): the lists are put together here rather than in the statement, where a grid of agents x 24 hours cost
    more than the rest of the load."""
    load: dict[str, dict[str, list[int]]] = {}
    for agent, hour, peak, seconds in rows:
        mine = load.setdefault(str(agent), {"peak": [0] * 24, "seconds": [0] * 24})
        mine["peak"][hour], mine["seconds"][hour] = int(peak), int(seconds)
    return dict(sorted(load.items()))


_JSONB_COLUMNS = frozenset(
    {
        "tickets_by_status",
        "tickets_by_priority",
        "tickets_by_category",
        "tickets_by_channel",
        "chats_by_agent",
        "first_response_histogram",
        "resolution_histogram",
        "chat_duration_histogram",
        "sla_compliance",
        # issue 18 (an)
        "abandoned_wait_histogram",
        "tickets_by_hour",
        "chats_by_hour",
        "tickets_by_weekday",
        "chats_by_weekday",
    }
)
# Stored as jsonb, not a {key: count} map the running totals carry (a peak is not additive): issue 18 (an).
_JSONB_NOT_SUMMED = frozenset({"agent_concurrent_load"})


def figures_of(row: dict[str, Any]) -> dict[str, Any]:
    """The stored figures (ROLLUP_COLUMNS) of one window's raw_figures row."""
    return {
        "total_tickets_created": row["created"],
        "total_tickets_resolved": row["resolved"],
        "total_chats_started": row["started"],
        "total_chats_completed": row["ended"],
        "average_resolution_time": mean_seconds(row["resolution_total"], row["resolution_n"]),
        "average_first_response_time": mean_seconds(row["first_response_total"], row["first_response_n"]),
        "average_chat_duration": mean_seconds(row["chat_duration_total"], row["chat_duration_n"]),
        "customer_satisfaction_score": mean_score(row["rating_total"], row["rating_n"]),
        "agent_response_time": mean_seconds(row["wait_total"], row["wait_n"]),
        "tickets_by_status": row["by_status"],
        "tickets_by_priority": row["by_priority"],
        "tickets_by_category": row["by_category"],
        "tickets_by_channel": row["by_channel"],
        "chats_by_agent": row["by_agent"],
        "first_response_histogram": row["first_response_histogram"],
        "resolution_histogram": row["resolution_histogram"],
        "chat_duration_histogram": row["chat_duration_histogram"],
        "first_response_p50": row["first_response_p50"],
        "first_response_p90": row["first_response_p90"],
        "resolution_p50": row["resolution_p50"],
        "resolution_p90": row["resolution_p90"],
        "chat_duration_p50": row["chat_duration_p50"],
        "chat_duration_p90": row["chat_duration_p90"],
        "first_response_count": row["first_response_n"],
        "first_response_seconds": row["first_response_total"],
        "resolution_count": row["resolution_n"],
        "resolution_seconds": row["resolution_total"],
        "chat_duration_count": row["chat_duration_n"],
        "chat_duration_seconds": row["chat_duration_total"],
        "agent_response_count": row["wait_n"],
        "agent_response_seconds": row["wait_total"],
        "rating_count": row["rating_n"],
        "rating_sum": row["rating_total"],
        "sla_compliance": row["sla_compliance"],
        # issue 18 (an)
        "chats_abandoned": row["abandoned_n"],
        "chat_abandon_rate": abandon_rate(row["abandoned_n"], row["ended"]),
        "abandoned_wait_seconds": row["abandoned_total"],
        "abandoned_wait_p50_seconds": row["abandoned_p50"],
        "abandoned_wait_p90_seconds": row["abandoned_p90"],
        "abandoned_wait_histogram": row["abandoned_histogram"],
        "tickets_by_hour": row["tickets_by_hour"],
        "chats_by_hour": row["chats_by_hour"],
        "tickets_by_weekday": row["tickets_by_weekday"],
        "chats_by_weekday": row["chats_by_weekday"],
        "agent_concurrent_load": row["agent_concurrent_load"],
    }


def _upsert_params(tenant_id: UUID, day: date, figures: dict[str, Any]) -> dict[str, Any]:
    """The parameters of an upsert of a day's (or a running total's) figures; the maps copied as they are now."""
    return {
        "user_id": tenant_id,
        "analytics_date": day,
        **{k: Jsonb(dict(v)) if k in _JSONB_COLUMNS or k in _JSONB_NOT_SUMMED else v for k, v in figures.items()},
    }


def day_figures(cur: Cursor, tenant_id: UUID, day: date) -> dict[str, Any]:
    """Every stored figure of one tenant's day, computed from its rows (read in the caller's transaction), as
    the upsert takes them."""
    return _upsert_params(tenant_id, day, figures_of(raw_figures(cur, tenant_id, *day_bounds(day))))


# Called after each tenant-day is computed (in its tenant's transaction, so stored once that tenant commits).
DayDone = Callable[[UUID, date], None]
TenantsFound = Callable[[list[UUID]], None]


@dataclass(frozen=True)
class Progress:
    on_tenants: TenantsFound
    on_day: DayDone


_progress: ContextVar[Progress | None] = ContextVar("analytics_progress", default=None)


@contextmanager
def reporting_progress(on_tenants: TenantsFound, on_day: DayDone) -> Iterator[None]:
    """Report the progress of every roll_up in this context (make backfill's bar, around the real handler)."""
    token = _progress.set(Progress(on_tenants, on_day))
    try:
        yield
    finally:
        _progress.reset(token)


def roll_up_tenant(tenant_id: UUID, days: Iterable[date], on_day: DayDone | None = None) -> None:
    """Roll up `days` of one tenant, in one transaction bound to it: all of them are stored or none. When a day
    is new or any of its figures changed, the tenant's running totals (sql/0016) are recomputed from the earliest
    such day on; a re-run that changes nothing writes the same day rows and nothing more. Runs for the same
    tenant take turns (a transaction lock per tenant), so the running totals always add up the day rows as
    stored."""
    days = sorted(set(days))
    if not days:
        return
    with tenant_transaction(tenant_id) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"analytics/{tenant_id}",))
        cur.execute(_STORED_FIGURES, {"t": tenant_id, "days": days})
        stored = {row["analytics_date"]: row for row in cur.fetchall()}
        changed: list[date] = []
        for day in days:
            figures = figures_of(raw_figures(cur, tenant_id, *day_bounds(day)))
            cur.execute(_UPSERT, _upsert_params(tenant_id, day, figures))
            if day not in stored or any(stored[day][c] != figures[c] for c in _DAY_TOTALS):
                changed.append(day)
            if on_day is not None:
                on_day(tenant_id, day)
        if changed:
            _recompute_cumulative(cur, tenant_id, changed[0])


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


def roll_up(
    start: date,
    end: date,
    tenant_id: UUID | None = None,
    *,
    on_tenants: TenantsFound | None = None,
    on_day: DayDone | None = None,
) -> RollupReport:
    """Roll up every day from `start` to `end` (both included) of `tenant_id`, or of every tenant with activity
    in those days. One tenant's failure is logged and reported, and the others are still rolled up.
    Progress, for a caller that shows it (make backfill): `on_tenants` gets the tenants before any work,
    `on_day` each tenant-day as it is computed (by default those of `reporting_progress`, if any)."""
    if end < start:
        raise ValueError("`to` is before `from`")
    if (end - start).days + 1 > MAX_DAYS:
        raise ValueError(f"a range covers at most {MAX_DAYS} days")
    days = days_in(start, end)
    tenants = [tenant_id] if tenant_id is not None else tenants_with_activity(start, end)
    progress = _progress.get()
    on_tenants = on_tenants or (progress.on_tenants if progress else None)
    on_day = on_day or (progress.on_day if progress else None)
    if on_tenants is not None:
        on_tenants(tenants)
    report = RollupReport(start=start, end=end)
    for tenant in tenants:
        try:
            roll_up_tenant(tenant, days, on_day)
        except Exception as exc:
            logger.exception("analytics rollup failed", extra={"tenant_id": str(tenant)})
            report.failed[tenant] = f"{type(exc).__name__}: {exc}"
        else:
            report.succeeded.append(tenant)
    return report


# ------------------------------------------------------------------------------------------ range summary

# The relative error of a percentile read from a histogram: a bucket's geometric middle is within sqrt(BASE) - 1 of
# any value in the bucket (plus rounding to whole seconds). Bucket 0 and buckets holding one whole second are exact.
PERCENTILE_ERROR = round(math.sqrt(BUCKET_BASE) - 1, 4)

_SUMMED = (
    ("created", "total_tickets_created"),
    ("resolved", "total_tickets_resolved"),
    ("started", "total_chats_started"),
    ("ended", "total_chats_completed"),
    ("first_response_n", "first_response_count"),
    ("first_response_total", "first_response_seconds"),
    ("resolution_n", "resolution_count"),
    ("resolution_total", "resolution_seconds"),
    ("chat_duration_n", "chat_duration_count"),
    ("chat_duration_total", "chat_duration_seconds"),
    ("wait_n", "agent_response_count"),
    ("wait_total", "agent_response_seconds"),
    ("rating_n", "rating_count"),
    ("rating_total", "rating_sum"),
    # issue 18 (an)
    ("abandoned_n", "chats_abandoned"),
    ("abandoned_total", "abandoned_wait_seconds"),
)
_MERGED = (
    ("by_status", "tickets_by_status"),
    ("by_priority", "tickets_by_priority"),
    ("by_category", "tickets_by_category"),
    ("by_channel", "tickets_by_channel"),
    ("by_agent", "chats_by_agent"),
    ("first_response_histogram", "first_response_histogram"),
    ("resolution_histogram", "resolution_histogram"),
    ("chat_duration_histogram", "chat_duration_histogram"),
    ("sla_compliance", "sla_compliance"),
    # issue 18 (an)
    ("abandoned_histogram", "abandoned_wait_histogram"),
    ("tickets_by_hour", "tickets_by_hour"),
    ("chats_by_hour", "chats_by_hour"),
    ("tickets_by_weekday", "tickets_by_weekday"),
    ("chats_by_weekday", "chats_by_weekday"),
)


# A day's additive figures (each a count, a sum or a {key: count} map), and the running totals: those and `days`.
_DAY_TOTALS = [column for _, column in _SUMMED] + [column for _, column in _MERGED]
_CUMULATIVE_COLUMNS = ["days", *_DAY_TOTALS]

# The running totals before a day, and the day rows from it on, which they are carried over (sql/0016).
_CUMULATIVE_BEFORE = (
    "SELECT "  # noqa: S608 - this module's constant column names
    + ", ".join(_CUMULATIVE_COLUMNS)
    + " FROM support_analytics_cumulative WHERE user_id = %(t)s AND analytics_date < %(first)s"
    " ORDER BY analytics_date DESC LIMIT 1"
)
_DAYS_FROM = (
    "SELECT analytics_date, "  # noqa: S608 - this module's constant column names
    + ", ".join(_DAY_TOTALS)
    + " FROM support_analytics WHERE user_id = %(t)s AND analytics_date >= %(first)s ORDER BY analytics_date"
)
# The additive figures of some stored days, to tell whether a re-run changed any.
_STORED_FIGURES = (
    "SELECT analytics_date, "  # noqa: S608 - this module's constant column names
    + ", ".join(_DAY_TOTALS)
    + " FROM support_analytics WHERE user_id = %(t)s AND analytics_date = ANY(%(days)s)"
)
_UPSERT_CUMULATIVE = (
    "INSERT INTO support_analytics_cumulative (user_id, analytics_date, "  # noqa: S608 - constant column names
    + ", ".join(_CUMULATIVE_COLUMNS)
    + ") VALUES (%(user_id)s, %(analytics_date)s, "
    + ", ".join(f"%({c})s" for c in _CUMULATIVE_COLUMNS)
    + ") ON CONFLICT (user_id, analytics_date) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _CUMULATIVE_COLUMNS)
)


def _merge(into: dict[str, int], counts: dict[str, Any], sign: int = 1) -> None:
    """Add (sign 1) or take away (sign -1) a {key: count} map, keeping no key at zero."""
    for key, n in counts.items():
        value = into.get(key, 0) + sign * int(n)
        if value:
            into[key] = value
        else:
            into.pop(key, None)


def _recompute_cumulative(cur: Cursor, tenant_id: UUID, first: date) -> None:
    """The tenant's running totals from `first` to its last stored day: those before `first` carried over its
    day rows in date order (in the caller's transaction, which holds the tenant's lock)."""
    cur.execute(_CUMULATIVE_BEFORE, {"t": tenant_id, "first": first})
    before = cur.fetchone()
    running: dict[str, Any] = {"days": 0} | {column: 0 for _, column in _SUMMED} | {c: {} for c in _JSONB_COLUMNS}
    if before is not None:
        running |= before
    cur.execute(_DAYS_FROM, {"t": tenant_id, "first": first})
    rows = []
    for day in cur.fetchall():
        running["days"] += 1
        for _, column in _SUMMED:
            running[column] += day[column]
        for column in _JSONB_COLUMNS:
            _merge(running[column], day[column])
        rows.append(_upsert_params(tenant_id, day["analytics_date"], running))
    cur.executemany(_UPSERT_CUMULATIVE, rows)


def _edges(by_agent: bool) -> str:
    columns = ", ".join(
        ["days"]
        + [f"{column} AS {name}" for name, column in _SUMMED]
        + [
            f"{column} AS {name}" if by_agent or name != "by_agent" else "'{}'::jsonb AS by_agent"
            for name, column in _MERGED
        ]
    )

    def edge(name: str, where: str) -> str:
        return (
            f"(SELECT '{name}' AS edge, {columns} FROM support_analytics_cumulative"  # noqa: S608 - constant names
            f" WHERE user_id = %(t)s AND analytics_date {where} ORDER BY analytics_date DESC LIMIT 1)"
        )

    return edge("last", "<= %(hi)s") + " UNION ALL " + edge("before", "< %(lo)s")


# The stored days of a range [lo, hi] in one round trip of two index lookups, whatever its length: the running
# totals at its last stored day and at the last stored day before it; the range's figures are their difference.
# The agents' map is read only when asked for (with 500 agents it is most of the bytes).
_STORED_EDGES = _edges(by_agent=False)
_STORED_EDGES_BY_AGENT = _edges(by_agent=True)


def _bucket_integers(bucket: int) -> tuple[int, int | None]:
    """The whole seconds a bucket holds: (smallest, largest), None for the open last bucket."""
    if bucket == 0:
        return 0, 0
    low = max(1, math.ceil(BUCKET_BASE ** (bucket - 1)))
    while bucket_of(low) < bucket:
        low += 1
    while low > 1 and bucket_of(low - 1) == bucket:
        low -= 1
    if bucket == LAST_BUCKET:
        return low, None
    high = max(low, math.ceil(BUCKET_BASE**bucket) - 1)
    while bucket_of(high) > bucket:
        high -= 1
    while bucket_of(high + 1) == bucket:
        high += 1
    return low, high


def bucket_estimate(bucket: int) -> int:
    """A bucket's value read back in whole seconds: its geometric middle, rounded, kept within the whole seconds it
    can hold (so a bucket of a single whole second reads back exactly)."""
    low, high = _bucket_integers(bucket)
    estimate = max(low, round(bucket_value(bucket)))
    return estimate if high is None else min(high, estimate)


def histogram_percentile(histogram: dict[str, int], numerator: int, denominator: int) -> int | None:
    """The percentile numerator/denominator (percentile_disc: the rank ceil(p * n) value) read from a histogram:
    the bucket that holds that rank's value, read back (within PERCENTILE_ERROR of it, plus rounding)."""
    counts = sorted((int(bucket), n) for bucket, n in histogram.items() if n > 0)
    total = sum(n for _, n in counts)
    if not total:
        return None
    rank = max(1, -(-total * numerator // denominator))
    seen = 0
    for bucket, n in counts:
        seen += n
        if seen >= rank:
            return bucket_estimate(bucket)
    raise AssertionError("unreachable: the ranks add up to the total")


def _runs(days: list[date]) -> list[tuple[date, date]]:
    """Consecutive days grouped: [(first, last), ...]."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _add(total: dict[str, Any], row: dict[str, Any], sign: int = 1) -> None:
    """Add (sign 1) or take away (sign -1) a row of figures named as in raw_figures."""
    for name, _ in _SUMMED:
        total[name] += sign * row[name]
    for name, _ in _MERGED:
        _merge(total[name], row[name], sign)


def summarize(
    principal: Principal, start: date, end: date, *, by_agent: bool = False, now: datetime | None = None
) -> AnalyticsSummary:
    """The range's figures from its stored days, and from the raw rows for today and any day not rolled up yet.

    Every figure of a day is a count or a sum of the events of that day, so the range's are their sums; the means
    are the range's sums over its counts, and the percentiles come from the merged histograms. One REPEATABLE
    READ snapshot: the stored days and the live ones agree. `by_agent` adds chats_by_agent (None without it)."""
    check_range(start, end)
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    last = min(end, today)
    stored_end = min(last, today - timedelta(days=1))  # the days that may be rolled up: today is always live

    load: dict[str, dict[str, list[int]]] = {}  # issue 18 (an): with by_agent only

    def read(cur: Cursor) -> tuple[dict[str, Any], int, list[date], dict[str, Any] | None]:
        total: dict[str, Any] = {name: 0 for name, _ in _SUMMED} | {name: {} for name, _ in _MERGED}
        stored_days, live = 0, []
        load.clear()
        if start <= stored_end:
            cur.execute(
                _STORED_EDGES_BY_AGENT if by_agent else _STORED_EDGES,
                {"t": principal.tenant_id, "lo": start, "hi": stored_end},
            )
            edges = {row["edge"]: row for row in cur.fetchall()}
            for edge, sign in (("last", 1), ("before", -1)):
                if edge in edges:
                    _add(total, edges[edge], sign)
                    stored_days += sign * edges[edge]["days"]
            if stored_days < (stored_end - start).days + 1:  # a day not rolled up yet: which ones
                cur.execute(
                    "SELECT analytics_date FROM support_analytics"
                    " WHERE user_id = %s AND analytics_date BETWEEN %s AND %s",
                    (principal.tenant_id, start, stored_end),
                )
                stored = {row["analytics_date"] for row in cur.fetchall()}
                live = [day for day in days_in(start, stored_end) if day not in stored]
            if by_agent:
                cur.execute(_STORED_LOAD, (principal.tenant_id, start, stored_end))
                merge_load(load, {row["agent"]: row for row in cur.fetchall()})
        for first, final in _runs(live):
            row = raw_figures(cur, principal.tenant_id, day_bounds(first)[0], day_bounds(final)[1])
            _add(total, row)
            merge_load(load, row["agent_concurrent_load"])
        today_figures = None
        if start <= today <= end:
            row = raw_figures(cur, principal.tenant_id, *day_bounds(today))
            _add(total, row)
            merge_load(load, row["agent_concurrent_load"])
            today_figures = figures_of(row)
            live.append(today)
        return total, stored_days, live, today_figures

    total, rolled_up_days, live, today_figures = read_snapshot(principal.tenant_id, read)
    first_response, resolution, durations = (
        total["first_response_histogram"],
        total["resolution_histogram"],
        total["chat_duration_histogram"],
    )
    days = max(0, (last - start).days + 1)
    abandoned = total["abandoned_histogram"]
    return AnalyticsSummary(
        from_date=start,
        to_date=end,
        days=days,
        rolled_up_days=rolled_up_days,
        live_days=live,
        total_tickets_created=total["created"],
        total_tickets_resolved=total["resolved"],
        total_chats_started=total["started"],
        total_chats_completed=total["ended"],
        average_resolution_time=mean_seconds(total["resolution_total"], total["resolution_n"]),
        average_first_response_time=mean_seconds(total["first_response_total"], total["first_response_n"]),
        average_chat_duration=mean_seconds(total["chat_duration_total"], total["chat_duration_n"]),
        agent_response_time=mean_seconds(total["wait_total"], total["wait_n"]),
        customer_satisfaction_score=mean_score(total["rating_total"], total["rating_n"]),
        first_response_count=total["first_response_n"],
        resolution_count=total["resolution_n"],
        chat_duration_count=total["chat_duration_n"],
        agent_response_count=total["wait_n"],
        rating_count=total["rating_n"],
        first_response_p50=histogram_percentile(first_response, 1, 2),
        first_response_p90=histogram_percentile(first_response, 9, 10),
        resolution_p50=histogram_percentile(resolution, 1, 2),
        resolution_p90=histogram_percentile(resolution, 9, 10),
        chat_duration_p50=histogram_percentile(durations, 1, 2),
        chat_duration_p90=histogram_percentile(durations, 9, 10),
        percentile_error=PERCENTILE_ERROR,
        tickets_by_status=dict(sorted(total["by_status"].items())),
        tickets_by_priority=dict(sorted(total["by_priority"].items())),
        tickets_by_category=dict(sorted(total["by_category"].items())),
        tickets_by_channel=dict(sorted(total["by_channel"].items())),
        chats_by_agent=dict(sorted(total["by_agent"].items())) if by_agent else None,
        first_response_histogram=dict(sorted(first_response.items(), key=lambda item: int(item[0]))),
        resolution_histogram=dict(sorted(resolution.items(), key=lambda item: int(item[0]))),
        chat_duration_histogram=dict(sorted(durations.items(), key=lambda item: int(item[0]))),
        # issue 18 (an)
        chats_abandoned=total["abandoned_n"],
        chat_abandon_rate=abandon_rate(total["abandoned_n"], total["ended"]),
        abandoned_wait_p50_seconds=histogram_percentile(abandoned, 1, 2),
        abandoned_wait_p90_seconds=histogram_percentile(abandoned, 9, 10),
        abandoned_wait_histogram=dict(sorted(abandoned.items(), key=lambda item: int(item[0]))),
        tickets_by_hour=_every_key(total["tickets_by_hour"], HOURS),
        chats_by_hour=_every_key(total["chats_by_hour"], HOURS),
        tickets_by_weekday=_every_key(total["tickets_by_weekday"], WEEKDAYS),
        chats_by_weekday=_every_key(total["chats_by_weekday"], WEEKDAYS),
        agent_concurrent_load=load_summary(load, days) if by_agent else None,
        today=None if today_figures is None else AnalyticsToday(analytics_date=today, **today_figures),
        sla_compliance=sla_compliance_of(total["sla_compliance"]),
    )


def sla_compliance_of(counts: dict[str, int]) -> dict[str, SlaCompliance]:
    """A range's SLA compliance per priority from its merged `sla_compliance` counts (as the dashboard shows it)."""
    rows = [
        {
            f"{target}_{figure}": int(counts.get(f"{priority.value}.{target}.{key}", 0))
            for target in ("first_response", "resolution")
            for figure, key in (("measured", "measured"), ("met", "met"), ("business_seconds", "business_seconds"))
        }
        | {"priority": priority.value}
        for priority in TicketPriority
    ]
    return sla_compliance(rows)


# ------------------------------------------------------------------ issue 18 (an): peak hours and agents' load

HOURS = range(24)
WEEKDAYS = range(1, 8)  # ISO: 1 Monday .. 7 Sunday
_HUNDREDTHS = Decimal("0.01")

# The stored days' agent loads of a range merged in the database (the range summary with byAgent=true): per agent,
# each hour's greatest peak and the sum of its seconds, one row per agent (the days' lists zipped by hour).
_STORED_LOAD = """
SELECT m.agent, array_agg(m.peak ORDER BY m.h) AS peak, array_agg(m.secs ORDER BY m.h) AS seconds
FROM (SELECT a.key AS agent, x.h, max(x.peak::int) AS peak, sum(x.secs::bigint) AS secs
      FROM support_analytics d
      CROSS JOIN LATERAL jsonb_each(d.agent_concurrent_load) AS a
      CROSS JOIN LATERAL ROWS FROM (jsonb_array_elements_text(a.value -> 'peak'),
                                   jsonb_array_elements_text(a.value -> 'seconds')) WITH ORDINALITY AS x(peak, secs, h)
      WHERE d.user_id = %s AND d.analytics_date BETWEEN %s AND %s
      GROUP BY 1, 2) m
GROUP BY m.agent"""


def _every_key(counts: dict[str, int], keys: range) -> dict[str, int]:
    """A sparse {key: count} map with every key of `keys`, in order (0 where none)."""
    return {str(k): int(counts.get(str(k), 0)) for k in keys}


def merge_load(into: dict[str, dict[str, list[int]]], loads: dict[str, Any]) -> None:
    """Add a window's {agent: {"peak": [24], "seconds": [24]}} to `into`: the greater peak and the seconds' sum of
    each hour."""
    for agent, load in loads.items():
        mine = into.setdefault(agent, {"peak": [0] * 24, "seconds": [0] * 24})
        mine["peak"] = [max(a, int(b)) for a, b in zip(mine["peak"], load["peak"], strict=True)]
        mine["seconds"] = [a + int(b) for a, b in zip(mine["seconds"], load["seconds"], strict=True)]


def _per_hour_mean(seconds: int, days: int, hours: int = 1) -> float:
    if days <= 0:
        return 0.0
    mean = Decimal(seconds) / Decimal(days * hours * 3600)
    return float(mean.quantize(_HUNDREDTHS, rounding=ROUND_HALF_UP))


def load_summary(load: dict[str, dict[str, list[int]]], days: int) -> dict[str, AgentLoadSummary]:
    """The range's loads as the summary reports them: the peaks, and the mean concurrency over `days` days."""
    return {
        agent: AgentLoadSummary(
            peak_by_hour=figures["peak"],
            average_by_hour=[_per_hour_mean(s, days) for s in figures["seconds"]],
            peak=max(figures["peak"]),
            average=_per_hour_mean(sum(figures["seconds"]), days, 24),
        )
        for agent, figures in sorted(load.items())
    }
