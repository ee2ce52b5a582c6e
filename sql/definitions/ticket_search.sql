-- Ticket search that stays fast at a million tickets per tenant, under row-level security.
--
-- Why a side table: `tsvector @@ tsquery` is not LEAKPROOF, so PostgreSQL never uses a GIN index for it
-- on a table whose row-level security applies to the querying role (the policy's condition must run
-- first). On support_tickets (FORCE) that is every role but a superuser, and Aurora has none: a search for
-- a rare term (an email address, an order number) walked the tenant's whole history, about a second at
-- 1,000,000 tickets (bench/RESULTS.md).
--
-- So the search document lives in ticket_search_index, kept by a trigger, and is read only through
-- search_ticket_ids(), a SECURITY DEFINER function owned by the schema owner:
-- * the runtime role has no privilege at all on the side table; the function is the only way in;
-- * the function takes the tenant from the same transaction-local app.tenant_id the policies use, and so
--   fails closed without it;
-- * RLS is ENABLEd on the side table (with the usual policy) but not FORCEd, so that the owner's function
--   can use the GIN index; support_tickets and the other spec tables keep FORCE;
-- * the caller still selects the tickets from support_tickets under its own RLS, so an id from the
--   function can never bring back another tenant's row.
CREATE OR REPLACE FUNCTION public.ticket_search_document(subject text, description text, customer_name text, customer_email text)
RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- 'simple' keeps names and addresses unstemmed; the email also counts as its local part and its domain.
RETURN to_tsvector('simple', subject || ' ' || coalesce(description, '') || ' ' || customer_name || ' '
                             || customer_email || ' ' || replace(customer_email, '@', ' '));

CREATE OR REPLACE FUNCTION public.ticket_search_query(search text)
RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- Every word of the search text is a prefix match, all required. The text goes through the same parser as
-- the document, so its tokens (words, emails, host names) line up with the indexed ones.
RETURN (SELECT to_tsquery('simple', string_agg(quote_literal(lexeme) || ':*', ' & '))
        FROM unnest(to_tsvector('simple', search)));

CREATE OR REPLACE FUNCTION public.index_ticket_for_search() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    INSERT INTO public.ticket_search_index (ticket_id, user_id, created_at, search_vector)
    VALUES (NEW.id, NEW.user_id, NEW.created_at,
            public.ticket_search_document(NEW.subject, NEW.description, NEW.customer_name, NEW.customer_email))
    ON CONFLICT (ticket_id) DO UPDATE SET search_vector = EXCLUDED.search_vector;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER support_tickets_search_index
    AFTER INSERT OR UPDATE OF subject, description, customer_name, customer_email ON public.support_tickets
    FOR EACH ROW EXECUTE FUNCTION public.index_ticket_for_search();

CREATE OR REPLACE FUNCTION public.search_ticket_ids(
    search        text,
    max_rows      integer,
    after_at      timestamptz DEFAULT NULL,
    after_id      uuid DEFAULT NULL,
    want_status   text DEFAULT NULL,
    want_priority text DEFAULT NULL,
    want_agent    uuid DEFAULT NULL,
    want_category text DEFAULT NULL,
    want_channel  text DEFAULT NULL  -- sql/0025
) RETURNS TABLE (ticket_id uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    tenant  constant uuid := current_setting('app.tenant_id')::uuid;  -- fails closed, like the policies
    query   constant tsquery := public.ticket_search_query(search);
    window_rows constant integer := 5000;
    unfiltered constant boolean :=
        want_status IS NULL AND want_priority IS NULL AND want_agent IS NULL AND want_category IS NULL
        AND want_channel IS NULL;
    hits    integer;
    edge_at timestamptz;
    edge_id uuid;
BEGIN
    IF query IS NULL OR max_rows < 1 THEN
        RETURN;
    END IF;

    -- 1. The newest rows, along the index: a common term fills the page here, in bounded work.
    RETURN QUERY
        SELECT r.ticket_id
        FROM (SELECT i.ticket_id, i.created_at, i.search_vector
              FROM public.ticket_search_index i
              WHERE i.user_id = tenant
                AND (after_at IS NULL OR (i.created_at, i.ticket_id) < (after_at, after_id))
              ORDER BY i.created_at DESC, i.ticket_id DESC
              LIMIT window_rows) r
        WHERE r.search_vector @@ query
          AND (unfiltered OR EXISTS (
                SELECT FROM public.support_tickets t
                WHERE t.user_id = tenant AND t.id = r.ticket_id
                  AND (want_status IS NULL OR t.status = want_status)
                  AND (want_priority IS NULL OR t.priority = want_priority)
                  AND (want_agent IS NULL OR t.assigned_agent_id = want_agent)
                  AND (want_category IS NULL OR t.category = want_category)
                  AND (want_channel IS NULL OR t.channel = want_channel)))
        ORDER BY r.created_at DESC, r.ticket_id DESC
        LIMIT max_rows;
    GET DIAGNOSTICS hits = ROW_COUNT;
    IF hits >= max_rows THEN
        RETURN;
    END IF;

    SELECT i.created_at, i.ticket_id INTO edge_at, edge_id
    FROM public.ticket_search_index i
    WHERE i.user_id = tenant AND (after_at IS NULL OR (i.created_at, i.ticket_id) < (after_at, after_id))
    ORDER BY i.created_at DESC, i.ticket_id DESC
    OFFSET window_rows - 1 LIMIT 1;
    IF edge_at IS NULL THEN
        RETURN;
    END IF;

    -- 2. A rarer term: the older matches from the GIN index (OFFSET 0 keeps the planner from walking the
    --    list index instead).
    RETURN QUERY
        SELECT m.ticket_id
        FROM (SELECT i.ticket_id, i.created_at
              FROM public.ticket_search_index i
              WHERE i.search_vector @@ query
                AND i.user_id = tenant
                AND (i.created_at, i.ticket_id) < (edge_at, edge_id)
              OFFSET 0) m
        WHERE (unfiltered OR EXISTS (
              SELECT FROM public.support_tickets t
              WHERE t.user_id = tenant AND t.id = m.ticket_id
                AND (want_status IS NULL OR t.status = want_status)
                AND (want_priority IS NULL OR t.priority = want_priority)
                AND (want_agent IS NULL OR t.assigned_agent_id = want_agent)
                AND (want_category IS NULL OR t.category = want_category)
                AND (want_channel IS NULL OR t.channel = want_channel)))
        ORDER BY m.created_at DESC, m.ticket_id DESC
        LIMIT max_rows - hits;
END
$$;
GRANT EXECUTE ON FUNCTION public.search_ticket_ids(text, integer, timestamptz, uuid, text, text, uuid, text, text)
    TO support_app;
