-- The dashboard's figures (history: sql/0017; GET /api/support/dashboard, layers/support/support/services/dashboard.py) as one
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
CREATE OR REPLACE FUNCTION public.dashboard_figures(p_tenant uuid, p_midnight timestamptz, p_week date, p_today date)
RETURNS TABLE (
    ticket_groups json, chat_groups json, ratings numeric, rating_total numeric, agents_by_status json,
    tickets_today bigint, chats_today bigint, recent_tickets json, top_agents json, rollup_days json,
    rating_total_today bigint, ratings_today bigint
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY SELECT
        -- the running totals summed by status, by priority, by category and overall (groups at zero are deleted
        -- as they empty, sql/0010; the filter only keeps a row that a manual fix left behind out of the figures)
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
        (SELECT count(*) FROM public.support_tickets WHERE user_id = p_tenant AND created_at >= p_midnight),
        (SELECT count(*) FROM public.live_chat_sessions
         WHERE user_id = p_tenant AND session_start_time >= p_midnight),
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
        -- the past six days' rollup rows (written by the analytics job, sql/0012)
        (SELECT coalesce(json_agg(r), '[]') FROM (
            SELECT analytics_date, total_tickets_created, customer_satisfaction_score FROM public.support_analytics
            WHERE user_id = p_tenant AND analytics_date >= p_week AND analytics_date < p_today) r),
        (SELECT coalesce(sum(rating), 0) FROM public.ticket_feedback
         WHERE user_id = p_tenant AND created_at >= p_midnight),
        (SELECT count(*) FROM public.ticket_feedback WHERE user_id = p_tenant AND created_at >= p_midnight);
END
$$;
GRANT EXECUTE ON FUNCTION public.dashboard_figures(uuid, timestamptz, date, date) TO support_app;
