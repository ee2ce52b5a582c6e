-- The dashboard's week from running totals per UTC day, so that it reads seven rows whatever a tenant's volume,
-- and "today" and the trend count the same thing at every hour.
--
-- Before: the week's trends read each past day from its rollup row (support_analytics, written by the daily job)
-- and today, and every past day without a row, from the tickets and feedback themselves. Right after a deploy, or
-- for a new tenant, no day is rolled up, and at 1,000,000 tickets (1,370 a day) that was 8,000 index entries to
-- group by day on every call: the dashboard took 2.4x its time at 10,000 tickets (bench/RESULTS.md, issue 15).
-- Today's count was `created_at >= midnight` with no end, from a clock read before the snapshot: a ticket created
-- just after midnight could count in the day before's "today" and then move to the new day.
--
-- Now: ticket_day_totals (tickets created per tenant and UTC day) and feedback_day_totals (ratings given per tenant
-- and UTC day: their count and sum), kept by statement-level triggers exactly as the running totals of sql/0007 and
-- sql/0010 are (as the owner, one upsert per statement, groups at zero deleted, applied in key order). The
-- dashboard reads a past day from its rollup row when it has one (a day's figure is what happened that day, even
-- if a ticket is deleted later) and from these otherwise; today always from these. The day of a row is the UTC date
-- of its created_at, as the rollup's (services/analytics.py).
--
-- Writes: a ticket's create also upserts its tenant's row of the day, so a tenant's concurrent creates queue on
-- that row from their trigger to their commit (one round trip), as creates of one priority and category already
-- queue on their ticket_totals group. Tickets and feedback have tables of their own, so a transaction that adds
-- both never holds one row while waiting for another of the same table in the opposite order.

CREATE TABLE public.ticket_day_totals (
    user_id uuid   NOT NULL,
    day     date   NOT NULL,  -- UTC
    tickets bigint NOT NULL DEFAULT 0,  -- created on the day
    PRIMARY KEY (user_id, day)
);

CREATE TABLE public.feedback_day_totals (
    user_id    uuid   NOT NULL,
    day        date   NOT NULL,  -- UTC
    ratings    bigint NOT NULL DEFAULT 0,  -- feedback given on the day
    rating_sum bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['ticket_day_totals', 'feedback_day_totals']
    LOOP
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON public.%I '
            'USING (user_id = current_setting(''app.tenant_id'')::uuid) '
            'WITH CHECK (user_id = current_setting(''app.tenant_id'')::uuid)', t);
        EXECUTE format('GRANT SELECT ON public.%I TO support_app', t);
    END LOOP;
END
$$;

-- A row's contribution is a row of the totals table itself (sign 1 adds, -1 takes away), as in sql/0010.
CREATE FUNCTION public.ticket_day_contribution(sign integer, t public.support_tickets)
RETURNS public.ticket_day_totals
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, public, pg_temp
RETURN ROW(t.user_id, (t.created_at AT TIME ZONE 'UTC')::date, sign)::public.ticket_day_totals;

CREATE FUNCTION public.feedback_day_contribution(sign integer, f public.ticket_feedback)
RETURNS public.feedback_day_totals
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, public, pg_temp
RETURN ROW(f.user_id, (f.created_at AT TIME ZONE 'UTC')::date, sign, sign * f.rating)::public.feedback_day_totals;

CREATE FUNCTION public.add_to_ticket_day_totals(deltas public.ticket_day_totals[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    INSERT INTO public.ticket_day_totals AS t (user_id, day, tickets)
    SELECT d.user_id, d.day, sum(d.tickets)
    FROM unnest(deltas) d
    GROUP BY d.user_id, d.day
    HAVING sum(d.tickets) <> 0
    ORDER BY d.user_id, d.day
    ON CONFLICT (user_id, day) DO UPDATE SET tickets = t.tickets + excluded.tickets;
    DELETE FROM public.ticket_day_totals t
    USING (SELECT DISTINCT d.user_id, d.day FROM unnest(deltas) d) g
    WHERE t.user_id = g.user_id AND t.day = g.day AND t.tickets = 0;
END
$$;

CREATE FUNCTION public.add_to_feedback_day_totals(deltas public.feedback_day_totals[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    INSERT INTO public.feedback_day_totals AS t (user_id, day, ratings, rating_sum)
    SELECT d.user_id, d.day, sum(d.ratings), sum(d.rating_sum)
    FROM unnest(deltas) d
    GROUP BY d.user_id, d.day
    HAVING (sum(d.ratings), sum(d.rating_sum)) <> (0, 0)
    ORDER BY d.user_id, d.day
    ON CONFLICT (user_id, day) DO UPDATE SET
        ratings = t.ratings + excluded.ratings,
        rating_sum = t.rating_sum + excluded.rating_sum;
    DELETE FROM public.feedback_day_totals t
    USING (SELECT DISTINCT d.user_id, d.day FROM unnest(deltas) d) g
    WHERE t.user_id = g.user_id AND t.day = g.day AND (t.ratings, t.rating_sum) = (0, 0);
END
$$;

CREATE FUNCTION public.add_ticket_day_totals() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM public.add_to_ticket_day_totals(ARRAY(
            SELECT public.ticket_day_contribution(1, n) FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM public.add_to_ticket_day_totals(ARRAY(
            SELECT public.ticket_day_contribution(-1, o) FROM old_rows o));
    ELSE
        -- Only a ticket whose day changed (an owner's correction of created_at) moves; a status change locks nothing.
        PERFORM public.add_to_ticket_day_totals(ARRAY(
            SELECT c
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            CROSS JOIN LATERAL (VALUES (public.ticket_day_contribution(-1, o)),
                                       (public.ticket_day_contribution(1, n))) AS v(c)
            WHERE public.ticket_day_contribution(1, n) IS DISTINCT FROM public.ticket_day_contribution(1, o)));
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION public.add_feedback_day_totals() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM public.add_to_feedback_day_totals(ARRAY(
            SELECT public.feedback_day_contribution(1, n) FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM public.add_to_feedback_day_totals(ARRAY(
            SELECT public.feedback_day_contribution(-1, o) FROM old_rows o));
    ELSE
        PERFORM public.add_to_feedback_day_totals(ARRAY(
            SELECT c
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            CROSS JOIN LATERAL (VALUES (public.feedback_day_contribution(-1, o)),
                                       (public.feedback_day_contribution(1, n))) AS v(c)
            WHERE public.feedback_day_contribution(1, n) IS DISTINCT FROM public.feedback_day_contribution(1, o)));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER support_tickets_day_totals_insert AFTER INSERT ON public.support_tickets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_ticket_day_totals();
CREATE TRIGGER support_tickets_day_totals_update AFTER UPDATE ON public.support_tickets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.add_ticket_day_totals();
CREATE TRIGGER support_tickets_day_totals_delete AFTER DELETE ON public.support_tickets
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_ticket_day_totals();

CREATE TRIGGER ticket_feedback_day_totals_insert AFTER INSERT ON public.ticket_feedback
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_feedback_day_totals();
CREATE TRIGGER ticket_feedback_day_totals_update AFTER UPDATE ON public.ticket_feedback
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.add_feedback_day_totals();
CREATE TRIGGER ticket_feedback_day_totals_delete AFTER DELETE ON public.ticket_feedback
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_feedback_day_totals();

-- Backfill from the rows already there. The owner is subject to the forced policies, which would hide every row
-- without a tenant: lift them for this transaction only (ALTER TABLE locks until commit, so no write is missed).
ALTER TABLE public.support_tickets NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.ticket_feedback NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.ticket_day_totals NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.feedback_day_totals NO FORCE ROW LEVEL SECURITY;
INSERT INTO public.ticket_day_totals (user_id, day, tickets)
SELECT user_id, (created_at AT TIME ZONE 'UTC')::date, count(*) FROM public.support_tickets GROUP BY 1, 2;
INSERT INTO public.feedback_day_totals (user_id, day, ratings, rating_sum)
SELECT user_id, (created_at AT TIME ZONE 'UTC')::date, count(*), sum(rating) FROM public.ticket_feedback GROUP BY 1, 2;
ALTER TABLE public.support_tickets FORCE ROW LEVEL SECURITY;
ALTER TABLE public.ticket_feedback FORCE ROW LEVEL SECURITY;
ALTER TABLE public.ticket_day_totals FORCE ROW LEVEL SECURITY;
ALTER TABLE public.feedback_day_totals FORCE ROW LEVEL SECURITY;

-- The recount of the day totals, as recount_tenant_figures (sql/0010) recounts the other running totals: the same
-- rows out (figure, key, stored, recounted), a report in any snapshot, a repair in READ COMMITTED after locking the
-- day totals against writers. `make verify-totals` runs it first in the transaction of recount_tenant_figures: the
-- day totals' triggers fire before the totals' (trigger name order), so the repair locks in the writers' order.
CREATE FUNCTION public.recount_tenant_day_totals(tenant uuid, repair boolean DEFAULT false)
RETURNS TABLE (figure text, key text, stored text, recounted text)
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF repair AND current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'recount_tenant_day_totals: repair runs in a READ COMMITTED transaction'
            USING HINT = 'it locks the totals first and must then see every committed change';
    END IF;
    PERFORM set_config('app.tenant_id', tenant::text, true);
    IF repair THEN
        LOCK TABLE public.ticket_day_totals, public.feedback_day_totals IN EXCLUSIVE MODE;
    END IF;

    RETURN QUERY
    WITH counted AS (
        SELECT (t.created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS tickets
        FROM public.support_tickets t WHERE t.user_id = tenant GROUP BY 1
    ), kept AS (
        SELECT d.day, d.tickets FROM public.ticket_day_totals d WHERE d.user_id = tenant
    )
    SELECT 'ticket_day_totals', coalesce(k.day, c.day)::text, k.tickets::text, c.tickets::text
    FROM kept k FULL JOIN counted c ON c.day = k.day
    WHERE k.tickets IS DISTINCT FROM c.tickets;

    RETURN QUERY
    WITH counted AS (
        SELECT (f.created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS ratings, sum(f.rating) AS rating_sum
        FROM public.ticket_feedback f WHERE f.user_id = tenant GROUP BY 1
    ), kept AS (
        SELECT d.day, d.ratings, d.rating_sum FROM public.feedback_day_totals d WHERE d.user_id = tenant
    )
    SELECT 'feedback_day_totals', coalesce(k.day, c.day)::text,
           CASE WHEN k.day IS NOT NULL THEN ROW(k.ratings, k.rating_sum)::text END,
           CASE WHEN c.day IS NOT NULL THEN ROW(c.ratings, c.rating_sum)::text END
    FROM kept k FULL JOIN counted c ON c.day = k.day
    WHERE (k.ratings, k.rating_sum) IS DISTINCT FROM (c.ratings, c.rating_sum);

    IF NOT repair THEN
        RETURN;
    END IF;
    DELETE FROM public.ticket_day_totals d WHERE d.user_id = tenant;
    INSERT INTO public.ticket_day_totals (user_id, day, tickets)
    SELECT tenant, (t.created_at AT TIME ZONE 'UTC')::date, count(*)
    FROM public.support_tickets t WHERE t.user_id = tenant GROUP BY 2;
    DELETE FROM public.feedback_day_totals d WHERE d.user_id = tenant;
    INSERT INTO public.feedback_day_totals (user_id, day, ratings, rating_sum)
    SELECT tenant, (f.created_at AT TIME ZONE 'UTC')::date, count(*), sum(f.rating)
    FROM public.ticket_feedback f WHERE f.user_id = tenant GROUP BY 2;
END
$$;

-- The five top agents in the order the dashboard ranks them, so that the top five are five index entries instead of a
-- sort of every agent (500 at the cap: with the agents by status, most of what a big desk's dashboard cost more
-- than a small one's once the week was bounded). The figures change on a resolution or a rating, not on every
-- status or chat count change of an agent.
CREATE INDEX support_agents_top_idx
    ON public.support_agents (user_id, total_tickets_resolved DESC, average_rating DESC NULLS LAST, agent_name, id);

-- The dashboard's figures (sql/0017's function, see there for why a function), now with its own day: `p_now` is
-- the caller's clock (a test's), or NULL for the database's, the clock that stamps created_at. Today is the UTC
-- day of that moment and counts [its midnight, the next midnight); the week is that day and the six before it.
-- `week` holds one object per day, oldest first: the tickets created, and the satisfaction score from the day's
-- rollup row if it has one, else the ratings' count and sum from feedback_day_totals.
DROP FUNCTION public.dashboard_figures(uuid, timestamptz, date, date);

CREATE FUNCTION public.dashboard_figures(p_tenant uuid, p_now timestamptz DEFAULT NULL)
RETURNS TABLE (
    ticket_groups json, chat_groups json, ratings numeric, rating_total numeric, agents_by_status json,
    chats_today bigint, recent_tickets json, top_agents json, week json
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_today    date := (coalesce(p_now, now()) AT TIME ZONE 'UTC')::date;
    v_midnight timestamptz := v_today::timestamp AT TIME ZONE 'UTC';
BEGIN
    RETURN QUERY SELECT
        -- the running totals summed by status, by priority, by category and overall (sql/0007, sql/0010)
        (SELECT coalesce(json_agg(g), '[]') FROM (
            SELECT grouping(status, priority, category) AS level, status, priority, category,
                   sum(tickets) AS tickets,
                   coalesce(sum(resolution_seconds), 0) AS resolution_seconds,
                   coalesce(sum(resolution_count), 0) AS resolution_count,
                   coalesce(sum(first_response_seconds), 0) AS first_response_seconds,
                   coalesce(sum(first_response_count), 0) AS first_response_count
            FROM public.ticket_totals WHERE user_id = p_tenant AND tickets > 0
            GROUP BY GROUPING SETS ((status), (priority), (category), ())) g),
        (SELECT coalesce(json_agg(g), '[]') FROM (
            SELECT status, sessions, duration_seconds, duration_count
            FROM public.chat_totals WHERE user_id = p_tenant AND sessions > 0) g),
        (SELECT coalesce(sum(ratings), 0) FROM public.feedback_totals WHERE user_id = p_tenant),
        (SELECT coalesce(sum(rating_sum), 0) FROM public.feedback_totals WHERE user_id = p_tenant),
        (SELECT coalesce(json_object_agg(a.status, a.n), '{}') FROM (
            SELECT status, count(*) AS n FROM public.support_agents WHERE user_id = p_tenant GROUP BY status) a),
        (SELECT count(*) FROM public.live_chat_sessions
         WHERE user_id = p_tenant AND session_start_time >= v_midnight
           AND session_start_time < v_midnight + interval '1 day'),
        (SELECT coalesce(json_agg(r), '[]') FROM (
            SELECT id, user_id, customer_name, customer_email, customer_phone, subject, description, category,
                   priority, status, assigned_agent_id, created_at, updated_at, resolved_at, first_response_time,
                   resolution_time, custom_fields
            FROM public.support_tickets WHERE user_id = p_tenant
            ORDER BY created_at DESC, id DESC LIMIT 5) r),
        (SELECT coalesce(json_agg(r), '[]') FROM (
            SELECT id, user_id, agent_name, agent_email, department, skills, status, current_chats,
                   max_concurrent_chats, total_tickets_resolved, average_resolution_time, average_rating,
                   response_time_average, created_at, updated_at, last_activity_at
            FROM public.support_agents WHERE user_id = p_tenant
            ORDER BY total_tickets_resolved DESC, average_rating DESC NULLS LAST, agent_name, id LIMIT 5) r),
        (SELECT json_agg(json_build_object(
                    'day', w.day,
                    'rolled_up', a.analytics_date IS NOT NULL,
                    'tickets', CASE WHEN a.analytics_date IS NOT NULL THEN a.total_tickets_created
                                    ELSE coalesce(t.tickets, 0) END,
                    'score', a.customer_satisfaction_score,
                    'ratings', coalesce(f.ratings, 0),
                    'rating_sum', coalesce(f.rating_sum, 0)) ORDER BY w.day)
         FROM (SELECT v_today - k AS day FROM generate_series(0, 6) AS k) w
         -- each a range of at most seven rows of its primary key, never the tenant's whole history
         LEFT JOIN (SELECT analytics_date, total_tickets_created, customer_satisfaction_score
                    FROM public.support_analytics
                    WHERE user_id = p_tenant AND analytics_date >= v_today - 6 AND analytics_date < v_today) a
             ON a.analytics_date = w.day
         LEFT JOIN (SELECT day, tickets FROM public.ticket_day_totals
                    WHERE user_id = p_tenant AND day >= v_today - 6 AND day <= v_today) t ON t.day = w.day
         LEFT JOIN (SELECT day, ratings, rating_sum FROM public.feedback_day_totals
                    WHERE user_id = p_tenant AND day >= v_today - 6 AND day <= v_today) f ON f.day = w.day);
END
$$;

REVOKE ALL ON FUNCTION public.dashboard_figures(uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.dashboard_figures(uuid, timestamptz) TO support_app;
