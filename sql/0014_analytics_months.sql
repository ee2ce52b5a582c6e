-- A month level over the daily rollup (layers/support/support/services/analytics.py), so that a range summary
-- (GET /api/support/analytics/summary) adds up at most a dozen month rows and the days at its two ends, not every
-- day of a year: each day keeps three histograms of up to a hundred buckets, and merging 366 of them cost more
-- than the read's budget. A month row is the sum of that month's day rows (every figure of a day is additive:
-- a count, a sum, or a {key: count} map), recomputed from them by the job in the same transaction that writes the
-- days, so its cost is that of at most 31 rows, whatever the history. `days` says how many day rows it holds: a
-- summary uses a month row only when it holds every day of the month, else it reads that month's days.
CREATE TABLE public.support_analytics_months (
    user_id                uuid    NOT NULL,
    month                  date    NOT NULL CHECK (extract(day FROM month) = 1),
    days                   integer NOT NULL CHECK (days BETWEEN 0 AND 31),
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
    PRIMARY KEY (user_id, month)
);

-- Tenant isolation as on every tenant table (sql/0002).
ALTER TABLE public.support_analytics_months ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.support_analytics_months FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON public.support_analytics_months
    USING (user_id = current_setting('app.tenant_id')::uuid)
    WITH CHECK (user_id = current_setting('app.tenant_id')::uuid);

-- The API reads it; only the job writes it (SELECT as well: ON CONFLICT under row-level security needs it).
GRANT SELECT ON public.support_analytics_months TO support_app;
GRANT SELECT ON public.support_analytics_months TO support_analytics_job;
GRANT INSERT (user_id, month, days, total_tickets_created, total_tickets_resolved, total_chats_started,
              total_chats_completed, first_response_count, first_response_seconds, resolution_count,
              resolution_seconds, chat_duration_count, chat_duration_seconds, agent_response_count,
              agent_response_seconds, rating_count, rating_sum, tickets_by_status, tickets_by_priority,
              tickets_by_category, chats_by_agent, first_response_histogram, resolution_histogram,
              chat_duration_histogram)
    ON public.support_analytics_months TO support_analytics_job;
GRANT UPDATE (days, total_tickets_created, total_tickets_resolved, total_chats_started, total_chats_completed,
              first_response_count, first_response_seconds, resolution_count, resolution_seconds,
              chat_duration_count, chat_duration_seconds, agent_response_count, agent_response_seconds,
              rating_count, rating_sum, tickets_by_status, tickets_by_priority, tickets_by_category,
              chats_by_agent, first_response_histogram, resolution_histogram, chat_duration_histogram)
    ON public.support_analytics_months TO support_analytics_job;

-- Months of the days rolled up before this migration: once, as the owner (whom FORCE filters too, so lifted for
-- this transaction only; ALTER TABLE locks until commit). The job keeps them from now on.
ALTER TABLE public.support_analytics NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.support_analytics_months NO FORCE ROW LEVEL SECURITY;
INSERT INTO public.support_analytics_months
SELECT a.user_id, date_trunc('month', a.analytics_date)::date, count(*),
    sum(a.total_tickets_created), sum(a.total_tickets_resolved), sum(a.total_chats_started),
    sum(a.total_chats_completed), sum(a.first_response_count), sum(a.first_response_seconds),
    sum(a.resolution_count), sum(a.resolution_seconds), sum(a.chat_duration_count), sum(a.chat_duration_seconds),
    sum(a.agent_response_count), sum(a.agent_response_seconds), sum(a.rating_count), sum(a.rating_sum),
    '{}', '{}', '{}', '{}', '{}', '{}', '{}'
FROM public.support_analytics a GROUP BY 1, 2;
-- (the maps: merged per month from the days' objects)
UPDATE public.support_analytics_months m SET
    tickets_by_status = (SELECT coalesce(jsonb_object_agg(k, n), '{}') FROM (SELECT e.key AS k, sum(e.value::bigint) AS n
        FROM public.support_analytics a, jsonb_each_text(a.tickets_by_status) e
        WHERE a.user_id = m.user_id AND date_trunc('month', a.analytics_date)::date = m.month GROUP BY 1) x),
    tickets_by_priority = (SELECT coalesce(jsonb_object_agg(k, n), '{}') FROM (SELECT e.key AS k, sum(e.value::bigint) AS n
        FROM public.support_analytics a, jsonb_each_text(a.tickets_by_priority) e
        WHERE a.user_id = m.user_id AND date_trunc('month', a.analytics_date)::date = m.month GROUP BY 1) x),
    tickets_by_category = (SELECT coalesce(jsonb_object_agg(k, n), '{}') FROM (SELECT e.key AS k, sum(e.value::bigint) AS n
        FROM public.support_analytics a, jsonb_each_text(a.tickets_by_category) e
        WHERE a.user_id = m.user_id AND date_trunc('month', a.analytics_date)::date = m.month GROUP BY 1) x),
    chats_by_agent = (SELECT coalesce(jsonb_object_agg(k, n), '{}') FROM (SELECT e.key AS k, sum(e.value::bigint) AS n
        FROM public.support_analytics a, jsonb_each_text(a.chats_by_agent) e
        WHERE a.user_id = m.user_id AND date_trunc('month', a.analytics_date)::date = m.month GROUP BY 1) x),
    first_response_histogram = (SELECT coalesce(jsonb_object_agg(k, n), '{}') FROM (SELECT e.key AS k,
        sum(e.value::bigint) AS n FROM public.support_analytics a, jsonb_each_text(a.first_response_histogram) e
        WHERE a.user_id = m.user_id AND date_trunc('month', a.analytics_date)::date = m.month GROUP BY 1) x),
    resolution_histogram = (SELECT coalesce(jsonb_object_agg(k, n), '{}') FROM (SELECT e.key AS k,
        sum(e.value::bigint) AS n FROM public.support_analytics a, jsonb_each_text(a.resolution_histogram) e
        WHERE a.user_id = m.user_id AND date_trunc('month', a.analytics_date)::date = m.month GROUP BY 1) x),
    chat_duration_histogram = (SELECT coalesce(jsonb_object_agg(k, n), '{}') FROM (SELECT e.key AS k,
        sum(e.value::bigint) AS n FROM public.support_analytics a, jsonb_each_text(a.chat_duration_histogram) e
        WHERE a.user_id = m.user_id AND date_trunc('month', a.analytics_date)::date = m.month GROUP BY 1) x);
ALTER TABLE public.support_analytics FORCE ROW LEVEL SECURITY;
ALTER TABLE public.support_analytics_months FORCE ROW LEVEL SECURITY;
