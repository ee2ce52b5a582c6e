-- An admin edits a live widget key's allowed origins (PATCH /api/support/widgets/{widgetKey}): a shop that moves
-- to another address, or a developer's demo shop on another port, keeps its key. The runtime role may update
-- that one column besides revoked_at (sql/privileges.toml); the key, its tenant and its name stay as created.
GRANT UPDATE (allowed_origins) ON public.widget_keys TO support_app;
