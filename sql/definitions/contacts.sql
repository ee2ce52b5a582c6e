-- Contacts' database side (history: sql/0024): how an identity is normalised, how a ticket or a chat session
-- finds or creates its contact, and which tenants the backfill visits.

-- An identity as it is stored and looked up: an email lower-cased; a phone number as its digits, with a leading +
-- kept (NULL when fewer than 3 digits remain); a visitor id and a social sender id as given (trimmed). NULL for
-- NULL or blank input. The one rule for every path (a new ticket, a chat, an edit, a search, the backfill).
CREATE OR REPLACE FUNCTION public.contact_normalise(p_kind text, p_raw text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN nullif(btrim(p_raw), '') IS NULL THEN NULL
    WHEN p_kind = 'email' THEN lower(btrim(p_raw))
    WHEN p_kind = 'phone' THEN
        CASE WHEN length(regexp_replace(p_raw, '[^0-9]', '', 'g')) < 3 THEN NULL
             ELSE CASE WHEN btrim(p_raw) LIKE '+%' THEN '+' ELSE '' END || regexp_replace(p_raw, '[^0-9]', '', 'g')
        END
    ELSE btrim(p_raw)
END;

-- The contact of a new ticket (customer name, email, phone) or chat session (visitor name, email, id): found by the
-- first identity given of email, visitor id, phone, or created with it; the others given are then added to that
-- contact unless another contact owns them already (no silent merge: an agent merges). A new contact takes the
-- name; a known one without a name takes it too. Returns NULL only when no identity was given.
--
-- Concurrency (READ COMMITTED): a new contact is made by ONE statement that claims its first identity
-- (INSERT ... ON CONFLICT DO NOTHING) and inserts the contact only if the claim succeeded. Two transactions making
-- the same new email: the second's claim waits for the first's commit, then does nothing, and the loop reads the
-- winner's contact. No orphan contact, no advisory lock.
-- Merges: the answer is locked FOR KEY SHARE (the lock the caller's foreign key check takes anyway) and followed
-- along merged_into. A merge locks both contacts FOR UPDATE first (services/contacts.py), so a link racing a merge
-- either waits and then reads the survivor (READ COMMITTED re-reads the locked row's newest version), or commits its
-- row before the merge moves the contact's rows.
CREATE OR REPLACE FUNCTION public.contact_for(
    p_tenant uuid, p_name text, p_email text, p_phone text, p_visitor text
) RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_email text := public.contact_normalise('email', p_email);
    v_phone text := public.contact_normalise('phone', p_phone);
    v_visitor text := public.contact_normalise('visitor', p_visitor);
    v_name text := nullif(btrim(p_name), '');
    v_kind text;
    v_value text;
    v_contact uuid;
    v_merged uuid;
    v_named boolean;
BEGIN
    IF v_email IS NOT NULL THEN
        v_kind := 'email'; v_value := v_email;
    ELSIF v_visitor IS NOT NULL THEN
        v_kind := 'visitor'; v_value := v_visitor;
    ELSIF v_phone IS NOT NULL THEN
        v_kind := 'phone'; v_value := v_phone;
    ELSE
        RETURN NULL;
    END IF;

    LOOP
        SELECT i.contact_id INTO v_contact FROM public.contact_identities i
        WHERE i.user_id = p_tenant AND i.kind = v_kind AND i.scope = '' AND i.value = v_value;
        EXIT WHEN FOUND;
        v_contact := gen_random_uuid();
        WITH claimed AS (
            INSERT INTO public.contact_identities (user_id, kind, scope, value, contact_id)
            VALUES (p_tenant, v_kind, '', v_value, v_contact)
            ON CONFLICT DO NOTHING
            RETURNING contact_id
        )
        INSERT INTO public.support_contacts (user_id, id, name) SELECT p_tenant, c.contact_id, v_name FROM claimed c;
        EXIT WHEN FOUND;
    END LOOP;

    LOOP
        SELECT c.merged_into, c.name IS NOT NULL INTO v_merged, v_named FROM public.support_contacts c
        WHERE c.user_id = p_tenant AND c.id = v_contact FOR KEY SHARE;
        EXIT WHEN v_merged IS NULL;
        v_contact := v_merged;
    END LOOP;

    IF NOT v_named AND v_name IS NOT NULL THEN
        UPDATE public.support_contacts c SET name = v_name WHERE c.user_id = p_tenant AND c.id = v_contact;
    END IF;
    INSERT INTO public.contact_identities (user_id, kind, scope, value, contact_id)
    SELECT p_tenant, more.kind, '', more.value, v_contact
    FROM (VALUES ('email', v_email), ('phone', v_phone), ('visitor', v_visitor)) AS more (kind, value)
    WHERE more.value IS NOT NULL AND more.kind <> v_kind
    ORDER BY more.kind
    ON CONFLICT DO NOTHING;
    RETURN v_contact;
END
$$;

REVOKE ALL ON FUNCTION public.contact_normalise(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.contact_for(uuid, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.contact_normalise(text, text) TO support_app;
GRANT EXECUTE ON FUNCTION public.contact_for(uuid, text, text, text, text) TO support_app;

-- The tenants with a ticket or a chat session, in id order after `after`, at most `max_tenants` of them: the
-- contacts backfill's look across tenants (ids only). It runs as support_analytics_lister, which owns it: the one
-- role that may read every tenant's user_id of these tables (sql/0012 says why a role of its own; this reads the
-- same column it already reads for the analytics job). A loose index scan: one probe of the tenant-leading index
-- per tenant, whatever the tenant's row count. Replacing it takes membership in its owner: granted to the schema
-- owner for this transaction's statements only.
GRANT support_analytics_lister TO support_owner;
CREATE OR REPLACE FUNCTION public.contacts_backfill_tenants(after uuid, max_tenants integer) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH RECURSIVE
    ticket_tenants (id) AS (
        SELECT (SELECT t.user_id FROM public.support_tickets t WHERE t.user_id > after ORDER BY t.user_id LIMIT 1)
        UNION ALL
        SELECT (SELECT t.user_id FROM public.support_tickets t WHERE t.user_id > p.id ORDER BY t.user_id LIMIT 1)
        FROM ticket_tenants p WHERE p.id IS NOT NULL
    ),
    session_tenants (id) AS (
        SELECT (SELECT s.user_id FROM public.live_chat_sessions s WHERE s.user_id > after ORDER BY s.user_id LIMIT 1)
        UNION ALL
        SELECT (SELECT s.user_id FROM public.live_chat_sessions s WHERE s.user_id > p.id ORDER BY s.user_id LIMIT 1)
        FROM session_tenants p WHERE p.id IS NOT NULL
    )
    SELECT id FROM (
        (SELECT id FROM ticket_tenants WHERE id IS NOT NULL LIMIT max_tenants)
        UNION
        (SELECT id FROM session_tenants WHERE id IS NOT NULL LIMIT max_tenants)
    ) tenants
    ORDER BY id
    LIMIT max_tenants
$$;
REVOKE ALL ON FUNCTION public.contacts_backfill_tenants(uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.contacts_backfill_tenants(uuid, integer) TO support_app;
-- ALTER ... OWNER TO asks that the new owner may create in the schema: for this statement only, as sql/0012 does.
GRANT CREATE ON SCHEMA public TO support_analytics_lister;
ALTER FUNCTION public.contacts_backfill_tenants(uuid, integer) OWNER TO support_analytics_lister;
REVOKE CREATE ON SCHEMA public FROM support_analytics_lister;
REVOKE support_analytics_lister FROM support_owner;
