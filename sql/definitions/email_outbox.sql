-- The email outbox's cross-tenant steps (history: sql/0026; support.services.email_outbox). The drain runs for
-- every tenant at once and a bounce names only an SES message id, so these two run as the owner over
-- email_outbox, which has row-level security ENABLEd but not FORCEd. Each answers only what the caller needs to
-- bind the tenant and carry on under its own row-level security: the claim, the ids it claimed; the bounce
-- lookup, the tenant of the exact SES message id asked (which only SES and the sender know).

-- Claim up to `batch` due notifications: `pending` ones whose next attempt is due, and `sending` ones whose lease
-- ran out (a worker that died mid-send). FOR UPDATE SKIP LOCKED: two drains running together take disjoint rows.
-- The claim commits on its own, so the lease (`sending` until next_attempt_at) holds while the mail is sent.
CREATE OR REPLACE FUNCTION public.email_outbox_claim(batch integer, lease_seconds integer)
RETURNS TABLE (id uuid, user_id uuid, attempts integer)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH due AS (
        SELECT o.id
        FROM public.email_outbox o
        WHERE o.state IN ('pending', 'sending') AND o.next_attempt_at <= now()
        ORDER BY o.next_attempt_at
        LIMIT least(greatest(batch, 1), 1000)
        FOR UPDATE SKIP LOCKED
    )
    UPDATE public.email_outbox o
    SET state = 'sending', attempts = o.attempts + 1, updated_at = now(),
        next_attempt_at = now() + make_interval(secs => least(greatest(lease_seconds, 10), 900))
    FROM due
    WHERE o.id = due.id
    RETURNING o.id, o.user_id, o.attempts
$$;
REVOKE ALL ON FUNCTION public.email_outbox_claim(integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.email_outbox_claim(integer, integer) TO support_app;

-- The tenant and recipient of the mail SES sent as `ses_id` (a bounce or complaint notification names it).
CREATE OR REPLACE FUNCTION public.email_outbox_sent_as(ses_id text)
RETURNS TABLE (user_id uuid, recipient text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT o.user_id, o.recipient
    FROM public.email_outbox o
    WHERE o.ses_message_id = ses_id
    LIMIT 1
$$;
REVOKE ALL ON FUNCTION public.email_outbox_sent_as(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.email_outbox_sent_as(text) TO support_app;
