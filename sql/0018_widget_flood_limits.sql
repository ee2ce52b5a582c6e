-- Floods through the public widget (issue 15): the per-tenant settings (the first area: chat, with the waiting
-- queue's cap), per-tenant counters of the public routes (per source IP and per widget key), and a token bucket
-- per WebSocket connection. Follows 0010's rules: row-level security ENABLEd and FORCEd on every new tenant
-- table, and the runtime role gets exactly the allow-list (sql/privileges.toml).

-- 1. Settings per tenant. ---------------------------------------------------------------------------------------
-- One row per tenant and area (chat now; routing, SLA, email, retention later, each a pydantic model of the
-- layer, support.models.settings). The row holds the whole model as validated, so a tenant without a row has
-- the model's defaults and a default changed in code reaches every tenant that never set it.
CREATE TABLE tenant_settings (
    user_id    uuid NOT NULL,
    area       text NOT NULL CHECK (area ~ '^[a-z][a-z_]{0,31}$'),
    settings   jsonb NOT NULL CHECK (jsonb_typeof(settings) = 'object'),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text CHECK (length(updated_by) BETWEEN 1 AND 300),
    PRIMARY KEY (user_id, area)
);

-- 2. Counters of the public routes. -----------------------------------------------------------------------------
-- A token bucket per (tenant, scope, subject): the widget session route and visitor $connect, each per source IP
-- and per widget key (support.services.rate_limits). Keyed by tenant, so one tenant's flood never spends another
-- tenant's budget. `tokens` is the level at `refilled_at`; the level now is that plus the refill since, up to the
-- burst. A row idle long enough to be full again means nothing, so the statement that takes a token deletes a
-- few of the tenant's idle rows too (the index below finds them).
CREATE TABLE rate_limit_counters (
    user_id     uuid NOT NULL,
    scope       text NOT NULL CHECK (scope ~ '^[a-z][a-z-]{0,31}$'),
    subject     text NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    tokens      double precision NOT NULL,
    admitted    boolean NOT NULL,
    refilled_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, scope, subject)
);
CREATE INDEX rate_limit_counters_idle_idx ON rate_limit_counters (user_id, refilled_at);

-- 3. A token bucket per WebSocket connection: the level of its actions at action_refilled_at (NULL: full, a
--    connection that has not acted yet). Updated by one statement per action (support.services.connections).
ALTER TABLE ws_connections
    ADD COLUMN action_tokens double precision,
    ADD COLUMN action_refilled_at timestamptz;

-- 4. Row-level security and grants. ---------------------------------------------------------------------------
-- Enabled here (closed until their policy exists); forced, with their tenant_isolation policy, by
-- sql/definitions/row_level_security.sql, which lists every tenant table.
ALTER TABLE public.tenant_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.rate_limit_counters ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON public.tenant_settings, public.rate_limit_counters FROM PUBLIC;

GRANT SELECT ON public.tenant_settings TO support_app;
GRANT INSERT (user_id, area, settings, updated_at, updated_by) ON public.tenant_settings TO support_app;
GRANT UPDATE (settings, updated_at, updated_by) ON public.tenant_settings TO support_app;

GRANT SELECT, DELETE ON public.rate_limit_counters TO support_app;
GRANT INSERT (user_id, scope, subject, tokens, admitted, refilled_at) ON public.rate_limit_counters TO support_app;
GRANT UPDATE (tokens, admitted, refilled_at) ON public.rate_limit_counters TO support_app;

GRANT UPDATE (action_tokens, action_refilled_at) ON public.ws_connections TO support_app;

-- 5. A visitor holds at most one open chat (support.services.chat.start_chat_session): the start looks it up.
--    Not UNIQUE: staff may start several chats for one visitor over HTTP.
CREATE INDEX live_chat_sessions_open_visitor_idx ON live_chat_sessions (user_id, visitor_id) WHERE status <> 'closed';
