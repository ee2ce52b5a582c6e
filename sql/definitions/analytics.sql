-- The daily analytics rollup's database side (history: sql/0012): when a ticket was first answered, and which
-- tenants had activity in a range of days.
--
-- first_responded_at is kept by a trigger (not an index on an expression: its function would run as whoever
-- writes the ticket, and the runtime role may execute nothing but its own functions; a trigger's function needs
-- no EXECUTE of the writer). The API never writes it.
CREATE OR REPLACE FUNCTION public.set_first_responded_at() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    NEW.first_responded_at := NEW.created_at + make_interval(secs => NEW.first_response_time);
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER support_tickets_first_responded_at
    BEFORE INSERT OR UPDATE OF created_at, first_response_time, first_responded_at ON public.support_tickets
    FOR EACH ROW EXECUTE FUNCTION public.set_first_responded_at();

-- The distinct tenants with a ticket created, first answered or resolved, a chat started or ended, or feedback
-- given on a UTC day from from_day to to_day (both included). It returns ids only: no figures, no content.
-- The lister's function runs as support_analytics_lister, which owns it (sql/0012 says why). Replacing it takes
-- membership in its owner: granted to the schema owner for this transaction's statements only.
GRANT support_analytics_lister TO support_owner;
CREATE OR REPLACE FUNCTION public.analytics_tenants(from_day date, to_day date) RETURNS SETOF uuid
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
REVOKE support_analytics_lister FROM support_owner;

-- When a chat session got its current agent (sql/0035's assigned_at), for the agents' concurrent load: kept by a
-- trigger, so that every path that assigns a session (the queue's drain, a claim, a transfer, and any routing that
-- sets assigned_agent_id) records it without knowing of it. A session inserted with an agent got it as it started;
-- a change of agent records the clock; no agent, no time. A write that sets assigned_at itself keeps its value
-- (a bulk load or a test with chosen times).
CREATE OR REPLACE FUNCTION public.set_chat_assigned_at() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NEW.assigned_agent_id IS NULL THEN
        NEW.assigned_at := NULL;
    ELSIF TG_OP = 'INSERT' THEN
        NEW.assigned_at := coalesce(NEW.assigned_at, NEW.session_start_time);
    ELSIF NEW.assigned_agent_id IS DISTINCT FROM OLD.assigned_agent_id
          AND NEW.assigned_at IS NOT DISTINCT FROM OLD.assigned_at THEN
        NEW.assigned_at := greatest(clock_timestamp(), NEW.session_start_time);
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER live_chat_sessions_assigned_at
    BEFORE INSERT OR UPDATE OF assigned_agent_id, assigned_at ON public.live_chat_sessions
    FOR EACH ROW EXECUTE FUNCTION public.set_chat_assigned_at();
