-- The daily analytics rollup (layers/support/support/services/analytics.py, functions/analytics): its own
-- roles, the distributions it keeps per day, and the indexes that keep a day's work proportional to that day's
-- activity. Follows 0010's rules: PUBLIC has nothing, every grant is in sql/privileges.toml, and the one
-- SECURITY DEFINER function qualifies every name and pins its path: SET search_path = pg_catalog, public, pg_temp

-- 1. Roles. ----------------------------------------------------------------------------------------------------
-- support_analytics_job: what the scheduled function logs in as. Owns nothing, no BYPASSRLS, and reads and
-- writes one tenant at a time with app.tenant_id set, like the runtime role.
-- support_analytics_lister: NOLOGIN, nobody is a member of it but the owner (needed to hand it the function
-- below). It owns analytics_tenants() and nothing else, and may read only the ids and timestamps that say which
-- tenants had activity. Why a role of its own: the job has to learn which tenants to roll up before it can set
-- a tenant, and FORCE row-level security filters even the tables' owner, so a SECURITY DEFINER function owned
-- by support_owner would see no rows. A permissive policy for this role alone lets its function, and only its
-- function, see every tenant's rows of those columns; support_owner stays NOBYPASSRLS and FORCE stays on.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'support_analytics_job') THEN
        CREATE ROLE support_analytics_job LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'support_analytics_lister') THEN
        CREATE ROLE support_analytics_lister NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO support_analytics_job', current_database());
END
$$;
GRANT USAGE ON SCHEMA public TO support_analytics_job, support_analytics_lister;

-- 2. The distributions. ----------------------------------------------------------------------------------------
-- Per day, a histogram of first response times, resolution times and chat durations over FIXED logarithmic
-- buckets, so that days (and tenants) add up bucket by bucket and a percentile of any range can be read back:
--   bucket 0      holds 0 seconds;
--   bucket k >= 1 holds [1.1^(k-1), 1.1^k) seconds, i.e. k = 1 + floor(ln(v) / ln(1.1)) for v >= 1;
--   bucket 200    also holds everything longer (1.1^199 s is about 5.4 years).
-- A value read back as its bucket's geometric middle, 1.1^(k - 1/2), is within sqrt(1.1) - 1 = 4.9% of the true
-- value (bucket 0 reads back exactly). Stored sparse as a jsonb object {"k": count} (empty buckets left out).
-- The p50 and p90 beside them are exact, from the day's raw values: percentile_disc, a value that occurred.
ALTER TABLE public.support_analytics
    ADD COLUMN first_response_histogram jsonb NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(first_response_histogram) = 'object'),
    ADD COLUMN resolution_histogram     jsonb NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(resolution_histogram) = 'object'),
    ADD COLUMN chat_duration_histogram  jsonb NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(chat_duration_histogram) = 'object'),
    ADD COLUMN first_response_p50 integer CHECK (first_response_p50 >= 0),
    ADD COLUMN first_response_p90 integer CHECK (first_response_p90 >= 0),
    ADD COLUMN resolution_p50     integer CHECK (resolution_p50 >= 0),
    ADD COLUMN resolution_p90     integer CHECK (resolution_p90 >= 0),
    ADD COLUMN chat_duration_p50  integer CHECK (chat_duration_p50 >= 0),
    ADD COLUMN chat_duration_p90  integer CHECK (chat_duration_p90 >= 0);

-- 3. When a ticket was first answered. -------------------------------------------------------------------------
-- The ticket keeps first_response_time (seconds after created_at); the rollup counts a first response on the
-- day it happened, so that moment is kept too, by a trigger, and indexed. (Not an index on an expression: its
-- function would run as whoever writes the ticket, and the runtime role may execute nothing but its two
-- functions. A trigger's function needs no EXECUTE of the writer.) The API never writes it.
ALTER TABLE public.support_tickets ADD COLUMN first_responded_at timestamptz;

-- Existing tickets, once: as the owner, whom FORCE filters too, so lifted for this transaction only (ALTER TABLE
-- locks until commit), and without the user triggers (updated_at, totals, agent figures: nothing they keep changes).
ALTER TABLE public.support_tickets NO FORCE ROW LEVEL SECURITY, DISABLE TRIGGER USER;
UPDATE public.support_tickets SET first_responded_at = created_at + make_interval(secs => first_response_time)
WHERE first_response_time IS NOT NULL;
ALTER TABLE public.support_tickets FORCE ROW LEVEL SECURITY, ENABLE TRIGGER USER;

CREATE FUNCTION public.set_first_responded_at() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    NEW.first_responded_at := NEW.created_at + make_interval(secs => NEW.first_response_time);
    RETURN NEW;
END
$$;
CREATE TRIGGER support_tickets_first_responded_at
    BEFORE INSERT OR UPDATE OF created_at, first_response_time, first_responded_at ON public.support_tickets
    FOR EACH ROW EXECUTE FUNCTION public.set_first_responded_at();

-- 4. Indexes for the filters of one tenant's day (created_at already has one per table, feedback too, and
--    sessions by start time since 0007's live_chat_sessions_started_idx). ----------------------------------------
CREATE INDEX support_tickets_resolved_idx ON public.support_tickets (user_id, resolved_at)
    WHERE resolved_at IS NOT NULL;
CREATE INDEX support_tickets_first_response_idx ON public.support_tickets (user_id, first_responded_at)
    WHERE first_responded_at IS NOT NULL;
CREATE INDEX live_chat_sessions_end_idx ON public.live_chat_sessions (user_id, session_end_time)
    WHERE session_end_time IS NOT NULL;
-- For the lister, across tenants: by time first.
CREATE INDEX support_tickets_activity_created_idx ON public.support_tickets (created_at, user_id);
CREATE INDEX support_tickets_activity_resolved_idx ON public.support_tickets (resolved_at, user_id)
    WHERE resolved_at IS NOT NULL;
CREATE INDEX support_tickets_activity_first_response_idx ON public.support_tickets (first_responded_at, user_id)
    WHERE first_responded_at IS NOT NULL;
CREATE INDEX live_chat_sessions_activity_start_idx ON public.live_chat_sessions (session_start_time, user_id);
CREATE INDEX live_chat_sessions_activity_end_idx ON public.live_chat_sessions (session_end_time, user_id)
    WHERE session_end_time IS NOT NULL;
CREATE INDEX ticket_feedback_activity_idx ON public.ticket_feedback (created_at, user_id);

-- 5. Which tenants had activity in a range of UTC days. --------------------------------------------------------
CREATE POLICY analytics_tenants ON public.support_tickets FOR SELECT TO support_analytics_lister USING (true);
CREATE POLICY analytics_tenants ON public.live_chat_sessions FOR SELECT TO support_analytics_lister USING (true);
CREATE POLICY analytics_tenants ON public.ticket_feedback FOR SELECT TO support_analytics_lister USING (true);
GRANT SELECT (user_id, created_at, resolved_at, first_responded_at) ON public.support_tickets
    TO support_analytics_lister;
GRANT SELECT (user_id, session_start_time, session_end_time) ON public.live_chat_sessions TO support_analytics_lister;
GRANT SELECT (user_id, created_at) ON public.ticket_feedback TO support_analytics_lister;

-- The distinct tenants with a ticket created, first answered or resolved, a chat started or ended, or feedback
-- given on a UTC day from from_day to to_day (both included). It returns ids only: no figures, no content.
CREATE FUNCTION public.analytics_tenants(from_day date, to_day date) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH bounds AS (
        SELECT (from_day::timestamp AT TIME ZONE 'UTC') AS lo, ((to_day + 1)::timestamp AT TIME ZONE 'UTC') AS hi
    )
    SELECT t.user_id FROM public.support_tickets t, bounds b WHERE t.created_at >= b.lo AND t.created_at < b.hi
    UNION
    SELECT t.user_id FROM public.support_tickets t, bounds b
    WHERE t.resolved_at IS NOT NULL AND t.resolved_at >= b.lo AND t.resolved_at < b.hi
    UNION
    SELECT t.user_id FROM public.support_tickets t, bounds b
    WHERE t.first_responded_at IS NOT NULL AND t.first_responded_at >= b.lo AND t.first_responded_at < b.hi
    UNION
    SELECT s.user_id FROM public.live_chat_sessions s, bounds b
    WHERE s.session_start_time >= b.lo AND s.session_start_time < b.hi
    UNION
    SELECT s.user_id FROM public.live_chat_sessions s, bounds b
    WHERE s.session_end_time IS NOT NULL AND s.session_end_time >= b.lo AND s.session_end_time < b.hi
    UNION
    SELECT f.user_id FROM public.ticket_feedback f, bounds b WHERE f.created_at >= b.lo AND f.created_at < b.hi
$$;
-- Owned by the lister, so that it runs as the lister. ALTER ... OWNER TO asks that the new owner may create in
-- the schema and that the owner may become it: both granted for this statement only.
-- (The grants first: once the lister owns it, support_owner may no longer change them.)
REVOKE EXECUTE ON FUNCTION public.analytics_tenants(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.analytics_tenants(date, date) TO support_analytics_job;
GRANT support_analytics_lister TO support_owner;
GRANT CREATE ON SCHEMA public TO support_analytics_lister;
ALTER FUNCTION public.analytics_tenants(date, date) OWNER TO support_analytics_lister;
REVOKE CREATE ON SCHEMA public FROM support_analytics_lister;
REVOKE support_analytics_lister FROM support_owner;

-- 6. The job: reads the four source tables of a tenant's day, writes the rollup's columns. ---------------------
GRANT SELECT ON public.support_tickets, public.live_chat_sessions, public.chat_messages, public.ticket_feedback
    TO support_analytics_job;
-- INSERT ... ON CONFLICT DO UPDATE on a table with row-level security needs SELECT on the table (the existing
-- row it meets is checked against the SELECT policy): the job may read back the rows it writes, nothing else.
GRANT SELECT ON public.support_analytics TO support_analytics_job;
GRANT INSERT (user_id, analytics_date, total_tickets_created, total_tickets_resolved, total_chats_started,
              total_chats_completed, average_resolution_time, average_first_response_time, average_chat_duration,
              customer_satisfaction_score, agent_response_time, tickets_by_status, tickets_by_priority,
              tickets_by_category, chats_by_agent, first_response_histogram, resolution_histogram,
              chat_duration_histogram, first_response_p50, first_response_p90, resolution_p50, resolution_p90,
              chat_duration_p50, chat_duration_p90)
    ON public.support_analytics TO support_analytics_job;
GRANT UPDATE (total_tickets_created, total_tickets_resolved, total_chats_started, total_chats_completed,
              average_resolution_time, average_first_response_time, average_chat_duration,
              customer_satisfaction_score, agent_response_time, tickets_by_status, tickets_by_priority,
              tickets_by_category, chats_by_agent, first_response_histogram, resolution_histogram,
              chat_duration_histogram, first_response_p50, first_response_p90, resolution_p50, resolution_p90,
              chat_duration_p50, chat_duration_p90)
    ON public.support_analytics TO support_analytics_job;
