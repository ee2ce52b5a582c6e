-- Running totals and agent figures without needless writes or lock-order deadlocks. Replaces the trigger
-- functions of 0004 and 0007 (found in review of the chat group's concurrency tests):
-- * an update that changes none of a group's inputs (a chat's message counters, a ticket's subject) no
--   longer touches the totals rows at all, so chat messages do not queue on one row per tenant;
-- * what a statement takes from one group and adds to another is applied in ONE upsert, in key order, so
--   two statements moving rows in opposite directions lock the totals rows in the same order;
-- * refresh_agent_metrics locks the agents in id order before updating them, the order in which the chat
--   service locks agents.

CREATE OR REPLACE FUNCTION add_ticket_totals() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ticket_totals AS t (user_id, status, priority, category, tickets, resolution_seconds, resolution_count, first_response_seconds, first_response_count)
        SELECT user_id, status, priority, category, sum(tickets), sum(resolution_seconds), sum(resolution_count), sum(first_response_seconds), sum(first_response_count) FROM (SELECT n.user_id, n.status, n.priority, n.category, 1, coalesce(n.resolution_time, 0), (n.resolution_time IS NOT NULL)::int, coalesce(n.first_response_time, 0), (n.first_response_time IS NOT NULL)::int FROM new_rows n) AS delta(user_id, status, priority, category, tickets, resolution_seconds, resolution_count, first_response_seconds, first_response_count)
        GROUP BY user_id, status, priority, category
    HAVING sum(tickets) <> 0 OR sum(resolution_seconds) <> 0 OR sum(resolution_count) <> 0 OR sum(first_response_seconds) <> 0 OR sum(first_response_count) <> 0
    ORDER BY user_id, status, priority, category  -- rows are upserted, and so locked, in key order
    ON CONFLICT (user_id, status, priority, category) DO UPDATE SET
        tickets = t.tickets + excluded.tickets,
        resolution_seconds = t.resolution_seconds + excluded.resolution_seconds,
        resolution_count = t.resolution_count + excluded.resolution_count,
        first_response_seconds = t.first_response_seconds + excluded.first_response_seconds,
        first_response_count = t.first_response_count + excluded.first_response_count;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO ticket_totals AS t (user_id, status, priority, category, tickets, resolution_seconds, resolution_count, first_response_seconds, first_response_count)
        SELECT user_id, status, priority, category, sum(tickets), sum(resolution_seconds), sum(resolution_count), sum(first_response_seconds), sum(first_response_count) FROM (SELECT o.user_id, o.status, o.priority, o.category, -1, -coalesce(o.resolution_time, 0), -(o.resolution_time IS NOT NULL)::int, -coalesce(o.first_response_time, 0), -(o.first_response_time IS NOT NULL)::int FROM old_rows o) AS delta(user_id, status, priority, category, tickets, resolution_seconds, resolution_count, first_response_seconds, first_response_count)
        GROUP BY user_id, status, priority, category
    HAVING sum(tickets) <> 0 OR sum(resolution_seconds) <> 0 OR sum(resolution_count) <> 0 OR sum(first_response_seconds) <> 0 OR sum(first_response_count) <> 0
    ORDER BY user_id, status, priority, category  -- rows are upserted, and so locked, in key order
    ON CONFLICT (user_id, status, priority, category) DO UPDATE SET
        tickets = t.tickets + excluded.tickets,
        resolution_seconds = t.resolution_seconds + excluded.resolution_seconds,
        resolution_count = t.resolution_count + excluded.resolution_count,
        first_response_seconds = t.first_response_seconds + excluded.first_response_seconds,
        first_response_count = t.first_response_count + excluded.first_response_count;
    ELSE
        INSERT INTO ticket_totals AS t (user_id, status, priority, category, tickets, resolution_seconds, resolution_count, first_response_seconds, first_response_count)
        SELECT user_id, status, priority, category, sum(tickets), sum(resolution_seconds), sum(resolution_count), sum(first_response_seconds), sum(first_response_count) FROM (
            SELECT o.user_id, o.status, o.priority, o.category, -1, -coalesce(o.resolution_time, 0), -(o.resolution_time IS NOT NULL)::int, -coalesce(o.first_response_time, 0), -(o.first_response_time IS NOT NULL)::int FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE (n.user_id, n.status, n.priority, n.category, n.resolution_time, n.first_response_time) IS DISTINCT FROM (o.user_id, o.status, o.priority, o.category, o.resolution_time, o.first_response_time)
            UNION ALL
            SELECT n.user_id, n.status, n.priority, n.category, 1, coalesce(n.resolution_time, 0), (n.resolution_time IS NOT NULL)::int, coalesce(n.first_response_time, 0), (n.first_response_time IS NOT NULL)::int FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE (n.user_id, n.status, n.priority, n.category, n.resolution_time, n.first_response_time) IS DISTINCT FROM (o.user_id, o.status, o.priority, o.category, o.resolution_time, o.first_response_time)
        ) AS delta(user_id, status, priority, category, tickets, resolution_seconds, resolution_count, first_response_seconds, first_response_count)
        GROUP BY user_id, status, priority, category
    HAVING sum(tickets) <> 0 OR sum(resolution_seconds) <> 0 OR sum(resolution_count) <> 0 OR sum(first_response_seconds) <> 0 OR sum(first_response_count) <> 0
    ORDER BY user_id, status, priority, category  -- rows are upserted, and so locked, in key order
    ON CONFLICT (user_id, status, priority, category) DO UPDATE SET
        tickets = t.tickets + excluded.tickets,
        resolution_seconds = t.resolution_seconds + excluded.resolution_seconds,
        resolution_count = t.resolution_count + excluded.resolution_count,
        first_response_seconds = t.first_response_seconds + excluded.first_response_seconds,
        first_response_count = t.first_response_count + excluded.first_response_count;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION add_chat_totals() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO chat_totals AS t (user_id, status, sessions, duration_seconds, duration_count)
        SELECT user_id, status, sum(sessions), sum(duration_seconds), sum(duration_count) FROM (SELECT n.user_id, n.status, 1, coalesce(n.duration, 0), (n.duration IS NOT NULL)::int FROM new_rows n) AS delta(user_id, status, sessions, duration_seconds, duration_count)
        GROUP BY user_id, status
    HAVING sum(sessions) <> 0 OR sum(duration_seconds) <> 0 OR sum(duration_count) <> 0
    ORDER BY user_id, status  -- rows are upserted, and so locked, in key order
    ON CONFLICT (user_id, status) DO UPDATE SET
        sessions = t.sessions + excluded.sessions,
        duration_seconds = t.duration_seconds + excluded.duration_seconds,
        duration_count = t.duration_count + excluded.duration_count;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO chat_totals AS t (user_id, status, sessions, duration_seconds, duration_count)
        SELECT user_id, status, sum(sessions), sum(duration_seconds), sum(duration_count) FROM (SELECT o.user_id, o.status, -1, -coalesce(o.duration, 0), -(o.duration IS NOT NULL)::int FROM old_rows o) AS delta(user_id, status, sessions, duration_seconds, duration_count)
        GROUP BY user_id, status
    HAVING sum(sessions) <> 0 OR sum(duration_seconds) <> 0 OR sum(duration_count) <> 0
    ORDER BY user_id, status  -- rows are upserted, and so locked, in key order
    ON CONFLICT (user_id, status) DO UPDATE SET
        sessions = t.sessions + excluded.sessions,
        duration_seconds = t.duration_seconds + excluded.duration_seconds,
        duration_count = t.duration_count + excluded.duration_count;
    ELSE
        INSERT INTO chat_totals AS t (user_id, status, sessions, duration_seconds, duration_count)
        SELECT user_id, status, sum(sessions), sum(duration_seconds), sum(duration_count) FROM (
            SELECT o.user_id, o.status, -1, -coalesce(o.duration, 0), -(o.duration IS NOT NULL)::int FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE (n.user_id, n.status, n.duration) IS DISTINCT FROM (o.user_id, o.status, o.duration)
            UNION ALL
            SELECT n.user_id, n.status, 1, coalesce(n.duration, 0), (n.duration IS NOT NULL)::int FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE (n.user_id, n.status, n.duration) IS DISTINCT FROM (o.user_id, o.status, o.duration)
        ) AS delta(user_id, status, sessions, duration_seconds, duration_count)
        GROUP BY user_id, status
    HAVING sum(sessions) <> 0 OR sum(duration_seconds) <> 0 OR sum(duration_count) <> 0
    ORDER BY user_id, status  -- rows are upserted, and so locked, in key order
    ON CONFLICT (user_id, status) DO UPDATE SET
        sessions = t.sessions + excluded.sessions,
        duration_seconds = t.duration_seconds + excluded.duration_seconds,
        duration_count = t.duration_count + excluded.duration_count;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION add_feedback_totals() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO feedback_totals AS t (user_id, ratings, rating_sum)
        SELECT user_id, sum(ratings), sum(rating_sum) FROM (SELECT n.user_id, 1, n.rating FROM new_rows n) AS delta(user_id, ratings, rating_sum)
        GROUP BY user_id
    HAVING sum(ratings) <> 0 OR sum(rating_sum) <> 0
    ORDER BY user_id  -- rows are upserted, and so locked, in key order
    ON CONFLICT (user_id) DO UPDATE SET
        ratings = t.ratings + excluded.ratings,
        rating_sum = t.rating_sum + excluded.rating_sum;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO feedback_totals AS t (user_id, ratings, rating_sum)
        SELECT user_id, sum(ratings), sum(rating_sum) FROM (SELECT o.user_id, -1, -o.rating FROM old_rows o) AS delta(user_id, ratings, rating_sum)
        GROUP BY user_id
    HAVING sum(ratings) <> 0 OR sum(rating_sum) <> 0
    ORDER BY user_id  -- rows are upserted, and so locked, in key order
    ON CONFLICT (user_id) DO UPDATE SET
        ratings = t.ratings + excluded.ratings,
        rating_sum = t.rating_sum + excluded.rating_sum;
    ELSE
        INSERT INTO feedback_totals AS t (user_id, ratings, rating_sum)
        SELECT user_id, sum(ratings), sum(rating_sum) FROM (
            SELECT o.user_id, -1, -o.rating FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE (n.user_id, n.rating) IS DISTINCT FROM (o.user_id, o.rating)
            UNION ALL
            SELECT n.user_id, 1, n.rating FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE (n.user_id, n.rating) IS DISTINCT FROM (o.user_id, o.rating)
        ) AS delta(user_id, ratings, rating_sum)
        GROUP BY user_id
    HAVING sum(ratings) <> 0 OR sum(rating_sum) <> 0
    ORDER BY user_id  -- rows are upserted, and so locked, in key order
    ON CONFLICT (user_id) DO UPDATE SET
        ratings = t.ratings + excluded.ratings,
        rating_sum = t.rating_sum + excluded.rating_sum;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION refresh_agent_metrics(agent_ids uuid[]) RETURNS void
LANGUAGE sql AS $$
    SELECT id FROM support_agents WHERE id = ANY (agent_ids) ORDER BY id FOR UPDATE;
    UPDATE support_agents a
    SET total_tickets_resolved = m.resolved,
        average_resolution_time = m.resolution,
        response_time_average = m.first_response,
        average_rating = m.rating
    FROM (
        SELECT ag.id,
               count(*) FILTER (WHERE t.status IN ('resolved', 'closed')) AS resolved,
               round(avg(t.resolution_time) FILTER (WHERE t.status IN ('resolved', 'closed')))::integer
                   AS resolution,
               round(avg(t.first_response_time))::integer AS first_response,
               (SELECT round(avg(f.agent_rating), 2)
                FROM ticket_feedback f
                JOIN support_tickets ft ON ft.user_id = f.user_id AND ft.id = f.ticket_id
                WHERE ft.user_id = ag.user_id AND ft.assigned_agent_id = ag.id) AS rating
        FROM support_agents ag
        LEFT JOIN support_tickets t ON t.user_id = ag.user_id AND t.assigned_agent_id = ag.id
        WHERE ag.id = ANY (agent_ids)
        GROUP BY ag.id, ag.user_id
    ) m
    WHERE a.id = m.id
      AND (a.total_tickets_resolved, a.average_resolution_time, a.response_time_average, a.average_rating)
          IS DISTINCT FROM (m.resolved, m.resolution, m.first_response, m.rating);
$$;
