-- Retry-safe writes (issue 20): the Idempotency-Key of every create, per tenant and route. The service is
-- support.services.idempotency; docs/api.md ("Retry-safe writes") and docs/ARCHITECTURE.md say why it is our own.
-- Follows 0010's rules: row-level security on the new table, exactly the grants the code uses (sql/privileges.toml).
--
-- One row per (tenant, route, key). `request_hash`: SHA-256 of the request (method, path, query, body) that claimed
-- it; `claim_id`: the invocation that holds it (its own retry on a broken connection finds it again);
-- `status_code` and `response_body`: NULL while the first request runs (in progress), then its answer, replayed
-- to every retry until `expires_at` (24 hours). `lease_expires_at`: an in-progress claim older than this (the
-- invocation died) may be taken over by the next retry. Expired rows are replaced by a new claim of the same key,
-- and deleted by the workflow sweep's `idempotency` step (idempotency_keys_purge, sql/definitions/idempotency.sql).
CREATE TABLE public.idempotency_keys (
    user_id          uuid NOT NULL,
    route            text NOT NULL CHECK (length(route) BETWEEN 1 AND 300),
    key              text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash     bytea NOT NULL CHECK (length(request_hash) = 32),
    claim_id         uuid NOT NULL,
    status_code      smallint CHECK (status_code BETWEEN 200 AND 599),
    response_body    text CHECK (octet_length(response_body) <= 1048576),
    created_at       timestamptz NOT NULL DEFAULT now(),
    lease_expires_at timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    PRIMARY KEY (user_id, route, key)
);
CREATE INDEX idempotency_keys_expiry_idx ON public.idempotency_keys (expires_at);

-- Row-level security: enabled here, its tenant_isolation policy by sql/definitions/row_level_security.sql. Not
-- forced: the purge (SECURITY DEFINER, the owner's) deletes the expired keys of every tenant at once; the runtime
-- role sees and writes only its tenant's keys.
ALTER TABLE public.idempotency_keys ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON public.idempotency_keys FROM PUBLIC;
GRANT SELECT, DELETE ON public.idempotency_keys TO support_app;
GRANT INSERT (user_id, route, key, request_hash, claim_id, lease_expires_at, expires_at)
    ON public.idempotency_keys TO support_app;
GRANT UPDATE (request_hash, claim_id, status_code, response_body, created_at, lease_expires_at, expires_at)
    ON public.idempotency_keys TO support_app;
