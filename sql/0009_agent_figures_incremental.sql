-- Agent figures kept by running sums instead of recounting (replaces the triggers of 0004): recounting an
-- agent from all their tickets and the tenant's feedback took over a second per closed ticket for an agent
-- with 45,000 tickets (bench/RESULTS.md). Each agent now carries the sums and counts behind its averages,
-- and every statement adds what it changed, per agent, locking the agents in id order.
--
-- A ticket contributes to its assigned agent: 1 resolved ticket while resolved or closed, its
-- resolution_time then, its first_response_time, and its feedback's agent_rating. Reassigning a ticket
-- moves all of that. Deleting tickets (no API does; an admin might) recounts the agents concerned, since
-- their feedback is gone by the time the statement's trigger runs.

ALTER TABLE support_agents
    ADD COLUMN resolution_seconds     bigint NOT NULL DEFAULT 0,
    ADD COLUMN resolution_count       integer NOT NULL DEFAULT 0,
    ADD COLUMN first_response_seconds bigint NOT NULL DEFAULT 0,
    ADD COLUMN first_response_count   integer NOT NULL DEFAULT 0,
    ADD COLUMN rating_sum             integer NOT NULL DEFAULT 0,
    ADD COLUMN rating_count           integer NOT NULL DEFAULT 0;

CREATE TYPE agent_figures_delta AS (
    agent_id               uuid,
    resolved               integer,
    resolution_seconds     bigint,
    resolution_count       integer,
    first_response_seconds bigint,
    first_response_count   integer,
    rating_sum             integer,
    rating_count           integer
);

-- What one ticket adds to (sign 1) or takes from (sign -1) its agent's figures.
CREATE FUNCTION ticket_contribution(sign integer, agent uuid, status text, resolution_time integer,
                                    first_response_time integer, agent_rating smallint)
RETURNS agent_figures_delta
LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(
        agent,
        sign * (status IN ('resolved', 'closed'))::integer,
        sign * CASE WHEN status IN ('resolved', 'closed') THEN coalesce(resolution_time, 0) ELSE 0 END,
        sign * (status IN ('resolved', 'closed') AND resolution_time IS NOT NULL)::integer,
        sign * coalesce(first_response_time, 0),
        sign * (first_response_time IS NOT NULL)::integer,
        sign * coalesce(agent_rating, 0),
        sign * (agent_rating IS NOT NULL)::integer
    )::agent_figures_delta
$$;

-- Add the deltas, summed per agent, and recompute the averages from the new sums.
CREATE FUNCTION add_agent_figures(deltas agent_figures_delta[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM support_agents
    WHERE id IN (SELECT d.agent_id FROM unnest(deltas) d) ORDER BY id FOR UPDATE;
    UPDATE support_agents a
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

-- Recount from the rows: the backfill below, and agents whose tickets were deleted.
CREATE OR REPLACE FUNCTION refresh_agent_metrics(agent_ids uuid[]) RETURNS void
LANGUAGE sql AS $$
    SELECT id FROM support_agents WHERE id = ANY (agent_ids) ORDER BY id FOR UPDATE;
    UPDATE support_agents a
    SET total_tickets_resolved = 0, resolution_seconds = 0, resolution_count = 0, first_response_seconds = 0,
        first_response_count = 0, rating_sum = 0, rating_count = 0, average_resolution_time = NULL,
        response_time_average = NULL, average_rating = NULL
    WHERE a.id = ANY (agent_ids);
    SELECT add_agent_figures(ARRAY(
        SELECT ticket_contribution(1, t.assigned_agent_id, t.status, t.resolution_time, t.first_response_time,
                                   f.agent_rating)
        FROM support_tickets t
        LEFT JOIN ticket_feedback f ON f.user_id = t.user_id AND f.ticket_id = t.id
        WHERE t.assigned_agent_id = ANY (agent_ids)));
$$;

DROP TRIGGER support_tickets_agent_metrics_insert ON support_tickets;
DROP TRIGGER support_tickets_agent_metrics_update ON support_tickets;
DROP TRIGGER support_tickets_agent_metrics_delete ON support_tickets;
DROP TRIGGER ticket_feedback_agent_metrics_insert ON ticket_feedback;
DROP TRIGGER ticket_feedback_agent_metrics_update ON ticket_feedback;
DROP TRIGGER ticket_feedback_agent_metrics_delete ON ticket_feedback;
DROP FUNCTION refresh_agent_metrics_for_tickets();
DROP FUNCTION refresh_agent_metrics_for_feedback();

CREATE FUNCTION add_agent_figures_for_tickets() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM add_agent_figures(ARRAY(
            SELECT ticket_contribution(1, n.assigned_agent_id, n.status, n.resolution_time, n.first_response_time,
                                       NULL)
            FROM new_rows n WHERE n.assigned_agent_id IS NOT NULL));
    ELSIF TG_OP = 'UPDATE' THEN
        -- Only rows whose figures could move; their feedback (unchanged here) moves with them.
        PERFORM add_agent_figures(ARRAY(
            SELECT c
            FROM old_rows o
            JOIN new_rows n ON n.id = o.id
            LEFT JOIN ticket_feedback f ON f.user_id = n.user_id AND f.ticket_id = n.id
            CROSS JOIN LATERAL (VALUES
                (ticket_contribution(-1, o.assigned_agent_id, o.status, o.resolution_time, o.first_response_time,
                                     f.agent_rating)),
                (ticket_contribution(1, n.assigned_agent_id, n.status, n.resolution_time, n.first_response_time,
                                     f.agent_rating))) AS v(c)
            WHERE (n.assigned_agent_id, n.status, n.resolution_time, n.first_response_time)
                  IS DISTINCT FROM (o.assigned_agent_id, o.status, o.resolution_time, o.first_response_time)
              AND (c).agent_id IS NOT NULL));
    ELSE
        PERFORM refresh_agent_metrics(ARRAY(
            SELECT DISTINCT o.assigned_agent_id FROM old_rows o WHERE o.assigned_agent_id IS NOT NULL));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER support_tickets_agent_figures_insert AFTER INSERT ON support_tickets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION add_agent_figures_for_tickets();
CREATE TRIGGER support_tickets_agent_figures_update AFTER UPDATE ON support_tickets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION add_agent_figures_for_tickets();
CREATE TRIGGER support_tickets_agent_figures_delete AFTER DELETE ON support_tickets
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION add_agent_figures_for_tickets();

CREATE FUNCTION add_agent_figures_for_feedback() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM add_agent_figures(ARRAY(
            SELECT ROW(t.assigned_agent_id, 0, 0, 0, 0, 0, -o.agent_rating, -1)::agent_figures_delta
            FROM old_rows o JOIN support_tickets t ON t.user_id = o.user_id AND t.id = o.ticket_id
            WHERE t.assigned_agent_id IS NOT NULL AND o.agent_rating IS NOT NULL));
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM add_agent_figures(ARRAY(
            SELECT ROW(t.assigned_agent_id, 0, 0, 0, 0, 0, n.agent_rating, 1)::agent_figures_delta
            FROM new_rows n JOIN support_tickets t ON t.user_id = n.user_id AND t.id = n.ticket_id
            WHERE t.assigned_agent_id IS NOT NULL AND n.agent_rating IS NOT NULL));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER ticket_feedback_agent_figures_insert AFTER INSERT ON ticket_feedback
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION add_agent_figures_for_feedback();
CREATE TRIGGER ticket_feedback_agent_figures_update AFTER UPDATE ON ticket_feedback
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION add_agent_figures_for_feedback();
CREATE TRIGGER ticket_feedback_agent_figures_delete AFTER DELETE ON ticket_feedback
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION add_agent_figures_for_feedback();

-- Backfill the sums from the rows already there, with the forced policies lifted for this transaction only.
ALTER TABLE support_agents NO FORCE ROW LEVEL SECURITY;
ALTER TABLE support_tickets NO FORCE ROW LEVEL SECURITY;
ALTER TABLE ticket_feedback NO FORCE ROW LEVEL SECURITY;
SELECT refresh_agent_metrics(ARRAY(SELECT id FROM support_agents));
ALTER TABLE support_agents FORCE ROW LEVEL SECURITY;
ALTER TABLE support_tickets FORCE ROW LEVEL SECURITY;
ALTER TABLE ticket_feedback FORCE ROW LEVEL SECURITY;
