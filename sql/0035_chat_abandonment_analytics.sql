-- The analytics the spec's troubleshooting sections need (issue 18, "Analytics the spec's troubleshooting needs"):
-- chat abandonment, peak hours and each agent's concurrent chats over the day, in the daily rollup
-- (layers/support/support/services/analytics.py says what each figure counts) and the range summary.
-- Follows 0010's rules: every grant here is in sql/privileges.toml (tests/integration/test_privileges.py).
-- The functions and triggers it relies on live in sql/definitions (chat.sql: chat_end records who ended a chat;
-- analytics.sql: the assignment time's trigger), applied in this same transaction.

-- 1. Who ended a chat, and when its agent got it. ---------------------------------------------------------------
-- ended_by: the role of whoever ended the session, as chat_end's caller: 'visitor', 'agent' or 'admin'; 'system'
-- for a sweep that ends chats on its own (none writes it yet). NULL for a session still open, or ended before this
-- migration (nobody recorded who did: such a session is never counted as abandoned).
-- assigned_at: when the session got its current agent (a trigger keeps it: sql/definitions/analytics.sql), so
-- that an agent's concurrent chats are counted from that moment, not from the visitor's arrival. NULL for a
-- session without an agent, and for those assigned before this migration (the rollup reads those from their start:
-- the best it knows). Both are nullable without a default: adding them rewrites nothing.
ALTER TABLE public.live_chat_sessions
    ADD COLUMN ended_by text CONSTRAINT live_chat_sessions_ended_by_check
        CHECK (ended_by IN ('visitor', 'agent', 'admin', 'system')),
    ADD COLUMN assigned_at timestamptz;

-- The runtime role's chat_end (SECURITY INVOKER) writes ended_by; assigned_at is the trigger's alone (a BEFORE
-- trigger's change of NEW needs no column privilege of the writer), so no grant for it.
GRANT UPDATE (ended_by) ON public.live_chat_sessions TO support_app;

-- An agent's load over a day counts every chat it held during that day, including one that began on an earlier
-- day and ended on a later one. Those whole-day chats are found through this small partial index (the sessions
-- that lasted a day or more), so that a day's work never scans what ended after it.
CREATE INDEX live_chat_sessions_day_long_idx ON public.live_chat_sessions (user_id, session_end_time)
    WHERE session_end_time - session_start_time >= interval '1 day';

-- And the chats still open with an agent, by start: those that began before a day are held all through it.
CREATE INDEX live_chat_sessions_open_held_idx ON public.live_chat_sessions (user_id, session_start_time)
    WHERE session_end_time IS NULL AND assigned_agent_id IS NOT NULL;

-- The rollup job reads those two columns, nothing else new.
GRANT SELECT (ended_by, assigned_at) ON public.live_chat_sessions TO support_analytics_job;

-- 2. The day rows' new figures (support_analytics). --------------------------------------------------------------
-- ==== BEGIN issue 18 "an" block: chat abandonment, peak hours, agents' concurrent load ====
--   chats_abandoned: the sessions that ENDED that day, ended by the visitor, without an agent message before
--     their end; abandoned_wait_seconds their waits' sum (start to end); the histogram and exact p50/p90 of those
--     waits as the other distributions (sql/0012's buckets); chat_abandon_rate = chats_abandoned /
--     total_chats_completed (NULL with no session ended), four decimals.
--   tickets_by_hour / chats_by_hour: the tickets created / sessions started that day by UTC hour {"0".."23": n};
--   tickets_by_weekday / chats_by_weekday: the same by ISO weekday of the UTC day {"1" (Monday) .. "7": n}, one key
--     per row, so that ranges add up (and the running totals carry them).
--   agent_concurrent_load: {agent id: {"peak": [24 integers], "seconds": [24 integers]}}: per UTC hour, the most
--     chats the agent held at once and the chat-seconds it held (seconds / 3600 = the hour's mean concurrency).
ALTER TABLE public.support_analytics
    ADD COLUMN chats_abandoned            integer NOT NULL DEFAULT 0 CHECK (chats_abandoned >= 0),
    ADD COLUMN chat_abandon_rate          numeric(5, 4) CHECK (chat_abandon_rate BETWEEN 0 AND 1),
    ADD COLUMN abandoned_wait_seconds     bigint  NOT NULL DEFAULT 0 CHECK (abandoned_wait_seconds >= 0),
    ADD COLUMN abandoned_wait_p50_seconds integer CHECK (abandoned_wait_p50_seconds >= 0),
    ADD COLUMN abandoned_wait_p90_seconds integer CHECK (abandoned_wait_p90_seconds >= 0),
    ADD COLUMN abandoned_wait_histogram   jsonb NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(abandoned_wait_histogram) = 'object'),
    ADD COLUMN tickets_by_hour    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tickets_by_hour) = 'object'),
    ADD COLUMN chats_by_hour      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(chats_by_hour) = 'object'),
    ADD COLUMN tickets_by_weekday jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tickets_by_weekday) = 'object'),
    ADD COLUMN chats_by_weekday   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(chats_by_weekday) = 'object'),
    ADD COLUMN agent_concurrent_load jsonb NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(agent_concurrent_load) = 'object');

-- The running totals (sql/0016) carry the additive ones; the load's peaks are not additive (a range's peak is the
-- greatest of its days'), so the range summary reads those from the day rows, and only with byAgent=true.
ALTER TABLE public.support_analytics_cumulative
    ADD COLUMN chats_abandoned          bigint NOT NULL DEFAULT 0,
    ADD COLUMN abandoned_wait_seconds   bigint NOT NULL DEFAULT 0,
    ADD COLUMN abandoned_wait_histogram jsonb  NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(abandoned_wait_histogram) = 'object'),
    ADD COLUMN tickets_by_hour    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tickets_by_hour) = 'object'),
    ADD COLUMN chats_by_hour      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(chats_by_hour) = 'object'),
    ADD COLUMN tickets_by_weekday jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tickets_by_weekday) = 'object'),
    ADD COLUMN chats_by_weekday   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(chats_by_weekday) = 'object');

GRANT INSERT (chats_abandoned, chat_abandon_rate, abandoned_wait_seconds, abandoned_wait_p50_seconds,
              abandoned_wait_p90_seconds, abandoned_wait_histogram, tickets_by_hour, chats_by_hour,
              tickets_by_weekday, chats_by_weekday, agent_concurrent_load),
      UPDATE (chats_abandoned, chat_abandon_rate, abandoned_wait_seconds, abandoned_wait_p50_seconds,
              abandoned_wait_p90_seconds, abandoned_wait_histogram, tickets_by_hour, chats_by_hour,
              tickets_by_weekday, chats_by_weekday, agent_concurrent_load)
    ON public.support_analytics TO support_analytics_job;
GRANT INSERT (chats_abandoned, abandoned_wait_seconds, abandoned_wait_histogram, tickets_by_hour, chats_by_hour,
              tickets_by_weekday, chats_by_weekday),
      UPDATE (chats_abandoned, abandoned_wait_seconds, abandoned_wait_histogram, tickets_by_hour, chats_by_hour,
              tickets_by_weekday, chats_by_weekday)
    ON public.support_analytics_cumulative TO support_analytics_job;

-- Rows rolled up before this migration: the by-hour maps and the load need the raw rows (the next run, or a
-- backfill, fills them); the weekday maps and the zero abandonment are exact at once for the days that have them
-- (no session was recorded as ended by its visitor before now). The running totals carry the weekday maps too.
-- As the owner, whom FORCE filters: lifted for this transaction only (ALTER TABLE locks until commit).
ALTER TABLE public.support_analytics NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.support_analytics_cumulative NO FORCE ROW LEVEL SECURITY;
UPDATE public.support_analytics
SET tickets_by_weekday = CASE WHEN total_tickets_created > 0
        THEN jsonb_build_object(extract(isodow FROM analytics_date)::int::text, total_tickets_created) ELSE '{}' END,
    chats_by_weekday = CASE WHEN total_chats_started > 0
        THEN jsonb_build_object(extract(isodow FROM analytics_date)::int::text, total_chats_started) ELSE '{}' END,
    chat_abandon_rate = CASE WHEN total_chats_completed > 0 THEN 0 END
WHERE total_tickets_created > 0 OR total_chats_started > 0 OR total_chats_completed > 0;
-- (one pass per tenant: running sums by weekday in date order)
UPDATE public.support_analytics_cumulative c
SET tickets_by_weekday = jsonb_strip_nulls(jsonb_build_object(
        '1', nullif(t1, 0), '2', nullif(t2, 0), '3', nullif(t3, 0), '4', nullif(t4, 0),
        '5', nullif(t5, 0), '6', nullif(t6, 0), '7', nullif(t7, 0))),
    chats_by_weekday = jsonb_strip_nulls(jsonb_build_object(
        '1', nullif(c1, 0), '2', nullif(c2, 0), '3', nullif(c3, 0), '4', nullif(c4, 0),
        '5', nullif(c5, 0), '6', nullif(c6, 0), '7', nullif(c7, 0)))
FROM (
    SELECT d.user_id, d.analytics_date,
        sum(CASE WHEN dow = 1 THEN d.total_tickets_created ELSE 0 END) OVER w AS t1,
        sum(CASE WHEN dow = 2 THEN d.total_tickets_created ELSE 0 END) OVER w AS t2,
        sum(CASE WHEN dow = 3 THEN d.total_tickets_created ELSE 0 END) OVER w AS t3,
        sum(CASE WHEN dow = 4 THEN d.total_tickets_created ELSE 0 END) OVER w AS t4,
        sum(CASE WHEN dow = 5 THEN d.total_tickets_created ELSE 0 END) OVER w AS t5,
        sum(CASE WHEN dow = 6 THEN d.total_tickets_created ELSE 0 END) OVER w AS t6,
        sum(CASE WHEN dow = 7 THEN d.total_tickets_created ELSE 0 END) OVER w AS t7,
        sum(CASE WHEN dow = 1 THEN d.total_chats_started ELSE 0 END) OVER w AS c1,
        sum(CASE WHEN dow = 2 THEN d.total_chats_started ELSE 0 END) OVER w AS c2,
        sum(CASE WHEN dow = 3 THEN d.total_chats_started ELSE 0 END) OVER w AS c3,
        sum(CASE WHEN dow = 4 THEN d.total_chats_started ELSE 0 END) OVER w AS c4,
        sum(CASE WHEN dow = 5 THEN d.total_chats_started ELSE 0 END) OVER w AS c5,
        sum(CASE WHEN dow = 6 THEN d.total_chats_started ELSE 0 END) OVER w AS c6,
        sum(CASE WHEN dow = 7 THEN d.total_chats_started ELSE 0 END) OVER w AS c7
    FROM (SELECT x.*, extract(isodow FROM x.analytics_date)::int AS dow FROM public.support_analytics x) d
    WINDOW w AS (PARTITION BY d.user_id ORDER BY d.analytics_date)
) w
WHERE c.user_id = w.user_id AND c.analytics_date = w.analytics_date;
ALTER TABLE public.support_analytics FORCE ROW LEVEL SECURITY;
ALTER TABLE public.support_analytics_cumulative FORCE ROW LEVEL SECURITY;
-- ==== END issue 18 "an" block ====
