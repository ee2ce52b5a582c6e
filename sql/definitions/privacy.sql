-- Privacy requests (issue 19; the table: sql/0039; the service: support.services.privacy; docs/ARCHITECTURE.md,
-- "Privacy requests").
--
-- The erasure changes columns the runtime role may not write (a message's text, a visitor's address, the side
-- tables' copies), so its batches are one SECURITY DEFINER function, privacy_erase_batch, that does exactly the
-- erasure of one running erasure request of the caller's own tenant (app.tenant_id, failing closed without it) and
-- nothing else: the runtime role gets no UPDATE on message texts. It runs as the owner, whom FORCE still filters by
-- the tenant; every statement names the tenant too (some tables are not forced for the owner).
--
-- An erasure is not an edit: app.privacy_erasure, set for the function's own statements only, keeps the capture
-- triggers of the automation rules from recording events and the updated_at triggers from moving the rows' times.
-- What the running totals, the agents' figures, the day totals, analytics and SLA read (statuses, priorities,
-- agents, times, ratings, channels, categories) is never written, so their triggers add nothing (statement-level
-- deltas of zero) and the SLA triggers (UPDATE OF status, priority, times) do not fire at all.

-- The sweep's list: the open requests of every tenant whose lease is over (a runner died) or that never started
-- (their invocation was lost), oldest first. Ids only.
CREATE OR REPLACE FUNCTION public.privacy_requests_due(at timestamptz, pending_since timestamptz, max_rows integer)
RETURNS TABLE (user_id uuid, id uuid)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT r.user_id, r.id FROM public.privacy_requests r
    WHERE r.state IN ('pending', 'running')
      AND (r.lease_until < at OR (r.lease_until IS NULL AND r.created_at <= pending_since))
    ORDER BY r.lease_until NULLS FIRST, r.created_at
    LIMIT max_rows;
$$;
REVOKE ALL ON FUNCTION public.privacy_requests_due(timestamptz, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.privacy_requests_due(timestamptz, timestamptz, integer) TO support_app;

-- One batch of one step of an erasure: at most `batch` rows from `cursor` on, changed in place. Answers the rows
-- changed, the next batch's cursor (NULL when the step is done) and the S3 objects the rows named ({"bucket", "key"};
-- bucket NULL for the inbound mail bucket), which the caller deletes before it commits. A cursor is the position in
-- the request's sorted ids (tickets, feedback, chat sessions: a slice of the array, one primary-key probe each), the
-- position and the last row of that parent (thread entries and chat messages: one thread at a time along its index,
-- so a batch costs the same at the first thread as at the thousandth), or the last id (the smaller tables).
CREATE OR REPLACE FUNCTION public.privacy_erase_batch(p_request uuid, p_step text, p_cursor text, p_batch integer)
RETURNS TABLE (changed integer, next_cursor text, s3_objects jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    tenant constant uuid := current_setting('app.tenant_id')::uuid;  -- fails closed, like the policies
    req public.privacy_requests;
    erased_name constant text := 'Erased customer';
    erased_email constant text := 'erased@erased.invalid';
    erased_text constant text := '[erased]';
    zero constant uuid := '00000000-0000-0000-0000-000000000000';
    parents uuid[];  -- the request's ids a step walks
    after_id uuid := zero;
    pos integer := 1;
    n integer := 0;
    got integer;
    wanted integer;
    seen integer := 0;
    last uuid;
    next text;
    more jsonb;
    objects jsonb := '[]';
BEGIN
    SELECT * INTO req FROM public.privacy_requests r
    WHERE r.user_id = tenant AND r.id = p_request AND r.kind = 'erasure' AND r.state = 'running';
    IF NOT FOUND OR req.customer_email IS NULL THEN
        RAISE EXCEPTION 'no running erasure % for this tenant', p_request USING ERRCODE = 'no_data_found';
    END IF;
    IF p_batch < 1 OR p_batch > 10000 THEN
        RAISE EXCEPTION 'batch % out of range', p_batch USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM set_config('app.privacy_erasure', 'on', true);

    CASE p_step
    WHEN 'conversations', 'chat_messages' THEN
        -- One parent (ticket, chat) at a time along its index: the cursor is the position and the last row done.
        parents := CASE p_step WHEN 'conversations' THEN req.ticket_ids ELSE req.session_ids END;
        pos := coalesce(nullif(split_part(coalesce(p_cursor, ''), ':', 1), '')::integer, 1);
        after_id := coalesce(nullif(split_part(coalesce(p_cursor, ''), ':', 2), '')::uuid, zero);
        WHILE n < p_batch AND pos <= coalesce(cardinality(parents), 0) LOOP
            wanted := p_batch - n;
            IF p_step = 'conversations' THEN
                -- Every entry of the customer's tickets (the agents' replies quote them too): texts and files
                -- gone, the customer's name and address replaced; kind, sender type, visibility and times kept.
                WITH batch AS (
                    SELECT c.id, c.attachments FROM public.ticket_conversations c
                    WHERE c.user_id = tenant AND c.ticket_id = req.ticket_ids[pos] AND c.id > after_id
                    ORDER BY c.id LIMIT wanted FOR UPDATE
                ), changed_rows AS (
                    UPDATE public.ticket_conversations c
                    SET message = erased_text,
                        sender_name = CASE WHEN c.sender_type = 'customer' THEN erased_name ELSE c.sender_name END,
                        sender_email = CASE WHEN c.sender_type = 'customer' THEN NULL ELSE c.sender_email END,
                        attachments = '[]', caller_number = NULL
                    FROM batch WHERE c.user_id = tenant AND c.id = batch.id
                    RETURNING c.id
                )
                SELECT (SELECT count(*) FROM changed_rows), (SELECT b.id FROM batch b ORDER BY b.id DESC LIMIT 1),
                       coalesce((SELECT jsonb_agg(jsonb_build_object('bucket', a ->> 's3Bucket', 'key', a ->> 's3Key'))
                                 FROM batch, jsonb_array_elements(batch.attachments) a
                                 WHERE a ? 's3Key'), '[]')
                INTO got, last, more;
                objects := objects || more;
            ELSE
                WITH batch AS (
                    SELECT m.id FROM public.chat_messages m
                    WHERE m.user_id = tenant AND m.session_id = req.session_ids[pos] AND m.id > after_id
                    ORDER BY m.id LIMIT wanted FOR UPDATE
                ), changed_rows AS (
                    UPDATE public.chat_messages m
                    SET message = erased_text,
                        sender_name = CASE WHEN m.sender_type = 'customer' THEN NULL ELSE m.sender_name END,
                        attachment_url = NULL,
                        attachments = '[]',
                        client_sender = CASE WHEN m.sender_type = 'customer' THEN NULL ELSE m.client_sender END
                    FROM batch WHERE m.user_id = tenant AND m.id = batch.id
                    RETURNING m.id
                )
                SELECT (SELECT count(*) FROM changed_rows), (SELECT b.id FROM batch b ORDER BY b.id DESC LIMIT 1)
                INTO got, last;
            END IF;
            n := n + got;
            IF got < wanted THEN
                pos := pos + 1;
                after_id := zero;
            ELSE
                after_id := last;
            END IF;
        END LOOP;
        next := CASE WHEN pos <= coalesce(cardinality(parents), 0) THEN pos || ':' || after_id END;
    WHEN 'tickets', 'feedback', 'chat_sessions' THEN
        -- A slice of the request's sorted ids: the cursor is its position.
        parents := CASE p_step WHEN 'chat_sessions' THEN req.session_ids ELSE req.ticket_ids END;
        pos := coalesce(nullif(p_cursor, '')::integer, 1);
        IF p_step = 'tickets' THEN
            -- Status, priority, category, channel, agent, times and the reference stay: every figure reads those.
            -- The search index's copy follows through its trigger (UPDATE OF subject, description, customer_name, ...).
            WITH batch AS (
                SELECT t.id FROM public.support_tickets t
                WHERE t.user_id = tenant AND t.id = ANY (req.ticket_ids[pos:pos + p_batch - 1])
                ORDER BY t.id FOR UPDATE
            ), changed_rows AS (
                UPDATE public.support_tickets t
                SET customer_name = erased_name, customer_email = erased_email, customer_phone = NULL,
                    subject = erased_text,
                    description = CASE WHEN t.description IS NULL THEN NULL ELSE erased_text END,
                    custom_fields = '{}'
                FROM batch WHERE t.user_id = tenant AND t.id = batch.id
                RETURNING t.id
            )
            SELECT (SELECT count(*) FROM changed_rows), (SELECT count(*) FROM batch),
                   (SELECT b.id FROM batch b ORDER BY b.id DESC LIMIT 1)
            INTO n, seen, last;
        ELSIF p_step = 'feedback' THEN
            WITH batch AS (
                SELECT f.id FROM public.ticket_feedback f
                WHERE f.user_id = tenant AND f.ticket_id = ANY (req.ticket_ids[pos:pos + p_batch - 1])
                ORDER BY f.id FOR UPDATE
            ), changed_rows AS (
                UPDATE public.ticket_feedback f SET feedback = NULL
                FROM batch WHERE f.user_id = tenant AND f.id = batch.id AND f.feedback IS NOT NULL
                RETURNING f.id
            )
            SELECT (SELECT count(*) FROM changed_rows), (SELECT count(*) FROM batch),
                   (SELECT b.id FROM batch b ORDER BY b.id DESC LIMIT 1)
            INTO n, seen, last;
        ELSE
            -- Status, agents, times, counts, duration and rating stay; the visitor becomes nobody in particular.
            WITH batch AS (
                SELECT s.id FROM public.live_chat_sessions s
                WHERE s.user_id = tenant AND s.id = ANY (req.session_ids[pos:pos + p_batch - 1])
                ORDER BY s.id FOR UPDATE
            ), changed_rows AS (
                UPDATE public.live_chat_sessions s
                SET visitor_id = 'erased:' || s.id, visitor_name = NULL, visitor_email = NULL, visitor_ip = NULL,
                    visitor_browser = NULL, feedback = NULL
                FROM batch WHERE s.user_id = tenant AND s.id = batch.id
                RETURNING s.id
            )
            SELECT (SELECT count(*) FROM changed_rows), (SELECT count(*) FROM batch),
                   (SELECT b.id FROM batch b ORDER BY b.id DESC LIMIT 1)
            INTO n, seen, last;
        END IF;
        next := CASE WHEN pos + p_batch <= coalesce(cardinality(parents), 0)
                     THEN (pos + p_batch)::text END;
    WHEN 'contacts' THEN
        -- The contacts stay (tickets and chats keep their link, so a contact's figures stay whole), nameless and
        -- without an identity; the identities of the email go even where no contact was found by it.
        DELETE FROM public.contact_identities i
        WHERE i.user_id = tenant
          AND (i.contact_id = ANY (req.contact_ids) OR (i.kind = 'email' AND i.value = req.customer_email));
        GET DIAGNOSTICS n = ROW_COUNT;
        UPDATE public.support_contacts c SET name = NULL
        WHERE c.user_id = tenant AND c.id = ANY (req.contact_ids) AND c.name IS NOT NULL;
    WHEN 'inbound_emails', 'email_outbox', 'automation_events' THEN
        -- The smaller tables, by id: the cursor is the last id done.
        after_id := coalesce(nullif(p_cursor, '')::uuid, zero);
        IF p_step = 'inbound_emails' THEN
            -- The raw mail in S3 goes (the caller deletes the objects answered); the row stays for the threading.
            WITH batch AS (
                SELECT e.id, e.s3_key FROM public.inbound_emails e
                WHERE e.user_id = tenant AND e.id > after_id
                  AND (e.ticket_id = ANY (req.ticket_ids) OR lower(e.sender) = req.customer_email)
                ORDER BY e.id LIMIT p_batch FOR UPDATE
            ), changed_rows AS (
                UPDATE public.inbound_emails e SET sender = NULL, subject = NULL, s3_key = 'erased/' || e.id
                FROM batch WHERE e.user_id = tenant AND e.id = batch.id
                RETURNING e.id
            )
            SELECT (SELECT count(*) FROM changed_rows), (SELECT count(*) FROM batch),
                   (SELECT b.id FROM batch b ORDER BY b.id DESC LIMIT 1),
                   coalesce((SELECT jsonb_agg(jsonb_build_object('bucket', NULL, 'key', batch.s3_key))
                             FROM batch WHERE batch.s3_key NOT LIKE 'erased/%'), '[]')
            INTO n, seen, last, objects;
        ELSIF p_step = 'email_outbox' THEN
            -- Notices to the customer, sent or not: nothing more goes to them, and nothing of them stays.
            WITH batch AS (
                SELECT o.id FROM public.email_outbox o
                WHERE o.user_id = tenant AND o.id > after_id
                  AND (o.ticket_id = ANY (req.ticket_ids) OR lower(o.recipient) = req.customer_email)
                ORDER BY o.id LIMIT p_batch FOR UPDATE
            ), gone AS (
                DELETE FROM public.email_outbox o USING batch WHERE o.user_id = tenant AND o.id = batch.id
                RETURNING o.id
            )
            SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM batch),
                   (SELECT b.id FROM batch b ORDER BY b.id DESC LIMIT 1)
            INTO n, seen, last;
        ELSE
            -- A customer's message travels in its event's data (the rules' conditions read it): taken out.
            WITH batch AS (
                SELECT e.id FROM public.automation_events e
                WHERE e.user_id = tenant AND e.id > after_id
                  AND (e.ticket_id = ANY (req.ticket_ids) OR e.session_id = ANY (req.session_ids))
                ORDER BY e.id LIMIT p_batch FOR UPDATE
            ), changed_rows AS (
                UPDATE public.automation_events e SET data = e.data - 'message'
                FROM batch WHERE e.user_id = tenant AND e.id = batch.id AND e.data ? 'message'
                RETURNING e.id
            )
            SELECT (SELECT count(*) FROM changed_rows), (SELECT count(*) FROM batch),
                   (SELECT b.id FROM batch b ORDER BY b.id DESC LIMIT 1)
            INTO n, seen, last;
        END IF;
        next := CASE WHEN seen >= p_batch THEN last::text END;
    WHEN 'email_suppressions' THEN
        DELETE FROM public.email_suppressions s WHERE s.user_id = tenant AND lower(s.address) = req.customer_email;
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN 'idempotency_keys' THEN
        -- A stored answer (24 hours) may name the customer: a ticket or message created for them.
        DELETE FROM public.idempotency_keys k
        WHERE k.user_id = tenant AND k.response_body IS NOT NULL AND pg_input_is_valid(k.response_body, 'jsonb')
          AND (strpos(lower(k.response_body), req.customer_email) > 0
               OR (k.response_body::jsonb #>> '{data,id}')
                  IN (SELECT x::text FROM unnest(req.ticket_ids || req.session_ids) x)
               OR (k.response_body::jsonb #>> '{data,ticketId}') IN (SELECT x::text FROM unnest(req.ticket_ids) x)
               OR (k.response_body::jsonb #>> '{data,sessionId}') IN (SELECT x::text FROM unnest(req.session_ids) x));
        GET DIAGNOSTICS n = ROW_COUNT;
    ELSE
        RAISE EXCEPTION 'unknown erasure step %', p_step USING ERRCODE = 'invalid_parameter_value';
    END CASE;

    PERFORM set_config('app.privacy_erasure', 'off', true);
    -- NULL: the step is done (a one-statement step always is; a keyset step whose batch was short too).
    RETURN QUERY SELECT n, next, objects;
END
$$;
REVOKE ALL ON FUNCTION public.privacy_erase_batch(uuid, text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.privacy_erase_batch(uuid, text, text, integer) TO support_app;
