-- Webhooks (issue 20): a tenant's endpoints subscribed to the desk's events, their signing secrets, and the outbox of
-- deliveries (one row per event and endpoint, written by triggers in the change's own transaction and delivered
-- through SQS after the commit). Follows 0010's rules: row-level security on the new tables, exactly the grants the
-- code uses (sql/privileges.toml). The capture triggers, the secrets' functions and the sweep's listing live in
-- sql/definitions/webhooks.sql; the service is layers/support/support/services/webhooks.py (docs/webhooks.md).

-- 1. The endpoints. ------------------------------------------------------------------------------------------------
-- `events` holds the subscribed event names (validated by support.models.webhooks); the capture triggers look a
-- tenant's enabled endpoints up by user_id, so a desk without endpoints pays one index probe per statement.
CREATE TABLE public.webhook_endpoints (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL,
    url         text NOT NULL CHECK (length(url) BETWEEN 8 AND 2048),
    events      text[] NOT NULL CHECK (cardinality(events) BETWEEN 1 AND 50),
    description text CHECK (length(description) <= 500),
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, id)
);
CREATE INDEX webhook_endpoints_list_idx ON public.webhook_endpoints (user_id, created_at DESC, id DESC);
CREATE INDEX webhook_endpoints_enabled_idx ON public.webhook_endpoints (user_id) WHERE enabled;

-- 2. Their signing secrets: the owner's alone, as the channels' (sql/0030). The runtime role stores one through
-- webhook_secret_store and has a delivery signed by webhook_signatures (SECURITY DEFINER: the database computes the
-- HMAC and answers the signature, never the secret). `expires_at` is NULL for the current secret; a rotation gives
-- the previous one 24 hours, during which every delivery carries both signatures. `inner_pad` and `outer_pad` are
-- HMAC's two keyed blocks (RFC 2104: the key XOR 0x36.., XOR 0x5c..), made once when the secret is stored, so a
-- signature costs two sha256() calls and not the byte-by-byte XOR of every delivery (a fan-out signs thousands).
CREATE TABLE public.webhook_secrets (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL,
    endpoint_id uuid NOT NULL,
    secret      text NOT NULL CHECK (length(secret) BETWEEN 32 AND 200),
    inner_pad   bytea NOT NULL CHECK (length(inner_pad) = 64),
    outer_pad   bytea NOT NULL CHECK (length(outer_pad) = 64),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at  timestamptz,
    FOREIGN KEY (user_id, endpoint_id) REFERENCES public.webhook_endpoints (user_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_secrets_endpoint_idx ON public.webhook_secrets (endpoint_id);

-- 3. The deliveries: the outbox. -----------------------------------------------------------------------------------
-- One row per event and subscribed endpoint, written by the capture triggers in the change's own transaction; its id
-- is the delivery id the receiver sees on every attempt (X-Support-Delivery). `event_id` is shared by the rows of one
-- event (one per endpoint). `payload` is the body as it is sent (the event's data as it was at the commit).
-- States: pending (written, not yet handed to SQS), queued (in SQS, next attempt at next_attempt_at), delivered (a 2xx
-- answer), failed (a day of attempts without one: dead-lettered). `lease_until`: an attempt in flight (a second copy
-- of the message passes it by). The last attempt's answer, duration and error are kept for the delivery log.
CREATE TABLE public.webhook_deliveries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL,
    endpoint_id     uuid NOT NULL,
    event_id        uuid NOT NULL,
    event           text NOT NULL CHECK (length(event) BETWEEN 1 AND 50),
    payload         jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'queued', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz,
    lease_until     timestamptz,
    response_status smallint CHECK (response_status BETWEEN 100 AND 599),
    duration_ms     integer CHECK (duration_ms >= 0),
    last_error      text CHECK (length(last_error) <= 1000),
    last_attempt_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    completed_at    timestamptz,
    FOREIGN KEY (user_id, endpoint_id) REFERENCES public.webhook_endpoints (user_id, id) ON DELETE CASCADE
);
-- The delivery log of one endpoint, newest first.
CREATE INDEX webhook_deliveries_log_idx ON public.webhook_deliveries (user_id, endpoint_id, created_at DESC, id DESC);
-- The dispatcher's work: rows not yet handed to SQS.
CREATE INDEX webhook_deliveries_pending_idx ON public.webhook_deliveries (user_id, created_at, id)
    WHERE state = 'pending';
-- The sweep's safety net: queued rows whose message was lost (past due, no attempt in flight).
CREATE INDEX webhook_deliveries_queued_idx ON public.webhook_deliveries (next_attempt_at) WHERE state = 'queued';

-- Row-level security: enabled here, forced (or not) with its tenant_isolation policy by
-- sql/definitions/row_level_security.sql. webhook_endpoints and webhook_deliveries are not forced: the capture
-- triggers (SECURITY DEFINER) look up endpoints and write deliveries for any write, and the sweep lists the tenants
-- with work (webhook_sweep_work). webhook_secrets: no grant to any role but the owner.
ALTER TABLE public.webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.webhook_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.webhook_deliveries ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON public.webhook_endpoints, public.webhook_secrets, public.webhook_deliveries FROM PUBLIC;
GRANT SELECT, DELETE ON public.webhook_endpoints TO support_app;
GRANT INSERT (user_id, url, events, description, enabled) ON public.webhook_endpoints TO support_app;
GRANT UPDATE (url, events, description, enabled, updated_at) ON public.webhook_endpoints TO support_app;
-- Written by the capture triggers only; the dispatcher and the delivery function move their state.
GRANT SELECT ON public.webhook_deliveries TO support_app;
GRANT UPDATE (state, attempts, next_attempt_at, lease_until, response_status, duration_ms, last_error,
              last_attempt_at, completed_at)
    ON public.webhook_deliveries TO support_app;
