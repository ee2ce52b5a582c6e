-- The public widget route's key lookup (history: sql/0011). The route knows only the key, not the tenant, so
-- it cannot set app.tenant_id first: widget_keys has row-level security ENABLEd but not FORCEd, so that this
-- owner's function can look one key up. It answers only for the exact key asked (a caller learns nothing it
-- did not already hold), and only what the route needs.
CREATE OR REPLACE FUNCTION public.widget_key_for_visitors(key text)
RETURNS TABLE (user_id uuid, allowed_origins text[], revoked boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT w.user_id, w.allowed_origins, w.revoked_at IS NOT NULL
    FROM public.widget_keys w
    WHERE w.widget_key = key;
END
$$;
GRANT EXECUTE ON FUNCTION public.widget_key_for_visitors(text) TO support_app;
