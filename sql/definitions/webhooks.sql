-- Webhooks' database side (history: sql/0042; support.services.webhooks, docs/webhooks.md): the capture triggers that
-- write one delivery per event and subscribed endpoint in the change's own transaction, the signing secrets (which
-- never leave the database once stored, as the channels'), and the sweep's list of tenants with work.
--
-- The capture triggers are statement-level and SECURITY DEFINER (the runtime role never writes a delivery by hand).
-- Each first asks whether a tenant of the statement has an enabled endpoint (one probe of a partial index), so a
-- desk without endpoints pays that and nothing more. Each then hands its statement's events, all at once, to
-- webhook_deliveries_add, which writes them (the rows of one event share its event_id).

-- The envelope every delivery's body is: {"id", "type", "createdAt", "tenantId", "data"} (docs/webhooks.md).
CREATE OR REPLACE FUNCTION public.webhook_envelope(p_event_id uuid, p_type text, p_tenant uuid, p_data jsonb)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('id', p_event_id, 'type', p_type, 'createdAt', statement_timestamp(),
                              'tenantId', p_tenant, 'data', p_data)
$$;

-- Whether any tenant named in `p_tenants` has an enabled endpoint: the triggers' first (and, for most desks, only)
-- question.
CREATE OR REPLACE FUNCTION public.webhook_subscribers_exist(p_tenants uuid[]) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RETURN EXISTS (SELECT FROM public.webhook_endpoints w WHERE w.user_id = ANY (p_tenants) AND w.enabled);
END
$$;

-- A ticket's fields as a webhook carries them.
CREATE OR REPLACE FUNCTION public.webhook_ticket_data(t public.support_tickets) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT jsonb_build_object(
        'id', t.id, 'reference', CASE WHEN t.reference IS NOT NULL THEN '#' || t.reference END,
        'subject', t.subject, 'status', t.status, 'priority', t.priority, 'category', t.category,
        'channel', t.channel, 'customerName', t.customer_name, 'customerEmail', t.customer_email,
        'assignedAgentId', t.assigned_agent_id, 'contactId', t.contact_id,
        'createdAt', t.created_at, 'updatedAt', t.updated_at)
$$;

-- The deliveries of a statement's events, one per event and subscribed endpoint: the capture triggers' one write.
-- A trigger hands over all of its statement's events in one call, as parallel arrays (one element per event: its
-- tenant, its type, its data); each event gets its event_id here (a MATERIALIZED CTE: one gen_random_uuid() per
-- event, never one per endpoint it is joined to). Internal: the owner's only (the triggers run as the owner).
-- When it wrote a delivery it says so to the rest of the transaction: `app.webhooks_pending` is 'on' until the
-- transaction ends (a transaction-local setting, undone with a rolled-back subtransaction). The live chat's message,
-- held to one round trip, reads it in the statement that sends the message (support.services.chat) and starts the
-- dispatch after the commit without asking the database whether there is anything to send.
CREATE OR REPLACE FUNCTION public.webhook_deliveries_add(p_tenants uuid[], p_events text[], p_data jsonb[])
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH e AS MATERIALIZED (
        SELECT gen_random_uuid() AS event_id, x.user_id, x.event, x.data
        FROM unnest(p_tenants, p_events, p_data) AS x (user_id, event, data)
    ), written AS (
        INSERT INTO public.webhook_deliveries (user_id, endpoint_id, event_id, event, payload)
        SELECT e.user_id, w.id, e.event_id, e.event, public.webhook_envelope(e.event_id, e.event, e.user_id, e.data)
        FROM e JOIN public.webhook_endpoints w ON w.user_id = e.user_id AND w.enabled AND e.event = ANY (w.events)
        RETURNING 1
    )
    SELECT set_config('app.webhooks_pending', 'on', true) WHERE EXISTS (SELECT FROM written)
$$;
REVOKE ALL ON FUNCTION public.webhook_deliveries_add(uuid[], text[], jsonb[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION public.webhook_capture_tickets() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT public.webhook_subscribers_exist(ARRAY(SELECT DISTINCT n.user_id FROM new_rows n)) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM public.webhook_deliveries_add(array_agg(e.user_id), array_agg(e.event), array_agg(e.data))
        FROM (
            SELECT n.user_id, 'ticket.created' AS event,
                   public.webhook_ticket_data(n) AS data
            FROM new_rows n
        ) e;
    ELSE
        PERFORM public.webhook_deliveries_add(array_agg(e.user_id), array_agg(e.event), array_agg(e.data))
        FROM (
            SELECT n.user_id, x.event, public.webhook_ticket_data(n) || x.extra AS data
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            CROSS JOIN LATERAL (
                SELECT 'ticket.status_changed' AS event, jsonb_build_object('previousStatus', o.status) AS extra
                WHERE n.status IS DISTINCT FROM o.status
                UNION ALL
                SELECT 'ticket.assigned', jsonb_build_object('previousAgentId', o.assigned_agent_id)
                WHERE n.assigned_agent_id IS DISTINCT FROM o.assigned_agent_id AND n.assigned_agent_id IS NOT NULL
            ) x
        ) e;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER support_tickets_webhook_insert AFTER INSERT ON public.support_tickets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.webhook_capture_tickets();
CREATE OR REPLACE TRIGGER support_tickets_webhook_update AFTER UPDATE ON public.support_tickets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.webhook_capture_tickets();

-- A ticket's thread entry (a message, a reply, an internal note, a logged call) as it is written. Entries copied
-- with their original times (a chat made into a ticket copies its messages) are older than the transaction: they
-- were told as chat messages already.
CREATE OR REPLACE FUNCTION public.webhook_capture_conversations() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT public.webhook_subscribers_exist(ARRAY(SELECT DISTINCT n.user_id FROM new_rows n)) THEN
        RETURN NULL;
    END IF;
    PERFORM public.webhook_deliveries_add(array_agg(e.user_id), array_agg(e.event), array_agg(e.data))
    FROM (
        SELECT n.user_id, 'ticket.message_created' AS event,
               jsonb_build_object('id', n.id, 'ticketId', n.ticket_id, 'kind', n.kind, 'senderType', n.sender_type,
                                  'senderName', n.sender_name, 'isInternal', n.is_internal,
                                  'message', left(n.message, 10000), 'createdAt', n.created_at) AS data
        FROM new_rows n WHERE n.created_at >= now()
    ) e;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER ticket_conversations_webhook_insert AFTER INSERT ON public.ticket_conversations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.webhook_capture_conversations();

-- A chat's start and end, and a visitor's rating of it (feedback.received, as a ticket's feedback).
CREATE OR REPLACE FUNCTION public.webhook_capture_chats() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT public.webhook_subscribers_exist(ARRAY(SELECT DISTINCT n.user_id FROM new_rows n)) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM public.webhook_deliveries_add(array_agg(e.user_id), array_agg(e.event), array_agg(e.data))
        FROM (
            SELECT n.user_id, 'chat.started' AS event,
                   jsonb_build_object('id', n.id, 'status', n.status, 'visitorName', n.visitor_name,
                                      'visitorEmail', n.visitor_email, 'assignedAgentId', n.assigned_agent_id,
                                      'startedAt', n.session_start_time) AS data
            FROM new_rows n
        ) e;
    ELSE
        PERFORM public.webhook_deliveries_add(array_agg(e.user_id), array_agg(e.event), array_agg(e.data))
        FROM (
            SELECT n.user_id, x.event, x.data
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            CROSS JOIN LATERAL (
                SELECT 'chat.ended' AS event,
                       jsonb_build_object('id', n.id, 'status', n.status, 'visitorName', n.visitor_name,
                                          'visitorEmail', n.visitor_email, 'assignedAgentId', n.assigned_agent_id,
                                          'startedAt', n.session_start_time, 'endedAt', n.session_end_time,
                                          'endedBy', n.ended_by, 'durationSeconds', n.duration,
                                          'messageCount', n.message_count, 'ticketId', n.ticket_id) AS data
                WHERE n.status = 'closed' AND o.status <> 'closed'
                UNION ALL
                SELECT 'feedback.received',
                       jsonb_build_object('sessionId', n.id, 'ticketId', NULL, 'rating', n.rating,
                                          'feedback', n.feedback, 'createdAt', n.updated_at)
                WHERE n.rating IS NOT NULL AND o.rating IS NULL
            ) x
        ) e;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER live_chat_sessions_webhook_insert AFTER INSERT ON public.live_chat_sessions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.webhook_capture_chats();
CREATE OR REPLACE TRIGGER live_chat_sessions_webhook_update AFTER UPDATE ON public.live_chat_sessions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.webhook_capture_chats();

CREATE OR REPLACE FUNCTION public.webhook_capture_chat_messages() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT public.webhook_subscribers_exist(ARRAY(SELECT DISTINCT n.user_id FROM new_rows n)) THEN
        RETURN NULL;
    END IF;
    PERFORM public.webhook_deliveries_add(array_agg(e.user_id), array_agg(e.event), array_agg(e.data))
    FROM (
        SELECT n.user_id, 'chat.message_created' AS event,
               jsonb_build_object('id', n.id, 'sessionId', n.session_id, 'senderType', n.sender_type,
                                  'senderName', n.sender_name, 'message', left(n.message, 10000),
                                  'createdAt', n.created_at) AS data
        FROM new_rows n
    ) e;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER chat_messages_webhook_insert AFTER INSERT ON public.chat_messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.webhook_capture_chat_messages();

CREATE OR REPLACE FUNCTION public.webhook_capture_feedback() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT public.webhook_subscribers_exist(ARRAY(SELECT DISTINCT n.user_id FROM new_rows n)) THEN
        RETURN NULL;
    END IF;
    PERFORM public.webhook_deliveries_add(array_agg(e.user_id), array_agg(e.event), array_agg(e.data))
    FROM (
        SELECT n.user_id, 'feedback.received' AS event,
               jsonb_build_object('sessionId', NULL, 'ticketId', n.ticket_id, 'rating', n.rating,
                                  'recommendation', n.recommendation, 'feedback', n.feedback,
                                  'resolvedIssue', n.resolved_issue, 'agentRating', n.agent_rating,
                                  'responseTimeRating', n.response_time_rating,
                                  'communicationRating', n.communication_rating, 'createdAt', n.created_at) AS data
        FROM new_rows n
    ) e;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER ticket_feedback_webhook_insert AFTER INSERT ON public.ticket_feedback
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.webhook_capture_feedback();

-- HMAC-SHA256's keyed blocks of a key (RFC 2104, a 64-byte block; as channel_hmac_sha256 in channels.sql): made once
-- per secret, so that HMAC(key, m) = sha256(outer_pad || sha256(inner_pad || m)). Internal: the owner's only.
CREATE OR REPLACE FUNCTION public.webhook_hmac_pads(p_key bytea, OUT inner_pad bytea, OUT outer_pad bytea)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH k AS (
        SELECT CASE WHEN length(p_key) > 64 THEN sha256(p_key) ELSE p_key END AS key
    ), padded AS (
        SELECT k.key || decode(repeat('00', 64 - length(k.key)), 'hex') AS key FROM k
    )
    SELECT decode(string_agg(lpad(to_hex(get_byte(p.key, i) # 54), 2, '0'), '' ORDER BY i), 'hex'),
           decode(string_agg(lpad(to_hex(get_byte(p.key, i) # 92), 2, '0'), '' ORDER BY i), 'hex')
    FROM padded p, generate_series(0, 63) AS i
$$;
REVOKE ALL ON FUNCTION public.webhook_hmac_pads(bytea) FROM PUBLIC;

-- Store a new signing secret for an endpoint of the caller's tenant (app.tenant_id): on create, and on rotation,
-- when the current secret stays valid for `p_overlap` more and any older one still in its overlap ends now (at most
-- two are valid at once). Secrets past their end are deleted. False when the endpoint is not the tenant's. The
-- caller made the secret (and answers it once); it is never read back. As channel_secret_store (channels.sql).
CREATE OR REPLACE FUNCTION public.webhook_secret_store(p_endpoint uuid, p_secret text, p_overlap interval)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_tenant uuid := current_setting('app.tenant_id')::uuid;
BEGIN
    -- The endpoint's row locked: two rotations of one endpoint take turns.
    PERFORM FROM public.webhook_endpoints w WHERE w.user_id = v_tenant AND w.id = p_endpoint FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM public.webhook_secrets s
    WHERE s.endpoint_id = p_endpoint AND s.user_id = v_tenant AND s.expires_at <= clock_timestamp();
    UPDATE public.webhook_secrets s SET expires_at = clock_timestamp()
    WHERE s.endpoint_id = p_endpoint AND s.user_id = v_tenant AND s.expires_at IS NOT NULL;
    UPDATE public.webhook_secrets s SET expires_at = clock_timestamp() + p_overlap
    WHERE s.endpoint_id = p_endpoint AND s.user_id = v_tenant AND s.expires_at IS NULL;
    INSERT INTO public.webhook_secrets (user_id, endpoint_id, secret, inner_pad, outer_pad)
    SELECT v_tenant, p_endpoint, p_secret, pads.inner_pad, pads.outer_pad
    FROM public.webhook_hmac_pads(convert_to(p_secret, 'UTF8')) AS pads;
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION public.webhook_secret_store(uuid, text, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.webhook_secret_store(uuid, text, interval) TO support_app;

-- When the endpoint's previous secret stops signing (NULL: no rotation in progress). For the admin's answers.
CREATE OR REPLACE FUNCTION public.webhook_secret_overlap_ends(p_endpoint uuid) RETURNS timestamptz
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT max(s.expires_at) FROM public.webhook_secrets s
    WHERE s.endpoint_id = p_endpoint AND s.user_id = current_setting('app.tenant_id')::uuid
      AND s.expires_at > statement_timestamp()
$$;
REVOKE ALL ON FUNCTION public.webhook_secret_overlap_ends(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.webhook_secret_overlap_ends(uuid) TO support_app;

-- The signatures of `p_signed` (the bytes "{timestamp}.{body}") with every valid secret of an endpoint of the
-- caller's tenant, as hex, the newest secret first: one during normal times, two during a rotation's overlap (the
-- HMAC from the secret's stored pads: webhook_hmac_pads).
-- Empty for another tenant's endpoint. The secret never leaves the database. `p_at`: the time the secrets must be
-- valid at (the delivery's clock).
CREATE OR REPLACE FUNCTION public.webhook_signatures(p_endpoint uuid, p_signed bytea, p_at timestamptz)
RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT coalesce(array_agg(encode(sha256(s.outer_pad || sha256(s.inner_pad || p_signed)), 'hex')
                              ORDER BY s.created_at DESC, s.id), '{}')
    FROM public.webhook_secrets s
    WHERE s.endpoint_id = p_endpoint AND s.user_id = current_setting('app.tenant_id')::uuid
      AND (s.expires_at IS NULL OR s.expires_at > p_at)
$$;
REVOKE ALL ON FUNCTION public.webhook_signatures(uuid, bytea, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.webhook_signatures(uuid, bytea, timestamptz) TO support_app;

-- The tenants the sweep has work for: deliveries never handed to SQS (their dispatch after the commit was lost), and
-- queued ones whose message was lost (`p_lost_before`: due before it, no attempt in flight). Across tenants (the
-- table is not forced); the sweep then works in each tenant's own transaction. Ids only.
CREATE OR REPLACE FUNCTION public.webhook_sweep_work(p_now timestamptz, p_lost_before timestamptz)
RETURNS TABLE (user_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT DISTINCT d.user_id FROM public.webhook_deliveries d WHERE d.state = 'pending'
    UNION
    SELECT DISTINCT d.user_id FROM public.webhook_deliveries d
    WHERE d.state = 'queued' AND d.next_attempt_at < p_lost_before
      AND (d.lease_until IS NULL OR d.lease_until < p_now)
$$;
REVOKE ALL ON FUNCTION public.webhook_sweep_work(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.webhook_sweep_work(timestamptz, timestamptz) TO support_app;

-- A privacy erasure's step (support.services.privacy): the tenant's deliveries whose body is about the customer (an
-- event of one of their tickets or chats, or one that names one of their emails), at most `max_rows`, deleted: a
-- delivery copies the change's names, emails and texts, and no role but this one may touch its body. Delivered or
-- not (a customer erased is told to no one afterwards). Answers how many; fewer than `max_rows`: none are left.
CREATE OR REPLACE FUNCTION public.webhook_erase_deliveries(
    tenant uuid, ticket_ids uuid[], session_ids uuid[], emails text[], max_rows integer
) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    ids text[] := ARRAY(SELECT x::text FROM unnest(ticket_ids || session_ids) x);
    needles text[] := ARRAY(SELECT lower(btrim(e)) FROM unnest(emails) e WHERE btrim(e) <> '');
    gone integer;
BEGIN
    IF tenant IS DISTINCT FROM current_setting('app.tenant_id')::uuid THEN
        RAISE EXCEPTION 'webhook_erase_deliveries: the tenant must be the transaction''s own' USING ERRCODE = '42501';
    END IF;
    WITH batch AS (
        SELECT d.id FROM public.webhook_deliveries d
        WHERE d.user_id = tenant
          AND (d.payload -> 'data' ->> 'id' = ANY (ids)
               OR d.payload -> 'data' ->> 'ticketId' = ANY (ids)
               OR d.payload -> 'data' ->> 'sessionId' = ANY (ids)
               OR EXISTS (SELECT FROM unnest(needles) n WHERE strpos(lower(d.payload::text), n) > 0))
        LIMIT max_rows
        FOR UPDATE
    )
    DELETE FROM public.webhook_deliveries d USING batch WHERE d.id = batch.id;
    GET DIAGNOSTICS gone = ROW_COUNT;
    RETURN gone;
END
$$;
REVOKE ALL ON FUNCTION public.webhook_erase_deliveries(uuid, uuid[], uuid[], text[], integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.webhook_erase_deliveries(uuid, uuid[], uuid[], text[], integer) TO support_app;

-- The delivery log's retention (sql/0044; the workflow sweep's `webhook_log` step, support.services.webhooks.
-- prune_log): a finished delivery (delivered, or failed after its day of attempts) is kept 30 days after it finished,
-- then deleted; pending and queued ones are never. The 30 days are this function's alone: the two below take the
-- caller's clock, never a shorter keep, and no earlier than the database's own (least(p_at, now())). Both also
-- require the row's created_at before the cut-off: the runtime role may UPDATE state and completed_at (the delivery
-- worker records outcomes), so a row it marked finished long ago must not make a young delivery prunable; created_at
-- is set at the insert and is in no UPDATE grant. Internal.
CREATE OR REPLACE FUNCTION public.webhook_delivery_log_cutoff(p_at timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT least(p_at, now()) - interval '30 days'
$$;
REVOKE ALL ON FUNCTION public.webhook_delivery_log_cutoff(timestamptz) FROM PUBLIC;

-- The tenants with finished deliveries past the 30 days (the step shuffles them and works on a bounded number a
-- run, within its time budget). Through sql/0045's per-tenant partial index: a walk over its distinct tenants (one
-- probe each, a loose index scan), then whether the tenant's oldest finished rows include one due (created_at too,
-- as the prune asks). Across tenants (the table is not forced), ids only. Until sql/0045 it took a row count.
DROP FUNCTION IF EXISTS public.webhook_log_tenants_due(timestamptz, integer);
CREATE OR REPLACE FUNCTION public.webhook_log_tenants_due(p_at timestamptz)
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH RECURSIVE tenant(user_id) AS (
        (SELECT d.user_id FROM public.webhook_deliveries d
         WHERE d.state IN ('delivered', 'failed') ORDER BY d.user_id LIMIT 1)
        UNION ALL
        SELECT (SELECT d.user_id FROM public.webhook_deliveries d
                WHERE d.state IN ('delivered', 'failed') AND d.user_id > tenant.user_id
                ORDER BY d.user_id LIMIT 1)
        FROM tenant WHERE tenant.user_id IS NOT NULL
    ), cut(at) AS (SELECT public.webhook_delivery_log_cutoff(p_at))
    SELECT tenant.user_id FROM tenant, cut
    WHERE tenant.user_id IS NOT NULL
      AND (SELECT true FROM public.webhook_deliveries d  -- per tenant (a subplan, never a join over the log)
           WHERE d.user_id = tenant.user_id AND d.state IN ('delivered', 'failed')
             AND d.completed_at < cut.at AND d.created_at < cut.at
           LIMIT 1)
$$;
REVOKE ALL ON FUNCTION public.webhook_log_tenants_due(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.webhook_log_tenants_due(timestamptz) TO support_app;

-- One tenant's finished deliveries past the 30 days, at most `p_rows`, oldest first (sql/0045's index), deleted; for
-- the transaction's own tenant only (the runtime role has no DELETE on the table). Answers how many.
CREATE OR REPLACE FUNCTION public.webhook_prune_deliveries(p_tenant uuid, p_at timestamptz, p_rows integer)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    cutoff constant timestamptz := public.webhook_delivery_log_cutoff(p_at);
    gone integer;
BEGIN
    IF p_tenant IS DISTINCT FROM current_setting('app.tenant_id')::uuid THEN
        RAISE EXCEPTION 'webhook_prune_deliveries: the tenant must be the transaction''s own' USING ERRCODE = '42501';
    END IF;
    WITH batch AS (
        SELECT d.id FROM public.webhook_deliveries d
        WHERE d.user_id = p_tenant AND d.state IN ('delivered', 'failed') AND d.completed_at < cutoff
          AND d.created_at < cutoff
        ORDER BY d.completed_at
        LIMIT p_rows
        FOR UPDATE SKIP LOCKED
    )
    DELETE FROM public.webhook_deliveries d USING batch
    WHERE d.id = batch.id AND d.state IN ('delivered', 'failed') AND d.completed_at < cutoff AND d.created_at < cutoff;
    GET DIAGNOSTICS gone = ROW_COUNT;
    RETURN gone;
END
$$;
REVOKE ALL ON FUNCTION public.webhook_prune_deliveries(uuid, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.webhook_prune_deliveries(uuid, timestamptz, integer) TO support_app;
