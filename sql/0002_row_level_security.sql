-- Tenant isolation in the database itself. Every tenant table: ENABLE + FORCE row-level security
-- (FORCE so that even the owner is filtered), one policy on the transaction-local setting
-- app.tenant_id. current_setting() without missing_ok raises when the setting was never made, and
-- ''::uuid raises once a transaction that made it has ended: a missing tenant fails closed, loudly.
--
-- The runtime role (support_app) owns nothing, has no BYPASSRLS, and may only read and write rows.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'support_app') THEN
        CREATE ROLE support_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO support_app;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['support_tickets', 'ticket_conversations', 'support_agents', 'live_chat_sessions',
                             'chat_messages', 'canned_responses', 'support_analytics', 'ticket_feedback']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (user_id = current_setting(''app.tenant_id'')::uuid) '
            'WITH CHECK (user_id = current_setting(''app.tenant_id'')::uuid)', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO support_app', t);
    END LOOP;
END
$$;
