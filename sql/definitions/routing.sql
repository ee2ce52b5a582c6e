-- Routing (issue 18; history: sql/0032; the service: layers/support/support/services/routing.py). Who gets a new or
-- unassigned ticket or chat: an `available` agent under their limit (tickets: the routing settings'
-- ticket_limit_per_agent open tickets; chats: max_concurrent_chats) whose skills cover the item's required skills
-- (the settings' rules), fewest open items first, then the longest idle (the least recently given one), then the
-- lowest id. The chat side is chat_drain_queue (sql/definitions/chat.sql), under the tenant's chat queue lock; the
-- ticket side is here, under the tenant's ticket routing lock (routing_lock_tickets). Either lock serialises every
-- decision of its kind for the tenant, so no agent is given more than their limit and no item is given twice.
--
-- Lock order (with chat.py's): the chat queue lock, then a ticket's row, then the ticket routing lock, then agents in
-- id order. Whoever holds the routing lock takes other tickets' rows only with SKIP LOCKED (a ticket being changed
-- elsewhere is left to its own transaction), so a transaction that holds a ticket and waits for the routing lock is
-- never waited on by the lock's holder. A path that frees an agent (a resolve) takes the routing lock before it
-- writes the ticket, whose figure triggers lock the agent.
--
-- SECURITY INVOKER (the default), as the chat functions: they run as the runtime role under its row-level security,
-- but for the trigger that keeps open_tickets (the owner's, as the other agent figures) and the expiry sweep's lister.
-- Defaults here are those of RoutingSettings (a test compares them): a tenant without a row gets them.

-- The tenant's routing settings as stored (RoutingSettings, snake_case), '{}' without a row.
CREATE OR REPLACE FUNCTION public.routing_settings(p_tenant uuid)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RETURN coalesce((SELECT t.settings FROM public.tenant_settings t WHERE t.user_id = p_tenant AND t.area = 'routing'),
                    '{}'::jsonb);
END
$$;

-- The skills an item requires: those of every rule that matches it (by category, by channel, or by a custom field's
-- value compared as text), as a JSON array, distinct and sorted. A chat is matched by its channel, `chat`.
CREATE OR REPLACE FUNCTION public.routing_required_skills(
    p_settings jsonb, p_category text, p_channel text, p_custom jsonb
) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT coalesce(jsonb_agg(DISTINCT s.skill ORDER BY s.skill), '[]'::jsonb)
        FROM jsonb_array_elements(coalesce(p_settings -> 'rules', '[]'::jsonb)) r
        CROSS JOIN LATERAL jsonb_array_elements_text(coalesce(r -> 'required_skills', '[]'::jsonb)) s(skill)
        WHERE (r ->> 'category' IS NOT NULL AND r ->> 'category' = p_category)
           OR (r ->> 'channel' IS NOT NULL AND r ->> 'channel' = p_channel)
           OR (r ->> 'custom_field' IS NOT NULL AND coalesce(p_custom, '{}'::jsonb) ->> (r ->> 'custom_field') = r ->> 'value')
    );
END
$$;

-- The tenant's ticket routing lock (transaction-level): every ticket assignment the router makes, and every change
-- that frees an agent's ticket capacity, takes it first (see the lock order above).
CREATE OR REPLACE FUNCTION public.routing_lock_tickets(p_tenant uuid)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, public, pg_temp
AS $$ SELECT pg_advisory_xact_lock(hashtextextended('ticket-routing' || ':' || p_tenant::text, 0)) $$;

-- support_agents.open_tickets: +1 for a ticket assigned to the agent and neither resolved nor closed, -1 when it
-- stops being that, per statement, the agents locked in id order (FOR NO KEY UPDATE, as add_agent_figures).
CREATE OR REPLACE FUNCTION public.count_agent_open_tickets() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    agents uuid[];
    counts integer[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(d.agent_id ORDER BY d.agent_id), array_agg(d.n ORDER BY d.agent_id) INTO agents, counts
        FROM (SELECT n.assigned_agent_id AS agent_id, count(*)::integer AS n FROM new_rows n
              WHERE n.assigned_agent_id IS NOT NULL AND n.status NOT IN ('resolved', 'closed') GROUP BY 1) d;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT array_agg(d.agent_id ORDER BY d.agent_id), array_agg(d.n ORDER BY d.agent_id) INTO agents, counts
        FROM (
            SELECT c.agent_id, sum(c.n)::integer AS n FROM (
                SELECT o.assigned_agent_id AS agent_id, -1 AS n FROM old_rows o
                WHERE o.assigned_agent_id IS NOT NULL AND o.status NOT IN ('resolved', 'closed')
                UNION ALL
                SELECT nw.assigned_agent_id, 1 FROM new_rows nw
                WHERE nw.assigned_agent_id IS NOT NULL AND nw.status NOT IN ('resolved', 'closed')
            ) c GROUP BY c.agent_id HAVING sum(c.n) <> 0) d;
    ELSE
        SELECT array_agg(d.agent_id ORDER BY d.agent_id), array_agg(d.n ORDER BY d.agent_id) INTO agents, counts
        FROM (SELECT o.assigned_agent_id AS agent_id, -count(*)::integer AS n FROM old_rows o
              WHERE o.assigned_agent_id IS NOT NULL AND o.status NOT IN ('resolved', 'closed') GROUP BY 1) d;
    END IF;
    IF agents IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM FROM public.support_agents a WHERE a.id = ANY (agents) ORDER BY a.id FOR NO KEY UPDATE;
    UPDATE public.support_agents a SET open_tickets = a.open_tickets + d.n
    FROM unnest(agents, counts) AS d(agent_id, n) WHERE a.id = d.agent_id;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER support_tickets_open_by_agent_insert
    AFTER INSERT ON public.support_tickets REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.count_agent_open_tickets();
CREATE OR REPLACE TRIGGER support_tickets_open_by_agent_update
    AFTER UPDATE ON public.support_tickets REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.count_agent_open_tickets();
CREATE OR REPLACE TRIGGER support_tickets_open_by_agent_delete
    AFTER DELETE ON public.support_tickets REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.count_agent_open_tickets();

-- The agent for a ticket with these fields, under the routing lock (taken here), or NULL: automatic assignment off, or
-- no agent can take it now. The best available agent whose skills cover the ticket's and who is under the limit:
-- fewest open tickets, then longest idle since their last routed ticket, then lowest id; stamped as given one now
-- (which locks their row). A new ticket is inserted with the agent it answers (support.services.routing.pick_agent),
-- so that the insert's figure triggers lock the agent before the tenant's totals, as every other ticket write does.
CREATE OR REPLACE FUNCTION public.ticket_pick_agent(p_tenant uuid, p_category text, p_channel text, p_custom jsonb)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    cfg jsonb := public.routing_settings(p_tenant);
    cap integer := coalesce((cfg ->> 'ticket_limit_per_agent')::integer, 10);
    chosen uuid;
BEGIN
    IF NOT coalesce((cfg ->> 'auto_assign_tickets')::boolean, false) THEN
        RETURN NULL;
    END IF;
    PERFORM public.routing_lock_tickets(p_tenant);
    -- a new statement after the lock: what committed before it is seen
    SELECT ag.id INTO chosen FROM public.support_agents ag
    WHERE ag.user_id = p_tenant AND ag.status = 'available' AND ag.open_tickets < cap
      AND ag.skills @> public.routing_required_skills(cfg, p_category, p_channel, p_custom)
    ORDER BY ag.open_tickets, ag.last_ticket_assigned_at NULLS FIRST, ag.id
    LIMIT 1;
    IF chosen IS NOT NULL THEN
        UPDATE public.support_agents ag SET last_ticket_assigned_at = clock_timestamp()
        WHERE ag.user_id = p_tenant AND ag.id = chosen;
    END IF;
    RETURN chosen;
END
$$;

-- Route one ticket that exists (one that lost its agent, or an automation's route_by_skills): locks the ticket, then
-- the routing lock; when the tenant assigns tickets automatically and the ticket has no agent and is not finished,
-- gives it to ticket_pick_agent's agent. Outcomes: `off` (automatic assignment is off), `not_found`, `has_agent`,
-- `finished`, `waiting` (no agent can take it now: it waits in the ticket queue, oldest first, for ticket_drain),
-- `assigned` with the agent. The ticket keeps its status.
CREATE OR REPLACE FUNCTION public.ticket_route(p_tenant uuid, p_ticket uuid)
RETURNS TABLE (outcome text, agent_id uuid)
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    cfg jsonb := public.routing_settings(p_tenant);
    ticket record;
    chosen uuid;
BEGIN
    IF NOT coalesce((cfg ->> 'auto_assign_tickets')::boolean, false) THEN
        RETURN QUERY SELECT 'off'::text, NULL::uuid;
        RETURN;
    END IF;
    PERFORM FROM public.support_tickets t WHERE t.user_id = p_tenant AND t.id = p_ticket FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::uuid;
        RETURN;
    END IF;
    PERFORM public.routing_lock_tickets(p_tenant);
    -- read under the lock (a new statement: what committed before it is seen)
    SELECT t.assigned_agent_id, t.status, t.category, t.channel, t.custom_fields INTO ticket
    FROM public.support_tickets t WHERE t.user_id = p_tenant AND t.id = p_ticket;
    IF ticket.assigned_agent_id IS NOT NULL THEN
        RETURN QUERY SELECT 'has_agent'::text, ticket.assigned_agent_id;
        RETURN;
    END IF;
    IF ticket.status IN ('resolved', 'closed') THEN
        RETURN QUERY SELECT 'finished'::text, NULL::uuid;
        RETURN;
    END IF;
    chosen := public.ticket_pick_agent(p_tenant, ticket.category, ticket.channel, ticket.custom_fields);
    IF chosen IS NULL THEN
        RETURN QUERY SELECT 'waiting'::text, NULL::uuid;
        RETURN;
    END IF;
    UPDATE public.support_tickets t SET assigned_agent_id = chosen WHERE t.user_id = p_tenant AND t.id = p_ticket;
    RETURN QUERY SELECT 'assigned'::text, chosen;
END
$$;

-- The ticket queue's drain, with the routing lock taken here (the caller holds no other ticket's row but its own):
-- the waiting tickets (no agent, not finished), oldest first, each to the best agent who can take it (as
-- ticket_route; p_agents, when given, limits the agents to those), skipping a ticket no free agent can take (it keeps
-- its place) and one another transaction has locked (SKIP LOCKED: its own transaction routes it). Looks at most at
-- the 1,000 oldest. Returns the tickets assigned and their agents, in the order of the picks.
CREATE OR REPLACE FUNCTION public.ticket_drain(p_tenant uuid, p_agents uuid[] DEFAULT NULL)
RETURNS TABLE (ticket_id uuid, agent_id uuid)
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    cfg jsonb := public.routing_settings(p_tenant);
    cap integer := coalesce((cfg ->> 'ticket_limit_per_agent')::integer, 10);
    free record;
    waiting record;
    a_ids uuid[] := '{}';
    a_open integer[] := '{}';
    a_skills jsonb[] := '{}';
    a_at timestamptz[] := '{}';
    a_pick integer[] := '{}';
    spare integer := 0;
    need jsonb;
    best integer;
    k integer := 0;
    tickets uuid[] := '{}';
    picked uuid[] := '{}';
BEGIN
    IF NOT coalesce((cfg ->> 'auto_assign_tickets')::boolean, false) THEN
        RETURN;
    END IF;
    PERFORM public.routing_lock_tickets(p_tenant);
    FOR free IN
        SELECT ag.id, ag.open_tickets, ag.skills, ag.last_ticket_assigned_at FROM public.support_agents ag
        WHERE ag.user_id = p_tenant AND ag.status = 'available' AND ag.open_tickets < cap
          AND (p_agents IS NULL OR ag.id = ANY (p_agents))
        ORDER BY ag.id
    LOOP
        a_ids := a_ids || free.id;
        a_open := a_open || free.open_tickets;
        a_skills := a_skills || free.skills;
        a_at := a_at || coalesce(free.last_ticket_assigned_at, '-infinity'::timestamptz);
        a_pick := a_pick || NULL::integer;
        spare := spare + cap - free.open_tickets;
    END LOOP;
    IF spare = 0 THEN
        RETURN;
    END IF;
    FOR waiting IN
        SELECT t.id, t.category, t.channel, t.custom_fields FROM public.support_tickets t
        WHERE t.user_id = p_tenant AND t.assigned_agent_id IS NULL AND t.status NOT IN ('resolved', 'closed')
        ORDER BY t.created_at, t.id LIMIT 1000 FOR NO KEY UPDATE SKIP LOCKED
    LOOP
        need := public.routing_required_skills(cfg, waiting.category, waiting.channel, waiting.custom_fields);
        best := NULL;
        FOR i IN 1 .. cardinality(a_ids) LOOP
            CONTINUE WHEN a_open[i] >= cap OR NOT a_skills[i] @> need;
            IF best IS NULL OR a_open[i] < a_open[best] OR (a_open[i] = a_open[best] AND (
                    (a_pick[i] IS NULL AND a_pick[best] IS NOT NULL)
                    OR (a_pick[i] IS NULL AND a_pick[best] IS NULL AND a_at[i] < a_at[best])
                    OR (a_pick[i] IS NOT NULL AND a_pick[best] IS NOT NULL AND a_pick[i] < a_pick[best]))) THEN
                best := i;
            END IF;
        END LOOP;
        CONTINUE WHEN best IS NULL;
        k := k + 1;
        a_open[best] := a_open[best] + 1;
        a_pick[best] := k;
        tickets := tickets || waiting.id;
        picked := picked || a_ids[best];
        spare := spare - 1;
        EXIT WHEN spare = 0;
    END LOOP;
    IF k = 0 THEN
        RETURN;
    END IF;
    UPDATE public.support_tickets t SET assigned_agent_id = p.agent_id
    FROM unnest(tickets, picked) AS p(ticket_id, agent_id)
    WHERE t.user_id = p_tenant AND t.id = p.ticket_id;
    UPDATE public.support_agents ag SET last_ticket_assigned_at = clock_timestamp()
    WHERE ag.user_id = p_tenant AND ag.id = ANY (picked);
    RETURN QUERY SELECT p.ticket_id, p.agent_id FROM unnest(tickets, picked) WITH ORDINALITY AS p(ticket_id, agent_id, k)
        ORDER BY p.k;
END
$$;

-- An agent who went away or offline gives their open tickets back to the queue when the tenant says so
-- (reassign_tickets_when_away), under the routing lock; the ones another transaction has locked stay theirs (SKIP
-- LOCKED: see the lock order). The tickets then go to the queue's drain. Returns how many were handed back.
CREATE OR REPLACE FUNCTION public.ticket_hand_back(p_tenant uuid, p_agent uuid)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    cfg jsonb := public.routing_settings(p_tenant);
    handed integer;
BEGIN
    IF NOT coalesce((cfg ->> 'reassign_tickets_when_away')::boolean, false) THEN
        RETURN 0;
    END IF;
    PERFORM public.routing_lock_tickets(p_tenant);
    UPDATE public.support_tickets t SET assigned_agent_id = NULL
    WHERE t.user_id = p_tenant AND t.id IN (
        SELECT o.id FROM public.support_tickets o
        WHERE o.user_id = p_tenant AND o.assigned_agent_id = p_agent AND o.status NOT IN ('resolved', 'closed')
        FOR NO KEY UPDATE SKIP LOCKED);
    GET DIAGNOSTICS handed = ROW_COUNT;
    RETURN handed;
END
$$;

-- What a waiting visitor is told to expect (chat.queued's expectedWaitSeconds), for each queue position asked: from
-- the live capacity of the agents who could take the chat (available, skills covering the chat's, as the drain
-- picks) and their recent handle times (assignment to end; the mean of the last 50 of their chats that ended in the
-- last 7 days, DEFAULT_HANDLE 300 s without any). Each of their chat slots frees after its chat's expected rest (the
-- mean less the time it has run, at least a quarter of the mean), a free slot at once, and then every mean
-- afterwards: position p gets the p-th slot to free. NULL for every position when no agent could take the chat now
-- (or chats are not assigned automatically): no estimate is better than a wrong one. Whole seconds.
CREATE OR REPLACE FUNCTION public.chat_wait_estimates(p_tenant uuid, p_positions integer[])
RETURNS integer[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    cfg jsonb := public.routing_settings(p_tenant);
    need jsonb := public.routing_required_skills(cfg, NULL, 'chat', '{}'::jsonb);
    eligible uuid[];
    handle numeric;
    frees numeric[];
    slots integer;
    answer integer[] := '{}';
    p integer;
BEGIN
    IF NOT coalesce((cfg ->> 'auto_assign_chats')::boolean, true) THEN
        RETURN ARRAY(SELECT NULL::integer FROM unnest(p_positions));
    END IF;
    eligible := ARRAY(SELECT ag.id FROM public.support_agents ag
                      WHERE ag.user_id = p_tenant AND ag.status = 'available' AND ag.skills @> need);
    IF cardinality(eligible) = 0 THEN
        RETURN ARRAY(SELECT NULL::integer FROM unnest(p_positions));
    END IF;
    SELECT avg(extract(epoch FROM h.session_end_time - h.assigned_at)) INTO handle FROM (
        SELECT s.session_end_time, s.assigned_at FROM public.live_chat_sessions s
        WHERE s.user_id = p_tenant AND s.status = 'closed' AND s.assigned_agent_id = ANY (eligible)
          AND s.assigned_at IS NOT NULL AND s.session_end_time > now() - interval '7 days'
        ORDER BY s.created_at DESC LIMIT 50) h;
    handle := greatest(coalesce(handle, 300), 1);
    frees := ARRAY(
        SELECT f.rest FROM (
            SELECT greatest(handle - extract(epoch FROM now() - coalesce(s.assigned_at, s.session_start_time)),
                            handle / 4) AS rest
            FROM public.live_chat_sessions s
            WHERE s.user_id = p_tenant AND s.status = 'active' AND s.assigned_agent_id = ANY (eligible)
            UNION ALL
            SELECT 0 FROM public.support_agents ag, generate_series(1, ag.max_concurrent_chats - ag.current_chats)
            WHERE ag.user_id = p_tenant AND ag.id = ANY (eligible) AND ag.current_chats < ag.max_concurrent_chats
        ) f ORDER BY f.rest);
    slots := cardinality(frees);
    IF slots = 0 THEN
        RETURN ARRAY(SELECT NULL::integer FROM unnest(p_positions));
    END IF;
    FOREACH p IN ARRAY p_positions LOOP
        answer := answer || round(frees[(greatest(p, 1) - 1) % slots + 1] + ((greatest(p, 1) - 1) / slots) * handle)::integer;
    END LOOP;
    RETURN answer;
END
$$;

-- The tenants with a chat waiting since before p_before (the expiry sweep's one look across tenants: ids only). Owned
-- by support_analytics_lister, whose policy lets it see every tenant's rows of the columns granted to it (sql/0012,
-- sql/0032). Replacing it takes membership in its owner: granted to the schema owner for these statements only.
GRANT support_analytics_lister TO support_owner;
CREATE OR REPLACE FUNCTION public.routing_tenants_waiting(p_before timestamptz)
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT DISTINCT s.user_id FROM public.live_chat_sessions s WHERE s.status = 'waiting' AND s.created_at < p_before
$$;
REVOKE ALL ON FUNCTION public.routing_tenants_waiting(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.routing_tenants_waiting(timestamptz) TO support_app;
-- ALTER ... OWNER TO asks that the new owner may create in the schema: for this statement only, as sql/0012 does.
GRANT CREATE ON SCHEMA public TO support_analytics_lister;
ALTER FUNCTION public.routing_tenants_waiting(timestamptz) OWNER TO support_analytics_lister;
REVOKE CREATE ON SCHEMA public FROM support_analytics_lister;
REVOKE support_analytics_lister FROM support_owner;

GRANT EXECUTE ON FUNCTION public.routing_settings(uuid) TO support_app;
GRANT EXECUTE ON FUNCTION public.routing_required_skills(jsonb, text, text, jsonb) TO support_app;
GRANT EXECUTE ON FUNCTION public.routing_lock_tickets(uuid) TO support_app;
GRANT EXECUTE ON FUNCTION public.ticket_route(uuid, uuid) TO support_app;
GRANT EXECUTE ON FUNCTION public.ticket_pick_agent(uuid, text, text, jsonb) TO support_app;
GRANT EXECUTE ON FUNCTION public.ticket_drain(uuid, uuid[]) TO support_app;
GRANT EXECUTE ON FUNCTION public.ticket_hand_back(uuid, uuid) TO support_app;
GRANT EXECUTE ON FUNCTION public.chat_wait_estimates(uuid, integer[]) TO support_app;
