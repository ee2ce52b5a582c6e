-- Running totals of the dashboard (ticket_totals, chat_totals, feedback_totals; history: sql/0007, 0008, 0010;
-- a ticket's group is (status, priority, category, channel) since sql/0025):
-- one upsert per totals table, zero rows deleted, and the triggers run as the owner so that the runtime role
-- needs no write access to the totals.
--
-- A row's contribution is a row of the totals table itself (sign 1 adds, -1 takes away). Each trigger
-- turns what its statement changed into contributions; the upsert sums them per group, applies them in key
-- order (so two statements moving rows in opposite directions lock the same rows in the same order), and
-- deletes the groups that fall to zero, so a category nobody uses any more leaves the dashboard.
CREATE OR REPLACE FUNCTION public.ticket_totals_contribution(sign integer, t public.support_tickets)
RETURNS public.ticket_totals
LANGUAGE sql IMMUTABLE
RETURN ROW(t.user_id, t.status, t.priority, t.category, sign,
           sign * coalesce(t.resolution_time, 0), sign * (t.resolution_time IS NOT NULL)::integer,
           sign * coalesce(t.first_response_time, 0), sign * (t.first_response_time IS NOT NULL)::integer,
           t.channel
          )::public.ticket_totals;

CREATE OR REPLACE FUNCTION public.add_to_ticket_totals(deltas public.ticket_totals[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    INSERT INTO public.ticket_totals AS t (user_id, status, priority, category, channel, tickets,
                                           resolution_seconds, resolution_count, first_response_seconds,
                                           first_response_count)
    SELECT d.user_id, d.status, d.priority, d.category, d.channel, sum(d.tickets), sum(d.resolution_seconds),
           sum(d.resolution_count), sum(d.first_response_seconds), sum(d.first_response_count)
    FROM unnest(deltas) d
    GROUP BY d.user_id, d.status, d.priority, d.category, d.channel
    HAVING (sum(d.tickets), sum(d.resolution_seconds), sum(d.resolution_count), sum(d.first_response_seconds),
            sum(d.first_response_count)) <> (0, 0, 0, 0, 0)
    ORDER BY d.user_id, d.status, d.priority, d.category, d.channel
    ON CONFLICT (user_id, status, priority, category, channel) DO UPDATE SET
        tickets = t.tickets + excluded.tickets,
        resolution_seconds = t.resolution_seconds + excluded.resolution_seconds,
        resolution_count = t.resolution_count + excluded.resolution_count,
        first_response_seconds = t.first_response_seconds + excluded.first_response_seconds,
        first_response_count = t.first_response_count + excluded.first_response_count;
    DELETE FROM public.ticket_totals t
    USING (SELECT DISTINCT d.user_id, d.status, d.priority, d.category, d.channel FROM unnest(deltas) d) g
    WHERE t.user_id = g.user_id AND t.status = g.status AND t.priority = g.priority
      AND t.category IS NOT DISTINCT FROM g.category AND t.channel = g.channel
      AND (t.tickets, t.resolution_seconds, t.resolution_count, t.first_response_seconds, t.first_response_count)
          = (0, 0, 0, 0, 0);
END
$$;

CREATE OR REPLACE FUNCTION public.add_ticket_totals() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND public.retention_deleting_now() THEN
        RETURN NULL;  -- the retention job's delete: the figures keep counting history (sql/definitions/retention.sql)
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM public.add_to_ticket_totals(ARRAY(
            SELECT public.ticket_totals_contribution(1, n) FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM public.add_to_ticket_totals(ARRAY(
            SELECT public.ticket_totals_contribution(-1, o) FROM old_rows o));
    ELSE
        -- Only rows whose contribution changed (not a subject edit, say): they leave one group for another.
        PERFORM public.add_to_ticket_totals(ARRAY(
            SELECT c
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            CROSS JOIN LATERAL (VALUES (public.ticket_totals_contribution(-1, o)),
                                       (public.ticket_totals_contribution(1, n))) AS v(c)
            WHERE public.ticket_totals_contribution(1, n) IS DISTINCT FROM public.ticket_totals_contribution(1, o)));
    END IF;
    RETURN NULL;
END
$$;

-- Reads user_id, status and duration: live_chat_sessions_totals_update's WHEN lists the same columns.
CREATE OR REPLACE FUNCTION public.chat_totals_contribution(sign integer, s public.live_chat_sessions)
RETURNS public.chat_totals
LANGUAGE sql IMMUTABLE
RETURN ROW(s.user_id, s.status, sign, sign * coalesce(s.duration, 0), sign * (s.duration IS NOT NULL)::integer
          )::public.chat_totals;

CREATE OR REPLACE FUNCTION public.add_to_chat_totals(deltas public.chat_totals[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    INSERT INTO public.chat_totals AS t (user_id, status, sessions, duration_seconds, duration_count)
    SELECT d.user_id, d.status, sum(d.sessions), sum(d.duration_seconds), sum(d.duration_count)
    FROM unnest(deltas) d
    GROUP BY d.user_id, d.status
    HAVING (sum(d.sessions), sum(d.duration_seconds), sum(d.duration_count)) <> (0, 0, 0)
    ORDER BY d.user_id, d.status
    ON CONFLICT (user_id, status) DO UPDATE SET
        sessions = t.sessions + excluded.sessions,
        duration_seconds = t.duration_seconds + excluded.duration_seconds,
        duration_count = t.duration_count + excluded.duration_count;
    DELETE FROM public.chat_totals t
    USING (SELECT DISTINCT d.user_id, d.status FROM unnest(deltas) d) g
    WHERE t.user_id = g.user_id AND t.status = g.status
      AND (t.sessions, t.duration_seconds, t.duration_count) = (0, 0, 0);
END
$$;

CREATE OR REPLACE FUNCTION public.add_chat_totals() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND public.retention_deleting_now() THEN
        RETURN NULL;  -- the retention job's delete: the figures keep counting history (sql/definitions/retention.sql)
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM public.add_to_chat_totals(ARRAY(SELECT public.chat_totals_contribution(1, n) FROM new_rows n));
    ELSE
        PERFORM public.add_to_chat_totals(ARRAY(SELECT public.chat_totals_contribution(-1, o) FROM old_rows o));
    END IF;
    RETURN NULL;
END
$$;

-- An update, row by row, queued only when the session's contribution changes (the trigger's WHEN): a message
-- posted moves only the session's counters, and then no trigger runs at all (a statement-level trigger would run
-- on every message, with its transition tables, to find that nothing changed).
CREATE OR REPLACE FUNCTION public.move_chat_totals() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    PERFORM public.add_to_chat_totals(ARRAY[public.chat_totals_contribution(-1, OLD),
                                            public.chat_totals_contribution(1, NEW)]);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION public.feedback_totals_contribution(sign integer, f public.ticket_feedback)
RETURNS public.feedback_totals
LANGUAGE sql IMMUTABLE
RETURN ROW(f.user_id, sign, sign * f.rating)::public.feedback_totals;

CREATE OR REPLACE FUNCTION public.add_to_feedback_totals(deltas public.feedback_totals[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    INSERT INTO public.feedback_totals AS t (user_id, ratings, rating_sum)
    SELECT d.user_id, sum(d.ratings), sum(d.rating_sum)
    FROM unnest(deltas) d
    GROUP BY d.user_id
    HAVING (sum(d.ratings), sum(d.rating_sum)) <> (0, 0)
    ORDER BY d.user_id
    ON CONFLICT (user_id) DO UPDATE SET
        ratings = t.ratings + excluded.ratings,
        rating_sum = t.rating_sum + excluded.rating_sum;
    DELETE FROM public.feedback_totals t
    USING (SELECT DISTINCT d.user_id FROM unnest(deltas) d) g
    WHERE t.user_id = g.user_id AND (t.ratings, t.rating_sum) = (0, 0);
END
$$;

CREATE OR REPLACE FUNCTION public.add_feedback_totals() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND public.retention_deleting_now() THEN
        RETURN NULL;  -- the retention job's delete: the figures keep counting history (sql/definitions/retention.sql)
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM public.add_to_feedback_totals(ARRAY(
            SELECT public.feedback_totals_contribution(1, n) FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM public.add_to_feedback_totals(ARRAY(
            SELECT public.feedback_totals_contribution(-1, o) FROM old_rows o));
    ELSE
        PERFORM public.add_to_feedback_totals(ARRAY(
            SELECT c
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            CROSS JOIN LATERAL (VALUES (public.feedback_totals_contribution(-1, o)),
                                       (public.feedback_totals_contribution(1, n))) AS v(c)
            WHERE public.feedback_totals_contribution(1, n)
                  IS DISTINCT FROM public.feedback_totals_contribution(1, o)));
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER live_chat_sessions_totals_delete AFTER DELETE ON public.live_chat_sessions
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_chat_totals();

CREATE OR REPLACE TRIGGER live_chat_sessions_totals_insert AFTER INSERT ON public.live_chat_sessions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_chat_totals();

CREATE OR REPLACE TRIGGER live_chat_sessions_totals_update AFTER UPDATE ON public.live_chat_sessions
    FOR EACH ROW
    -- the columns chat_totals_contribution reads (the WHEN runs with the caller's rights, which may not call it)
    WHEN ((NEW.user_id, NEW.status, NEW.duration) IS DISTINCT FROM (OLD.user_id, OLD.status, OLD.duration))
    EXECUTE FUNCTION public.move_chat_totals();

CREATE OR REPLACE TRIGGER support_tickets_totals_delete AFTER DELETE ON public.support_tickets
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_ticket_totals();

CREATE OR REPLACE TRIGGER support_tickets_totals_insert AFTER INSERT ON public.support_tickets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_ticket_totals();

CREATE OR REPLACE TRIGGER support_tickets_totals_update AFTER UPDATE ON public.support_tickets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_ticket_totals();

CREATE OR REPLACE TRIGGER ticket_feedback_totals_delete AFTER DELETE ON public.ticket_feedback
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_feedback_totals();

CREATE OR REPLACE TRIGGER ticket_feedback_totals_insert AFTER INSERT ON public.ticket_feedback
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_feedback_totals();

CREATE OR REPLACE TRIGGER ticket_feedback_totals_update AFTER UPDATE ON public.ticket_feedback
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.add_feedback_totals();
