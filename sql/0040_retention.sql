-- Retention (issue 19): a tenant's policy (tenant_settings, area 'retention') deletes or archives its closed tickets
-- and ended chats after N days; the workflow sweep's `retention` step (support.services.retention) writes them to S3
-- and then deletes them through retention_delete_tickets / retention_delete_chats (sql/definitions/retention.sql,
-- SECURITY DEFINER, the owner's: the runtime role still has no DELETE on tickets or chats). docs/ARCHITECTURE.md,
-- "Retention and archives", says why.
--
-- The figures count history, not rows present: a row the retention job deletes keeps its place in the running
-- totals, the day totals, the SLA totals and the agents' figures (the DELETE triggers skip it), and leaves a
-- tombstone of the few columns those figures are made of (no texts, names or emails), so that the recount
-- (recount_tenant_figures, recount_tenant_day_totals) still agrees with what is stored.

-- The transactions in which the retention job deletes: the figure triggers skip a DELETE of a transaction listed here.
-- Only the owner's functions write it (no role has any privilege on it), so no runtime role can ask the triggers to
-- skip its deletes; the row is removed before the function returns (and never outlives its transaction).
CREATE TABLE public.retention_deleting (
    xact xid8 PRIMARY KEY
);
REVOKE ALL ON public.retention_deleting FROM PUBLIC;

-- What the figures still count of each ticket the retention job deleted (with its feedback's figures).
CREATE TABLE public.retention_ticket_tombstones (
    user_id               uuid NOT NULL,
    id                    uuid NOT NULL,
    status                text NOT NULL,
    priority              text NOT NULL,
    category              text,
    channel               text NOT NULL,
    created_at            timestamptz NOT NULL,
    resolved_at           timestamptz,
    assigned_agent_id     uuid,
    resolution_time       integer,
    first_response_time   integer,
    feedback_created_at   timestamptz,
    feedback_rating       smallint,
    feedback_agent_rating smallint,
    archived_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, id)
);
CREATE INDEX retention_ticket_tombstones_agent_idx ON public.retention_ticket_tombstones (user_id, assigned_agent_id)
    WHERE assigned_agent_id IS NOT NULL;

-- And of each chat session.
CREATE TABLE public.retention_chat_tombstones (
    user_id           uuid NOT NULL,
    id                uuid NOT NULL,
    status            text NOT NULL,
    duration          integer,
    assigned_agent_id uuid,
    archived_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, id)
);

-- Row-level security: enabled here, forced with its tenant_isolation policy by sql/definitions/row_level_security.sql.
-- No runtime role has any privilege on the tombstones: the owner's functions write them, the recount reads them.
ALTER TABLE public.retention_ticket_tombstones ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.retention_chat_tombstones ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.retention_ticket_tombstones, public.retention_chat_tombstones FROM PUBLIC;

-- The step's one look across tenants (retention_tenants_due, owned by the lister): which tenants have a retention
-- policy (a policy of its own on tenant_settings, sql/definitions/row_level_security.sql; the function filters the area).
GRANT SELECT (user_id, area, settings) ON public.tenant_settings TO support_analytics_lister;

-- A deleted ticket's inbound mail records go with it (ON DELETE CASCADE): without an index on the reference, each
-- deleted ticket would scan the table once. (The other references to tickets and chats have theirs already.)
CREATE INDEX inbound_emails_ticket_idx ON public.inbound_emails (user_id, ticket_id) WHERE ticket_id IS NOT NULL;
