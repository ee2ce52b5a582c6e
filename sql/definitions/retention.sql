-- Retention (issue 19; sql/0040, support.services.retention, docs/ARCHITECTURE.md "Retention and archives").
--
-- The workflow sweep's `retention` step finds the tenants with something due (retention_tenants_due, one look across
-- tenants, ids only), and per tenant, under its row-level security, reads a batch of closed tickets or ended chats
-- with everything hanging from them, writes them to S3 (mode `archive`), and only then deletes them through the
-- functions below. They are the only way anything deletes tickets or chats: SECURITY DEFINER (the owner's), callable
-- by the runtime role, but deleting only what the tenant's own stored policy makes due at the database's clock, so a
-- caller cannot widen them to a ticket that is open, reopened, young, or another tenant's.
--
-- Figures count history: in the transaction of such a delete, the figure triggers (running_totals.sql, day_totals.sql,
-- agent_figures.sql, sla.sql) skip the rows deleted (retention_deleting_now), and a tombstone of the columns the
-- figures are made of stays for the recount. The skip is keyed on a row of retention_deleting, which only these
-- functions write: a runtime role cannot set it (unlike a setting, which any role may set_config).
--
-- retention_deleting (sql/0040) is not a tenant table, so it has no row-level security on purpose: it has no user_id
-- column and holds only the id of a transaction (xid8) while one of these functions runs, nothing of any tenant; no
-- role but the owner has any privilege on it (REVOKE ALL FROM PUBLIC, no grant: tests/integration/test_privileges.py),
-- and its row is deleted before the function returns. tests/integration/test_tenancy.py lists the tables with a
-- user_id column, which this one is not among.

-- True in a transaction in which a retention function is deleting (the figure triggers' DELETE branches ask).
-- PL/pgSQL: a row trigger asks it for every row a delete takes (a SQL function with SET would be planned each time).
CREATE OR REPLACE FUNCTION public.retention_deleting_now() RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM public.retention_deleting d WHERE d.xact = pg_current_xact_id_if_assigned());
END
$$;

-- The time before which the tenant's policy for `p_kind` ('tickets' or 'chats') makes a closed one due at
-- least(p_at, now()): midnight UTC `days` days before (whole days, as support.services.retention.due_before); NULL
-- when the policy deletes nothing (none, or mode `keep`). Refuses a tenant that is not the transaction's own
-- (app.tenant_id, failing closed). The two deletes' first step; internal: the owner's only.
CREATE OR REPLACE FUNCTION public.retention_cutoff(p_tenant uuid, p_kind text, p_at timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    tenant constant uuid := current_setting('app.tenant_id')::uuid;  -- the caller's binding, failing closed
    policy jsonb;
BEGIN
    IF tenant IS DISTINCT FROM p_tenant THEN
        RAISE EXCEPTION 'retention: the transaction is bound to another tenant' USING ERRCODE = '42501';
    END IF;
    SELECT s.settings -> p_kind INTO policy
    FROM public.tenant_settings s WHERE s.user_id = tenant AND s.area = 'retention';
    IF policy IS NULL OR coalesce(policy ->> 'mode', 'keep') NOT IN ('delete', 'archive') THEN
        RETURN NULL;
    END IF;
    RETURN date_trunc('day', least(p_at, now()), 'UTC') - make_interval(days => (policy ->> 'days')::integer);
END
$$;
REVOKE ALL ON FUNCTION public.retention_cutoff(uuid, text, timestamptz) FROM PUBLIC;

-- Closed tickets of `p_ids` that the tenant's policy makes due at least(p_at, now()): locked (FOR UPDATE re-reads a
-- row another transaction changed, so a ticket reopened meanwhile, or being reopened now, is left alone), their
-- tombstones written, then deleted with their conversations, feedback, SLA rows and search entries (ON DELETE
-- CASCADE). Answers how many it deleted.
CREATE OR REPLACE FUNCTION public.retention_delete_tickets(p_tenant uuid, p_ids uuid[], p_at timestamptz)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    tenant constant uuid := current_setting('app.tenant_id')::uuid;  -- the caller's binding, failing closed
    cutoff timestamptz;
    doomed uuid[];
    gone integer;
BEGIN
    cutoff := public.retention_cutoff(p_tenant, 'tickets', p_at);  -- refuses another tenant
    IF cutoff IS NULL THEN
        RETURN 0;
    END IF;
    doomed := ARRAY(
        SELECT t.id FROM public.support_tickets t
        WHERE t.user_id = tenant AND t.id = ANY (p_ids)
          AND t.status IN ('resolved', 'closed') AND t.resolved_at < cutoff
        ORDER BY t.id
        FOR UPDATE OF t);
    IF cardinality(doomed) = 0 THEN
        RETURN 0;
    END IF;
    INSERT INTO public.retention_deleting (xact) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
    INSERT INTO public.retention_ticket_tombstones (user_id, id, status, priority, category, channel, created_at,
                                                    resolved_at, assigned_agent_id, resolution_time,
                                                    first_response_time, feedback_created_at, feedback_rating,
                                                    feedback_agent_rating)
    SELECT t.user_id, t.id, t.status, t.priority, t.category, t.channel, t.created_at, t.resolved_at,
           t.assigned_agent_id, t.resolution_time, t.first_response_time, f.created_at, f.rating, f.agent_rating
    FROM public.support_tickets t
    LEFT JOIN public.ticket_feedback f ON f.user_id = t.user_id AND f.ticket_id = t.id
    WHERE t.user_id = tenant AND t.id = ANY (doomed)
    ON CONFLICT (user_id, id) DO NOTHING;
    -- The status and age again, in the DELETE itself (the rows are locked: this only restates the rule).
    DELETE FROM public.support_tickets t
    WHERE t.user_id = tenant AND t.id = ANY (doomed)
      AND t.status IN ('resolved', 'closed') AND t.resolved_at < cutoff;
    GET DIAGNOSTICS gone = ROW_COUNT;
    DELETE FROM public.retention_deleting d WHERE d.xact = pg_current_xact_id();
    RETURN gone;
END
$$;
REVOKE ALL ON FUNCTION public.retention_delete_tickets(uuid, uuid[], timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.retention_delete_tickets(uuid, uuid[], timestamptz) TO support_app;

-- The same for ended chats (status `closed`, by session_end_time), with their messages.
CREATE OR REPLACE FUNCTION public.retention_delete_chats(p_tenant uuid, p_ids uuid[], p_at timestamptz)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    tenant constant uuid := current_setting('app.tenant_id')::uuid;  -- the caller's binding, failing closed
    cutoff timestamptz;
    doomed uuid[];
    gone integer;
BEGIN
    cutoff := public.retention_cutoff(p_tenant, 'chats', p_at);  -- refuses another tenant
    IF cutoff IS NULL THEN
        RETURN 0;
    END IF;
    doomed := ARRAY(
        SELECT s.id FROM public.live_chat_sessions s
        WHERE s.user_id = tenant AND s.id = ANY (p_ids) AND s.status = 'closed' AND s.session_end_time < cutoff
        ORDER BY s.id
        FOR UPDATE OF s);
    IF cardinality(doomed) = 0 THEN
        RETURN 0;
    END IF;
    INSERT INTO public.retention_deleting (xact) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
    INSERT INTO public.retention_chat_tombstones (user_id, id, status, duration, assigned_agent_id)
    SELECT s.user_id, s.id, s.status, s.duration, s.assigned_agent_id
    FROM public.live_chat_sessions s WHERE s.user_id = tenant AND s.id = ANY (doomed)
    ON CONFLICT (user_id, id) DO NOTHING;
    DELETE FROM public.live_chat_sessions s
    WHERE s.user_id = tenant AND s.id = ANY (doomed) AND s.status = 'closed' AND s.session_end_time < cutoff;
    GET DIAGNOSTICS gone = ROW_COUNT;
    DELETE FROM public.retention_deleting d WHERE d.xact = pg_current_xact_id();
    RETURN gone;
END
$$;
REVOKE ALL ON FUNCTION public.retention_delete_chats(uuid, uuid[], timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.retention_delete_chats(uuid, uuid[], timestamptz) TO support_app;

-- The tenants whose policy has a closed ticket or an ended chat due at p_at (the step's one look across tenants: ids
-- only; a tenant's own transaction then re-reads its policy and rows). An index probe per tenant with a policy
-- (support_tickets_resolved_idx, live_chat_sessions_end_idx), so a minute with nothing due costs one round trip.
-- Owned by support_analytics_lister, whose policies let it read the retention settings and the few columns granted to
-- it across tenants (sql/0012, sql/0040). Replacing it takes membership in its owner, for these statements only.
-- A tenant whose oldest audit entry is past its `audit_days` is due too (audit_oldest_entry_at: the owner's, one probe
-- of the chain's index; support.services.retention.prune_audit).
GRANT support_analytics_lister TO support_owner;
CREATE OR REPLACE FUNCTION public.retention_tenants_due(p_at timestamptz)
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT s.user_id FROM public.tenant_settings s
    WHERE s.area = 'retention'
      AND ((s.settings -> 'tickets' ->> 'mode' IN ('delete', 'archive')
            AND EXISTS (SELECT 1 FROM public.support_tickets t
                        WHERE t.user_id = s.user_id AND t.resolved_at IS NOT NULL
                          AND t.resolved_at < p_at - make_interval(days => (s.settings -> 'tickets' ->> 'days')::integer)))
        OR (s.settings -> 'chats' ->> 'mode' IN ('delete', 'archive')
            AND EXISTS (SELECT 1 FROM public.live_chat_sessions c
                        WHERE c.user_id = s.user_id AND c.session_end_time IS NOT NULL AND c.status = 'closed'
                          AND c.session_end_time < p_at - make_interval(days => (s.settings -> 'chats' ->> 'days')::integer)))
        OR (s.settings ->> 'audit_days' IS NOT NULL
            AND public.audit_oldest_entry_at(s.user_id)
                < least(p_at, now()) - make_interval(days => (s.settings ->> 'audit_days')::integer)))
    ORDER BY s.user_id
$$;
REVOKE ALL ON FUNCTION public.retention_tenants_due(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.retention_tenants_due(timestamptz) TO support_app;
GRANT CREATE ON SCHEMA public TO support_analytics_lister;
ALTER FUNCTION public.retention_tenants_due(timestamptz) OWNER TO support_analytics_lister;
REVOKE CREATE ON SCHEMA public FROM support_analytics_lister;
REVOKE support_analytics_lister FROM support_owner;
