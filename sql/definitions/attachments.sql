-- Attachments (sql/0041, support.services.attachments): a chat message that refers to uploaded files, stored and
-- the files claimed in one transaction. chat_send_message (chat.sql) stores the message as ever; for a new message
-- this marks the session's pending attachments `claimed` by it (the service has already checked each object with
-- S3's HeadObject and copied it to `p_keys`, the kept prefix) and writes their description into the message's
-- `attachments`. An attachment that is no longer pending (claimed meanwhile by another message) or not of this
-- session raises `attachment_unavailable` (SQLSTATE P0001, hint below), so the message is rolled back with it:
-- never a message without its files, nor a file claimed by a message that was not stored. A resend (the same
-- clientMessageId) answers the stored message and claims nothing. SECURITY INVOKER: under the caller's row-level
-- security.
CREATE OR REPLACE FUNCTION public.chat_send_message_with_attachments(
    p_tenant uuid, p_session uuid, p_role text, p_visitor_id text, p_agent_id uuid, p_connection text,
    p_subject text, p_sender_type text, p_sender_name text, p_message text, p_attachment_url text,
    p_attachment_type text, p_client_message_id text, p_attachment_ids uuid[], p_keys text[]
) RETURNS TABLE (outcome text, message public.chat_messages, connection_ids text[], connection_sides text[])
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    sent record;
    claimed jsonb;
    claimed_count integer;
    stored public.chat_messages;
BEGIN
    SELECT * INTO sent FROM public.chat_send_message(p_tenant, p_session, p_role, p_visitor_id, p_agent_id,
        p_connection, p_subject, p_sender_type, p_sender_name, p_message, p_attachment_url, p_attachment_type,
        p_client_message_id) r;
    IF sent.outcome IS DISTINCT FROM 'new' THEN
        RETURN QUERY SELECT sent.outcome, sent.message, sent.connection_ids, sent.connection_sides;
        RETURN;
    END IF;
    WITH wanted AS (
        SELECT w.id, w.key, w.position FROM unnest(p_attachment_ids, p_keys) WITH ORDINALITY AS w (id, key, position)
    ), done AS (
        UPDATE public.attachments a
        SET state = 'claimed', object_key = wanted.key, chat_message_id = (sent.message).id, claimed_at = now()
        FROM wanted
        WHERE a.user_id = p_tenant AND a.session_id = p_session AND a.id = wanted.id AND a.state = 'pending'
        RETURNING a.id, a.file_name, a.content_type, a.size_bytes, wanted.position
    )
    SELECT count(*)::integer,
           coalesce(jsonb_agg(jsonb_build_object('id', done.id, 'fileName', done.file_name,
                                                 'contentType', done.content_type, 'sizeBytes', done.size_bytes)
                              ORDER BY done.position), '[]')
    INTO claimed_count, claimed FROM done;
    IF claimed_count <> cardinality(p_attachment_ids) THEN
        RAISE EXCEPTION 'attachment_unavailable' USING HINT = 'an attachment is not a pending upload of this chat';
    END IF;
    UPDATE public.chat_messages m SET attachments = claimed
    WHERE m.id = (sent.message).id
    RETURNING m.* INTO stored;
    RETURN QUERY SELECT sent.outcome, stored, sent.connection_ids, sent.connection_sides;
END
$$;
REVOKE ALL ON FUNCTION public.chat_send_message_with_attachments(uuid, uuid, text, text, uuid, text, text, text, text,
    text, text, text, text, uuid[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.chat_send_message_with_attachments(uuid, uuid, text, text, uuid, text, text, text,
    text, text, text, text, text, uuid[], text[]) TO support_app;

-- The tenants with uploads no message claimed, created before `p_before` (the workflow sweep's `uploads` step, whose
-- one look across tenants this is: ids only; the step shuffles them and works on a bounded number a run, within its
-- time budget). Through sql/0045's per-tenant partial index: a walk over its distinct tenants (one probe each, a
-- loose index scan), each kept when its oldest pending row is due. Owned by support_analytics_lister, whose policy
-- (row_level_security.sql) and column grants (sql/0044) let it see user_id, state and created_at of every tenant's
-- rows; replacing it takes membership in its owner, granted to the schema owner for these statements only, as
-- routing_tenants_waiting's. Until sql/0045 it took a row count.
GRANT support_analytics_lister TO support_owner;
DROP FUNCTION IF EXISTS public.attachments_tenants_unclaimed(timestamptz, integer);
CREATE OR REPLACE FUNCTION public.attachments_tenants_unclaimed(p_before timestamptz)
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH RECURSIVE tenant(user_id, oldest) AS (
        (SELECT a.user_id, a.created_at FROM public.attachments a
         WHERE a.state = 'pending' ORDER BY a.user_id, a.created_at LIMIT 1)
        UNION ALL
        SELECT next.user_id, next.created_at FROM tenant, LATERAL (
            SELECT a.user_id, a.created_at FROM public.attachments a
            WHERE a.state = 'pending' AND a.user_id > tenant.user_id
            ORDER BY a.user_id, a.created_at LIMIT 1) next
    )
    SELECT tenant.user_id FROM tenant WHERE tenant.oldest < p_before
$$;
REVOKE ALL ON FUNCTION public.attachments_tenants_unclaimed(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.attachments_tenants_unclaimed(timestamptz) TO support_app;
GRANT CREATE ON SCHEMA public TO support_analytics_lister;
ALTER FUNCTION public.attachments_tenants_unclaimed(timestamptz) OWNER TO support_analytics_lister;
REVOKE CREATE ON SCHEMA public FROM support_analytics_lister;
REVOKE support_analytics_lister FROM support_owner;
