-- Ticket references (history: sql/0025): #1001, #1002, ... per tenant, assigned on insert, never reused.
--
-- Assignment. A BEFORE INSERT trigger numbers each ticket that comes without a reference (every insert but an
-- owner's bulk load that brings its own): it locks the tenant's counter row (ticket_reference_counters) and gives
-- one more than the higher of the counter and the last reference this transaction gave the tenant (kept in a
-- transaction-local setting, support.last_reference_<tenant>). An AFTER INSERT statement trigger then moves the
-- counter to the statement's highest reference, once per statement.
--
-- Why that shape and not `UPDATE counter SET last = last + 1` per row: a bulk insert of n tickets in one
-- statement (a data load, the benchmarks' million) would write n versions of one row in one transaction, and each
-- update walks the chain of the versions before it (quadratic). Locking a row the transaction already holds
-- writes nothing, and the setting is memory. (Reading the highest reference back from the unique index was tried
-- too, and was quadratic as well: 8,000 rows in one statement took 13 s, against 2 s now.) The setting is local
-- to the transaction and rolls back with it or with a savepoint, as the rows it numbered do.
--
-- Concurrency. The counter row's lock is held from the insert to the commit, so a tenant's creates are numbered
-- one at a time: two creates can never take the same number, and the numbers ascend in commit order. That
-- serialises nothing that was not serialised already: every create also upserts its tenant's row of the day in
-- ticket_day_totals (sql/definitions/day_totals.sql) from its insert to its commit, so a tenant's concurrent
-- creates queue there today; the counter row is taken just before, for the same span. Other tenants never wait.
-- A rolled-back create leaves no gap (the counter moved inside its transaction and rolls back with it); a deleted
-- ticket's number is never given again (the counter never goes down).
CREATE OR REPLACE FUNCTION public.assign_ticket_reference() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_setting constant text := 'support.last_reference_' || replace(NEW.user_id::text, '-', '');
    v_last    bigint;
    v_given   bigint;
BEGIN
    SELECT c.last_reference INTO v_last
    FROM public.ticket_reference_counters c WHERE c.user_id = NEW.user_id FOR UPDATE;
    IF NOT FOUND THEN
        -- A tenant's first ticket: its counter row, starting before #1001.
        INSERT INTO public.ticket_reference_counters (user_id, last_reference) VALUES (NEW.user_id, 1000)
        ON CONFLICT (user_id) DO NOTHING;
        SELECT c.last_reference INTO v_last
        FROM public.ticket_reference_counters c WHERE c.user_id = NEW.user_id FOR UPDATE;
    END IF;
    v_given := nullif(current_setting(v_setting, true), '')::bigint;
    NEW.reference := greatest(v_last, coalesce(v_given, 0)) + 1;
    PERFORM set_config(v_setting, NEW.reference::text, true);
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION public.advance_ticket_reference_counters() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    -- Also for a bulk load that brought its own references: the counter ends above every reference in use.
    INSERT INTO public.ticket_reference_counters AS c (user_id, last_reference)
    SELECT n.user_id, greatest(1000, max(n.reference)) FROM new_rows n WHERE n.reference IS NOT NULL
    GROUP BY n.user_id ORDER BY n.user_id
    ON CONFLICT (user_id) DO UPDATE SET last_reference = excluded.last_reference
    WHERE c.last_reference < excluded.last_reference;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER support_tickets_reference BEFORE INSERT ON public.support_tickets
    FOR EACH ROW WHEN (NEW.reference IS NULL) EXECUTE FUNCTION public.assign_ticket_reference();

CREATE OR REPLACE TRIGGER support_tickets_reference_counters AFTER INSERT ON public.support_tickets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.advance_ticket_reference_counters();

-- The backfill of the tickets created before sql/0025: one batch of at most batch_size tickets of one tenant, in
-- the order they were created, numbered from the range the migration reserved for them (1001 .. 1000 + their
-- count), so a ticket created meanwhile (above the range) never meets one of them. Returns how many tickets it
-- numbered, 0 when nothing is left (and -1 when a tenant's walk ended without numbering any: call again).
-- support.db.references calls it in a loop, each call its own transaction, as the owner.
--
-- Cheap per ticket: the UPDATE sets only `reference`. The running totals, day totals and agent figures compare
-- each row's contribution before and after and find nothing to move (no row of theirs is written or locked), the
-- search index's trigger fires only for the searched columns, and updated_at keeps its value (its trigger skips
-- an update that sets the reference: numbering a ticket is not an edit of it).
CREATE OR REPLACE FUNCTION public.backfill_ticket_references(batch_size integer) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    b          public.ticket_reference_backfill;
    v_numbered integer;
    v_seen     integer;
    v_last_at  timestamptz;
    v_last_id  uuid;
BEGIN
    -- One tenant at a time; a second runner takes another tenant or finds nothing (SKIP LOCKED).
    SELECT * INTO b FROM public.ticket_reference_backfill ORDER BY user_id LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    PERFORM set_config('app.tenant_id', b.user_id::text, true);

    -- The next batch along the list index (user_id, created_at DESC, id DESC), read backwards from the cursor;
    -- a ticket that has a reference already (created since) is passed over, not numbered.
    WITH batch AS (
        SELECT s.id, s.created_at,
               CASE WHEN s.reference IS NULL
                    THEN b.next_reference - 1 + count(*) FILTER (WHERE s.reference IS NULL)
                                                    OVER (ORDER BY s.created_at, s.id) END AS reference
        FROM (SELECT t.id, t.created_at, t.reference FROM public.support_tickets t
              WHERE t.user_id = b.user_id
                AND (b.after_created_at IS NULL OR (t.created_at, t.id) > (b.after_created_at, b.after_id))
              ORDER BY t.created_at, t.id LIMIT batch_size) s
    ), numbered AS (
        UPDATE public.support_tickets t SET reference = r.reference
        FROM batch r
        WHERE t.user_id = b.user_id AND t.id = r.id AND r.reference IS NOT NULL AND t.reference IS NULL
        RETURNING t.id
    )
    SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM numbered),
           l.created_at, l.id
    INTO v_seen, v_numbered, v_last_at, v_last_id
    FROM (SELECT 1) one
    LEFT JOIN LATERAL (SELECT r.created_at, r.id FROM batch r ORDER BY r.created_at DESC, r.id DESC LIMIT 1) l
        ON true;

    IF b.next_reference - 1 + v_numbered > b.ceiling THEN
        RAISE EXCEPTION 'backfill_ticket_references: tenant % ran past its reserved range', b.user_id;
    END IF;
    IF v_seen < batch_size OR b.next_reference + v_numbered > b.ceiling THEN
        DELETE FROM public.ticket_reference_backfill WHERE user_id = b.user_id;  -- this tenant is done
    ELSE
        UPDATE public.ticket_reference_backfill
        SET next_reference = b.next_reference + v_numbered, after_created_at = v_last_at, after_id = v_last_id
        WHERE user_id = b.user_id;
    END IF;
    RETURN CASE WHEN v_numbered = 0 THEN -1 ELSE v_numbered END;
END
$$;
REVOKE ALL ON FUNCTION public.backfill_ticket_references(integer) FROM PUBLIC;

-- The web form's honeypot (support.services.widgets.submit_web_form): a bot that fills in the hidden field is
-- answered exactly as a person is, with a reference, and stores nothing. That reference must never be another
-- ticket's, so it is a real one: the tenant's next number, taken without a ticket (a gap in the tenant's numbering,
-- as a deleted ticket leaves). Only for the tenant the transaction is bound to (app.tenant_id: fails closed
-- without one), with the counter row's lock as a create takes it, so a create waits for it or it for the create.
CREATE OR REPLACE FUNCTION public.skip_ticket_reference() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_tenant constant uuid := current_setting('app.tenant_id')::uuid;
    v_skipped bigint;
BEGIN
    INSERT INTO public.ticket_reference_counters AS c (user_id, last_reference) VALUES (v_tenant, 1001)
    ON CONFLICT (user_id) DO UPDATE SET last_reference = c.last_reference + 1
    RETURNING c.last_reference INTO v_skipped;
    RETURN v_skipped;
END
$$;
REVOKE ALL ON FUNCTION public.skip_ticket_reference() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.skip_ticket_reference() TO support_app;
