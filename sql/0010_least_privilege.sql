-- Least privilege for the runtime role, and SECURITY DEFINER functions that cannot be made to run the
-- caller's code. Replaces what 0001-0009 granted and the bodies of their functions.
--
-- The hole this closes: a SECURITY DEFINER function runs as its owner (support_owner), and one whose search
-- path does not list the temporary schema looks in the session's temporary schema FIRST for the tables and
-- views it names without a schema. Every role could create temporary objects, so a support_app session could
-- plant a temporary table `ticket_search_index` with a trigger on it, insert a ticket, and have its trigger
-- run as the owner (who can grant anything and turn row-level security off). Three defences, each enough on
-- its own against that attack and each tested (tests/integration/test_privileges.py):
--   1. every SECURITY DEFINER function pins its path, the temporary schema last: SET search_path = pg_catalog, public, pg_temp
--      and schema-qualifies every relation and function it names;
--   2. PUBLIC has no TEMPORARY on the database: the runtime role cannot create temporary objects at all;
--   3. PUBLIC has no EXECUTE on this schema's functions, now and for every function created later.
--
-- And the runtime role gets exactly what the code uses (sql/privileges.toml is the allow-list, compared
-- with the catalog by a test): SELECT on the running totals only (their triggers now run as the owner),
-- column-level INSERT and UPDATE, DELETE only on canned responses, SELECT only on support_analytics, and
-- EXECUTE only on search_ticket_ids.

-- 1. Nothing for PUBLIC. -------------------------------------------------------------------------------

DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY, CONNECT ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO support_app', current_database());
END
$$;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
-- Global, not IN SCHEMA: per-schema default privileges can only add to the global ones, never revoke them.
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- 2. Search (0003): the same functions with the search path pinned and every name qualified. -------------

CREATE OR REPLACE FUNCTION public.index_ticket_for_search() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    INSERT INTO public.ticket_search_index (ticket_id, user_id, created_at, search_vector)
    VALUES (NEW.id, NEW.user_id, NEW.created_at,
            public.ticket_search_document(NEW.subject, NEW.description, NEW.customer_name, NEW.customer_email))
    ON CONFLICT (ticket_id) DO UPDATE SET search_vector = EXCLUDED.search_vector;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION public.search_ticket_ids(
    search        text,
    max_rows      integer,
    after_at      timestamptz DEFAULT NULL,
    after_id      uuid DEFAULT NULL,
    want_status   text DEFAULT NULL,
    want_priority text DEFAULT NULL,
    want_agent    uuid DEFAULT NULL,
    want_category text DEFAULT NULL
) RETURNS TABLE (ticket_id uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    tenant  constant uuid := current_setting('app.tenant_id')::uuid;  -- fails closed, like the policies
    query   constant tsquery := public.ticket_search_query(search);
    window_rows constant integer := 5000;
    unfiltered constant boolean :=
        want_status IS NULL AND want_priority IS NULL AND want_agent IS NULL AND want_category IS NULL;
    hits    integer;
    edge_at timestamptz;
    edge_id uuid;
BEGIN
    IF query IS NULL OR max_rows < 1 THEN
        RETURN;
    END IF;

    -- 1. The newest rows, along the index: a common term fills the page here, in bounded work.
    RETURN QUERY
        SELECT r.ticket_id
        FROM (SELECT i.ticket_id, i.created_at, i.search_vector
              FROM public.ticket_search_index i
              WHERE i.user_id = tenant
                AND (after_at IS NULL OR (i.created_at, i.ticket_id) < (after_at, after_id))
              ORDER BY i.created_at DESC, i.ticket_id DESC
              LIMIT window_rows) r
        WHERE r.search_vector @@ query
          AND (unfiltered OR EXISTS (
                SELECT FROM public.support_tickets t
                WHERE t.user_id = tenant AND t.id = r.ticket_id
                  AND (want_status IS NULL OR t.status = want_status)
                  AND (want_priority IS NULL OR t.priority = want_priority)
                  AND (want_agent IS NULL OR t.assigned_agent_id = want_agent)
                  AND (want_category IS NULL OR t.category = want_category)))
        ORDER BY r.created_at DESC, r.ticket_id DESC
        LIMIT max_rows;
    GET DIAGNOSTICS hits = ROW_COUNT;
    IF hits >= max_rows THEN
        RETURN;
    END IF;

    SELECT i.created_at, i.ticket_id INTO edge_at, edge_id
    FROM public.ticket_search_index i
    WHERE i.user_id = tenant AND (after_at IS NULL OR (i.created_at, i.ticket_id) < (after_at, after_id))
    ORDER BY i.created_at DESC, i.ticket_id DESC
    OFFSET window_rows - 1 LIMIT 1;
    IF edge_at IS NULL THEN
        RETURN;
    END IF;

    -- 2. A rarer term: the older matches from the GIN index (OFFSET 0 keeps the planner from walking the
    --    list index instead).
    RETURN QUERY
        SELECT m.ticket_id
        FROM (SELECT i.ticket_id, i.created_at
              FROM public.ticket_search_index i
              WHERE i.search_vector @@ query
                AND i.user_id = tenant
                AND (i.created_at, i.ticket_id) < (edge_at, edge_id)
              OFFSET 0) m
        WHERE (unfiltered OR EXISTS (
              SELECT FROM public.support_tickets t
              WHERE t.user_id = tenant AND t.id = m.ticket_id
                AND (want_status IS NULL OR t.status = want_status)
                AND (want_priority IS NULL OR t.priority = want_priority)
                AND (want_agent IS NULL OR t.assigned_agent_id = want_agent)
                AND (want_category IS NULL OR t.category = want_category)))
        ORDER BY m.created_at DESC, m.ticket_id DESC
        LIMIT max_rows - hits;
END
$$;

-- 3. Running totals (0007, 0008): one upsert per totals table instead of nine copies, zero rows deleted, --
--    and the triggers run as the owner so that the runtime role needs no write access to the totals.
--
-- A row's contribution is a row of the totals table itself (sign 1 adds, -1 takes away). Each trigger
-- turns what its statement changed into contributions; the upsert sums them per group, applies them in key
-- order (so two statements moving rows in opposite directions lock the same rows in the same order), and
-- deletes the groups that fall to zero, so a category nobody uses any more leaves the dashboard.

CREATE FUNCTION public.ticket_totals_contribution(sign integer, t public.support_tickets)
RETURNS public.ticket_totals
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, public, pg_temp
RETURN ROW(t.user_id, t.status, t.priority, t.category, sign,
           sign * coalesce(t.resolution_time, 0), sign * (t.resolution_time IS NOT NULL)::integer,
           sign * coalesce(t.first_response_time, 0), sign * (t.first_response_time IS NOT NULL)::integer
          )::public.ticket_totals;

CREATE FUNCTION public.add_to_ticket_totals(deltas public.ticket_totals[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    INSERT INTO public.ticket_totals AS t (user_id, status, priority, category, tickets, resolution_seconds,
                                           resolution_count, first_response_seconds, first_response_count)
    SELECT d.user_id, d.status, d.priority, d.category, sum(d.tickets), sum(d.resolution_seconds),
           sum(d.resolution_count), sum(d.first_response_seconds), sum(d.first_response_count)
    FROM unnest(deltas) d
    GROUP BY d.user_id, d.status, d.priority, d.category
    HAVING (sum(d.tickets), sum(d.resolution_seconds), sum(d.resolution_count), sum(d.first_response_seconds),
            sum(d.first_response_count)) <> (0, 0, 0, 0, 0)
    ORDER BY d.user_id, d.status, d.priority, d.category
    ON CONFLICT (user_id, status, priority, category) DO UPDATE SET
        tickets = t.tickets + excluded.tickets,
        resolution_seconds = t.resolution_seconds + excluded.resolution_seconds,
        resolution_count = t.resolution_count + excluded.resolution_count,
        first_response_seconds = t.first_response_seconds + excluded.first_response_seconds,
        first_response_count = t.first_response_count + excluded.first_response_count;
    DELETE FROM public.ticket_totals t
    USING (SELECT DISTINCT d.user_id, d.status, d.priority, d.category FROM unnest(deltas) d) g
    WHERE t.user_id = g.user_id AND t.status = g.status AND t.priority = g.priority
      AND t.category IS NOT DISTINCT FROM g.category
      AND (t.tickets, t.resolution_seconds, t.resolution_count, t.first_response_seconds, t.first_response_count)
          = (0, 0, 0, 0, 0);
END
$$;

CREATE OR REPLACE FUNCTION public.add_ticket_totals() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM public.add_to_ticket_totals(ARRAY(
            SELECT public.ticket_totals_contribution(1, n) FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM public.add_to_ticket_totals(ARRAY(
            SELECT public.ticket_totals_contribution(-1, o) FROM old_rows o));
    ELSE
        -- Only rows whose contribution changed (not a subject edit, say): they leave one group for another.
        PERFORM public.add_to_ticket_totals(ARRAY(
            SELECT c
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            CROSS JOIN LATERAL (VALUES (public.ticket_totals_contribution(-1, o)),
                                       (public.ticket_totals_contribution(1, n))) AS v(c)
            WHERE public.ticket_totals_contribution(1, n) IS DISTINCT FROM public.ticket_totals_contribution(1, o)));
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION public.chat_totals_contribution(sign integer, s public.live_chat_sessions)
RETURNS public.chat_totals
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, public, pg_temp
RETURN ROW(s.user_id, s.status, sign, sign * coalesce(s.duration, 0), sign * (s.duration IS NOT NULL)::integer
          )::public.chat_totals;

CREATE FUNCTION public.add_to_chat_totals(deltas public.chat_totals[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    INSERT INTO public.chat_totals AS t (user_id, status, sessions, duration_seconds, duration_count)
    SELECT d.user_id, d.status, sum(d.sessions), sum(d.duration_seconds), sum(d.duration_count)
    FROM unnest(deltas) d
    GROUP BY d.user_id, d.status
    HAVING (sum(d.sessions), sum(d.duration_seconds), sum(d.duration_count)) <> (0, 0, 0)
    ORDER BY d.user_id, d.status
    ON CONFLICT (user_id, status) DO UPDATE SET
        sessions = t.sessions + excluded.sessions,
        duration_seconds = t.duration_seconds + excluded.duration_seconds,
        duration_count = t.duration_count + excluded.duration_count;
    DELETE FROM public.chat_totals t
    USING (SELECT DISTINCT d.user_id, d.status FROM unnest(deltas) d) g
    WHERE t.user_id = g.user_id AND t.status = g.status
      AND (t.sessions, t.duration_seconds, t.duration_count) = (0, 0, 0);
END
$$;

CREATE OR REPLACE FUNCTION public.add_chat_totals() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM public.add_to_chat_totals(ARRAY(SELECT public.chat_totals_contribution(1, n) FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM public.add_to_chat_totals(ARRAY(SELECT public.chat_totals_contribution(-1, o) FROM old_rows o));
    ELSE
        -- A message posted only moves the session's counters: no contribution changes, nothing is locked.
        PERFORM public.add_to_chat_totals(ARRAY(
            SELECT c
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            CROSS JOIN LATERAL (VALUES (public.chat_totals_contribution(-1, o)),
                                       (public.chat_totals_contribution(1, n))) AS v(c)
            WHERE public.chat_totals_contribution(1, n) IS DISTINCT FROM public.chat_totals_contribution(1, o)));
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION public.feedback_totals_contribution(sign integer, f public.ticket_feedback)
RETURNS public.feedback_totals
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, public, pg_temp
RETURN ROW(f.user_id, sign, sign * f.rating)::public.feedback_totals;

CREATE FUNCTION public.add_to_feedback_totals(deltas public.feedback_totals[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    INSERT INTO public.feedback_totals AS t (user_id, ratings, rating_sum)
    SELECT d.user_id, sum(d.ratings), sum(d.rating_sum)
    FROM unnest(deltas) d
    GROUP BY d.user_id
    HAVING (sum(d.ratings), sum(d.rating_sum)) <> (0, 0)
    ORDER BY d.user_id
    ON CONFLICT (user_id) DO UPDATE SET
        ratings = t.ratings + excluded.ratings,
        rating_sum = t.rating_sum + excluded.rating_sum;
    DELETE FROM public.feedback_totals t
    USING (SELECT DISTINCT d.user_id FROM unnest(deltas) d) g
    WHERE t.user_id = g.user_id AND (t.ratings, t.rating_sum) = (0, 0);
END
$$;

CREATE OR REPLACE FUNCTION public.add_feedback_totals() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM public.add_to_feedback_totals(ARRAY(
            SELECT public.feedback_totals_contribution(1, n) FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM public.add_to_feedback_totals(ARRAY(
            SELECT public.feedback_totals_contribution(-1, o) FROM old_rows o));
    ELSE
        PERFORM public.add_to_feedback_totals(ARRAY(
            SELECT c
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            CROSS JOIN LATERAL (VALUES (public.feedback_totals_contribution(-1, o)),
                                       (public.feedback_totals_contribution(1, n))) AS v(c)
            WHERE public.feedback_totals_contribution(1, n)
                  IS DISTINCT FROM public.feedback_totals_contribution(1, o)));
    END IF;
    RETURN NULL;
END
$$;

-- 4. Agent figures (0009): run as the owner, names qualified, agents locked FOR NO KEY UPDATE (see below), --
--    and the feedback trigger locks the tickets
--    before it reads their agent. Without that lock, a reassignment committed by a statement that did not
--    lock the ticket first (a plain UPDATE) while feedback was being added was missed: the feedback's
--    trigger read the ticket's old agent from its snapshot and credited the rating to them, while the
--    reassignment's trigger, whose snapshot did not see the feedback yet, moved nothing. FOR SHARE waits for
--    such a writer and then reads the ticket as committed.

CREATE OR REPLACE FUNCTION public.ticket_contribution(sign integer, agent uuid, status text, resolution_time integer,
                                                      first_response_time integer, agent_rating smallint)
RETURNS public.agent_figures_delta
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT ROW(
        agent,
        sign * (status IN ('resolved', 'closed'))::integer,
        sign * CASE WHEN status IN ('resolved', 'closed') THEN coalesce(resolution_time, 0) ELSE 0 END,
        sign * (status IN ('resolved', 'closed') AND resolution_time IS NOT NULL)::integer,
        sign * coalesce(first_response_time, 0),
        sign * (first_response_time IS NOT NULL)::integer,
        sign * coalesce(agent_rating, 0),
        sign * (agent_rating IS NOT NULL)::integer
    )::public.agent_figures_delta
$$;

CREATE OR REPLACE FUNCTION public.add_agent_figures(deltas public.agent_figures_delta[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    -- FOR NO KEY UPDATE, not FOR UPDATE: a ticket's foreign key check holds FOR KEY SHARE on its new agent
    -- before this trigger runs, and FOR UPDATE waits for that, so two reassignments in opposite directions
    -- (A to B, B to A) each held one agent and waited for the other. The figures are not key columns.
    PERFORM 1 FROM public.support_agents
    WHERE id IN (SELECT d.agent_id FROM unnest(deltas) d) ORDER BY id FOR NO KEY UPDATE;
    UPDATE public.support_agents a
    SET total_tickets_resolved = a.total_tickets_resolved + d.resolved,
        resolution_seconds = a.resolution_seconds + d.resolution_seconds,
        resolution_count = a.resolution_count + d.resolution_count,
        first_response_seconds = a.first_response_seconds + d.first_response_seconds,
        first_response_count = a.first_response_count + d.first_response_count,
        rating_sum = a.rating_sum + d.rating_sum,
        rating_count = a.rating_count + d.rating_count,
        average_resolution_time = round((a.resolution_seconds + d.resolution_seconds)::numeric
                                        / nullif(a.resolution_count + d.resolution_count, 0))::integer,
        response_time_average = round((a.first_response_seconds + d.first_response_seconds)::numeric
                                      / nullif(a.first_response_count + d.first_response_count, 0))::integer,
        average_rating = round((a.rating_sum + d.rating_sum)::numeric
                               / nullif(a.rating_count + d.rating_count, 0), 2)
    FROM (SELECT agent_id, sum(resolved) AS resolved, sum(resolution_seconds) AS resolution_seconds,
                 sum(resolution_count) AS resolution_count, sum(first_response_seconds) AS first_response_seconds,
                 sum(first_response_count) AS first_response_count, sum(rating_sum) AS rating_sum,
                 sum(rating_count) AS rating_count
          FROM unnest(deltas) WHERE agent_id IS NOT NULL GROUP BY agent_id) d
    WHERE a.id = d.agent_id
      AND (d.resolved, d.resolution_seconds, d.resolution_count, d.first_response_seconds,
           d.first_response_count, d.rating_sum, d.rating_count) IS DISTINCT FROM (0, 0, 0, 0, 0, 0, 0);
END
$$;

CREATE OR REPLACE FUNCTION public.refresh_agent_metrics(agent_ids uuid[]) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT id FROM public.support_agents WHERE id = ANY (agent_ids) ORDER BY id FOR NO KEY UPDATE;
    UPDATE public.support_agents a
    SET total_tickets_resolved = 0, resolution_seconds = 0, resolution_count = 0, first_response_seconds = 0,
        first_response_count = 0, rating_sum = 0, rating_count = 0, average_resolution_time = NULL,
        response_time_average = NULL, average_rating = NULL
    WHERE a.id = ANY (agent_ids);
    SELECT public.add_agent_figures(ARRAY(
        SELECT public.ticket_contribution(1, t.assigned_agent_id, t.status, t.resolution_time,
                                          t.first_response_time, f.agent_rating)
        FROM public.support_tickets t
        LEFT JOIN public.ticket_feedback f ON f.user_id = t.user_id AND f.ticket_id = t.id
        WHERE t.assigned_agent_id = ANY (agent_ids)));
$$;

CREATE OR REPLACE FUNCTION public.add_agent_figures_for_tickets() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM public.add_agent_figures(ARRAY(
            SELECT public.ticket_contribution(1, n.assigned_agent_id, n.status, n.resolution_time,
                                              n.first_response_time, NULL)
            FROM new_rows n WHERE n.assigned_agent_id IS NOT NULL));
    ELSIF TG_OP = 'UPDATE' THEN
        -- Only rows whose figures could move; their feedback (unchanged here) moves with them.
        PERFORM public.add_agent_figures(ARRAY(
            SELECT c
            FROM old_rows o
            JOIN new_rows n ON n.id = o.id
            LEFT JOIN public.ticket_feedback f ON f.user_id = n.user_id AND f.ticket_id = n.id
            CROSS JOIN LATERAL (VALUES
                (public.ticket_contribution(-1, o.assigned_agent_id, o.status, o.resolution_time,
                                            o.first_response_time, f.agent_rating)),
                (public.ticket_contribution(1, n.assigned_agent_id, n.status, n.resolution_time,
                                            n.first_response_time, f.agent_rating))) AS v(c)
            WHERE (n.assigned_agent_id, n.status, n.resolution_time, n.first_response_time)
                  IS DISTINCT FROM (o.assigned_agent_id, o.status, o.resolution_time, o.first_response_time)
              AND (c).agent_id IS NOT NULL));
    ELSE
        PERFORM public.refresh_agent_metrics(ARRAY(
            SELECT DISTINCT o.assigned_agent_id FROM old_rows o WHERE o.assigned_agent_id IS NOT NULL));
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION public.add_agent_figures_for_feedback() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    -- Lock the tickets first (in id order), so that the agent read below is the committed one.
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM 1 FROM public.support_tickets t
        WHERE (t.user_id, t.id) IN (SELECT o.user_id, o.ticket_id FROM old_rows o) ORDER BY t.id FOR SHARE;
    ELSE
        PERFORM 1 FROM public.support_tickets t
        WHERE (t.user_id, t.id) IN (SELECT n.user_id, n.ticket_id FROM new_rows n) ORDER BY t.id FOR SHARE;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM public.add_agent_figures(ARRAY(
            SELECT ROW(t.assigned_agent_id, 0, 0, 0, 0, 0, -o.agent_rating, -1)::public.agent_figures_delta
            FROM old_rows o JOIN public.support_tickets t ON t.user_id = o.user_id AND t.id = o.ticket_id
            WHERE t.assigned_agent_id IS NOT NULL AND o.agent_rating IS NOT NULL));
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM public.add_agent_figures(ARRAY(
            SELECT ROW(t.assigned_agent_id, 0, 0, 0, 0, 0, n.agent_rating, 1)::public.agent_figures_delta
            FROM new_rows n JOIN public.support_tickets t ON t.user_id = n.user_id AND t.id = n.ticket_id
            WHERE t.assigned_agent_id IS NOT NULL AND n.agent_rating IS NOT NULL));
    END IF;
    RETURN NULL;
END
$$;

-- 5. The recount: every running total and agent figure of one tenant recomputed from the rows. --------------
--
-- Returns one row per difference (what is stored, what the rows say; null where a row is missing on one
-- side). With repair => true it also rewrites the stored figures from the recount. Run it as the owner:
-- `make verify-totals` locally (and the bench's check). It binds the tenant itself (transaction-local, as
-- the policies expect).
-- * To report, run it in a REPEATABLE READ transaction: one snapshot, in which every writer's change and
--   its totals are either both visible or both not.
-- * To repair, run it in a READ COMMITTED transaction (it refuses otherwise): it first locks the totals
--   tables and the agents against writes (EXCLUSIVE: reads go on), so that each recount below sees every
--   committed change and no writer adds a delta in between. Writers wait for the lock, milliseconds per
--   tenant.

CREATE FUNCTION public.recount_tenant_figures(tenant uuid, repair boolean DEFAULT false)
RETURNS TABLE (figure text, key text, stored text, recounted text)
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF repair AND current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'recount_tenant_figures: repair runs in a READ COMMITTED transaction'
            USING HINT = 'it locks the totals first and must then see every committed change';
    END IF;
    PERFORM set_config('app.tenant_id', tenant::text, true);
    IF repair THEN
        LOCK TABLE public.ticket_totals, public.chat_totals, public.feedback_totals, public.support_agents
            IN EXCLUSIVE MODE;
    END IF;

    RETURN QUERY
    WITH kept AS (
        SELECT t.status, t.priority, t.category, t.tickets, t.resolution_seconds, t.resolution_count,
               t.first_response_seconds, t.first_response_count
        FROM public.ticket_totals t WHERE t.user_id = tenant
    ), counted AS (
        SELECT t.status, t.priority, t.category, count(*) AS tickets,
               coalesce(sum(t.resolution_time), 0) AS resolution_seconds, count(t.resolution_time) AS resolution_count,
               coalesce(sum(t.first_response_time), 0) AS first_response_seconds,
               count(t.first_response_time) AS first_response_count
        FROM public.support_tickets t WHERE t.user_id = tenant
        GROUP BY t.status, t.priority, t.category
    )
    SELECT 'ticket_totals',
           concat_ws('/', coalesce(k.status, c.status), coalesce(k.priority, c.priority),
                     coalesce(k.category, c.category, '(no category)')),
           CASE WHEN k.status IS NOT NULL THEN ROW(k.tickets, k.resolution_seconds, k.resolution_count,
                                                   k.first_response_seconds, k.first_response_count)::text END,
           CASE WHEN c.status IS NOT NULL THEN ROW(c.tickets, c.resolution_seconds, c.resolution_count,
                                                   c.first_response_seconds, c.first_response_count)::text END
    FROM kept k
    FULL JOIN counted c
        ON c.status = k.status AND c.priority = k.priority
       AND (c.category IS NULL) = (k.category IS NULL) AND coalesce(c.category, '') = coalesce(k.category, '')
    WHERE (k.tickets, k.resolution_seconds, k.resolution_count, k.first_response_seconds, k.first_response_count)
          IS DISTINCT FROM
          (c.tickets, c.resolution_seconds, c.resolution_count, c.first_response_seconds, c.first_response_count);

    RETURN QUERY
    WITH kept AS (
        SELECT t.status, t.sessions, t.duration_seconds, t.duration_count
        FROM public.chat_totals t WHERE t.user_id = tenant
    ), counted AS (
        SELECT s.status, count(*) AS sessions, coalesce(sum(s.duration), 0) AS duration_seconds,
               count(s.duration) AS duration_count
        FROM public.live_chat_sessions s WHERE s.user_id = tenant GROUP BY s.status
    )
    SELECT 'chat_totals', coalesce(k.status, c.status),
           CASE WHEN k.status IS NOT NULL THEN ROW(k.sessions, k.duration_seconds, k.duration_count)::text END,
           CASE WHEN c.status IS NOT NULL THEN ROW(c.sessions, c.duration_seconds, c.duration_count)::text END
    FROM kept k FULL JOIN counted c ON c.status = k.status
    WHERE (k.sessions, k.duration_seconds, k.duration_count)
          IS DISTINCT FROM (c.sessions, c.duration_seconds, c.duration_count);

    RETURN QUERY
    WITH kept AS (
        SELECT t.ratings, t.rating_sum FROM public.feedback_totals t WHERE t.user_id = tenant
    ), counted AS (
        SELECT count(*) AS ratings, sum(f.rating) AS rating_sum
        FROM public.ticket_feedback f WHERE f.user_id = tenant HAVING count(*) > 0
    )
    SELECT 'feedback_totals', tenant::text,
           (SELECT ROW(k.ratings, k.rating_sum)::text FROM kept k),
           (SELECT ROW(c.ratings, c.rating_sum)::text FROM counted c)
    WHERE (SELECT ROW(k.ratings, k.rating_sum) FROM kept k) IS DISTINCT FROM
          (SELECT ROW(c.ratings, c.rating_sum) FROM counted c);

    RETURN QUERY
    WITH counted AS (
        SELECT a.id, x.*,
               round(x.resolution_seconds::numeric / nullif(x.resolution_count, 0))::integer AS resolution_mean,
               round(x.first_response_seconds::numeric / nullif(x.first_response_count, 0))::integer
                   AS first_response_mean,
               round(x.rating_sum::numeric / nullif(x.rating_count, 0), 2) AS rating_mean,
               (SELECT count(*) FROM public.live_chat_sessions s
                WHERE s.user_id = a.user_id AND s.assigned_agent_id = a.id AND s.status <> 'closed')::integer
                   AS chats
        FROM public.support_agents a
        CROSS JOIN LATERAL (
            SELECT (count(*) FILTER (WHERE t.status IN ('resolved', 'closed')))::integer AS resolved,
                   coalesce(sum(t.resolution_time) FILTER (WHERE t.status IN ('resolved', 'closed')), 0)::bigint
                       AS resolution_seconds,
                   (count(t.resolution_time) FILTER (WHERE t.status IN ('resolved', 'closed')))::integer
                       AS resolution_count,
                   coalesce(sum(t.first_response_time), 0)::bigint AS first_response_seconds,
                   count(t.first_response_time)::integer AS first_response_count,
                   coalesce(sum(f.agent_rating), 0)::integer AS rating_sum,
                   count(f.agent_rating)::integer AS rating_count
            FROM public.support_tickets t
            LEFT JOIN public.ticket_feedback f ON f.user_id = t.user_id AND f.ticket_id = t.id
            WHERE t.user_id = a.user_id AND t.assigned_agent_id = a.id) x
        WHERE a.user_id = tenant
    )
    SELECT 'support_agents', a.id::text,
           ROW(a.total_tickets_resolved, a.resolution_seconds, a.resolution_count, a.first_response_seconds,
               a.first_response_count, a.rating_sum, a.rating_count, a.average_resolution_time,
               a.response_time_average, a.average_rating, a.current_chats)::text,
           ROW(c.resolved, c.resolution_seconds, c.resolution_count, c.first_response_seconds,
               c.first_response_count, c.rating_sum, c.rating_count, c.resolution_mean, c.first_response_mean,
               c.rating_mean, c.chats)::text
    FROM public.support_agents a JOIN counted c ON c.id = a.id
    WHERE (a.total_tickets_resolved, a.resolution_seconds, a.resolution_count, a.first_response_seconds,
           a.first_response_count, a.rating_sum, a.rating_count, a.average_resolution_time,
           a.response_time_average, a.average_rating, a.current_chats)
          IS DISTINCT FROM
          (c.resolved, c.resolution_seconds, c.resolution_count, c.first_response_seconds, c.first_response_count,
           c.rating_sum, c.rating_count, c.resolution_mean, c.first_response_mean, c.rating_mean, c.chats);

    IF NOT repair THEN
        RETURN;
    END IF;

    DELETE FROM public.ticket_totals t WHERE t.user_id = tenant;
    INSERT INTO public.ticket_totals (user_id, status, priority, category, tickets, resolution_seconds,
                                      resolution_count, first_response_seconds, first_response_count)
    SELECT tenant, t.status, t.priority, t.category, count(*), coalesce(sum(t.resolution_time), 0),
           count(t.resolution_time), coalesce(sum(t.first_response_time), 0), count(t.first_response_time)
    FROM public.support_tickets t WHERE t.user_id = tenant
    GROUP BY t.status, t.priority, t.category;

    DELETE FROM public.chat_totals t WHERE t.user_id = tenant;
    INSERT INTO public.chat_totals (user_id, status, sessions, duration_seconds, duration_count)
    SELECT tenant, s.status, count(*), coalesce(sum(s.duration), 0), count(s.duration)
    FROM public.live_chat_sessions s WHERE s.user_id = tenant GROUP BY s.status;

    DELETE FROM public.feedback_totals t WHERE t.user_id = tenant;
    INSERT INTO public.feedback_totals (user_id, ratings, rating_sum)
    SELECT tenant, count(*), sum(f.rating) FROM public.ticket_feedback f WHERE f.user_id = tenant
    HAVING count(*) > 0;

    PERFORM public.refresh_agent_metrics(ARRAY(SELECT a.id FROM public.support_agents a WHERE a.user_id = tenant));
    UPDATE public.support_agents a
    SET current_chats = c.chats
    FROM (SELECT ag.id, (SELECT count(*) FROM public.live_chat_sessions s
                         WHERE s.user_id = ag.user_id AND s.assigned_agent_id = ag.id AND s.status <> 'closed')::integer
                            AS chats
          FROM public.support_agents ag WHERE ag.user_id = tenant) c
    WHERE a.id = c.id AND a.current_chats <> c.chats;
END
$$;

-- Every tenant's figures repaired once now: the zero rows 0007/0008 left behind go, and any drift with them.
-- The owner is subject to the forced policies, which hide every row without a tenant: lift them for this
-- transaction only to list the tenants (ALTER TABLE locks until commit, so nobody else sees the gap).
DO $$
DECLARE
    t uuid;
BEGIN
    ALTER TABLE public.support_tickets NO FORCE ROW LEVEL SECURITY;
    ALTER TABLE public.support_agents NO FORCE ROW LEVEL SECURITY;
    ALTER TABLE public.live_chat_sessions NO FORCE ROW LEVEL SECURITY;
    ALTER TABLE public.ticket_feedback NO FORCE ROW LEVEL SECURITY;
    ALTER TABLE public.ticket_totals NO FORCE ROW LEVEL SECURITY;
    ALTER TABLE public.chat_totals NO FORCE ROW LEVEL SECURITY;
    ALTER TABLE public.feedback_totals NO FORCE ROW LEVEL SECURITY;
    FOR t IN
        SELECT user_id FROM public.support_tickets UNION SELECT user_id FROM public.support_agents
        UNION SELECT user_id FROM public.live_chat_sessions UNION SELECT user_id FROM public.ticket_feedback
        UNION SELECT user_id FROM public.ticket_totals UNION SELECT user_id FROM public.chat_totals
        UNION SELECT user_id FROM public.feedback_totals
    LOOP
        PERFORM public.recount_tenant_figures(t, repair => true);
    END LOOP;
    ALTER TABLE public.support_tickets FORCE ROW LEVEL SECURITY;
    ALTER TABLE public.support_agents FORCE ROW LEVEL SECURITY;
    ALTER TABLE public.live_chat_sessions FORCE ROW LEVEL SECURITY;
    ALTER TABLE public.ticket_feedback FORCE ROW LEVEL SECURITY;
    ALTER TABLE public.ticket_totals FORCE ROW LEVEL SECURITY;
    ALTER TABLE public.chat_totals FORCE ROW LEVEL SECURITY;
    ALTER TABLE public.feedback_totals FORCE ROW LEVEL SECURITY;
END
$$;

-- No CHECK (tickets >= 0) on the totals: INSERT ... ON CONFLICT checks the proposed row, which carries the
-- negative delta of a ticket leaving its group, before it finds the conflict. Drift is found by the recount.

-- 6. The runtime role: exactly what the code uses (sql/privileges.toml). ----------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM support_app;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM support_app;

GRANT SELECT ON public.support_tickets, public.ticket_conversations, public.support_agents,
    public.live_chat_sessions, public.chat_messages, public.canned_responses, public.support_analytics,
    public.ticket_feedback, public.ticket_totals, public.chat_totals, public.feedback_totals
    TO support_app;

GRANT INSERT (user_id, customer_name, customer_email, customer_phone, subject, description, category, priority,
              custom_fields)
    ON public.support_tickets TO support_app;
GRANT UPDATE (status, priority, assigned_agent_id, category, custom_fields, resolved_at, resolution_time,
              first_response_time)
    ON public.support_tickets TO support_app;

GRANT INSERT (user_id, ticket_id, sender_type, sender_name, sender_email, message, is_internal, attachments,
              created_at, updated_at)
    ON public.ticket_conversations TO support_app;

GRANT INSERT (user_id, agent_name, agent_email, department, skills, status, max_concurrent_chats)
    ON public.support_agents TO support_app;
GRANT UPDATE (agent_name, agent_email, department, skills, max_concurrent_chats, status, last_activity_at,
              current_chats)
    ON public.support_agents TO support_app;

GRANT INSERT (user_id, visitor_id, visitor_name, visitor_email, status, visitor_ip, visitor_browser)
    ON public.live_chat_sessions TO support_app;
GRANT UPDATE (status, assigned_agent_id, transferred_from_agent_id, session_end_time, duration, rating, feedback,
              total_messages, message_count)
    ON public.live_chat_sessions TO support_app;

GRANT INSERT (user_id, session_id, sender_type, sender_name, message, attachment_url, attachment_type, created_at)
    ON public.chat_messages TO support_app;
GRANT UPDATE (is_read, read_at) ON public.chat_messages TO support_app;

GRANT INSERT (user_id, response_title, response_content, shortcut_key, category)
    ON public.canned_responses TO support_app;
GRANT UPDATE (response_title, response_content, shortcut_key, category, usage_count, last_used_at)
    ON public.canned_responses TO support_app;
GRANT DELETE ON public.canned_responses TO support_app;

GRANT INSERT (user_id, ticket_id, rating, recommendation, feedback, resolved_issue, agent_rating,
              response_time_rating, communication_rating)
    ON public.ticket_feedback TO support_app;

GRANT EXECUTE ON FUNCTION public.search_ticket_ids(text, integer, timestamptz, uuid, text, text, uuid, text)
    TO support_app;
