-- Connections that keep only the rights they were opened with (issue 15): what the WebSocket side records so
-- that a connection cannot outlive its token, its widget key or its one-time connect token, and so that a
-- client's message id names its sender. Follows 0010's rules: row-level security on the new table, exactly the
-- grants the code uses (sql/privileges.toml).

-- 1. A staff connection's token expiry. ---------------------------------------------------------------------
-- API Gateway keeps a WebSocket connection open for up to two hours whatever its token said; the authorizer
-- passes the token's `exp` in the connection's context and $connect records it here, so the desk can see which
-- connections run on borrowed time. Every message after it is refused and the connection closed (support.
-- websocket). Visitors' connections have none: their connect token is spent on $connect (section 3).
ALTER TABLE ws_connections ADD COLUMN token_expires_at timestamptz;
GRANT INSERT (token_expires_at) ON public.ws_connections TO support_app;

-- 2. Whose clientMessageId it is. -----------------------------------------------------------------------------
-- A resend is recognised by (session, clientMessageId) and must be the same sender's: the principal's subject
-- (`visitor:<id>` for a visitor, the token's `sub` for staff). Another sender's message under the same id is a
-- conflict, never an answer (before this, a visitor who sent an id an agent would use swallowed the agent's
-- message). Rows written before this have no sender: a resend of one of those is a conflict too.
ALTER TABLE chat_messages
    ADD COLUMN client_sender text CHECK (length(client_sender) BETWEEN 1 AND 300),
    ADD CONSTRAINT chat_messages_client_sender_with_id CHECK (client_sender IS NULL OR client_message_id IS NOT NULL);
GRANT INSERT (client_sender) ON public.chat_messages TO support_app;

-- 3. Visitor connect tokens, spent once. ---------------------------------------------------------------------
-- A connect token (5 minutes) carries an id (`jti`); the $connect authorizer records it here on first use, in
-- the tenant's transaction, and refuses a token whose id is already here. A row is needed only while its token
-- could still verify, so each $connect of a tenant deletes that tenant's rows past their expiry (an index range
-- scan over a few rows): the table holds at most the tokens of the last five minutes.
CREATE TABLE visitor_connect_tokens (
    token_id   uuid PRIMARY KEY,
    user_id    uuid NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX visitor_connect_tokens_expiry_idx ON visitor_connect_tokens (user_id, expires_at);

-- Row-level security: enabled here (closed until the policy exists), forced with its tenant_isolation policy by
-- sql/definitions/row_level_security.sql, which lists every tenant table.
ALTER TABLE public.visitor_connect_tokens ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON public.visitor_connect_tokens FROM PUBLIC;
-- SELECT on the columns the cleanup's WHERE reads and the conflict check (ON CONFLICT (token_id)) compares; DELETE for
-- the cleanup; INSERT of the three the code writes.
GRANT SELECT (token_id, user_id, expires_at) ON public.visitor_connect_tokens TO support_app;
GRANT INSERT (token_id, user_id, expires_at) ON public.visitor_connect_tokens TO support_app;
GRANT DELETE ON public.visitor_connect_tokens TO support_app;
