-- The recount: every running total and agent figure of one tenant recomputed from the rows (history: sql/0010).
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
CREATE OR REPLACE FUNCTION public.recount_tenant_figures(tenant uuid, repair boolean DEFAULT false)
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
        SELECT t.status, t.priority, t.category, t.channel, t.tickets, t.resolution_seconds, t.resolution_count,
               t.first_response_seconds, t.first_response_count
        FROM public.ticket_totals t WHERE t.user_id = tenant
    ), counted AS (
        SELECT t.status, t.priority, t.category, t.channel, count(*) AS tickets,
               coalesce(sum(t.resolution_time), 0) AS resolution_seconds, count(t.resolution_time) AS resolution_count,
               coalesce(sum(t.first_response_time), 0) AS first_response_seconds,
               count(t.first_response_time) AS first_response_count
        FROM (SELECT t.status, t.priority, t.category, t.channel, t.resolution_time, t.first_response_time
              FROM public.support_tickets t WHERE t.user_id = tenant
              UNION ALL  -- the tickets the retention job deleted still count (sql/definitions/retention.sql)
              SELECT r.status, r.priority, r.category, r.channel, r.resolution_time, r.first_response_time
              FROM public.retention_ticket_tombstones r WHERE r.user_id = tenant) t
        GROUP BY t.status, t.priority, t.category, t.channel
    )
    SELECT 'ticket_totals',
           concat_ws('/', coalesce(k.status, c.status), coalesce(k.priority, c.priority),
                     coalesce(k.category, c.category, '(no category)'), coalesce(k.channel, c.channel)),
           CASE WHEN k.status IS NOT NULL THEN ROW(k.tickets, k.resolution_seconds, k.resolution_count,
                                                   k.first_response_seconds, k.first_response_count)::text END,
           CASE WHEN c.status IS NOT NULL THEN ROW(c.tickets, c.resolution_seconds, c.resolution_count,
                                                   c.first_response_seconds, c.first_response_count)::text END
    FROM kept k
    FULL JOIN counted c
        ON c.status = k.status AND c.priority = k.priority AND c.channel = k.channel
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
        FROM (SELECT s.status, s.duration FROM public.live_chat_sessions s WHERE s.user_id = tenant
              UNION ALL
              SELECT r.status, r.duration FROM public.retention_chat_tombstones r WHERE r.user_id = tenant) s GROUP BY s.status
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
        FROM (SELECT f.rating FROM public.ticket_feedback f WHERE f.user_id = tenant
              UNION ALL
              SELECT r.feedback_rating FROM public.retention_ticket_tombstones r
              WHERE r.user_id = tenant AND r.feedback_rating IS NOT NULL) f HAVING count(*) > 0
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
            FROM (SELECT t.status, t.resolution_time, t.first_response_time, f.agent_rating
                  FROM public.support_tickets t
                  LEFT JOIN public.ticket_feedback f ON f.user_id = t.user_id AND f.ticket_id = t.id
                  WHERE t.user_id = a.user_id AND t.assigned_agent_id = a.id
                  UNION ALL
                  SELECT r.status, r.resolution_time, r.first_response_time, r.feedback_agent_rating
                  FROM public.retention_ticket_tombstones r
                  WHERE r.user_id = a.user_id AND r.assigned_agent_id = a.id) t
            CROSS JOIN LATERAL (SELECT t.agent_rating) f) x
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
    INSERT INTO public.ticket_totals (user_id, status, priority, category, channel, tickets, resolution_seconds,
                                      resolution_count, first_response_seconds, first_response_count)
    SELECT tenant, t.status, t.priority, t.category, t.channel, count(*), coalesce(sum(t.resolution_time), 0),
           count(t.resolution_time), coalesce(sum(t.first_response_time), 0), count(t.first_response_time)
    FROM (SELECT t.status, t.priority, t.category, t.channel, t.resolution_time, t.first_response_time
          FROM public.support_tickets t WHERE t.user_id = tenant
          UNION ALL  -- the tickets the retention job deleted still count (sql/definitions/retention.sql)
          SELECT r.status, r.priority, r.category, r.channel, r.resolution_time, r.first_response_time
          FROM public.retention_ticket_tombstones r WHERE r.user_id = tenant) t
    GROUP BY t.status, t.priority, t.category, t.channel;

    DELETE FROM public.chat_totals t WHERE t.user_id = tenant;
    INSERT INTO public.chat_totals (user_id, status, sessions, duration_seconds, duration_count)
    SELECT tenant, s.status, count(*), coalesce(sum(s.duration), 0), count(s.duration)
    FROM (SELECT s.status, s.duration FROM public.live_chat_sessions s WHERE s.user_id = tenant
          UNION ALL
          SELECT r.status, r.duration FROM public.retention_chat_tombstones r WHERE r.user_id = tenant) s GROUP BY s.status;

    DELETE FROM public.feedback_totals t WHERE t.user_id = tenant;
    INSERT INTO public.feedback_totals (user_id, ratings, rating_sum)
    SELECT tenant, count(*), sum(f.rating) FROM (SELECT f.rating FROM public.ticket_feedback f WHERE f.user_id = tenant
          UNION ALL
          SELECT r.feedback_rating FROM public.retention_ticket_tombstones r
          WHERE r.user_id = tenant AND r.feedback_rating IS NOT NULL) f
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
