-- Running totals over the daily rollup, replacing the month level of sql/0014: a range summary
-- (GET /api/support/analytics/summary) of any length now reads two rows, the running totals at the range's last
-- stored day and at the last stored day before it, and subtracts them. The month level read a dozen month rows
-- plus the days at both ends (up to 60 more when a range starts mid-month), each with three histograms, and
-- merging those cost more than the read's 5 ms budget (bench/RESULTS.md).
--
-- A row (user_id, D) holds the sum of every day row of the tenant up to and including D: each figure of a day is
-- additive (a count, a sum of seconds, a {key: count} map), so the figures of the days in (A, B] are
-- cumulative(B) - cumulative(A). `days` counts the day rows summed, so a range whose count is short of its length
-- has a day not rolled up yet. The job writes these in the transaction that writes the days, recomputing from
-- the earliest day it wrote to the tenant's last (layers/support/support/services/analytics.py): a daily run
-- touches two rows, a year's backfill a year of them.
CREATE TABLE public.support_analytics_cumulative (
    user_id                uuid    NOT NULL,
    analytics_date         date    NOT NULL,
    days                   integer NOT NULL CHECK (days >= 1),
    total_tickets_created  bigint  NOT NULL DEFAULT 0,
    total_tickets_resolved bigint  NOT NULL DEFAULT 0,
    total_chats_started    bigint  NOT NULL DEFAULT 0,
    total_chats_completed  bigint  NOT NULL DEFAULT 0,
    first_response_count   bigint  NOT NULL DEFAULT 0,
    first_response_seconds bigint  NOT NULL DEFAULT 0,
    resolution_count       bigint  NOT NULL DEFAULT 0,
    resolution_seconds     bigint  NOT NULL DEFAULT 0,
    chat_duration_count    bigint  NOT NULL DEFAULT 0,
    chat_duration_seconds  bigint  NOT NULL DEFAULT 0,
    agent_response_count   bigint  NOT NULL DEFAULT 0,
    agent_response_seconds bigint  NOT NULL DEFAULT 0,
    rating_count           bigint  NOT NULL DEFAULT 0,
    rating_sum             bigint  NOT NULL DEFAULT 0,
    tickets_by_status        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tickets_by_status) = 'object'),
    tickets_by_priority      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tickets_by_priority) = 'object'),
    tickets_by_category      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tickets_by_category) = 'object'),
    chats_by_agent           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(chats_by_agent) = 'object'),
    first_response_histogram jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(first_response_histogram) = 'object'),
    resolution_histogram     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(resolution_histogram) = 'object'),
    chat_duration_histogram  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(chat_duration_histogram) = 'object'),
    PRIMARY KEY (user_id, analytics_date),
    -- a running total exists only at a stored day
    FOREIGN KEY (user_id, analytics_date) REFERENCES public.support_analytics (user_id, analytics_date)
);

-- Tenant isolation as on every tenant table (sql/0002).
ALTER TABLE public.support_analytics_cumulative ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.support_analytics_cumulative FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON public.support_analytics_cumulative
    USING (user_id = current_setting('app.tenant_id')::uuid)
    WITH CHECK (user_id = current_setting('app.tenant_id')::uuid);

-- The API reads it; only the job writes it (SELECT as well: ON CONFLICT under row-level security needs it).
GRANT SELECT ON public.support_analytics_cumulative TO support_app;
GRANT SELECT ON public.support_analytics_cumulative TO support_analytics_job;
GRANT INSERT (user_id, analytics_date, days, total_tickets_created, total_tickets_resolved, total_chats_started,
              total_chats_completed, first_response_count, first_response_seconds, resolution_count,
              resolution_seconds, chat_duration_count, chat_duration_seconds, agent_response_count,
              agent_response_seconds, rating_count, rating_sum, tickets_by_status, tickets_by_priority,
              tickets_by_category, chats_by_agent, first_response_histogram, resolution_histogram,
              chat_duration_histogram)
    ON public.support_analytics_cumulative TO support_analytics_job;
GRANT UPDATE (days, total_tickets_created, total_tickets_resolved, total_chats_started, total_chats_completed,
              first_response_count, first_response_seconds, resolution_count, resolution_seconds,
              chat_duration_count, chat_duration_seconds, agent_response_count, agent_response_seconds,
              rating_count, rating_sum, tickets_by_status, tickets_by_priority, tickets_by_category,
              chats_by_agent, first_response_histogram, resolution_histogram, chat_duration_histogram)
    ON public.support_analytics_cumulative TO support_analytics_job;

-- The running totals of the days rolled up before this migration: once, as the owner (whom FORCE filters too, so
-- lifted for this transaction only; ALTER TABLE locks until commit), walking each tenant's days in order and
-- carrying the maps along (so each day costs its own keys, not its history). The job keeps them from now on.
CREATE FUNCTION pg_temp.jsonb_add(a jsonb, b jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(k, n), '{}') FROM (
        SELECT e.key AS k, sum(e.value::bigint) AS n
        FROM (SELECT * FROM jsonb_each_text(a) UNION ALL SELECT * FROM jsonb_each_text(b)) e GROUP BY 1) x
$$;
ALTER TABLE public.support_analytics NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.support_analytics_cumulative NO FORCE ROW LEVEL SECURITY;
DO $$
DECLARE
    day public.support_analytics;
    run public.support_analytics_cumulative;
BEGIN
    FOR day IN SELECT * FROM public.support_analytics ORDER BY user_id, analytics_date LOOP
        IF run.user_id IS DISTINCT FROM day.user_id THEN
            run := ROW(day.user_id, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                       '{}', '{}', '{}', '{}', '{}', '{}', '{}');
        END IF;
        run.analytics_date := day.analytics_date;
        run.days := run.days + 1;
        run.total_tickets_created := run.total_tickets_created + day.total_tickets_created;
        run.total_tickets_resolved := run.total_tickets_resolved + day.total_tickets_resolved;
        run.total_chats_started := run.total_chats_started + day.total_chats_started;
        run.total_chats_completed := run.total_chats_completed + day.total_chats_completed;
        run.first_response_count := run.first_response_count + day.first_response_count;
        run.first_response_seconds := run.first_response_seconds + day.first_response_seconds;
        run.resolution_count := run.resolution_count + day.resolution_count;
        run.resolution_seconds := run.resolution_seconds + day.resolution_seconds;
        run.chat_duration_count := run.chat_duration_count + day.chat_duration_count;
        run.chat_duration_seconds := run.chat_duration_seconds + day.chat_duration_seconds;
        run.agent_response_count := run.agent_response_count + day.agent_response_count;
        run.agent_response_seconds := run.agent_response_seconds + day.agent_response_seconds;
        run.rating_count := run.rating_count + day.rating_count;
        run.rating_sum := run.rating_sum + day.rating_sum;
        run.tickets_by_status := pg_temp.jsonb_add(run.tickets_by_status, day.tickets_by_status);
        run.tickets_by_priority := pg_temp.jsonb_add(run.tickets_by_priority, day.tickets_by_priority);
        run.tickets_by_category := pg_temp.jsonb_add(run.tickets_by_category, day.tickets_by_category);
        run.chats_by_agent := pg_temp.jsonb_add(run.chats_by_agent, day.chats_by_agent);
        run.first_response_histogram := pg_temp.jsonb_add(run.first_response_histogram, day.first_response_histogram);
        run.resolution_histogram := pg_temp.jsonb_add(run.resolution_histogram, day.resolution_histogram);
        run.chat_duration_histogram := pg_temp.jsonb_add(run.chat_duration_histogram, day.chat_duration_histogram);
        INSERT INTO public.support_analytics_cumulative VALUES (run.*);
    END LOOP;
END
$$;
ALTER TABLE public.support_analytics FORCE ROW LEVEL SECURITY;
ALTER TABLE public.support_analytics_cumulative FORCE ROW LEVEL SECURITY;

-- The month level is read no more.
DROP TABLE public.support_analytics_months;
