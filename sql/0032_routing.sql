-- Routing (issue 18): skills, limits and queues for tickets and chats. The tenant's routing settings are a row of
-- tenant_settings (area `routing`, support.models.settings.RoutingSettings); the functions that route live in
-- sql/definitions/routing.sql and sql/definitions/chat.sql; the service is layers/support/support/services/routing.py.
-- No new table: the columns below, two partial indexes and the grants the code uses (sql/privileges.toml).
--
-- * support_agents.open_tickets: the agent's assigned tickets that are not resolved or closed, kept by a trigger
--   that runs as the owner (routing.sql), in the same transaction as the change, as the other agent figures are: a
--   routing decision reads it instead of counting tickets. last_ticket_assigned_at: when the router last gave the
--   agent a ticket (the tie-break "longest idle" for tickets, as last_assigned_at is for chats).
-- * live_chat_sessions.assigned_at (added by sql/0035 and kept by its trigger on every change of agent, NULL while a
--   chat waits): a handle time is the time from there to the end; the estimate of a waiting visitor's wait is made
--   of them (sql/definitions/routing.sql, applied after every migration).
--
-- The backfills read every tenant's rows as the owner, whom FORCE filters too: lifted for this transaction only
-- (ALTER TABLE locks until commit), as 0024 and 0031 do.
ALTER TABLE public.support_agents NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.support_tickets NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.live_chat_sessions NO FORCE ROW LEVEL SECURITY;

ALTER TABLE public.support_agents
    ADD COLUMN open_tickets integer NOT NULL DEFAULT 0 CHECK (open_tickets >= 0),
    ADD COLUMN last_ticket_assigned_at timestamptz;

UPDATE public.support_agents a SET open_tickets = c.n
FROM (SELECT t.user_id, t.assigned_agent_id, count(*)::integer AS n FROM public.support_tickets t
      WHERE t.assigned_agent_id IS NOT NULL AND t.status NOT IN ('resolved', 'closed')
      GROUP BY t.user_id, t.assigned_agent_id) c
WHERE a.user_id = c.user_id AND a.id = c.assigned_agent_id;

-- The tickets waiting for an agent, oldest first (the ticket queue of ticket_drain).
CREATE INDEX support_tickets_unrouted_idx ON public.support_tickets (user_id, created_at, id)
    WHERE assigned_agent_id IS NULL AND status NOT IN ('resolved', 'closed');
-- The chats waiting across tenants, oldest first (routing_tenants_waiting: the expiry sweep's one look across them).
CREATE INDEX live_chat_sessions_waiting_idx ON public.live_chat_sessions (created_at) WHERE status = 'waiting';

ALTER TABLE public.support_agents FORCE ROW LEVEL SECURITY;
ALTER TABLE public.support_tickets FORCE ROW LEVEL SECURITY;
ALTER TABLE public.live_chat_sessions FORCE ROW LEVEL SECURITY;

-- The runtime role routes (SECURITY INVOKER functions): it stamps the times; open_tickets is the trigger's alone.
GRANT UPDATE (last_ticket_assigned_at) ON public.support_agents TO support_app;
-- A new ticket is inserted with the agent the router picked (support.services.routing.pick_agent).
GRANT INSERT (assigned_agent_id) ON public.support_tickets TO support_app;
-- The visitor of a chat that became a ticket without an email leaves one (support.services.chat_expiry.leave_email).
GRANT UPDATE (customer_email) ON public.support_tickets TO support_app;
-- The expiry sweep's lister (routing_tenants_waiting, owned by support_analytics_lister) sees which tenants have a
-- chat waiting since before a time: ids only.
GRANT SELECT (status, created_at) ON public.live_chat_sessions TO support_analytics_lister;
