-- Agent performance figures that stay true as work happens. Each is recomputed from its source rows
-- whenever those change, by statement-level triggers with transition tables (one refresh per statement
-- and agent, so a bulk load refreshes each agent once, not once per row):
--   total_tickets_resolved   tickets assigned to the agent that are resolved or closed
--   average_resolution_time  mean resolution_time (seconds) of those tickets
--   response_time_average    mean first_response_time (seconds) of the agent's tickets that have one
--   average_rating           mean agent_rating of the feedback on the agent's tickets
-- A ticket's figures belong to the agent it is assigned to now: reassigning it moves them.
-- current_chats is kept by the chat service, which changes it in the same transaction as the session.

CREATE FUNCTION refresh_agent_metrics(agent_ids uuid[]) RETURNS void
LANGUAGE sql AS $$
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

CREATE FUNCTION refresh_agent_metrics_for_tickets() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    agents uuid[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT n.assigned_agent_id) INTO agents
        FROM new_rows n WHERE n.assigned_agent_id IS NOT NULL;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT o.assigned_agent_id) INTO agents
        FROM old_rows o WHERE o.assigned_agent_id IS NOT NULL;
    ELSE
        -- Only rows whose figures could move: a changed assignment, status or time.
        SELECT array_agg(DISTINCT agent) INTO agents
        FROM new_rows n
        JOIN old_rows o ON o.id = n.id
        CROSS JOIN LATERAL (VALUES (n.assigned_agent_id), (o.assigned_agent_id)) AS v(agent)
        WHERE agent IS NOT NULL
          AND (n.assigned_agent_id, n.status, n.resolution_time, n.first_response_time)
              IS DISTINCT FROM (o.assigned_agent_id, o.status, o.resolution_time, o.first_response_time);
    END IF;
    IF agents IS NOT NULL THEN
        PERFORM refresh_agent_metrics(agents);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER support_tickets_agent_metrics_insert AFTER INSERT ON support_tickets
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION refresh_agent_metrics_for_tickets();
CREATE TRIGGER support_tickets_agent_metrics_update AFTER UPDATE ON support_tickets
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION refresh_agent_metrics_for_tickets();
CREATE TRIGGER support_tickets_agent_metrics_delete AFTER DELETE ON support_tickets
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION refresh_agent_metrics_for_tickets();

CREATE FUNCTION refresh_agent_metrics_for_feedback() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    agents uuid[];
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT t.assigned_agent_id) INTO agents
        FROM old_rows f JOIN support_tickets t ON t.user_id = f.user_id AND t.id = f.ticket_id
        WHERE t.assigned_agent_id IS NOT NULL;
    ELSE
        SELECT array_agg(DISTINCT t.assigned_agent_id) INTO agents
        FROM new_rows f JOIN support_tickets t ON t.user_id = f.user_id AND t.id = f.ticket_id
        WHERE t.assigned_agent_id IS NOT NULL;
    END IF;
    IF agents IS NOT NULL THEN
        PERFORM refresh_agent_metrics(agents);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER ticket_feedback_agent_metrics_insert AFTER INSERT ON ticket_feedback
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION refresh_agent_metrics_for_feedback();
CREATE TRIGGER ticket_feedback_agent_metrics_update AFTER UPDATE ON ticket_feedback
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION refresh_agent_metrics_for_feedback();
CREATE TRIGGER ticket_feedback_agent_metrics_delete AFTER DELETE ON ticket_feedback
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION refresh_agent_metrics_for_feedback();
