-- Staff broadcasts (support.services.broadcasts; the tables: sql/0023). A change records itself for the tenant's
-- next broadcast with broadcast_request, last in its transaction (after its queue lock, sessions and agents): one
-- upsert of the tenant's row that ORs `queue` and adds the agents to `agent_ids`, and says whether this transaction
-- starts a run (it inserted the row, or found it older than p_stale seconds and refreshed it: requested_at is this
-- statement's time either way). Called by the service's statement and by chat_start (sql/definitions/chat.sql).
-- SECURITY INVOKER: it runs as the runtime role, under its row-level security and column privileges.
CREATE OR REPLACE FUNCTION public.broadcast_request(p_tenant uuid, p_queue boolean, p_agents uuid[], p_stale integer)
RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog, public, pg_temp
AS $$
    INSERT INTO public.broadcast_requests AS r (user_id, queue, agent_ids, requested_at)
    VALUES (p_tenant, p_queue, p_agents, statement_timestamp())
    ON CONFLICT (user_id) DO UPDATE SET
        queue = r.queue OR excluded.queue,
        agent_ids = ARRAY(SELECT DISTINCT a FROM unnest(r.agent_ids || excluded.agent_ids) AS a ORDER BY a),
        requested_at = CASE WHEN r.requested_at < statement_timestamp() - make_interval(secs => p_stale)
            THEN statement_timestamp() ELSE r.requested_at END
    RETURNING requested_at = statement_timestamp()
$$;

GRANT EXECUTE ON FUNCTION public.broadcast_request(uuid, boolean, uuid[], integer) TO support_app;
