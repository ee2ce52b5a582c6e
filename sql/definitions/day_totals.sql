-- Running totals per tenant and UTC day (history: sql/0021): ticket_day_totals (tickets created per day) and
-- feedback_day_totals (ratings given per day: their count and sum), the dashboard's week in seven rows whatever a
-- tenant's volume. Kept by statement-level triggers exactly as the running totals of running_totals.sql are (as
-- the owner, one upsert per statement, groups at zero deleted, applied in key order). The day of a row is the UTC
-- date of its created_at, as the rollup's (services/analytics.py).
--
-- Writes: a ticket's create also upserts its tenant's row of the day, so a tenant's concurrent creates queue on
-- that row from their trigger to their commit (one round trip), as creates of one priority and category already
-- queue on their ticket_totals group. Tickets and feedback have tables of their own, so a transaction that adds
-- both never holds one row while waiting for another of the same table in the opposite order.

-- A row's contribution is a row of the totals table itself (sign 1 adds, -1 takes away), as in sql/0010.
CREATE OR REPLACE FUNCTION public.ticket_day_contribution(sign integer, t public.support_tickets)
RETURNS public.ticket_day_totals
LANGUAGE sql IMMUTABLE
RETURN ROW(t.user_id, (t.created_at AT TIME ZONE 'UTC')::date, sign)::public.ticket_day_totals;

CREATE OR REPLACE FUNCTION public.feedback_day_contribution(sign integer, f public.ticket_feedback)
RETURNS public.feedback_day_totals
LANGUAGE sql IMMUTABLE
RETURN ROW(f.user_id, (f.created_at AT TIME ZONE 'UTC')::date, sign, sign * f.rating)::public.feedback_day_totals;

CREATE OR REPLACE FUNCTION public.add_to_ticket_day_totals(deltas public.ticket_day_totals[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    INSERT INTO public.ticket_day_totals AS t (user_id, day, tickets)
    SELECT d.user_id, d.day, sum(d.tickets)
    FROM unnest(deltas) d
    GROUP BY d.user_id, d.day
    HAVING sum(d.tickets) <> 0
    ORDER BY d.user_id, d.day
    ON CONFLICT (user_id, day) DO UPDATE SET tickets = t.tickets + excluded.tickets;
    DELETE FROM public.ticket_day_totals t
    USING (SELECT DISTINCT d.user_id, d.day FROM unnest(deltas) d) g
    WHERE t.user_id = g.user_id AND t.day = g.day AND t.tickets = 0;
END
$$;

CREATE OR REPLACE FUNCTION public.add_to_feedback_day_totals(deltas public.feedback_day_totals[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    INSERT INTO public.feedback_day_totals AS t (user_id, day, ratings, rating_sum)
    SELECT d.user_id, d.day, sum(d.ratings), sum(d.rating_sum)
    FROM unnest(deltas) d
    GROUP BY d.user_id, d.day
    HAVING (sum(d.ratings), sum(d.rating_sum)) <> (0, 0)
    ORDER BY d.user_id, d.day
    ON CONFLICT (user_id, day) DO UPDATE SET
        ratings = t.ratings + excluded.ratings,
        rating_sum = t.rating_sum + excluded.rating_sum;
    DELETE FROM public.feedback_day_totals t
    USING (SELECT DISTINCT d.user_id, d.day FROM unnest(deltas) d) g
    WHERE t.user_id = g.user_id AND t.day = g.day AND (t.ratings, t.rating_sum) = (0, 0);
END
$$;

CREATE OR REPLACE FUNCTION public.add_ticket_day_totals() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND public.retention_deleting_now() THEN
        RETURN NULL;  -- the retention job's delete: the figures keep counting history (sql/definitions/retention.sql)
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM public.add_to_ticket_day_totals(ARRAY(
            SELECT public.ticket_day_contribution(1, n) FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM public.add_to_ticket_day_totals(ARRAY(
            SELECT public.ticket_day_contribution(-1, o) FROM old_rows o));
    ELSE
        -- Only a ticket whose day changed (an owner's correction of created_at) moves; a status change locks nothing.
        PERFORM public.add_to_ticket_day_totals(ARRAY(
            SELECT c
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            CROSS JOIN LATERAL (VALUES (public.ticket_day_contribution(-1, o)),
                                       (public.ticket_day_contribution(1, n))) AS v(c)
            WHERE public.ticket_day_contribution(1, n) IS DISTINCT FROM public.ticket_day_contribution(1, o)));
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION public.add_feedback_day_totals() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND public.retention_deleting_now() THEN
        RETURN NULL;  -- the retention job's delete: the figures keep counting history (sql/definitions/retention.sql)
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM public.add_to_feedback_day_totals(ARRAY(
            SELECT public.feedback_day_contribution(1, n) FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM public.add_to_feedback_day_totals(ARRAY(
            SELECT public.feedback_day_contribution(-1, o) FROM old_rows o));
    ELSE
        PERFORM public.add_to_feedback_day_totals(ARRAY(
            SELECT c
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            CROSS JOIN LATERAL (VALUES (public.feedback_day_contribution(-1, o)),
                                       (public.feedback_day_contribution(1, n))) AS v(c)
            WHERE public.feedback_day_contribution(1, n) IS DISTINCT FROM public.feedback_day_contribution(1, o)));
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER support_tickets_day_totals_insert AFTER INSERT ON public.support_tickets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_ticket_day_totals();
CREATE OR REPLACE TRIGGER support_tickets_day_totals_update AFTER UPDATE ON public.support_tickets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.add_ticket_day_totals();
CREATE OR REPLACE TRIGGER support_tickets_day_totals_delete AFTER DELETE ON public.support_tickets
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_ticket_day_totals();

CREATE OR REPLACE TRIGGER ticket_feedback_day_totals_insert AFTER INSERT ON public.ticket_feedback
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_feedback_day_totals();
CREATE OR REPLACE TRIGGER ticket_feedback_day_totals_update AFTER UPDATE ON public.ticket_feedback
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.add_feedback_day_totals();
CREATE OR REPLACE TRIGGER ticket_feedback_day_totals_delete AFTER DELETE ON public.ticket_feedback
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_feedback_day_totals();

-- The recount of the day totals, as recount_tenant_figures (sql/0010) recounts the other running totals: the same
-- rows out (figure, key, stored, recounted), a report in any snapshot, a repair in READ COMMITTED after locking the
-- day totals against writers. `make verify-totals` runs it first in the transaction of recount_tenant_figures: the
-- day totals' triggers fire before the totals' (trigger name order), so the repair locks in the writers' order.
CREATE OR REPLACE FUNCTION public.recount_tenant_day_totals(tenant uuid, repair boolean DEFAULT false)
RETURNS TABLE (figure text, key text, stored text, recounted text)
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF repair AND current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'recount_tenant_day_totals: repair runs in a READ COMMITTED transaction'
            USING HINT = 'it locks the totals first and must then see every committed change';
    END IF;
    PERFORM set_config('app.tenant_id', tenant::text, true);
    IF repair THEN
        LOCK TABLE public.ticket_day_totals, public.feedback_day_totals IN EXCLUSIVE MODE;
    END IF;

    RETURN QUERY
    WITH counted AS (
        SELECT (t.created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS tickets
        FROM (SELECT t.created_at FROM public.support_tickets t WHERE t.user_id = tenant
              UNION ALL  -- the tickets the retention job deleted still count (sql/definitions/retention.sql)
              SELECT r.created_at FROM public.retention_ticket_tombstones r WHERE r.user_id = tenant) t GROUP BY 1
    ), kept AS (
        SELECT d.day, d.tickets FROM public.ticket_day_totals d WHERE d.user_id = tenant
    )
    SELECT 'ticket_day_totals', coalesce(k.day, c.day)::text, k.tickets::text, c.tickets::text
    FROM kept k FULL JOIN counted c ON c.day = k.day
    WHERE k.tickets IS DISTINCT FROM c.tickets;

    RETURN QUERY
    WITH counted AS (
        SELECT (f.created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS ratings, sum(f.rating) AS rating_sum
        FROM (SELECT f.created_at, f.rating FROM public.ticket_feedback f WHERE f.user_id = tenant
              UNION ALL
              SELECT r.feedback_created_at, r.feedback_rating FROM public.retention_ticket_tombstones r
              WHERE r.user_id = tenant AND r.feedback_rating IS NOT NULL) f GROUP BY 1
    ), kept AS (
        SELECT d.day, d.ratings, d.rating_sum FROM public.feedback_day_totals d WHERE d.user_id = tenant
    )
    SELECT 'feedback_day_totals', coalesce(k.day, c.day)::text,
           CASE WHEN k.day IS NOT NULL THEN ROW(k.ratings, k.rating_sum)::text END,
           CASE WHEN c.day IS NOT NULL THEN ROW(c.ratings, c.rating_sum)::text END
    FROM kept k FULL JOIN counted c ON c.day = k.day
    WHERE (k.ratings, k.rating_sum) IS DISTINCT FROM (c.ratings, c.rating_sum);

    IF NOT repair THEN
        RETURN;
    END IF;
    DELETE FROM public.ticket_day_totals d WHERE d.user_id = tenant;
    INSERT INTO public.ticket_day_totals (user_id, day, tickets)
    SELECT tenant, (t.created_at AT TIME ZONE 'UTC')::date, count(*)
    FROM (SELECT t.created_at FROM public.support_tickets t WHERE t.user_id = tenant
          UNION ALL  -- the tickets the retention job deleted still count (sql/definitions/retention.sql)
          SELECT r.created_at FROM public.retention_ticket_tombstones r WHERE r.user_id = tenant) t GROUP BY 2;
    DELETE FROM public.feedback_day_totals d WHERE d.user_id = tenant;
    INSERT INTO public.feedback_day_totals (user_id, day, ratings, rating_sum)
    SELECT tenant, (f.created_at AT TIME ZONE 'UTC')::date, count(*), sum(f.rating)
    FROM (SELECT f.created_at, f.rating FROM public.ticket_feedback f WHERE f.user_id = tenant
          UNION ALL
          SELECT r.feedback_created_at, r.feedback_rating FROM public.retention_ticket_tombstones r
          WHERE r.user_id = tenant AND r.feedback_rating IS NOT NULL) f GROUP BY 2;
END
$$;
