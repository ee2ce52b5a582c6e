-- SLA policies (issue 18): each ticket's first-response and resolution due times, the sweep's queue of the next
-- instant a ticket must be looked at, and the SLA events the sweep records (docs/sla.md). The policy itself is the
-- `sla` area of tenant_settings (sql/0018). The functions and triggers that keep all of this true are in
-- sql/definitions/sla.sql. Follows 0010's rules: row-level security on every new table, exactly the grants the
-- code uses (sql/privileges.toml).

-- 1. On the ticket: its due times, kept by the trigger support_tickets_sla (sql/definitions/sla.sql). -------------
-- The at-risk instants (80 % of a target used) are kept beside the due times, so that neither the sweep nor the
-- state of a ticket computes business hours on read. `sla_paused_at` is set while the clock stands still (a pausing
-- status, or resolved/closed); `sla_paused_seconds` is the business time the ticket has spent paused, by which its
-- due times have moved out. Tickets that exist before this migration get their due times on their next change of
-- priority or status (no backfill: rewriting every ticket would fire every trigger of the table once per ticket).
-- Nullable columns without a default: adding them rewrites nothing.
ALTER TABLE public.support_tickets
    ADD COLUMN first_response_due_at timestamptz,
    ADD COLUMN first_response_risk_at timestamptz,
    ADD COLUMN resolution_due_at timestamptz,
    ADD COLUMN resolution_risk_at timestamptz,
    ADD COLUMN sla_paused_at timestamptz,
    ADD COLUMN sla_paused_seconds integer,
    -- the SLA clock's reading (business time less the pauses) at the first response and at resolution
    ADD COLUMN first_response_business_seconds integer,
    ADD COLUMN resolution_business_seconds integer;

-- 2. The sweep's queue: one row per ticket with a target still to meet, and the next instant to look at. ------------
-- Written by the owner's trigger only (support_tickets_sla_queue), read and advanced by the owner's sla_sweep: the
-- runtime role has no privilege on it at all. It carries the pending instants themselves, so the sweep never reads
-- support_tickets. `check_at` is NULL once nothing is left to look at (the row stays until the ticket changes):
-- the partial index holds only the tickets that still have an instant ahead, ordered by it, so a sweep reads the
-- due ones and stops at the first that is not due: its cost grows with the tickets near or past a due time.
CREATE TABLE ticket_sla_checks (
    user_id                uuid NOT NULL,
    ticket_id              uuid NOT NULL,
    first_response_risk_at timestamptz,
    first_response_due_at  timestamptz,
    resolution_risk_at     timestamptz,
    resolution_due_at      timestamptz,
    check_at               timestamptz,
    PRIMARY KEY (user_id, ticket_id),
    FOREIGN KEY (user_id, ticket_id) REFERENCES support_tickets (user_id, id) ON DELETE CASCADE
);
CREATE INDEX ticket_sla_checks_due_idx ON ticket_sla_checks (check_at) WHERE check_at IS NOT NULL;

-- 3. SLA events: a warning (at_risk) or a breach, once per ticket, target and kind. ---------------------------------
-- The unique key is what makes two sweeps (or two concurrent ones) record an event once. `due_at` is the target's
-- due time when it was recorded, `occurred_at` the instant the threshold was passed (the at-risk instant or the due
-- time), `recorded_at` the sweep's clock.
CREATE TABLE ticket_sla_events (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL,
    ticket_id   uuid NOT NULL,
    target      text NOT NULL CHECK (target IN ('first_response', 'resolution')),
    kind        text NOT NULL CHECK (kind IN ('at_risk', 'breached')),
    due_at      timestamptz NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, ticket_id, target, kind),
    FOREIGN KEY (user_id, ticket_id) REFERENCES support_tickets (user_id, id) ON DELETE CASCADE
);

-- 4. The dashboard's SLA compliance: running totals per tenant and priority, kept by the owner's trigger
-- (support_tickets_sla_totals) in the same transaction as the ticket's change, as ticket_totals are (sql/0007): a
-- target is `measured` once met or missed (the first public agent reply, the resolution) and `met` if that came by
-- its due time; the business seconds are the SLA clock's readings then. The dashboard reads at most four rows.
CREATE TABLE ticket_sla_totals (
    user_id                         uuid NOT NULL,
    priority                        text NOT NULL CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    first_response_measured         bigint NOT NULL DEFAULT 0,
    first_response_met              bigint NOT NULL DEFAULT 0,
    first_response_business_seconds bigint NOT NULL DEFAULT 0,
    resolution_measured             bigint NOT NULL DEFAULT 0,
    resolution_met                  bigint NOT NULL DEFAULT 0,
    resolution_business_seconds     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, priority)
);
ALTER TABLE public.ticket_sla_totals ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.ticket_sla_totals FROM PUBLIC;
GRANT SELECT ON public.ticket_sla_totals TO support_app;

-- The dashboard's figures gain the SLA compliance (a new column of its result): dropped here, defined again by
-- sql/definitions/dashboard.sql in the same run.
DROP FUNCTION IF EXISTS public.dashboard_figures(uuid, timestamptz);

-- 5. The daily rollup's SLA compliance (support.services.analytics, its SLA block): additive counts per priority and
-- target, in the day rows and their running totals (sql/0016) alike. A constant default: nothing is rewritten.
ALTER TABLE public.support_analytics
    ADD COLUMN sla_compliance jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(sla_compliance) = 'object');
ALTER TABLE public.support_analytics_cumulative
    ADD COLUMN sla_compliance jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(sla_compliance) = 'object');
GRANT INSERT (sla_compliance), UPDATE (sla_compliance) ON public.support_analytics TO support_analytics_job;
GRANT INSERT (sla_compliance), UPDATE (sla_compliance) ON public.support_analytics_cumulative TO support_analytics_job;

-- Row-level security: enabled here (closed until the policy exists), with its tenant_isolation policy by
-- sql/definitions/row_level_security.sql. Both are ENABLEd but not FORCEd there, so that the owner's trigger and
-- sla_sweep (sql/definitions/sla.sql) work across tenants; the runtime role reads its own tenant's events only and
-- has no privilege on the queue.
ALTER TABLE public.ticket_sla_checks ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.ticket_sla_events ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON public.ticket_sla_checks, public.ticket_sla_events FROM PUBLIC;
GRANT SELECT ON public.ticket_sla_events TO support_app;
-- The rollup's compliance figures (sql/definitions/analytics.sql): the due times beside the times already granted.
GRANT SELECT (priority, first_response_due_at, resolution_due_at, first_response_business_seconds,
              resolution_business_seconds) ON public.support_tickets
    TO support_analytics_job;
