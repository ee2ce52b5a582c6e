-- "Make a ticket" from a chat (issue 17): the session names the ticket made from it, so the action is idempotent
-- per session. The service (support.services.tickets.ticket_from_chat) queues the calls for one session on a lock of
-- their own, makes the ticket only while `ticket_id` is NULL, and sets it in the same transaction: a second call
-- (or a concurrent one, which waits) answers the same ticket.
--
-- The foreign key is per tenant, as every link between tenant tables (support_tickets has UNIQUE (user_id, id)), and
-- a deleted ticket only unlinks the chat. The unique index (one chat per ticket) is partial, so `ticket_id` is no
-- key column for row locks: setting it takes FOR NO KEY UPDATE on the session, which does not wait for the
-- FOR KEY SHARE that every new chat message's foreign key check holds on its session. It also serves the foreign
-- key's ON DELETE.
-- The foreign key's validation reads every row as the owner, whom FORCE filters too: lifted for this transaction only
-- (ALTER TABLE locks until commit), as 0024 does. The new column is NULL everywhere: nothing is rewritten.
ALTER TABLE public.support_tickets NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.live_chat_sessions NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.live_chat_sessions ADD COLUMN ticket_id uuid;
ALTER TABLE public.live_chat_sessions ADD CONSTRAINT live_chat_sessions_ticket_fkey
    FOREIGN KEY (user_id, ticket_id) REFERENCES public.support_tickets (user_id, id) ON DELETE SET NULL (ticket_id);
CREATE UNIQUE INDEX live_chat_sessions_ticket_key ON public.live_chat_sessions (user_id, ticket_id)
    WHERE ticket_id IS NOT NULL;
ALTER TABLE public.support_tickets FORCE ROW LEVEL SECURITY;
ALTER TABLE public.live_chat_sessions FORCE ROW LEVEL SECURITY;

GRANT UPDATE (ticket_id) ON public.live_chat_sessions TO support_app;
