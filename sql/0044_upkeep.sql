-- Upkeep (issues 19 and 20): what the desk kept forever without a reason. Follows 0010's rules: exactly the grants
-- the code uses (sql/privileges.toml). The functions live in sql/definitions/attachments.sql and webhooks.sql.
--
-- 1. Unclaimed uploads. An upload URL writes a `pending` attachments row (sql/0041); the bucket's lifecycle expires
-- the object a day later (template.yaml, ExpireUnclaimedUploads), but the row stayed. The workflow sweep's `uploads`
-- step deletes the pending rows past that day and a margin (support.services.attachments.sweep_unclaimed), per
-- tenant in bounded batches: its lister (attachments_tenants_unclaimed, owned by support_analytics_lister) finds the
-- tenants from the oldest pending rows, which this index serves (and the per-tenant batch, filtered by tenant), and
-- sees only these columns of every tenant's rows (its policy: sql/definitions/row_level_security.sql).
CREATE INDEX attachments_pending_idx ON public.attachments (created_at) WHERE state = 'pending';
GRANT SELECT (user_id, state, created_at) ON public.attachments TO support_analytics_lister;

-- 2. The webhook delivery log. A delivered or failed delivery stayed forever; the sweep's `webhook_log` step deletes
-- those finished more than 30 days ago (support.services.webhooks.prune_log, webhook_prune_deliveries), per tenant in
-- bounded batches, oldest first, through this index. Pending and queued rows are never in it.
CREATE INDEX webhook_deliveries_finished_idx ON public.webhook_deliveries (completed_at)
    WHERE state IN ('delivered', 'failed');
