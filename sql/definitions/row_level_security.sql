-- Row-level security: every tenant table and its policies, in one list (history: sql/0002, 0003, 0007, 0011,
-- 0012, 0016, 0018, 0019, 0023, 0024, 0026, 0027, 0028, 0034, 0037, 0038, 0039, 0040, 0041, 0042).
--
-- Every tenant table has ENABLE + FORCE row-level security (FORCE so that even the owner is filtered) and one
-- policy, tenant_isolation, on the transaction-local setting app.tenant_id. current_setting() without
-- missing_ok raises when the setting was never made, and ''::uuid raises once a transaction that made it has
-- ended: a missing tenant fails closed, loudly.
--
-- Some tables are ENABLEd but not FORCEd, so that an owner's SECURITY DEFINER function can read across them
-- (the SLA sweep's two tables too, below):
-- ticket_search_index (search_ticket_ids: a GIN index is never used under a policy, see ticket_search.sql),
-- canned_response_search and canned_response_terms (suggest_canned_responses, for the same reason:
-- canned_suggestions.sql), widget_keys (widget_key_for_visitors: the public route knows the key, not the tenant),
-- and email_outbox (email_outbox_claim and email_outbox_sent_as: the drain serves every tenant, a bounce names only
-- SES's message id), and email_inbound_addresses (email_inbound_tenant: an inbound mail names its receiving
-- address, not the tenant). The runtime roles have no privilege that lets them see the search tables at all, and see only
-- their tenant's widget keys and outbox rows.
--
-- A new tenant table is created by its versioned migration (with ENABLE ROW LEVEL SECURITY there, so that it
-- fails closed until this file has run in the same deploy) and is added to this list the same day;
-- tests/integration/test_tenancy.py fails for a table with a user_id column that is not here.
--
-- The block changes only what differs, so re-applying it takes no table lock when nothing changed.
DO $$
DECLARE
    tenant_table record;
    tenant_rule constant text := 'user_id = current_setting(''app.tenant_id'')::uuid';
    -- The same rule as PostgreSQL prints it back (pg_policies): a different spelling only costs a no-op ALTER.
    tenant_rule_printed constant text := '(user_id = (current_setting(''app.tenant_id''::text))::uuid)';
    existing record;
BEGIN
    FOR tenant_table IN
        SELECT * FROM (VALUES
            ('support_tickets', true),
            ('ticket_conversations', true),
            ('support_agents', true),
            ('live_chat_sessions', true),
            ('chat_messages', true),
            ('canned_responses', true),
            ('support_analytics', true),
            ('support_analytics_cumulative', true),
            ('ticket_feedback', true),
            ('ticket_totals', true),
            ('chat_totals', true),
            ('feedback_totals', true),
            ('ticket_day_totals', true),
            ('feedback_day_totals', true),
            ('ws_connections', true),
            ('session_watchers', true),
            ('visitor_connect_tokens', true),
            ('tenant_settings', true),
            ('rate_limit_counters', true),
            ('broadcast_requests', true),
            ('queue_positions_told', true),
            ('support_contacts', true),
            ('contact_identities', true),
            -- Only the owner's trigger and backfill read or write these (sql/0025; no other role has any privilege):
            -- not forced, so that an owner's or a superuser's insert of a ticket is numbered without a tenant
            -- setting (the ticket itself is under the forced policy of support_tickets), and the backfill can list
            -- the tenants it has left.
            ('ticket_reference_counters', false),
            ('ticket_reference_backfill', false),
            -- not forced (sql/0028): email_inbound_tenant finds the tenant of a receiving address (email_in.sql)
            ('email_inbound_addresses', false),
            ('email_suppressions', true),
            ('email_outbox', false),
            ('inbound_emails', true),
            ('ticket_search_index', false),
            ('canned_response_search', false),
            ('canned_response_terms', false),
            ('widget_keys', false),
            -- Social and other channels (sql/0030): the public messages route finds a channel by its id before it
            -- knows the tenant (channel_delivery_admit, sql/definitions/channels.sql), so support_channels is not
            -- forced; the secrets and the signatures seen are the owner's functions' alone (no other role has any
            -- privilege on them).
            ('support_channels', false),
            ('support_channel_secrets', false),
            ('channel_signatures_seen', false),
            ('channel_messages', true),
            -- SLA (sql/0033): the owner's trigger keeps the sweep's queue and the owner's sla_sweep records the
            -- events, for every tenant at once (sql/definitions/sla.sql), so neither is forced; the runtime role
            -- has no privilege on the queue and reads only its own tenant's events.
            ('ticket_sla_checks', false),
            ('ticket_sla_events', false),
            ('ticket_sla_totals', true),
            -- Automation rules (sql/0034): the capture triggers (SECURITY DEFINER) look up a tenant's rules and write
            -- its events on any write, an owner's load without a tenant setting included, and the sweep lists the
            -- tenants with work (automation_sweep_work, sql/definitions/automations.sql): not forced. The runs
            -- are read and written in the tenant's own transaction only.
            ('automation_rules', false),
            ('automation_tenants', false),
            ('automation_events', false),
            ('automation_runs', true),
            -- Retry-safe writes (sql/0037): the Idempotency-Keys; the workflow sweep's purge (SECURITY DEFINER,
            -- sql/definitions/idempotency.sql) deletes the expired ones of every tenant: not forced.
            ('idempotency_keys', false),
            -- Privacy requests (sql/0039): exports and erasures; the workflow sweep's list of the open ones
            -- (privacy_requests_due, SECURITY DEFINER, sql/definitions/privacy.sql) reads every tenant's ids: not forced.
            ('privacy_requests', false),
            -- Webhooks (sql/0042): the capture triggers (SECURITY DEFINER) look up a tenant's endpoints and write its
            -- deliveries on any write, and the sweep lists the tenants with work (webhook_sweep_work,
            -- sql/definitions/webhooks.sql): not forced. The secrets are the owner's alone (as the channels').
            ('webhook_endpoints', false),
            ('webhook_secrets', false),
            ('webhook_deliveries', false),
            -- Retention (sql/0040): what the figures still count of the rows the retention job deleted; the owner's
            -- functions write them, the recount reads them, no runtime role may touch them.
            ('retention_ticket_tombstones', true),
            ('retention_chat_tombstones', true),
            -- Attachments (sql/0041): read and written in the tenant's own transaction only.
            ('attachments', true),
            -- The audit trail (sql/0038): the capture trigger (the owner's) writes a row's entry whatever the
            -- session's tenant setting, and the sealer and the scheduled check chain and verify every tenant at
            -- once (sql/definitions/audit.sql): not forced. The runtime role reads its tenant's entries only, and
            -- has no privilege on the personal values or the chains' state.
            ('audit_entries', false),
            ('audit_personal_values', false),
            ('audit_chain_state', false)
        ) AS t (name, forced)
    LOOP
        SELECT c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced INTO existing
        FROM pg_catalog.pg_class c
        WHERE c.oid = format('public.%I', tenant_table.name)::regclass;
        IF NOT existing.enabled THEN
            EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', tenant_table.name);
        END IF;
        IF existing.forced IS DISTINCT FROM tenant_table.forced THEN
            EXECUTE format('ALTER TABLE public.%I %s ROW LEVEL SECURITY', tenant_table.name,
                           CASE WHEN tenant_table.forced THEN 'FORCE' ELSE 'NO FORCE' END);
        END IF;

        SELECT p.qual, p.with_check, p.cmd, p.roles INTO existing
        FROM pg_catalog.pg_policies p
        WHERE p.schemaname = 'public' AND p.tablename = tenant_table.name AND p.policyname = 'tenant_isolation';
        IF NOT FOUND THEN
            EXECUTE format('CREATE POLICY tenant_isolation ON public.%I USING (%s) WITH CHECK (%s)',
                           tenant_table.name, tenant_rule, tenant_rule);
        ELSIF existing.cmd <> 'ALL' OR existing.roles <> '{public}'::name[] THEN
            EXECUTE format('DROP POLICY tenant_isolation ON public.%I', tenant_table.name);
            EXECUTE format('CREATE POLICY tenant_isolation ON public.%I USING (%s) WITH CHECK (%s)',
                           tenant_table.name, tenant_rule, tenant_rule);
        ELSIF existing.qual IS DISTINCT FROM tenant_rule_printed
              OR existing.with_check IS DISTINCT FROM tenant_rule_printed THEN
            EXECUTE format('ALTER POLICY tenant_isolation ON public.%I USING (%s) WITH CHECK (%s)',
                           tenant_table.name, tenant_rule, tenant_rule);
        END IF;
    END LOOP;
END
$$;

-- The analytics job's lister (sql/0012) must learn which tenants had activity before it can bind one: a
-- permissive policy for that role alone lets its function, and only its function (nobody logs in as the
-- lister), see every tenant's rows of the few columns it was granted.
DO $$
DECLARE
    source_table text;
BEGIN
    FOREACH source_table IN ARRAY ARRAY['support_tickets', 'live_chat_sessions', 'ticket_feedback'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_policies p
                       WHERE p.schemaname = 'public' AND p.tablename = source_table
                         AND p.policyname = 'analytics_tenants' AND p.cmd = 'SELECT'
                         AND p.roles = '{support_analytics_lister}'::name[] AND p.qual = 'true') THEN
            EXECUTE format('DROP POLICY IF EXISTS analytics_tenants ON public.%I', source_table);
            EXECUTE format('CREATE POLICY analytics_tenants ON public.%I FOR SELECT TO support_analytics_lister '
                           'USING (true)', source_table);
        END IF;
    END LOOP;
END
$$;

-- Retention (sql/0040): the lister's retention_tenants_due reads every tenant's settings rows (it filters the
-- retention area itself). USING (true), as the analytics lister's policies above: a condition would leave the
-- tenant_isolation policy to be evaluated too (permissive policies are OR'ed; only `true OR ...` folds away), and
-- that one raises without a tenant. The lister is NOLOGIN and holds SELECT on three columns only.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_policies p
                   WHERE p.schemaname = 'public' AND p.tablename = 'tenant_settings'
                     AND p.policyname = 'retention_tenants' AND p.cmd = 'SELECT'
                     AND p.roles = '{support_analytics_lister}'::name[] AND p.qual = 'true') THEN
        DROP POLICY IF EXISTS retention_tenants ON public.tenant_settings;
        CREATE POLICY retention_tenants ON public.tenant_settings FOR SELECT TO support_analytics_lister
            USING (true);
    END IF;
END
$$;

-- Unclaimed uploads (sql/0044): the lister's attachments_tenants_unclaimed reads every tenant's pending rows (user_id,
-- state and created_at only: its grants), as retention's lister reads the settings. USING (true), for the same reason.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_policies p
                   WHERE p.schemaname = 'public' AND p.tablename = 'attachments'
                     AND p.policyname = 'uploads_tenants' AND p.cmd = 'SELECT'
                     AND p.roles = '{support_analytics_lister}'::name[] AND p.qual = 'true') THEN
        DROP POLICY IF EXISTS uploads_tenants ON public.attachments;
        CREATE POLICY uploads_tenants ON public.attachments FOR SELECT TO support_analytics_lister USING (true);
    END IF;
END
$$;
