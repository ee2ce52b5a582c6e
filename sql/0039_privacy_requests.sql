-- Privacy requests (issue 19): a customer's data exported (one JSON document in S3) or erased (anonymised in place,
-- shapes kept, so every figure stays true). The service is support.services.privacy; the erasure's batches are
-- privacy_erase_batch (SECURITY DEFINER, sql/definitions/privacy.sql); docs/ARCHITECTURE.md ("Privacy requests")
-- says why. Follows 0010's rules: row-level security on the new table, exactly the grants the code uses
-- (sql/privileges.toml).
--
-- One row per request. `customer_email`: whom it is about, lower-cased; an erasure clears it (its own and every
-- earlier request's of that customer) when it is done, so the table keeps no trace of them. `state`: pending ->
-- running -> done | failed. A runner claims a request by moving its `lease_until` into the future and counting an
-- attempt; a runner that dies leaves a lease that expires, and the workflow sweep's `privacy` step resumes it (at
-- most a bounded number of attempts, then `failed` with the last `error`). `step` and `cursor`: where an erasure
-- stands, committed with each batch, so a resumed run goes on from there; `progress`: rows done per step.
-- `contact_ids`, `ticket_ids`, `session_ids`: what the erasure found at its start (the rows it changes cannot be
-- found by the email any more once erased). `s3_key`: an export's document.
CREATE TABLE public.privacy_requests (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        uuid NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('export', 'erasure')),
    customer_email text CHECK (length(customer_email) BETWEEN 3 AND 320),
    state          text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts       integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    lease_until    timestamptz,
    step           text CHECK (length(step) <= 100),
    cursor         text CHECK (length(cursor) <= 200),
    progress       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(progress) = 'object'),
    contact_ids    uuid[],
    ticket_ids     uuid[],
    session_ids    uuid[],
    s3_key         text CHECK (length(s3_key) <= 1024),
    error          text CHECK (length(error) <= 2000),
    requested_by   text CHECK (length(requested_by) <= 300),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    UNIQUE (user_id, id),
    CHECK (state IN ('pending', 'running') OR lease_until IS NULL)
);
-- The requests of one customer (an erasure looks for an open one to answer, and for earlier exports to delete).
CREATE INDEX privacy_requests_customer_idx ON public.privacy_requests (user_id, customer_email)
    WHERE customer_email IS NOT NULL;
-- The sweep's to-do list: the open requests of every tenant, by lease.
CREATE INDEX privacy_requests_open_idx ON public.privacy_requests (lease_until NULLS FIRST)
    WHERE state IN ('pending', 'running');

-- Row-level security: enabled here, its tenant_isolation policy by sql/definitions/row_level_security.sql. Not
-- forced: the sweep's list of open requests (privacy_requests_due, SECURITY DEFINER, the owner's) reads every
-- tenant's ids; the runtime role sees and writes only its tenant's requests.
ALTER TABLE public.privacy_requests ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON public.privacy_requests FROM PUBLIC;
GRANT SELECT ON public.privacy_requests TO support_app;
GRANT INSERT (user_id, kind, customer_email, requested_by) ON public.privacy_requests TO support_app;
GRANT UPDATE (customer_email, state, attempts, lease_until, step, cursor, progress, contact_ids, ticket_ids,
              session_ids, s3_key, error, updated_at, started_at, finished_at)
    ON public.privacy_requests TO support_app;
