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

CREATE FUNCTION ticket_search_document(subject text, description text, customer_name text, customer_email text)
RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- 'simple' keeps names and addresses unstemmed; the email also counts as its local part and its domain.
RETURN to_tsvector('simple', subject || ' ' || coalesce(description, '') || ' ' || customer_name || ' '
                             || customer_email || ' ' || replace(customer_email, '@', ' '));

CREATE FUNCTION ticket_search_query(search text)
RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- Every word of the search text is a prefix match, all required. The text goes through the same parser as
-- the document, so its tokens (words, emails, host names) line up with the indexed ones.
RETURN (SELECT to_tsquery('simple', string_agg(quote_literal(lexeme) || ':*', ' & '))
        FROM unnest(to_tsvector('simple', search)));

CREATE TABLE ticket_search_index (
    ticket_id     uuid PRIMARY KEY,
    user_id       uuid NOT NULL,
    created_at    timestamptz NOT NULL,
    search_vector tsvector NOT NULL,
    FOREIGN KEY (user_id, ticket_id) REFERENCES support_tickets (user_id, id) ON DELETE CASCADE
);
ALTER TABLE ticket_search_index ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ticket_search_index
    USING (user_id = current_setting('app.tenant_id')::uuid)
    WITH CHECK (user_id = current_setting('app.tenant_id')::uuid);
REVOKE ALL ON ticket_search_index FROM PUBLIC;

CREATE FUNCTION index_ticket_for_search() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
BEGIN
    INSERT INTO ticket_search_index (ticket_id, user_id, created_at, search_vector)
    VALUES (NEW.id, NEW.user_id, NEW.created_at,
            ticket_search_document(NEW.subject, NEW.description, NEW.customer_name, NEW.customer_email))
    ON CONFLICT (ticket_id) DO UPDATE SET search_vector = EXCLUDED.search_vector;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION index_ticket_for_search() FROM PUBLIC;

CREATE TRIGGER support_tickets_search_index
    AFTER INSERT OR UPDATE OF subject, description, customer_name, customer_email ON support_tickets
    FOR EACH ROW EXECUTE FUNCTION index_ticket_for_search();

-- Backfill. The owner is subject to FORCEd RLS, which would hide every row here: lift it for this
-- transaction only (ALTER TABLE holds an exclusive lock until commit, so nobody else sees the gap).
ALTER TABLE support_tickets NO FORCE ROW LEVEL SECURITY;
INSERT INTO ticket_search_index (ticket_id, user_id, created_at, search_vector)
SELECT id, user_id, created_at, ticket_search_document(subject, description, customer_name, customer_email)
FROM support_tickets;
ALTER TABLE support_tickets FORCE ROW LEVEL SECURITY;

-- Indexes after the backfill: built in one pass. fastupdate off: with GIN's pending list, every search
-- would also scan up to 4 MB of not-yet-merged entries (about 120 ms measured after a large insert),
-- while writing each ticket's few dozen terms straight into the index costs a create well under 1 ms.
CREATE INDEX ticket_search_index_recent_idx ON ticket_search_index (user_id, created_at DESC, ticket_id DESC);
CREATE INDEX ticket_search_index_terms_idx ON ticket_search_index USING gin (search_vector)
    WITH (fastupdate = off);

ALTER TABLE support_tickets DROP COLUMN search_vector;  -- and its GIN index, which RLS kept unused

-- The ids of the caller's tenant's tickets matching `search` (and the other list filters), newest first,
-- after the keyset cursor (after_at, after_id), at most max_rows.
CREATE FUNCTION search_ticket_ids(
    search        text,
    max_rows      integer,
    after_at      timestamptz DEFAULT NULL,
    after_id      uuid DEFAULT NULL,
    want_status   text DEFAULT NULL,
    want_priority text DEFAULT NULL,
    want_agent    uuid DEFAULT NULL,
    want_category text DEFAULT NULL
) RETURNS TABLE (ticket_id uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
-- Plan each query with its real values: plpgsql's generic plan would walk the whole history again.
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    tenant  constant uuid := current_setting('app.tenant_id')::uuid;  -- fails closed, like the policies
    query   constant tsquery := ticket_search_query(search);
    window_rows constant integer := 5000;
    -- Constant per call, so each plan drops the tickets lookup when no list filter is given.
    unfiltered constant boolean :=
        want_status IS NULL AND want_priority IS NULL AND want_agent IS NULL AND want_category IS NULL;
    hits    integer;
    edge_at timestamptz;
    edge_id uuid;
BEGIN
    IF query IS NULL OR max_rows < 1 THEN
        RETURN;  -- nothing searchable in the text (only punctuation, say): no match
    END IF;

    -- 1. The newest rows, along the index: a common term fills the page here, in bounded work.
    RETURN QUERY
        SELECT r.ticket_id
        FROM (SELECT i.ticket_id, i.created_at, i.search_vector
              FROM ticket_search_index i
              WHERE i.user_id = tenant
                AND (after_at IS NULL OR (i.created_at, i.ticket_id) < (after_at, after_id))
              ORDER BY i.created_at DESC, i.ticket_id DESC
              LIMIT window_rows) r
        WHERE r.search_vector @@ query
          AND (unfiltered OR EXISTS (
                SELECT FROM support_tickets t
                WHERE t.user_id = tenant AND t.id = r.ticket_id
                  AND (want_status IS NULL OR t.status = want_status)
                  AND (want_priority IS NULL OR t.priority = want_priority)
                  AND (want_agent IS NULL OR t.assigned_agent_id = want_agent)
                  AND (want_category IS NULL OR t.category = want_category)))
        ORDER BY r.created_at DESC, r.ticket_id DESC
        LIMIT max_rows;
    GET DIAGNOSTICS hits = ROW_COUNT;
    IF hits >= max_rows THEN
        RETURN;
    END IF;

    SELECT i.created_at, i.ticket_id INTO edge_at, edge_id
    FROM ticket_search_index i
    WHERE i.user_id = tenant AND (after_at IS NULL OR (i.created_at, i.ticket_id) < (after_at, after_id))
    ORDER BY i.created_at DESC, i.ticket_id DESC
    OFFSET window_rows - 1 LIMIT 1;
    IF edge_at IS NULL THEN
        RETURN;  -- the window held every remaining row
    END IF;

    -- 2. A rarer term: the older matches from the GIN index. OFFSET 0 keeps the planner from turning
    --    this back into a walk along the list index.
    RETURN QUERY
        SELECT m.ticket_id
        FROM (SELECT i.ticket_id, i.created_at
              FROM ticket_search_index i
              WHERE i.search_vector @@ query
                AND i.user_id = tenant
                AND (i.created_at, i.ticket_id) < (edge_at, edge_id)
              OFFSET 0) m
        WHERE (unfiltered OR EXISTS (
              SELECT FROM support_tickets t
              WHERE t.user_id = tenant AND t.id = m.ticket_id
                AND (want_status IS NULL OR t.status = want_status)
                AND (want_priority IS NULL OR t.priority = want_priority)
                AND (want_agent IS NULL OR t.assigned_agent_id = want_agent)
                AND (want_category IS NULL OR t.category = want_category)))
        ORDER BY m.created_at DESC, m.ticket_id DESC
        LIMIT max_rows - hits;
END
$$;
REVOKE ALL ON FUNCTION search_ticket_ids(text, integer, timestamptz, uuid, text, text, uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION search_ticket_ids(text, integer, timestamptz, uuid, text, text, uuid, text) TO support_app;
