-- Email in's database side (history: sql/0028; support.services.email_in).

-- The tenant that receives at one of `addresses` (the envelope recipients SES matched, then the addresses a
-- forwarder or the headers name), the first in the order given that is anyone's, and which address it was. The
-- email function knows only the addresses, not the tenant, so it cannot set app.tenant_id first:
-- email_inbound_addresses has row-level security ENABLEd but not FORCEd, so that this owner's function can look
-- an address up across tenants. It answers only for the exact addresses asked, at most one row.
CREATE OR REPLACE FUNCTION public.email_inbound_tenant(addresses text[])
RETURNS TABLE (user_id uuid, address text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT a.user_id, a.address
    FROM unnest(addresses) WITH ORDINALITY AS asked (address, position)
    JOIN public.email_inbound_addresses a ON a.address = lower(asked.address)
    ORDER BY asked.position
    LIMIT 1
$$;
REVOKE ALL ON FUNCTION public.email_inbound_tenant(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.email_inbound_tenant(text[]) TO support_app;
