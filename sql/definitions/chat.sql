-- The live chat's hot path in the database (layers/support/support/services/chat.py: add_chat_message,
-- mark_chat_messages_read, typing, sync): each of these functions does in one call what took a statement per
-- step, so that the service sends it in one pipeline with BEGIN, the tenant binding and COMMIT, and waits once
-- (bench/round_trips.py counts the round trips; bench/RESULTS.md).
--
-- SECURITY INVOKER (the default): they run as the runtime role, under its row-level security and with its
-- column privileges, so they can do nothing the service's own statements could not. The search path is pinned
-- anyway and every relation schema-qualified. Refusals are outcomes, not exceptions: the transaction then commits
-- nothing (no write happens before the checks), without the extra round trip a ROLLBACK after an error costs; the
-- service maps each outcome to its NotFound / Forbidden / Conflict.
--
-- The chat's participant rules live here alone: who may act on a session (chat_refusal) and who hears about it
-- (chat_participants). The service's other paths (start, claim, end, transfer, rate, the queue's assignments) call
-- them in the statements they already send.
--
-- Who may act on a session (chat_refusal): its visitor (another visitor's session is `not_found`: they learn
-- nothing); any admin; the agent assigned to it; a staff connection that joined it (`forbidden` otherwise). A NULL
-- p_connection is an HTTP caller: desk staff, who act on any of the tenant's sessions.

-- Why the caller may not act on the session: NULL when it may, else 'not_found' or 'forbidden'.
CREATE OR REPLACE FUNCTION public.chat_refusal(
    p_tenant uuid, p_session uuid, p_session_visitor text, p_session_agent uuid,
    p_role text, p_visitor_id text, p_agent_id uuid, p_connection text
) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT CASE
        WHEN p_role = 'visitor' THEN
            CASE WHEN p_session_visitor IS NOT DISTINCT FROM p_visitor_id THEN NULL ELSE 'not_found' END
        WHEN p_connection IS NULL OR p_role = 'admin' THEN NULL
        WHEN p_agent_id IS NOT NULL AND p_session_agent = p_agent_id THEN NULL
        WHEN EXISTS (SELECT FROM public.session_watchers w
                     WHERE w.user_id = p_tenant AND w.session_id = p_session AND w.connection_id = p_connection)
            THEN NULL
        ELSE 'forbidden'
    END
$$;

-- The connections that hear about a session: its visitor's (every connection of that visitor id: two tabs, a
-- phone), its assigned agent's and p_also's (the agent a transfer took it from: both ends of a transfer hear of
-- it), and the staff connections that joined it (joinSession), until they disconnect; a staff connection once, as
-- `staff`. As the session is now: called after a change in the same transaction, it names the new agent.
-- (It took no p_also before: that signature goes, else two-argument calls would find two functions.)
DROP FUNCTION IF EXISTS public.chat_participants(uuid, uuid);
CREATE OR REPLACE FUNCTION public.chat_participants(p_tenant uuid, p_session uuid, p_also uuid DEFAULT NULL)
RETURNS TABLE (connection_id text, side text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT c.connection_id, CASE WHEN c.role = 'visitor' THEN 'visitor' ELSE 'staff' END
    FROM public.live_chat_sessions s
    JOIN public.ws_connections c ON c.user_id = s.user_id
        AND ((c.role = 'visitor' AND c.visitor_id = s.visitor_id) OR c.agent_id = s.assigned_agent_id
             OR c.agent_id = p_also)
    WHERE s.user_id = p_tenant AND s.id = p_session
    UNION
    SELECT w.connection_id, 'staff' FROM public.session_watchers w
    WHERE w.user_id = p_tenant AND w.session_id = p_session
$$;

-- addChatMessage. Under the session's lock (FOR UPDATE, as before: concurrent sends to one session are stamped in
-- the order they commit, and no concurrent insert of the same client_message_id can race the resend check):
-- the participant check; the resend check (the caller's own message under p_client_message_id answers again,
-- `resent`, with nothing stored; another sender's is `taken`); an ended session is `closed`; then the insert
-- (clock_timestamp() under the lock; without a sender name, the visitor's on the session or the agent's own) and
-- the session's counters. Returns the outcome, the message (stored or resent) and, for a new one, the
-- participants' connections and sides.
--
-- Run twice (support.db's pipelined write reconnects and runs it again when the connection broke after the first
-- run committed), a send with a client_message_id finds its own message and answers it `resent`: it is never
-- stored twice. A send without one (the HTTP route) is sent only once (the service's `once`).
CREATE OR REPLACE FUNCTION public.chat_send_message(
    p_tenant uuid, p_session uuid, p_role text, p_visitor_id text, p_agent_id uuid, p_connection text,
    p_subject text, p_sender_type text, p_sender_name text, p_message text, p_attachment_url text,
    p_attachment_type text, p_client_message_id text
) RETURNS TABLE (outcome text, message public.chat_messages, connection_ids text[], connection_sides text[])
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    s record;
    refusal text;
BEGIN
    SELECT cs.id, cs.visitor_id, cs.visitor_name, cs.status, cs.assigned_agent_id INTO s
    FROM public.live_chat_sessions cs WHERE cs.user_id = p_tenant AND cs.id = p_session FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::public.chat_messages, NULL::text[], NULL::text[];
        RETURN;
    END IF;
    refusal := public.chat_refusal(p_tenant, p_session, s.visitor_id, s.assigned_agent_id, p_role, p_visitor_id,
                                   p_agent_id, p_connection);
    IF refusal IS NOT NULL THEN
        RETURN QUERY SELECT refusal, NULL::public.chat_messages, NULL::text[], NULL::text[];
        RETURN;
    END IF;
    IF p_client_message_id IS NOT NULL THEN
        SELECT m.* INTO message FROM public.chat_messages m
        WHERE m.user_id = p_tenant AND m.session_id = p_session AND m.client_message_id = p_client_message_id;
        IF FOUND THEN
            -- an id is its sender's: another's message under it is never the answer (nor anything of it told)
            IF message.client_sender IS NULL OR message.client_sender IS DISTINCT FROM p_subject THEN
                RETURN QUERY SELECT 'taken'::text, NULL::public.chat_messages, NULL::text[], NULL::text[];
            ELSE
                RETURN QUERY SELECT 'resent'::text, message, NULL::text[], NULL::text[];
            END IF;
            RETURN;
        END IF;
    END IF;
    IF s.status = 'closed' THEN
        RETURN QUERY SELECT 'closed'::text, NULL::public.chat_messages, NULL::text[], NULL::text[];
        RETURN;
    END IF;
    INSERT INTO public.chat_messages AS m (session_id, user_id, sender_type, sender_name, message, attachment_url,
        attachment_type, client_message_id, client_sender, created_at)
    VALUES (p_session, p_tenant, p_sender_type,
        coalesce(p_sender_name, CASE WHEN p_role = 'visitor' THEN s.visitor_name END,
                 (SELECT a.agent_name FROM public.support_agents a WHERE a.user_id = p_tenant AND a.id = p_agent_id)),
        p_message, p_attachment_url, p_attachment_type, p_client_message_id,
        CASE WHEN p_client_message_id IS NOT NULL THEN nullif(p_subject, '') END, clock_timestamp())
    RETURNING m.* INTO message;
    UPDATE public.live_chat_sessions cs
    SET total_messages = cs.total_messages + 1,
        message_count = cs.message_count + CASE WHEN p_sender_type IN ('customer', 'agent') THEN 1 ELSE 0 END
    WHERE cs.user_id = p_tenant AND cs.id = p_session;
    RETURN QUERY SELECT 'new'::text, message, array_agg(p.connection_id), array_agg(p.side)
        FROM public.chat_participants(p_tenant, p_session) p;
END
$$;

-- markRead: the other side's unread messages up to and including p_up_to (by position in the session) become
-- read now (now(): the transaction's time, the read_at returned). Outcomes: `not_found` / `forbidden` (the
-- session), `no_message` (p_up_to is not a message of the session), `read` with the count marked and the
-- participants. Not for a pipeline that may run twice: a second run would mark nothing and say so.
CREATE OR REPLACE FUNCTION public.chat_mark_read(
    p_tenant uuid, p_session uuid, p_role text, p_visitor_id text, p_agent_id uuid, p_connection text,
    p_up_to uuid, p_side_read text
) RETURNS TABLE (outcome text, marked_count integer, read_at timestamptz, connection_ids text[],
                 connection_sides text[])
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    s record;
    last record;
    refusal text;
    marked integer;
BEGIN
    SELECT cs.id, cs.visitor_id, cs.assigned_agent_id INTO s
    FROM public.live_chat_sessions cs WHERE cs.user_id = p_tenant AND cs.id = p_session;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::integer, NULL::timestamptz, NULL::text[], NULL::text[];
        RETURN;
    END IF;
    refusal := public.chat_refusal(p_tenant, p_session, s.visitor_id, s.assigned_agent_id, p_role, p_visitor_id,
                                   p_agent_id, p_connection);
    IF refusal IS NOT NULL THEN
        RETURN QUERY SELECT refusal, NULL::integer, NULL::timestamptz, NULL::text[], NULL::text[];
        RETURN;
    END IF;
    SELECT m.created_at, m.id INTO last FROM public.chat_messages m
    WHERE m.user_id = p_tenant AND m.session_id = p_session AND m.id = p_up_to;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_message'::text, NULL::integer, NULL::timestamptz, NULL::text[], NULL::text[];
        RETURN;
    END IF;
    UPDATE public.chat_messages m SET is_read = true, read_at = now()
    WHERE m.user_id = p_tenant AND m.session_id = p_session AND m.sender_type = p_side_read AND NOT m.is_read
      AND (m.created_at, m.id) <= (last.created_at, last.id);
    GET DIAGNOSTICS marked = ROW_COUNT;
    RETURN QUERY SELECT 'read'::text, marked, now(), array_agg(p.connection_id), array_agg(p.side)
        FROM public.chat_participants(p_tenant, p_session) p;
END
$$;

GRANT EXECUTE ON FUNCTION public.chat_refusal(uuid, uuid, text, uuid, text, text, uuid, text) TO support_app;
GRANT EXECUTE ON FUNCTION public.chat_participants(uuid, uuid, uuid) TO support_app;
GRANT EXECUTE ON FUNCTION public.chat_send_message(uuid, uuid, text, text, uuid, text, text, text, text, text, text,
                                                    text, text) TO support_app;
GRANT EXECUTE ON FUNCTION public.chat_mark_read(uuid, uuid, text, text, uuid, text, uuid, text) TO support_app;
