-- A chat's own staff connection (issue 16): a console that opens one WebSocket per open chat (a chat window) opens it
-- with `?sessionId=`, and that connection hears that session's events only: not the agent's other chats, nor the
-- staff broadcasts (queue, presence), which the agent's main connection hears. Without it, every connection of an
-- agent heard every event of every chat of theirs, so a message to an agent with 25 chat windows cost 25 posts (and
-- 25 of API Gateway's billed messages) where 1 serves. chat_participants (sql/definitions/chat.sql) and the staff
-- audience (support.services.connections.staff_connections) read it.
--
-- The foreign key is per tenant, as every link between tenant tables: a connection can only follow a chat of its own
-- tenant. Only staff connections follow a chat (a visitor's already hears its own chats only).
-- The foreign key's validation reads both tables as the owner, whom FORCE filters too: lifted for this transaction only
-- (ALTER TABLE locks until commit), as 0031 does. The new column is NULL everywhere: nothing is rewritten.
ALTER TABLE public.ws_connections NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.live_chat_sessions NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.ws_connections ADD COLUMN session_id uuid;
ALTER TABLE public.ws_connections ADD CONSTRAINT ws_connections_session_fkey
    FOREIGN KEY (user_id, session_id) REFERENCES public.live_chat_sessions (user_id, id) ON DELETE CASCADE;
ALTER TABLE public.ws_connections ADD CONSTRAINT ws_connections_session_staff_check
    CHECK (session_id IS NULL OR role <> 'visitor');
CREATE INDEX ws_connections_session_idx ON public.ws_connections (user_id, session_id) WHERE session_id IS NOT NULL;
ALTER TABLE public.ws_connections FORCE ROW LEVEL SECURITY;
ALTER TABLE public.live_chat_sessions FORCE ROW LEVEL SECURITY;

GRANT INSERT (session_id) ON public.ws_connections TO support_app;
