-- Live chat in real time: widget keys for visitors of a merchant's site, the WebSocket connections of a
-- tenant, the staff connections that joined a session, idempotent messages, and fair automatic assignment.
-- Follows 0010's rules: row-level security on every tenant table, the runtime role gets exactly the
-- allow-list (sql/privileges.toml), and the one SECURITY DEFINER function pins its search path.

-- 1. Widget keys. ------------------------------------------------------------------------------------------
-- A widget key is a public identifier embedded in a merchant's page (like a publishable API key): it names the
-- tenant and the origins allowed to use it. Revoking sets revoked_at (the row stays, so a revoked key is told
-- apart from an unknown one in the logs, and is never reissued).
CREATE TABLE widget_keys (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    widget_key      text NOT NULL UNIQUE CHECK (widget_key ~ '^wk_[A-Za-z0-9_-]{20,64}$'),
    user_id         uuid NOT NULL,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    allowed_origins text[] NOT NULL CHECK (cardinality(allowed_origins) BETWEEN 1 AND 50),
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    UNIQUE (user_id, widget_key)
);
CREATE INDEX widget_keys_list_idx ON widget_keys (user_id, created_at DESC, id DESC);

-- The public widget route knows only the key, not the tenant, so it cannot set app.tenant_id first. Like the
-- search side table of 0003, the table has row-level security ENABLEd (the runtime role reads only its tenant's
-- keys) but not FORCEd, so that this owner's function can look one key up. It answers only for the exact key
-- asked (a caller learns nothing it did not already hold), and only what the route needs.
ALTER TABLE widget_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON widget_keys
    USING (user_id = current_setting('app.tenant_id')::uuid)
    WITH CHECK (user_id = current_setting('app.tenant_id')::uuid);

CREATE FUNCTION public.widget_key_for_visitors(key text)
RETURNS TABLE (user_id uuid, allowed_origins text[], revoked boolean)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT w.user_id, w.allowed_origins, w.revoked_at IS NOT NULL
    FROM public.widget_keys w
    WHERE w.widget_key = key
$$;

-- 2. WebSocket connections. ------------------------------------------------------------------------------
-- One row per open connection, written by $connect and deleted by $disconnect, or when a post to it answers
-- 410 Gone. Fan-out finds a session's participants here: its visitor's connections (by visitor id), the
-- assigned agent's (by agent id), and the staff connections that joined it (session_watchers).
CREATE TABLE ws_connections (
    connection_id text PRIMARY KEY CHECK (length(connection_id) BETWEEN 1 AND 128),
    user_id       uuid NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'agent', 'visitor')),
    agent_id      uuid,
    visitor_id    text CHECK (length(visitor_id) BETWEEN 1 AND 200),
    widget_key    text,
    connected_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, connection_id),
    CHECK ((role = 'visitor') = (visitor_id IS NOT NULL)),
    CHECK (role <> 'visitor' OR widget_key IS NOT NULL),
    FOREIGN KEY (user_id, agent_id) REFERENCES support_agents (user_id, id) ON DELETE CASCADE
);
CREATE INDEX ws_connections_visitor_idx ON ws_connections (user_id, visitor_id) WHERE visitor_id IS NOT NULL;
CREATE INDEX ws_connections_agent_idx ON ws_connections (user_id, agent_id) WHERE agent_id IS NOT NULL;
CREATE INDEX ws_connections_staff_idx ON ws_connections (user_id, role) WHERE role <> 'visitor';

CREATE TABLE session_watchers (
    connection_id text NOT NULL,
    session_id    uuid NOT NULL,
    user_id       uuid NOT NULL,
    joined_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, session_id),
    FOREIGN KEY (user_id, connection_id) REFERENCES ws_connections (user_id, connection_id) ON DELETE CASCADE,
    FOREIGN KEY (user_id, session_id) REFERENCES live_chat_sessions (user_id, id) ON DELETE CASCADE
);
CREATE INDEX session_watchers_session_idx ON session_watchers (user_id, session_id);

-- 3. Idempotent messages: a client resending after a drop names the same clientMessageId, and the session's
--    unique index turns the resend into the stored message instead of a second one.
ALTER TABLE chat_messages
    ADD COLUMN client_message_id text CHECK (length(client_message_id) BETWEEN 1 AND 64);
CREATE UNIQUE INDEX chat_messages_client_message_key ON chat_messages (session_id, client_message_id)
    WHERE client_message_id IS NOT NULL;

-- 4. Fair assignment: fewest current chats first, then the agent assigned least recently.
ALTER TABLE support_agents ADD COLUMN last_assigned_at timestamptz;
-- The queue: a tenant's waiting sessions, oldest first.
CREATE INDEX live_chat_sessions_queue_idx ON live_chat_sessions (user_id, created_at, id) WHERE status = 'waiting';

-- 5. Row-level security and grants. ---------------------------------------------------------------------
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['ws_connections', 'session_watchers']
    LOOP
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON public.%I '
            'USING (user_id = current_setting(''app.tenant_id'')::uuid) '
            'WITH CHECK (user_id = current_setting(''app.tenant_id'')::uuid)', t);
    END LOOP;
END
$$;

REVOKE ALL ON public.widget_keys, public.ws_connections, public.session_watchers FROM PUBLIC;

GRANT SELECT ON public.widget_keys TO support_app;
GRANT INSERT (user_id, widget_key, name, allowed_origins) ON public.widget_keys TO support_app;
GRANT UPDATE (revoked_at) ON public.widget_keys TO support_app;

GRANT SELECT, DELETE ON public.ws_connections TO support_app;
GRANT INSERT (connection_id, user_id, role, agent_id, visitor_id, widget_key) ON public.ws_connections TO support_app;

GRANT SELECT, DELETE ON public.session_watchers TO support_app;
GRANT INSERT (connection_id, session_id, user_id) ON public.session_watchers TO support_app;

GRANT INSERT (client_message_id) ON public.chat_messages TO support_app;
-- A session is stamped with a clock read under the tenant's queue lock, so the queue's order (oldest first) is
-- the order sessions joined it, not the order their transactions began.
GRANT INSERT (created_at, session_start_time) ON public.live_chat_sessions TO support_app;
GRANT UPDATE (last_assigned_at) ON public.support_agents TO support_app;

GRANT EXECUTE ON FUNCTION public.widget_key_for_visitors(text) TO support_app;
