-- Automation rules (sql/0034; support.services.automations): the events the desk's changes write for the rules, in
-- the change's own transaction, so that no code path forgets one; the default rules a new tenant gets; since when a
-- ticket is in its status; the tenants the sweep has work for.
--
-- The capture triggers are statement-level (one insert per statement, however many rows) and SECURITY DEFINER: the
-- runtime role reads the events but never writes one by hand but for the sweep's own. An event is written only when
-- the tenant has an enabled rule on it, so a desk without rules pays one index probe per statement. A change made by
-- a rule's action carries the rule and the chain's depth (the transaction-local settings app.automation_rule and
-- app.automation_depth, set by the runner): the runner never runs a rule on its own change and stops a chain.

-- The two default rules (the auto-close rules), given once per tenant: its first ticket or chat, or the first time
-- an admin opens the rules. sql/0034 gave them to the tenants that existed then, with the same definitions.
CREATE OR REPLACE FUNCTION public.automation_seed_defaults(tenant uuid) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    INSERT INTO public.automation_tenants (user_id) VALUES (tenant) ON CONFLICT (user_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- The auto-close of resolved tickets starts from now (swept_until), as sql/0034 gave it to the tenants then.
    INSERT INTO public.automation_rules (user_id, name, event, definition, position, swept_until)
    VALUES
        (tenant, 'Auto-close resolved tickets', 'ticket_in_status',
         '{"parameters": {"status": "resolved", "hours": 72}, "conditions": {"all": []}, "actions": [{"type": "set_status", "value": "closed"}]}',
         0, now()),
        (tenant, 'Auto-close idle chats', 'chat_idle',
         '{"parameters": {"minutes": 30}, "conditions": {"all": []}, "actions": [{"type": "end_chat", "value": null}]}',
         1, NULL);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION public.automation_seed_defaults(uuid) FROM PUBLIC;

-- The runtime role's way to it (the rules API, before any ticket or chat): its own tenant only, from the
-- transaction's binding, never an argument.
CREATE OR REPLACE FUNCTION public.automation_seed_own_defaults() RETURNS boolean
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT public.automation_seed_defaults(current_setting('app.tenant_id')::uuid)
$$;
REVOKE ALL ON FUNCTION public.automation_seed_own_defaults() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.automation_seed_own_defaults() TO support_app;

-- The rule whose action made the change (NULL: a person's or the system's change), and the chain's depth.
CREATE OR REPLACE FUNCTION public.automation_cause() RETURNS TABLE (rule uuid, depth smallint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT nullif(current_setting('app.automation_rule', true), '')::uuid,
           coalesce(nullif(current_setting('app.automation_depth', true), '')::smallint, 0::smallint);
END
$$;

CREATE OR REPLACE FUNCTION public.automation_capture_tickets() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    -- A privacy erasure anonymises rows; it is no event of the desk's (sql/definitions/privacy.sql).
    IF TG_OP = 'UPDATE' AND current_setting('app.privacy_erasure', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM public.automation_seed_defaults(t.user_id)
        FROM (SELECT DISTINCT n.user_id FROM new_rows n) t
        WHERE NOT EXISTS (SELECT FROM public.automation_tenants a WHERE a.user_id = t.user_id);
        INSERT INTO public.automation_events (user_id, event, ticket_id, data, caused_by_rule, depth)
        SELECT n.user_id, 'ticket_created', n.id, '{}', c.rule, c.depth
        FROM new_rows n CROSS JOIN public.automation_cause() c
        WHERE EXISTS (SELECT FROM public.automation_rules r
                      WHERE r.user_id = n.user_id AND r.event = 'ticket_created' AND r.enabled);
    ELSE
        INSERT INTO public.automation_events (user_id, event, ticket_id, data, caused_by_rule, depth)
        SELECT n.user_id, e.event, n.id, e.data, c.rule, c.depth
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        CROSS JOIN public.automation_cause() c
        CROSS JOIN LATERAL (
            SELECT 'ticket_updated' AS event,
                   jsonb_build_object('previousStatus', o.status, 'changed', to_jsonb(array_remove(ARRAY[
                       CASE WHEN n.status IS DISTINCT FROM o.status THEN 'status' END,
                       CASE WHEN n.priority IS DISTINCT FROM o.priority THEN 'priority' END,
                       CASE WHEN n.category IS DISTINCT FROM o.category THEN 'category' END,
                       CASE WHEN n.assigned_agent_id IS DISTINCT FROM o.assigned_agent_id THEN 'assignedAgentId' END,
                       CASE WHEN n.custom_fields IS DISTINCT FROM o.custom_fields THEN 'customFields' END,
                       CASE WHEN n.subject IS DISTINCT FROM o.subject THEN 'subject' END,
                       CASE WHEN n.description IS DISTINCT FROM o.description THEN 'description' END
                   ], NULL))) AS data
            WHERE (n.status, n.priority, n.category, n.assigned_agent_id, n.custom_fields, n.subject, n.description)
                  IS DISTINCT FROM
                  (o.status, o.priority, o.category, o.assigned_agent_id, o.custom_fields, o.subject, o.description)
            UNION ALL
            SELECT 'ticket_status_changed', jsonb_build_object('previousStatus', o.status)
            WHERE n.status IS DISTINCT FROM o.status
        ) e
        WHERE EXISTS (SELECT FROM public.automation_rules r
                      WHERE r.user_id = n.user_id AND r.event = e.event AND r.enabled);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER support_tickets_automation_insert AFTER INSERT ON public.support_tickets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.automation_capture_tickets();
CREATE OR REPLACE TRIGGER support_tickets_automation_update AFTER UPDATE ON public.support_tickets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.automation_capture_tickets();

-- A customer's message, or an agent's public reply, as it is written. Entries copied with their original times (a
-- chat made into a ticket copies its messages) are older than the transaction and are not replies now.
CREATE OR REPLACE FUNCTION public.automation_capture_conversations() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    INSERT INTO public.automation_events (user_id, event, ticket_id, data, caused_by_rule, depth)
    SELECT n.user_id, e.event, n.ticket_id,
           jsonb_build_object('conversationId', n.id, 'message', left(n.message, 10000)), c.rule, c.depth
    FROM new_rows n
    CROSS JOIN public.automation_cause() c
    CROSS JOIN LATERAL (SELECT CASE WHEN n.sender_type = 'customer' THEN 'customer_replied'
                                    WHEN n.sender_type = 'agent' AND NOT n.is_internal AND n.kind = 'message'
                                        THEN 'agent_replied' END AS event) e
    WHERE e.event IS NOT NULL AND n.created_at >= now()
      AND EXISTS (SELECT FROM public.automation_rules r
                  WHERE r.user_id = n.user_id AND r.event = e.event AND r.enabled);
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER ticket_conversations_automation_insert AFTER INSERT ON public.ticket_conversations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.automation_capture_conversations();

CREATE OR REPLACE FUNCTION public.automation_capture_chats() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    PERFORM public.automation_seed_defaults(t.user_id)
    FROM (SELECT DISTINCT n.user_id FROM new_rows n) t
    WHERE NOT EXISTS (SELECT FROM public.automation_tenants a WHERE a.user_id = t.user_id);
    INSERT INTO public.automation_events (user_id, event, session_id, data, caused_by_rule, depth)
    SELECT n.user_id, 'chat_started', n.id, '{}', c.rule, c.depth
    FROM new_rows n CROSS JOIN public.automation_cause() c
    WHERE EXISTS (SELECT FROM public.automation_rules r
                  WHERE r.user_id = n.user_id AND r.event = 'chat_started' AND r.enabled);
    RETURN NULL;
END
$$;

-- A chat's end, row by row, queued only when the status becomes closed (the trigger's WHEN): the session's every
-- other update (a message moving its counters) runs no trigger at all.
CREATE OR REPLACE FUNCTION public.automation_capture_chat_end() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    INSERT INTO public.automation_events (user_id, event, session_id, data, caused_by_rule, depth)
    SELECT NEW.user_id, 'chat_ended', NEW.id, jsonb_build_object('previousStatus', OLD.status), c.rule, c.depth
    FROM public.automation_cause() c
    WHERE EXISTS (SELECT FROM public.automation_rules r
                  WHERE r.user_id = NEW.user_id AND r.event = 'chat_ended' AND r.enabled);
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER live_chat_sessions_automation_insert AFTER INSERT ON public.live_chat_sessions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.automation_capture_chats();
CREATE OR REPLACE TRIGGER live_chat_sessions_automation_update AFTER UPDATE ON public.live_chat_sessions
    FOR EACH ROW WHEN (NEW.status = 'closed' AND OLD.status <> 'closed')
    EXECUTE FUNCTION public.automation_capture_chat_end();

-- Since when the ticket is in its status (ticket_in_status).
CREATE OR REPLACE FUNCTION public.set_status_changed_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.status_changed_at := now();
    RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER support_tickets_status_changed_at BEFORE UPDATE ON public.support_tickets
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION public.set_status_changed_at();

-- The tenants the sweep has work for, and which: pending events to run, enabled time-based rules to fire. Across
-- tenants (the tables are not forced); the sweep then works in each tenant's own transaction, and skips what a tenant
-- does not need.
CREATE OR REPLACE FUNCTION public.automation_sweep_work()
RETURNS TABLE (user_id uuid, pending boolean, timed boolean)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT w.user_id, bool_or(w.pending), bool_or(w.timed)
    FROM (
        SELECT DISTINCT e.user_id, true AS pending, false AS timed
        FROM public.automation_events e WHERE e.processed_at IS NULL
        UNION ALL
        SELECT DISTINCT r.user_id, false, true FROM public.automation_rules r
        WHERE r.enabled AND r.event IN ('ticket_in_status', 'chat_idle', 'chat_waiting_too_long')
    ) w
    GROUP BY w.user_id
    ORDER BY w.user_id
$$;
REVOKE ALL ON FUNCTION public.automation_sweep_work() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.automation_sweep_work() TO support_app;
