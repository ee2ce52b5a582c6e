-- An idempotent startChat: a visitor's client names each attempt to start a chat (clientStartId), and a
-- startChat retried after its chat.started answer was lost (a dropped connection) finds the session that
-- attempt made instead of starting a second one. Scoped to the visitor: another visitor's same id is theirs.
-- (0013 and 0014 are another branch's; the lead renumbers at merge if need be.)
ALTER TABLE live_chat_sessions
    ADD COLUMN client_start_id text CHECK (length(client_start_id) BETWEEN 1 AND 64);
CREATE UNIQUE INDEX live_chat_sessions_client_start_key ON live_chat_sessions (user_id, visitor_id, client_start_id)
    WHERE client_start_id IS NOT NULL;

GRANT INSERT (client_start_id) ON public.live_chat_sessions TO support_app;
