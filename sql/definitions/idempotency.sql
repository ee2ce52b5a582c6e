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
