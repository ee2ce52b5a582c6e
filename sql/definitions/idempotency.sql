-- Retry-safe writes (sql/0037): the expired Idempotency-Keys of every tenant, deleted by the workflow sweep's
-- `idempotency` step, at most `batch` at a time (the next minute deletes the rest). SECURITY DEFINER: the table's
-- row-level security is ENABLEd, not FORCEd, so the owner sees every tenant's keys; it answers a count, no content.
CREATE OR REPLACE FUNCTION public.idempotency_keys_purge(at timestamptz, batch integer) RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH expired AS (
        SELECT k.ctid AS row_id FROM public.idempotency_keys k
        WHERE k.expires_at <= at
        ORDER BY k.expires_at
        LIMIT batch
        FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM public.idempotency_keys k USING expired WHERE k.ctid = expired.row_id
        RETURNING 1
    )
    SELECT count(*)::integer FROM gone;
$$;
REVOKE ALL ON FUNCTION public.idempotency_keys_purge(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.idempotency_keys_purge(timestamptz, integer) TO support_app;

-- The claim of a key (support.idempotency): one call, whose plan PL/pgSQL keeps per connection (the statement
-- parsed and planned on every request cost more than its work), sent alone on the autocommit connection: the
-- statement is its transaction, and the function binds the tenant in it (set_config(..., true): transaction-local,
-- as every binding), so the call is one round trip without BEGIN, a binding statement and COMMIT around it.
-- SECURITY INVOKER: under the caller's row-level security, for that tenant only. `mine`: this claim holds the key (a new key, an expired
-- one replaced, an in-progress one whose lease ended taken over, or this claim's own row found again on a retried
-- statement); otherwise the key's row as it is (its request's hash, and its answer once complete), or no row at
-- all when the key was released meanwhile (the caller answers in progress: a retry claims it).
CREATE OR REPLACE FUNCTION public.idempotency_claim(p_tenant uuid, p_route text, p_key text, p_hash bytea,
                                                    p_claim uuid, p_lease interval, p_ttl interval)
RETURNS TABLE (mine boolean, request_hash bytea, status_code smallint, response_body text)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    tenant constant uuid := set_config('app.tenant_id', p_tenant::text, true)::uuid;
BEGIN
    INSERT INTO public.idempotency_keys AS k (user_id, route, key, request_hash, claim_id, lease_expires_at,
                                              expires_at)
    VALUES (tenant, p_route, p_key, p_hash, p_claim, now() + p_lease, now() + p_ttl)
    ON CONFLICT ON CONSTRAINT idempotency_keys_pkey DO UPDATE
        SET request_hash = excluded.request_hash, claim_id = excluded.claim_id, status_code = NULL,
            response_body = NULL, created_at = now(), lease_expires_at = excluded.lease_expires_at,
            expires_at = excluded.expires_at
        WHERE k.expires_at <= now()
           OR (k.status_code IS NULL AND k.lease_expires_at <= now() AND k.request_hash = excluded.request_hash);
    IF FOUND THEN
        RETURN QUERY SELECT true, NULL::bytea, NULL::smallint, NULL::text;
        RETURN;
    END IF;
    -- a statement of its own: a new snapshot, which sees the row a concurrent claim committed
    RETURN QUERY
        SELECT k.claim_id = p_claim, k.request_hash, k.status_code, k.response_body
        FROM public.idempotency_keys k
        WHERE k.user_id = tenant AND k.route = p_route AND k.key = p_key;
END
$$;
REVOKE ALL ON FUNCTION public.idempotency_claim(uuid, text, text, bytea, uuid, interval, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.idempotency_claim(uuid, text, text, bytea, uuid, interval, interval) TO support_app;

-- The end of a claim: its answer stored (p_status, p_body), or, with p_status NULL, the claim released (an error:
-- a retry runs again). One call on its own as idempotency_claim, binding the tenant the same way. Only the claim
-- that holds the key changes it; answers whether it did.
CREATE OR REPLACE FUNCTION public.idempotency_finish(p_tenant uuid, p_route text, p_key text, p_claim uuid,
                                                     p_status smallint, p_body text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    tenant constant uuid := set_config('app.tenant_id', p_tenant::text, true)::uuid;
BEGIN
    IF p_status IS NULL THEN
        DELETE FROM public.idempotency_keys k
        WHERE k.user_id = tenant AND k.route = p_route AND k.key = p_key AND k.claim_id = p_claim
          AND k.status_code IS NULL;
    ELSE
        UPDATE public.idempotency_keys k SET status_code = p_status, response_body = p_body
        WHERE k.user_id = tenant AND k.route = p_route AND k.key = p_key AND k.claim_id = p_claim;
    END IF;
    RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION public.idempotency_finish(uuid, text, text, uuid, smallint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.idempotency_finish(uuid, text, text, uuid, smallint, text) TO support_app;
