-- Agent figures kept by running sums (history: sql/0009, 0010): each agent carries the sums and counts behind
-- its averages, and every statement adds what it changed, per agent, locking the agents in id order (FOR NO KEY
-- UPDATE, see add_agent_figures). The functions run as the owner with every name qualified.
--
-- A ticket contributes to its assigned agent: 1 resolved ticket while resolved or closed, its resolution_time
-- then, its first_response_time, and its feedback's agent_rating. Reassigning a ticket moves all of that.
--
-- The feedback trigger locks the tickets before it reads their agent. Without that lock, a reassignment
-- committed by a statement that did not lock the ticket first (a plain UPDATE) while feedback was being added
-- was missed: the feedback's trigger read the ticket's old agent from its snapshot and credited the rating to
-- them, while the reassignment's trigger, whose snapshot did not see the feedback yet, moved nothing. FOR SHARE
-- waits for such a writer and then reads the ticket as committed.
CREATE OR REPLACE FUNCTION public.ticket_contribution(sign integer, agent uuid, status text, resolution_time integer,
                                                      first_response_time integer, agent_rating smallint)
RETURNS public.agent_figures_delta
LANGUAGE sql IMMUTABLE
RETURN ROW(
    agent,
    sign * (status IN ('resolved', 'closed'))::integer,
    sign * CASE WHEN status IN ('resolved', 'closed') THEN coalesce(resolution_time, 0) ELSE 0 END,
    sign * (status IN ('resolved', 'closed') AND resolution_time IS NOT NULL)::integer,
    sign * coalesce(first_response_time, 0),
    sign * (first_response_time IS NOT NULL)::integer,
    sign * coalesce(agent_rating, 0),
    sign * (agent_rating IS NOT NULL)::integer
)::public.agent_figures_delta;

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
        WHERE t.assigned_agent_id = ANY (agent_ids)
        UNION ALL  -- the tickets the retention job deleted still count (sql/definitions/retention.sql)
        SELECT public.ticket_contribution(1, r.assigned_agent_id, r.status, r.resolution_time,
                                          r.first_response_time, r.feedback_agent_rating)
        FROM public.retention_ticket_tombstones r
        WHERE r.assigned_agent_id = ANY (agent_ids)));
$$;

CREATE OR REPLACE FUNCTION public.add_agent_figures_for_tickets() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND public.retention_deleting_now() THEN
        RETURN NULL;  -- the retention job's delete: the figures keep counting history (sql/definitions/retention.sql)
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM public.add_agent_figures(ARRAY(
            SELECT public.ticket_contribution(1, n.assigned_agent_id, n.status, n.resolution_time,
                                              n.first_response_time, NULL)
            FROM new_rows n WHERE n.assigned_agent_id IS NOT NULL));
    ELSIF TG_OP = 'UPDATE' THEN
        -- Only rows whose figures could move; their feedback (unchanged here) moves with them. The rows that moved
        -- are found first (a hash join of the transition tables), and only theirs is feedback read: an update that
        -- moves none (a subject edit, sql/0025's backfill of references) reads none. (An EXISTS test for them was
        -- tried first: its plan looks for the first match and walked the pairs of rows, quadratic in the statement's
        -- size: 20,000 rows took 90 s.)
        PERFORM public.add_agent_figures(ARRAY(
            WITH moved AS MATERIALIZED (
                SELECT n.user_id, n.id,
                       o.assigned_agent_id AS old_agent, o.status AS old_status,
                       o.resolution_time AS old_resolution, o.first_response_time AS old_first_response,
                       n.assigned_agent_id AS new_agent, n.status AS new_status,
                       n.resolution_time AS new_resolution, n.first_response_time AS new_first_response
                FROM old_rows o
                JOIN new_rows n ON n.id = o.id
                WHERE (n.assigned_agent_id, n.status, n.resolution_time, n.first_response_time)
                      IS DISTINCT FROM (o.assigned_agent_id, o.status, o.resolution_time, o.first_response_time)
            )
            SELECT c
            FROM moved m
            LEFT JOIN public.ticket_feedback f ON f.user_id = m.user_id AND f.ticket_id = m.id
            CROSS JOIN LATERAL (VALUES
                (public.ticket_contribution(-1, m.old_agent, m.old_status, m.old_resolution, m.old_first_response,
                                            f.agent_rating)),
                (public.ticket_contribution(1, m.new_agent, m.new_status, m.new_resolution, m.new_first_response,
                                            f.agent_rating))) AS v(c)
            WHERE (c).agent_id IS NOT NULL));
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
    IF TG_OP = 'DELETE' AND public.retention_deleting_now() THEN
        RETURN NULL;  -- the retention job's delete: the figures keep counting history (sql/definitions/retention.sql)
    END IF;
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

CREATE OR REPLACE TRIGGER support_tickets_agent_figures_delete AFTER DELETE ON public.support_tickets
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_agent_figures_for_tickets();

CREATE OR REPLACE TRIGGER support_tickets_agent_figures_insert AFTER INSERT ON public.support_tickets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_agent_figures_for_tickets();

CREATE OR REPLACE TRIGGER support_tickets_agent_figures_update AFTER UPDATE ON public.support_tickets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.add_agent_figures_for_tickets();

CREATE OR REPLACE TRIGGER ticket_feedback_agent_figures_delete AFTER DELETE ON public.ticket_feedback
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_agent_figures_for_feedback();

CREATE OR REPLACE TRIGGER ticket_feedback_agent_figures_insert AFTER INSERT ON public.ticket_feedback
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_agent_figures_for_feedback();

CREATE OR REPLACE TRIGGER ticket_feedback_agent_figures_update AFTER UPDATE ON public.ticket_feedback
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.add_agent_figures_for_feedback();
