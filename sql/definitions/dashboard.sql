-- The dashboard's figures (history: sql/0017, 0021; GET /api/support/dashboard, layers/support/support/services/dashboard.py) as one
-- function, so that its plan is made once per connection instead of on every call.
--
-- The figures are one statement of a dozen subqueries. Sent as a statement (the connection uses no prepared
-- statements: prepare_threshold=None, for RDS Proxy), PostgreSQL parses, rewrites (row-level security) and
-- plans it on every call, and that took more than half of the dashboard's 5 ms budget at a million tickets
-- (bench/RESULTS.md). A PL/pgSQL function keeps the plan of its statement for the life of the connection, and
-- `plan_cache_mode = force_generic_plan` (set for the call only) makes it one plan for every argument: every
-- subquery is an index range on (user_id, ...) or a tenant's handful of running-total rows, so the plan does
-- not depend on the values. This is not a prepared statement of the protocol: nothing of it is visible to a
-- proxy, and the connection carries no state a later transaction depends on.
--
-- SECURITY INVOKER (the default): it runs as the caller, under the caller's row-level security, so another
-- tenant's id finds nothing. The columns of recent_tickets and top_agents are those of the API's tickets and
-- agents (TICKET_COLUMNS, AGENT_COLUMNS in the layer; a test compares them): a change there is a change here.
--
-- Its own day: `p_now` is the caller's clock (a test's), or NULL for the database's, the clock that stamps
-- created_at. Today is the UTC day of that moment and counts [its midnight, the next midnight); the week is that
-- day and the six before it.
-- `week` holds one object per day, oldest first: the tickets created, and the satisfaction score from the day's
-- rollup row if it has one, else the ratings' count and sum from feedback_day_totals.
CREATE OR REPLACE FUNCTION public.dashboard_figures(p_tenant uuid, p_now timestamptz DEFAULT NULL)
RETURNS TABLE (
    ticket_groups json, chat_groups json, ratings numeric, rating_total numeric, agents_by_status json,
    chats_today bigint, recent_tickets json, top_agents json, week json, sla json
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
        -- the running totals summed by status, by priority, by category, by channel (sql/0025) and overall
        -- (sql/0007, sql/0010)
        (SELECT coalesce(json_agg(g), '[]') FROM (
            SELECT grouping(status, priority, category, channel) AS level, status, priority, category, channel,
                   sum(tickets) AS tickets,
                   coalesce(sum(resolution_seconds), 0) AS resolution_seconds,
                   coalesce(sum(resolution_count), 0) AS resolution_count,
                   coalesce(sum(first_response_seconds), 0) AS first_response_seconds,
                   coalesce(sum(first_response_count), 0) AS first_response_count
            FROM public.ticket_totals WHERE user_id = p_tenant AND tickets > 0
            GROUP BY GROUPING SETS ((status), (priority), (category), (channel), ())) g),
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
                   resolution_time, custom_fields, contact_id, channel, reference,
                   -- SLA (sql/0033): the same state as support.services.sla.SLA_STATE (a test compares them)
                   first_response_due_at, resolution_due_at, sla_paused_at,
                   CASE WHEN first_response_due_at < coalesce(first_responded_at, sla_paused_at, now())
                          OR resolution_due_at < coalesce(resolved_at, sla_paused_at, now()) THEN 'breached'
                        WHEN status IN ('resolved', 'closed') THEN 'met'
                        WHEN (first_responded_at IS NULL AND first_response_risk_at <= coalesce(sla_paused_at, now()))
                          OR (resolved_at IS NULL AND resolution_risk_at <= coalesce(sla_paused_at, now()))
                        THEN 'at_risk'
                        ELSE 'ok' END AS sla_state
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
                    WHERE user_id = p_tenant AND day >= v_today - 6 AND day <= v_today) f ON f.day = w.day),
        -- SLA compliance per priority (sql/0033): the running totals, at most four rows
        (SELECT coalesce(json_agg(s), '[]') FROM (
            SELECT priority, first_response_measured, first_response_met, first_response_business_seconds,
                   resolution_measured, resolution_met, resolution_business_seconds
            FROM public.ticket_sla_totals WHERE user_id = p_tenant) s);
END
$$;
GRANT EXECUTE ON FUNCTION public.dashboard_figures(uuid, timestamptz) TO support_app;
