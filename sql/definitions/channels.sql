-- Social and other channels' database side (history: sql/0030): the signing secrets, which never leave the
-- database once stored, the signature check of a delivery, and the contact of a social sender.
--
-- Where the secret is kept. support_channel_secrets has no grant to any role but the owner. The runtime role stores a
-- secret (channel_secret_store: the admin is answered it once) and checks a delivery's signature
-- (channel_delivery_admit: the database computes the HMAC and answers the channel's tenant), so a stolen runtime
-- credential can neither list nor read a tenant's secret. (It can still rotate one, as an admin can: that breaks
-- the tenant's connector loudly, it does not read anything.) The secret is stored as text: an HMAC needs the key
-- itself, so it cannot be hashed; the database's storage encryption and its owner's credential protect it at rest.
--
-- HMAC-SHA256 is written here over the core sha256() (RFC 2104): pgcrypto's hmac() is in Aurora but not in the
-- embedded PostgreSQL the tests and `make run` use, and one implementation everywhere is the one tested.

-- HMAC-SHA256(key, message), RFC 2104 with a 64-byte block. Internal: no role but the owner may call it.
CREATE OR REPLACE FUNCTION public.channel_hmac_sha256(p_key bytea, p_message bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH k AS (
        SELECT CASE WHEN length(p_key) > 64 THEN sha256(p_key) ELSE p_key END AS key
    ), padded AS (
        SELECT k.key || decode(repeat('00', 64 - length(k.key)), 'hex') AS key FROM k
    ), pads AS (
        SELECT decode(string_agg(lpad(to_hex(get_byte(p.key, i) # 54), 2, '0'), '' ORDER BY i), 'hex') AS ipad,
               decode(string_agg(lpad(to_hex(get_byte(p.key, i) # 92), 2, '0'), '' ORDER BY i), 'hex') AS opad
        FROM padded p, generate_series(0, 63) AS i
    )
    SELECT sha256(pads.opad || sha256(pads.ipad || p_message)) FROM pads
$$;
REVOKE ALL ON FUNCTION public.channel_hmac_sha256(bytea, bytea) FROM PUBLIC;

-- Store a new signing secret for a live channel of the caller's tenant (app.tenant_id): on create, and on rotation,
-- when the current secret stays valid for `p_overlap` more and any older one still in its overlap ends now (at
-- most two secrets are valid at once). Secrets past their end are deleted. False when the channel is not the
-- tenant's or is disabled. The caller made the secret (and answers it once); it is never read back.
CREATE OR REPLACE FUNCTION public.channel_secret_store(p_channel uuid, p_secret text, p_overlap interval)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_tenant uuid := current_setting('app.tenant_id')::uuid;
BEGIN
    -- The channel's row locked: two rotations of one channel take turns.
    PERFORM FROM public.support_channels c
    WHERE c.user_id = v_tenant AND c.id = p_channel AND c.disabled_at IS NULL
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM public.support_channel_secrets s
    WHERE s.channel_id = p_channel AND s.user_id = v_tenant AND s.expires_at <= now();
    UPDATE public.support_channel_secrets s SET expires_at = now()
    WHERE s.channel_id = p_channel AND s.user_id = v_tenant AND s.expires_at IS NOT NULL;
    UPDATE public.support_channel_secrets s SET expires_at = now() + p_overlap
    WHERE s.channel_id = p_channel AND s.user_id = v_tenant AND s.expires_at IS NULL;
    INSERT INTO public.support_channel_secrets (user_id, channel_id, secret) VALUES (v_tenant, p_channel, p_secret);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION public.channel_secret_store(uuid, text, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.channel_secret_store(uuid, text, interval) TO support_app;

-- When the channel's previous secret stops being accepted (NULL: no rotation in progress). For the admin's answers.
CREATE OR REPLACE FUNCTION public.channel_secret_overlap_ends(p_channel uuid) RETURNS timestamptz
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT max(s.expires_at) FROM public.support_channel_secrets s
    WHERE s.channel_id = p_channel AND s.user_id = current_setting('app.tenant_id')::uuid AND s.expires_at > now()
$$;
REVOKE ALL ON FUNCTION public.channel_secret_overlap_ends(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.channel_secret_overlap_ends(uuid) TO support_app;

-- The public messages route's check, before it knows the tenant: is `p_signature` the HMAC-SHA256 of
-- "{p_timestamp}.{p_body}" under a valid secret of the live channel `p_channel`, with the timestamp within
-- `p_tolerance` seconds of now? No row when not (an unknown, disabled or foreign channel and a bad signature are one
-- answer). Otherwise the channel's tenant and kind, and whether this signature was seen before (a replay): a
-- signature is recorded by the caller's transaction, so a delivery that fails and rolls back may be sent again,
-- and of two concurrent deliveries of one signature the second waits for the first and is a replay if it committed.
-- A few of the channel's rows older than the window are deleted on the way.
CREATE OR REPLACE FUNCTION public.channel_delivery_admit(
    p_channel uuid, p_timestamp bigint, p_body bytea, p_signature bytea, p_tolerance integer
) RETURNS TABLE (user_id uuid, kind text, replayed boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_tenant uuid;
    v_kind text;
    v_signed bytea := convert_to(p_timestamp::text || '.', 'UTF8') || p_body;
BEGIN
    IF abs(extract(epoch FROM statement_timestamp()) - p_timestamp) > p_tolerance OR length(p_signature) <> 32 THEN
        RETURN;
    END IF;
    SELECT c.user_id, c.kind INTO v_tenant, v_kind FROM public.support_channels c
    WHERE c.id = p_channel AND c.disabled_at IS NULL
      AND EXISTS (SELECT FROM public.support_channel_secrets s
                  WHERE s.channel_id = c.id AND s.user_id = c.user_id
                    AND (s.expires_at IS NULL OR s.expires_at > statement_timestamp())
                    AND public.channel_hmac_sha256(convert_to(s.secret, 'UTF8'), v_signed) = p_signature);
    IF v_tenant IS NULL THEN
        RETURN;
    END IF;
    DELETE FROM public.channel_signatures_seen d WHERE (d.channel_id, d.signature) IN (
        SELECT o.channel_id, o.signature FROM public.channel_signatures_seen o
        WHERE o.channel_id = p_channel AND o.seen_at < statement_timestamp() - interval '15 minutes'
        LIMIT 20);
    INSERT INTO public.channel_signatures_seen (channel_id, user_id, signature)
    VALUES (p_channel, v_tenant, p_signature)
    ON CONFLICT DO NOTHING;
    user_id := v_tenant;
    kind := v_kind;
    replayed := NOT FOUND;
    RETURN NEXT;
END
$$;
REVOKE ALL ON FUNCTION public.channel_delivery_admit(uuid, bigint, bytea, bytea, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.channel_delivery_admit(uuid, bigint, bytea, bytea, integer) TO support_app;

-- The contact of a social sender: found by the identity (kind 'social', scoped by the channel's id: an external
-- sender id is unique only within its channel), or created with it and the name. As contact_for
-- (sql/definitions/contacts.sql): the identity is claimed by one statement that inserts the contact only if the
-- claim succeeded, so two first messages of one sender make one contact; merges are followed, and the answer is
-- locked FOR NO KEY UPDATE, which also makes one sender's deliveries take turns (one opens the ticket, the next
-- threads onto it). SECURITY INVOKER: the caller's row-level security applies.
CREATE OR REPLACE FUNCTION public.contact_for_social(p_tenant uuid, p_channel uuid, p_sender text, p_name text)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_scope text := p_channel::text;
    v_value text := public.contact_normalise('social', p_sender);
    v_name text := nullif(btrim(p_name), '');
    v_contact uuid;
    v_merged uuid;
    v_named boolean;
BEGIN
    IF v_value IS NULL THEN
        RETURN NULL;
    END IF;
    LOOP
        SELECT i.contact_id INTO v_contact FROM public.contact_identities i
        WHERE i.user_id = p_tenant AND i.kind = 'social' AND i.scope = v_scope AND i.value = v_value;
        EXIT WHEN FOUND;
        v_contact := gen_random_uuid();
        WITH claimed AS (
            INSERT INTO public.contact_identities (user_id, kind, scope, value, contact_id)
            VALUES (p_tenant, 'social', v_scope, v_value, v_contact)
            ON CONFLICT DO NOTHING
            RETURNING contact_id
        )
        INSERT INTO public.support_contacts (user_id, id, name) SELECT p_tenant, c.contact_id, v_name FROM claimed c;
        EXIT WHEN FOUND;
    END LOOP;
    LOOP
        SELECT c.merged_into, c.name IS NOT NULL INTO v_merged, v_named FROM public.support_contacts c
        WHERE c.user_id = p_tenant AND c.id = v_contact FOR NO KEY UPDATE;
        EXIT WHEN v_merged IS NULL;
        v_contact := v_merged;
    END LOOP;
    IF NOT v_named AND v_name IS NOT NULL THEN
        UPDATE public.support_contacts c SET name = v_name WHERE c.user_id = p_tenant AND c.id = v_contact;
    END IF;
    RETURN v_contact;
END
$$;
REVOKE ALL ON FUNCTION public.contact_for_social(uuid, uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.contact_for_social(uuid, uuid, text, text) TO support_app;
