-- Upkeep's indexes, per tenant (a review of sql/0044). The sweep's `uploads` and `webhook_log` steps work tenant by
-- tenant: each tenant's batch (attachments.delete_unclaimed, webhook_prune_deliveries) reads that tenant's oldest
-- due rows, and the listers (attachments_tenants_unclaimed, webhook_log_tenants_due) walk the distinct tenants of
-- these indexes and look at each one's oldest row. 0044's indexes were keyed on time alone, so a tenant's batch
-- scanned through every other tenant's older rows. Same partial predicates, keyed (tenant, time).
DROP INDEX public.attachments_pending_idx;
CREATE INDEX attachments_pending_tenant_idx ON public.attachments (user_id, created_at) WHERE state = 'pending';

DROP INDEX public.webhook_deliveries_finished_idx;
CREATE INDEX webhook_deliveries_finished_tenant_idx ON public.webhook_deliveries (user_id, completed_at)
    WHERE state IN ('delivered', 'failed');
