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
-- The queue's actions go the same way: chat_start does a whole startChat under the tenant's queue lock (the retry
-- and open-session checks, the queue cap, the insert, the drain, the visitor's own position, the broadcast request)
-- and chat_drain_queue is the drain every queue action runs, so that the lock is held for the server's work alone,
-- never across a round trip to the service (a burst of starts used to queue behind each other's round trips).
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
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF p_role = 'visitor' THEN
        RETURN CASE WHEN p_session_visitor IS NOT DISTINCT FROM p_visitor_id THEN NULL ELSE 'not_found' END;
    ELSIF p_connection IS NULL OR p_role = 'admin' THEN
        RETURN NULL;
    ELSIF p_agent_id IS NOT NULL AND p_session_agent = p_agent_id THEN
        RETURN NULL;
    ELSIF EXISTS (SELECT FROM public.session_watchers w
                  WHERE w.user_id = p_tenant AND w.session_id = p_session AND w.connection_id = p_connection) THEN
        RETURN NULL;
    END IF;
    RETURN 'forbidden';
END
$$;

-- A refusal that must abort the transaction it is part of: support.services.connections puts a WebSocket message's
-- token check first into the action's own write transaction, and refuses (over the rate: WSR29 with the bucket's
-- level as the detail; a revoked widget key: WSK10) by raising, so that nothing of the action is done. VOLATILE, so
-- the planner never evaluates it ahead of the CASE branch that calls it.
CREATE OR REPLACE FUNCTION public.ws_refuse(p_state text, p_detail text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'websocket action refused' USING ERRCODE = p_state, DETAIL = p_detail;
END
$$;

-- The connections that hear about a session: its visitor's (every connection of that visitor id: two tabs, a
-- phone), its assigned agent's and p_also's (the agent a transfer took it from: both ends of a transfer hear of
-- it), and the staff connections that joined it (joinSession), until they disconnect; a staff connection once, as
-- `staff`. An agent's connection that follows one chat (`?sessionId=` on $connect: sql/0036) hears only that one.
-- As the session is now: called after a change in the same transaction, it names the new agent.
-- (It took no p_also before: that signature goes, else two-argument calls would find two functions.)
DROP FUNCTION IF EXISTS public.chat_participants(uuid, uuid);
CREATE OR REPLACE FUNCTION public.chat_participants(p_tenant uuid, p_session uuid, p_also uuid DEFAULT NULL)
RETURNS TABLE (connection_id text, side text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT c.connection_id, CASE WHEN c.role = 'visitor' THEN 'visitor' ELSE 'staff' END
    FROM public.live_chat_sessions s
    JOIN public.ws_connections c ON c.user_id = s.user_id
        AND ((c.role = 'visitor' AND c.visitor_id = s.visitor_id)
             OR ((c.agent_id = s.assigned_agent_id OR c.agent_id = p_also)
                 AND (c.session_id IS NULL OR c.session_id = s.id)))
    WHERE s.user_id = p_tenant AND s.id = p_session
    UNION
    SELECT w.connection_id, 'staff' FROM public.session_watchers w
    WHERE w.user_id = p_tenant AND w.session_id = p_session;
END
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

-- The tenant's queue lock (transaction-level), the one every queue action takes first: the key support.db.statements
-- lock_for_tenant(cur, tenant, "chat-queue") takes from Python, written here once for every function below.
CREATE OR REPLACE FUNCTION public.chat_lock_queue(p_tenant uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$ BEGIN PERFORM pg_advisory_xact_lock(hashtextextended('chat-queue' || ':' || p_tenant::text, 0)); END $$;

-- The queue's drain (chat.py's module docstring: Assignment), with the tenant's queue lock held by the caller: the
-- waiting sessions, oldest first, go to the available agents with spare capacity, each to the agent with the fewest
-- chats, then the one assigned least recently (never assigned first; an agent who takes a session here becomes the
-- most recently assigned of all, in the order of the picks), then the lowest id. Locks the agents (FOR NO KEY
-- UPDATE, in id order) before the waiting sessions it assigns (FOR UPDATE), as chat.py's lock order says. Returns
-- the sessions assigned, as updated, in the order of the picks, each with its agent's name and its participants'
-- connections (chat_participants, as the session is now). Routing (issue 18, sql/definitions/routing.sql): nothing
-- when the tenant's routing settings turn automatic chat assignment off, and only the agents whose skills cover the
-- chats' (the rules for the channel `chat`: every chat of a tenant requires the same) take any; a session assigned
-- here gets its `assigned_at` from the trigger that keeps it on every change of agent (sql/definitions/analytics.sql):
-- its handle time runs from there.
CREATE OR REPLACE FUNCTION public.chat_drain_queue(p_tenant uuid)
RETURNS TABLE (session public.live_chat_sessions, agent_name text, connection_ids text[])
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    free record;
    a_ids uuid[] := '{}';
    a_chats integer[] := '{}';
    a_most integer[] := '{}';
    a_at timestamptz[] := '{}';
    a_pick integer[] := '{}';  -- the order in which the agent last took a session here (NULL: not yet)
    spare integer := 0;
    waiting uuid[];
    picked uuid[] := '{}';
    best integer;
    cfg jsonb := public.routing_settings(p_tenant);
    need jsonb;
BEGIN
    IF NOT coalesce((cfg ->> 'auto_assign_chats')::boolean, true) THEN
        RETURN;
    END IF;
    need := public.routing_required_skills(cfg, NULL, 'chat', '{}'::jsonb);
    FOR free IN
        SELECT ag.id, ag.current_chats, ag.max_concurrent_chats, ag.last_assigned_at FROM public.support_agents ag
        WHERE ag.user_id = p_tenant AND ag.status = 'available' AND ag.current_chats < ag.max_concurrent_chats
          AND ag.skills @> need
        ORDER BY ag.id FOR NO KEY UPDATE
    LOOP
        a_ids := a_ids || free.id;
        a_chats := a_chats || free.current_chats;
        a_most := a_most || free.max_concurrent_chats;
        a_at := a_at || coalesce(free.last_assigned_at, '-infinity'::timestamptz);
        a_pick := a_pick || NULL::integer;
        spare := spare + free.max_concurrent_chats - free.current_chats;
    END LOOP;
    IF spare = 0 THEN
        RETURN;
    END IF;
    waiting := ARRAY(SELECT s.id FROM public.live_chat_sessions s WHERE s.user_id = p_tenant AND s.status = 'waiting'
                     ORDER BY s.created_at, s.id LIMIT spare FOR UPDATE);
    IF cardinality(waiting) = 0 THEN
        RETURN;
    END IF;
    FOR k IN 1 .. cardinality(waiting) LOOP
        best := NULL;
        FOR i IN 1 .. cardinality(a_ids) LOOP  -- in id order: on a tie the first (lowest id) stays the best
            CONTINUE WHEN a_chats[i] >= a_most[i];
            IF best IS NULL OR a_chats[i] < a_chats[best] OR (a_chats[i] = a_chats[best] AND (
                    (a_pick[i] IS NULL AND a_pick[best] IS NOT NULL)
                    OR (a_pick[i] IS NULL AND a_pick[best] IS NULL AND a_at[i] < a_at[best])
                    OR (a_pick[i] IS NOT NULL AND a_pick[best] IS NOT NULL AND a_pick[i] < a_pick[best]))) THEN
                best := i;
            END IF;
        END LOOP;
        a_chats[best] := a_chats[best] + 1;
        a_pick[best] := k;
        picked := picked || a_ids[best];
    END LOOP;
    UPDATE public.live_chat_sessions s SET status = 'active', assigned_agent_id = p.agent_id
    FROM unnest(waiting, picked) AS p(session_id, agent_id)
    WHERE s.user_id = p_tenant AND s.id = p.session_id;
    UPDATE public.support_agents ag SET current_chats = ag.current_chats + c.n, last_assigned_at = clock_timestamp()
    FROM (SELECT t.agent_id, count(*)::integer AS n FROM unnest(picked) AS t(agent_id) GROUP BY t.agent_id) c
    WHERE ag.user_id = p_tenant AND ag.id = c.agent_id;
    RETURN QUERY
        SELECT s, (SELECT named.agent_name FROM public.support_agents named WHERE named.id = s.assigned_agent_id),
            ARRAY(SELECT p.connection_id FROM public.chat_participants(p_tenant, s.id) p)
        FROM unnest(waiting) WITH ORDINALITY AS w(session_id, k)
        JOIN public.live_chat_sessions s ON s.user_id = p_tenant AND s.id = w.session_id
        ORDER BY w.k;
END
$$;

-- startChat (chat.py start_chat_session), all of it under the tenant's queue lock, taken first (the key of
-- support.db.statements' lock_for_tenant with 'chat-queue'). The session this visitor's attempt p_client_start_id
-- already started, else (p_one_open: a visitor, held to one open chat) the visitor's open session, else, for a
-- visitor, the queue cap (the tenant's chat settings' queue_cap, p_default_cap without one): over it, `busy` with the
-- settings (the service raises DeskBusy with their web form), nothing stored. A session found is answered `again`;
-- else the insert (stamped with a clock read under the lock: the queue's order is the order sessions joined it), the
-- drain when p_auto_assign, and the answer `started`, as the session is after the drain. The session answered, while
-- it waits, comes with its position (1 = next), the time it was read and its visitor's connections (chat.queued),
-- the position recorded as told (queue_positions_told: the broadcast run does not tell it again); a started session
-- the drain assigned comes with its participants' connections (chat.assigned). The other sessions the drain
-- assigned are rows of their own, `assigned`, each with its participants' connections. Last, when the queue changed
-- (a chat joined it, or the drain took others from it), the staff broadcast's request (broadcast_request;
-- start_broadcast: this transaction starts the run after its commit).
-- (Its answer gained expected_wait, the visitor's expected wait in seconds (routing.sql's chat_wait_estimates): the
-- old signature's function goes first, as a return type cannot be replaced.)
DROP FUNCTION IF EXISTS public.chat_start(uuid, text, text, text, inet, text, text, boolean, integer, boolean, integer);
CREATE OR REPLACE FUNCTION public.chat_start(
    p_tenant uuid, p_visitor_id text, p_visitor_name text, p_visitor_email text, p_visitor_ip inet,
    p_visitor_browser text, p_client_start_id text, p_one_open boolean, p_default_cap integer, p_auto_assign boolean,
    p_stale integer
) RETURNS TABLE (outcome text, session public.live_chat_sessions, agent_name text, connection_ids text[],
                 queue_position integer, as_of timestamptz, start_broadcast boolean, settings jsonb,
                 expected_wait integer)
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    answered public.live_chat_sessions;
    answered_name text;
    answered_connections text[];
    kind text := 'again';
    stored_settings jsonb;
    cap integer;
    drained record;
    others integer := 0;
    told integer;
    told_at timestamptz;
    starts boolean := false;
    expected integer;
BEGIN
    PERFORM public.chat_lock_queue(p_tenant);
    IF p_client_start_id IS NOT NULL THEN
        SELECT s.* INTO answered FROM public.live_chat_sessions s
        WHERE s.user_id = p_tenant AND s.visitor_id = p_visitor_id AND s.client_start_id = p_client_start_id;
    END IF;
    IF answered.id IS NULL AND p_one_open THEN
        SELECT s.* INTO answered FROM public.live_chat_sessions s
        WHERE s.user_id = p_tenant AND s.visitor_id = p_visitor_id AND s.status <> 'closed'
        ORDER BY s.created_at DESC LIMIT 1;
        IF answered.id IS NULL THEN
            SELECT t.settings INTO stored_settings FROM public.tenant_settings t
            WHERE t.user_id = p_tenant AND t.area = 'chat';
            cap := coalesce((stored_settings ->> 'queue_cap')::integer, p_default_cap);
            IF (SELECT count(*) FROM (SELECT FROM public.live_chat_sessions s
                                      WHERE s.user_id = p_tenant AND s.status = 'waiting' LIMIT cap) queue) >= cap THEN
                RETURN QUERY SELECT 'busy'::text, NULL::public.live_chat_sessions, NULL::text, NULL::text[],
                    NULL::integer, NULL::timestamptz, false, coalesce(stored_settings, '{}'::jsonb), NULL::integer;
                RETURN;
            END IF;
        END IF;
    END IF;
    IF answered.id IS NULL THEN
        kind := 'started';
        -- The session's contact (sql/definitions/contacts.sql): by the visitor id and, when given, the email.
        INSERT INTO public.live_chat_sessions AS s (user_id, visitor_id, visitor_name, visitor_email, status,
            visitor_ip, visitor_browser, created_at, session_start_time, client_start_id, contact_id)
        SELECT p_tenant, p_visitor_id, p_visitor_name, p_visitor_email, 'waiting', p_visitor_ip, p_visitor_browser,
            stamp.at, stamp.at, p_client_start_id,
            public.contact_for(p_tenant, p_visitor_name, p_visitor_email, NULL, p_visitor_id)
        FROM (SELECT clock_timestamp() AS at) stamp
        RETURNING s.* INTO answered;
        IF p_auto_assign THEN
            FOR drained IN SELECT * FROM public.chat_drain_queue(p_tenant) LOOP
                IF (drained.session).id = answered.id THEN
                    answered := drained.session;
                    answered_name := drained.agent_name;
                    answered_connections := drained.connection_ids;
                ELSE
                    others := others + 1;
                    RETURN QUERY SELECT 'assigned'::text, drained.session, drained.agent_name, drained.connection_ids,
                        NULL::integer, NULL::timestamptz, NULL::boolean, NULL::jsonb, NULL::integer;
                END IF;
            END LOOP;
        END IF;
    ELSE
        answered_name := (SELECT named.agent_name FROM public.support_agents named
                          WHERE named.id = answered.assigned_agent_id);
    END IF;
    IF answered.status = 'waiting' THEN
        SELECT count(*)::integer, clock_timestamp() INTO told, told_at FROM public.live_chat_sessions s
        WHERE s.user_id = p_tenant AND s.status = 'waiting' AND (s.created_at, s.id) <= (answered.created_at, answered.id);
        INSERT INTO public.queue_positions_told AS t (user_id, session_id, position) VALUES (p_tenant, answered.id, told)
        ON CONFLICT (user_id, session_id) DO UPDATE SET position = excluded.position;
        expected := (public.chat_wait_estimates(p_tenant, ARRAY[told]))[1];
        answered_connections := ARRAY(SELECT c.connection_id FROM public.ws_connections c
            WHERE c.user_id = p_tenant AND c.role = 'visitor' AND c.visitor_id = answered.visitor_id);
    END IF;
    IF kind = 'started' AND (others > 0 OR answered.status = 'waiting') THEN
        starts := public.broadcast_request(p_tenant, true, '{}'::uuid[], p_stale);
    END IF;
    RETURN QUERY SELECT kind, answered, answered_name, answered_connections, told, told_at, starts, NULL::jsonb,
        expected;
END
$$;

-- The other queue actions, each one call under the tenant's queue lock, as chat_start: claimChat (chat_claim),
-- endChat (chat_end), transfer (chat_transfer) and an agent's status (agent_set_status). Each locks as chat.py's
-- lock order says (the queue lock, the session, the agents in id order; the broadcast request last) and answers an
-- outcome (a refusal: nothing written) and the row(s) the service announces: the session as changed, its agent's
-- name, its participants' connections, whether this transaction starts a staff broadcast run, and a row `assigned`
-- for each session the drain assigned (chat_drain_queue's).

-- A locked session's move to p_to (capacity checked), from p_from if it had an agent: the agents locked in id order,
-- p_to's chats up by one (and its last assignment now), p_from's down by one, the session `active` with p_to
-- (p_from kept as transferred_from_agent_id). Outcomes: `no_agent` (p_to is not the tenant's), `full` (with p_to's
-- figures; nothing written), `assigned`.
CREATE OR REPLACE FUNCTION public.chat_assign(p_tenant uuid, p_session uuid, p_from uuid, p_to uuid)
RETURNS TABLE (outcome text, agent_chats integer, agent_most integer)
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    chats integer;
    most integer;
BEGIN
    PERFORM FROM public.support_agents ag WHERE ag.user_id = p_tenant AND ag.id IN (p_to, p_from)
    ORDER BY ag.id FOR NO KEY UPDATE;
    SELECT ag.current_chats, ag.max_concurrent_chats INTO chats, most FROM public.support_agents ag
    WHERE ag.user_id = p_tenant AND ag.id = p_to;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_agent'::text, NULL::integer, NULL::integer;
        RETURN;
    END IF;
    IF chats >= most THEN
        RETURN QUERY SELECT 'full'::text, chats, most;
        RETURN;
    END IF;
    UPDATE public.support_agents ag SET current_chats = ag.current_chats + 1, last_assigned_at = clock_timestamp()
    WHERE ag.user_id = p_tenant AND ag.id = p_to;
    IF p_from IS NOT NULL THEN
        -- No clamp at zero: a double decrement is a bug, and the column's CHECK (>= 0) makes it fail loudly.
        UPDATE public.support_agents ag SET current_chats = ag.current_chats - 1
        WHERE ag.user_id = p_tenant AND ag.id = p_from;
    END IF;
    UPDATE public.live_chat_sessions s
    SET assigned_agent_id = p_to, transferred_from_agent_id = coalesce(p_from, s.transferred_from_agent_id),
        status = 'active'
    WHERE s.user_id = p_tenant AND s.id = p_session;
    RETURN QUERY SELECT 'assigned'::text, NULL::integer, NULL::integer;
END
$$;

-- claimChat: an agent takes a waiting session. Outcomes: `not_found`, `not_waiting`, chat_assign's `no_agent` and
-- `full`, else `claimed` (participants: the session's, as it is now) and always a broadcast request.
CREATE OR REPLACE FUNCTION public.chat_claim(p_tenant uuid, p_session uuid, p_agent uuid, p_stale integer)
RETURNS TABLE (outcome text, session public.live_chat_sessions, agent_name text, connection_ids text[],
               start_broadcast boolean, agent_chats integer, agent_most integer)
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    current public.live_chat_sessions;
    moved record;
    starts boolean;
BEGIN
    PERFORM public.chat_lock_queue(p_tenant);
    SELECT s.* INTO current FROM public.live_chat_sessions s WHERE s.user_id = p_tenant AND s.id = p_session FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::public.live_chat_sessions, NULL::text, NULL::text[],
            NULL::boolean, NULL::integer, NULL::integer;
        RETURN;
    END IF;
    IF current.status <> 'waiting' THEN
        RETURN QUERY SELECT 'not_waiting'::text, NULL::public.live_chat_sessions, NULL::text, NULL::text[],
            NULL::boolean, NULL::integer, NULL::integer;
        RETURN;
    END IF;
    SELECT * INTO moved FROM public.chat_assign(p_tenant, p_session, current.assigned_agent_id, p_agent);
    IF moved.outcome <> 'assigned' THEN
        RETURN QUERY SELECT moved.outcome, NULL::public.live_chat_sessions, NULL::text, NULL::text[], NULL::boolean,
            moved.agent_chats, moved.agent_most;
        RETURN;
    END IF;
    starts := public.broadcast_request(p_tenant, true, '{}'::uuid[], p_stale);
    RETURN QUERY
        SELECT 'claimed'::text, s, (SELECT named.agent_name FROM public.support_agents named
                                    WHERE named.id = s.assigned_agent_id),
            ARRAY(SELECT p.connection_id FROM public.chat_participants(p_tenant, p_session) p), starts,
            NULL::integer, NULL::integer
        FROM public.live_chat_sessions s WHERE s.user_id = p_tenant AND s.id = p_session;
END
$$;

-- endChat: `closed`, with the end time (a clock read now, never before the start: the transaction may have begun a
-- moment before the one that created the session committed), the duration in whole seconds and who ended it
-- (ended_by: the caller's role, 'system' for the desk's own ends: the chat expiry, an automation's end_chat;
-- sql/0035; the analytics count a chat its visitor ended unanswered as abandoned); the assigned agent has one chat
-- fewer. Outcomes: `not_found` / `forbidden` (chat_refusal), `closed` (it had
-- ended), else `ended` (participants: the session's) and the drain's `assigned` rows. A waiting chat left the queue;
-- an active one freed capacity for it (the drain): either way the queue changed, and the broadcast is requested.
CREATE OR REPLACE FUNCTION public.chat_end(
    p_tenant uuid, p_session uuid, p_role text, p_visitor_id text, p_agent_id uuid, p_connection text,
    p_auto_assign boolean, p_stale integer
) RETURNS TABLE (outcome text, session public.live_chat_sessions, agent_name text, connection_ids text[],
                 start_broadcast boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    current public.live_chat_sessions;
    ended public.live_chat_sessions;
    refusal text;
    drained record;
    changed boolean;
    starts boolean := false;
    people text[];
BEGIN
    PERFORM public.chat_lock_queue(p_tenant);
    SELECT s.* INTO current FROM public.live_chat_sessions s WHERE s.user_id = p_tenant AND s.id = p_session FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::public.live_chat_sessions, NULL::text, NULL::text[], NULL::boolean;
        RETURN;
    END IF;
    refusal := public.chat_refusal(p_tenant, p_session, current.visitor_id, current.assigned_agent_id, p_role,
                                   p_visitor_id, p_agent_id, p_connection);
    IF refusal IS NOT NULL OR current.status = 'closed' THEN
        RETURN QUERY SELECT coalesce(refusal, 'closed'), NULL::public.live_chat_sessions, NULL::text, NULL::text[],
            NULL::boolean;
        RETURN;
    END IF;
    IF current.assigned_agent_id IS NOT NULL THEN
        PERFORM FROM public.support_agents ag WHERE ag.user_id = p_tenant AND ag.id = current.assigned_agent_id
        FOR NO KEY UPDATE;
        UPDATE public.support_agents ag SET current_chats = ag.current_chats - 1
        WHERE ag.user_id = p_tenant AND ag.id = current.assigned_agent_id;
    END IF;
    UPDATE public.live_chat_sessions s
    SET status = 'closed', session_end_time = e.at,
        duration = round(extract(epoch FROM e.at - s.session_start_time))::integer,
        ended_by = p_role  -- sql/0035: who ended it ('visitor', 'agent', 'admin' or 'system'), for the abandonment figures
    FROM (SELECT greatest(clock_timestamp(), current.session_start_time) AS at) e
    WHERE s.user_id = p_tenant AND s.id = p_session
    RETURNING s.* INTO ended;
    people := ARRAY(SELECT p.connection_id FROM public.chat_participants(p_tenant, p_session) p);
    changed := current.status = 'waiting';
    IF NOT changed AND p_auto_assign THEN
        FOR drained IN SELECT * FROM public.chat_drain_queue(p_tenant) LOOP
            changed := true;
            RETURN QUERY SELECT 'assigned'::text, drained.session, drained.agent_name, drained.connection_ids,
                NULL::boolean;
        END LOOP;
    END IF;
    IF changed THEN
        starts := public.broadcast_request(p_tenant, true, '{}'::uuid[], p_stale);
    END IF;
    RETURN QUERY SELECT 'ended'::text, ended,
        (SELECT named.agent_name FROM public.support_agents named WHERE named.id = ended.assigned_agent_id),
        people, starts;
END
$$;

-- transfer: the session to p_to, from its agent if it has one (chat_assign). Outcomes: `not_found` / `forbidden`
-- (chat_refusal), `closed`, `same_agent`, chat_assign's `no_agent` and `full`, else `transferred` (participants:
-- the session's and the previous agent's) and the drain's `assigned` rows; the broadcast is requested when a
-- waiting chat left the queue or the drain took others from it.
CREATE OR REPLACE FUNCTION public.chat_transfer(
    p_tenant uuid, p_session uuid, p_to uuid, p_role text, p_visitor_id text, p_agent_id uuid, p_connection text,
    p_auto_assign boolean, p_stale integer
) RETURNS TABLE (outcome text, session public.live_chat_sessions, agent_name text, connection_ids text[],
                 start_broadcast boolean, agent_chats integer, agent_most integer)
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    current public.live_chat_sessions;
    moved record;
    refusal text;
    drained record;
    changed boolean;
    starts boolean := false;
    transferred public.live_chat_sessions;
    transferred_name text;
    people text[];
BEGIN
    PERFORM public.chat_lock_queue(p_tenant);
    SELECT s.* INTO current FROM public.live_chat_sessions s WHERE s.user_id = p_tenant AND s.id = p_session FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::public.live_chat_sessions, NULL::text, NULL::text[],
            NULL::boolean, NULL::integer, NULL::integer;
        RETURN;
    END IF;
    refusal := public.chat_refusal(p_tenant, p_session, current.visitor_id, current.assigned_agent_id, p_role,
                                   p_visitor_id, p_agent_id, p_connection);
    IF refusal IS NULL AND current.status = 'closed' THEN
        refusal := 'closed';
    ELSIF refusal IS NULL AND current.assigned_agent_id IS NOT DISTINCT FROM p_to THEN
        refusal := 'same_agent';
    END IF;
    IF refusal IS NOT NULL THEN
        RETURN QUERY SELECT refusal, NULL::public.live_chat_sessions, NULL::text, NULL::text[], NULL::boolean,
            NULL::integer, NULL::integer;
        RETURN;
    END IF;
    SELECT * INTO moved FROM public.chat_assign(p_tenant, p_session, current.assigned_agent_id, p_to);
    IF moved.outcome <> 'assigned' THEN
        RETURN QUERY SELECT moved.outcome, NULL::public.live_chat_sessions, NULL::text, NULL::text[], NULL::boolean,
            moved.agent_chats, moved.agent_most;
        RETURN;
    END IF;
    SELECT s.* INTO transferred FROM public.live_chat_sessions s WHERE s.user_id = p_tenant AND s.id = p_session;
    transferred_name := (SELECT named.agent_name FROM public.support_agents named WHERE named.id = p_to);
    people := ARRAY(SELECT p.connection_id
                    FROM public.chat_participants(p_tenant, p_session, current.assigned_agent_id) p);
    changed := current.status = 'waiting';
    IF p_auto_assign THEN
        FOR drained IN SELECT * FROM public.chat_drain_queue(p_tenant) LOOP
            changed := true;
            RETURN QUERY SELECT 'assigned'::text, drained.session, drained.agent_name, drained.connection_ids,
                NULL::boolean, NULL::integer, NULL::integer;
        END LOOP;
    END IF;
    IF changed THEN
        starts := public.broadcast_request(p_tenant, true, '{}'::uuid[], p_stale);
    END IF;
    RETURN QUERY SELECT 'transferred'::text, transferred, transferred_name, people, starts, NULL::integer,
        NULL::integer;
END
$$;

-- An agent's status (support.services.agents update_agent_status), with the activity recorded (now(): the
-- transaction's time). Outcomes: `not_found`, else `agent` (the agent's row as updated) and, when the agent is
-- available, the drain's `assigned` rows; the broadcast is requested with the agent (and the queue when the drain
-- took chats from it).
--
-- Routing (issue 18, sql/definitions/routing.sql). An agent going `away` or `offline` hands their unanswered chats
-- (active, no agent message yet) back to the queue, where they keep their place (their start); the drain may give
-- them to another agent at once (`assigned` rows), and each one still waiting is a `queued` row (its position, when
-- it was read, the visitor's expected wait and connections: chat.queued), its position recorded as told. The
-- sessions are locked before the agent, as chat.py's lock order says, and read again once locked (a message sent
-- meanwhile counts). Tickets: the tenant's ticket routing lock comes before the agent's row (routing.sql's lock
-- order) when tickets are routed automatically; an agent going away or offline hands back their open tickets when
-- the settings say so (ticket_hand_back) and they go to the other agents (ticket_drain); an agent becoming
-- available takes the oldest waiting tickets they can (ticket_drain for them).
DROP FUNCTION IF EXISTS public.agent_set_status(uuid, uuid, text, boolean, integer);
CREATE OR REPLACE FUNCTION public.agent_set_status(
    p_tenant uuid, p_agent uuid, p_status text, p_auto_assign boolean, p_stale integer
) RETURNS TABLE (outcome text, agent public.support_agents, session public.live_chat_sessions, agent_name text,
                 connection_ids text[], start_broadcast boolean, queue_position integer, as_of timestamptz,
                 expected_wait integer)
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    updated public.support_agents;
    drained record;
    changed boolean := false;
    starts boolean;
    cfg jsonb := public.routing_settings(p_tenant);
    leaving boolean := p_status IN ('away', 'offline');
    back uuid[] := '{}';
    still uuid[];
    waits integer[];
    positions integer[];
    read_at timestamptz;
BEGIN
    PERFORM public.chat_lock_queue(p_tenant);
    IF leaving THEN
        back := ARRAY(SELECT s.id FROM public.live_chat_sessions s
                      WHERE s.user_id = p_tenant AND s.assigned_agent_id = p_agent AND s.status = 'active'
                      ORDER BY s.id FOR UPDATE);
        IF cardinality(back) > 0 THEN  -- again, now that they are locked: no message can come in between
            back := ARRAY(SELECT b.id FROM unnest(back) AS b(id)
                          WHERE NOT EXISTS (SELECT FROM public.chat_messages m
                                            WHERE m.user_id = p_tenant AND m.session_id = b.id
                                              AND m.sender_type = 'agent'));
        END IF;
    END IF;
    IF coalesce((cfg ->> 'auto_assign_tickets')::boolean, false)
       OR (leaving AND coalesce((cfg ->> 'reassign_tickets_when_away')::boolean, false)) THEN
        PERFORM public.routing_lock_tickets(p_tenant);
    END IF;
    UPDATE public.support_agents ag SET status = p_status, last_activity_at = now(),
        current_chats = ag.current_chats - cardinality(back)
    WHERE ag.user_id = p_tenant AND ag.id = p_agent
    RETURNING ag.* INTO updated;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::public.support_agents, NULL::public.live_chat_sessions,
            NULL::text, NULL::text[], NULL::boolean, NULL::integer, NULL::timestamptz, NULL::integer;
        RETURN;
    END IF;
    IF cardinality(back) > 0 THEN
        UPDATE public.live_chat_sessions s SET status = 'waiting', assigned_agent_id = NULL
        WHERE s.user_id = p_tenant AND s.id = ANY (back);
        changed := true;
    END IF;
    IF (updated.status = 'available' OR cardinality(back) > 0) AND p_auto_assign THEN
        FOR drained IN SELECT * FROM public.chat_drain_queue(p_tenant) LOOP
            changed := true;
            RETURN QUERY SELECT 'assigned'::text, NULL::public.support_agents, drained.session, drained.agent_name,
                drained.connection_ids, NULL::boolean, NULL::integer, NULL::timestamptz, NULL::integer;
        END LOOP;
    END IF;
    IF cardinality(back) > 0 THEN
        -- the ones still waiting, each with its position in the whole queue
        SELECT array_agg(q.id ORDER BY q.position), array_agg(q.position ORDER BY q.position), clock_timestamp()
        INTO still, positions, read_at
        FROM (SELECT s.id, row_number() OVER (ORDER BY s.created_at, s.id)::integer AS position
              FROM public.live_chat_sessions s WHERE s.user_id = p_tenant AND s.status = 'waiting') q
        WHERE q.id = ANY (back);
        IF still IS NOT NULL THEN
            waits := public.chat_wait_estimates(p_tenant, positions);
            INSERT INTO public.queue_positions_told AS t (user_id, session_id, position)
            SELECT p_tenant, w.id, w.position FROM unnest(still, positions) AS w(id, position)
            ON CONFLICT (user_id, session_id) DO UPDATE SET position = excluded.position;
            RETURN QUERY
                SELECT 'queued'::text, NULL::public.support_agents, s, NULL::text,
                    ARRAY(SELECT c.connection_id FROM public.ws_connections c
                          WHERE c.user_id = p_tenant AND c.role = 'visitor' AND c.visitor_id = s.visitor_id),
                    NULL::boolean, w.position, read_at, w.wait
                FROM unnest(still, positions, waits) WITH ORDINALITY AS w(id, position, wait, k)
                JOIN public.live_chat_sessions s ON s.user_id = p_tenant AND s.id = w.id
                ORDER BY w.k;
        END IF;
    END IF;
    IF leaving AND public.ticket_hand_back(p_tenant, p_agent) > 0 THEN
        PERFORM public.ticket_drain(p_tenant);
    ELSIF updated.status = 'available' THEN
        PERFORM public.ticket_drain(p_tenant, ARRAY[p_agent]);
    END IF;
    starts := public.broadcast_request(p_tenant, changed, ARRAY[updated.id], p_stale);
    RETURN QUERY SELECT 'agent'::text, updated, NULL::public.live_chat_sessions, NULL::text, NULL::text[], starts,
        NULL::integer, NULL::timestamptz, NULL::integer;
END
$$;

GRANT EXECUTE ON FUNCTION public.ws_refuse(text, text) TO support_app;
GRANT EXECUTE ON FUNCTION public.chat_refusal(uuid, uuid, text, uuid, text, text, uuid, text) TO support_app;
GRANT EXECUTE ON FUNCTION public.chat_participants(uuid, uuid, uuid) TO support_app;
GRANT EXECUTE ON FUNCTION public.chat_send_message(uuid, uuid, text, text, uuid, text, text, text, text, text, text,
                                                    text, text) TO support_app;
GRANT EXECUTE ON FUNCTION public.chat_mark_read(uuid, uuid, text, text, uuid, text, uuid, text) TO support_app;
GRANT EXECUTE ON FUNCTION public.chat_lock_queue(uuid) TO support_app;
GRANT EXECUTE ON FUNCTION public.chat_drain_queue(uuid) TO support_app;
GRANT EXECUTE ON FUNCTION public.chat_start(uuid, text, text, text, inet, text, text, boolean, integer, boolean, integer)
    TO support_app;
GRANT EXECUTE ON FUNCTION public.chat_assign(uuid, uuid, uuid, uuid) TO support_app;
GRANT EXECUTE ON FUNCTION public.chat_claim(uuid, uuid, uuid, integer) TO support_app;
GRANT EXECUTE ON FUNCTION public.chat_end(uuid, uuid, text, text, uuid, text, boolean, integer) TO support_app;
GRANT EXECUTE ON FUNCTION public.chat_transfer(uuid, uuid, uuid, text, text, uuid, text, boolean, integer)
    TO support_app;
GRANT EXECUTE ON FUNCTION public.agent_set_status(uuid, uuid, text, boolean, integer) TO support_app;
