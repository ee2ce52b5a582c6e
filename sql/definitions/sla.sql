-- SLA policies (history: sql/0033; support.services.sla; docs/sla.md): business time, each ticket's due times, the
-- sweep's queue and the sweep itself.
--
-- A tenant's policy is the `sla` area of tenant_settings, the whole SlaSettings model as JSON (snake_case keys);
-- a tenant that never chose has sla_default_policy(), which a test keeps equal to the model's defaults.
--
-- Business time. A policy names a time zone (IANA), the business hours of each weekday as local wall-clock
-- intervals ("09:00" to "17:00", "24:00" for midnight at the end of the day) and holidays (local dates with no
-- business hours). An interval of a local day becomes two instants through PostgreSQL's time zone database
-- (`timestamp AT TIME ZONE zone`), so a DST change shortens or lengthens the day it falls on as the wall clock
-- does: 09:00 to 17:00 is 8 hours on every business day, and 00:00 to 24:00 is 23 or 25 hours on the days of the
-- change. The policy "every day 00:00 to 24:00, no holidays" (the default) is plain wall-clock time, computed
-- without the walk.

CREATE OR REPLACE FUNCTION public.sla_always_open_hours() RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT jsonb_object_agg(day, '[{"start": "00:00", "end": "24:00"}]'::jsonb)
        FROM unnest(ARRAY['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday']) AS day
    );
END
$$;

CREATE OR REPLACE FUNCTION public.sla_default_policy() RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT jsonb_build_object(
            'targets', jsonb_build_object(
                'urgent', jsonb_build_object('first_response_minutes', 60, 'resolution_minutes', 480),
                'high', jsonb_build_object('first_response_minutes', 240, 'resolution_minutes', 1440),
                'medium', jsonb_build_object('first_response_minutes', 480, 'resolution_minutes', 2880),
                'low', jsonb_build_object('first_response_minutes', 1440, 'resolution_minutes', 5760)),
            'time_zone', 'UTC',
            'business_hours', public.sla_always_open_hours(),
            'holidays', '[]'::jsonb,
            'pause_statuses', '["waiting_customer"]'::jsonb)
    );
END
$$;

-- The tenant's policy, read only when the transaction is bound to that tenant (tenant_settings is under forced
-- row-level security, which raises without a binding): an owner's or a superuser's insert without one (a data
-- load) gets the defaults.
CREATE OR REPLACE FUNCTION public.sla_policy(tenant uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    found_policy jsonb;
BEGIN
    IF coalesce(current_setting('app.tenant_id', true), '') = tenant::text THEN
        SELECT s.settings INTO found_policy FROM public.tenant_settings s WHERE s.user_id = tenant AND s.area = 'sla';
    END IF;
    RETURN coalesce(found_policy, public.sla_default_policy());
END
$$;

-- The clock of the due-time trigger: the transaction's time, unless the transaction set `support.sla_clock` (the
-- tests' clock, set_config(..., true): it pauses and resumes tickets at chosen instants). Only the trigger's own
-- arithmetic follows it; stored times (resolved_at, ...) and the state read by the API use the real time.
CREATE OR REPLACE FUNCTION public.sla_clock() RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RETURN coalesce(nullif(current_setting('support.sla_clock', true), '')::timestamptz, now());
END
$$;

-- The local intervals of business time of one local day (none on a holiday), as instants.
CREATE OR REPLACE FUNCTION public.sla_day_intervals(policy jsonb, day date)
RETURNS TABLE (opens timestamptz, closes timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT (day + (iv->>'start')::time) AT TIME ZONE (policy->>'time_zone'),
           CASE WHEN iv->>'end' = '24:00' THEN (day + 1)::timestamp AT TIME ZONE (policy->>'time_zone')
                ELSE (day + (iv->>'end')::time) AT TIME ZONE (policy->>'time_zone') END
    FROM jsonb_array_elements(policy->'business_hours'->(ARRAY['monday', 'tuesday', 'wednesday', 'thursday', 'friday',
                                                              'saturday', 'sunday'])[extract(isodow FROM day)::int]) iv
    WHERE NOT (policy->'holidays' ? day::text)
    ORDER BY 1;
END
$$;

-- The instants `offsets` seconds of business time after `start` (each one; NULL for a NULL offset, and for one not
-- reached within three years of calendar, which only a policy of almost no business hours can do). One walk over
-- the days serves every offset.
CREATE OR REPLACE FUNCTION public.sla_add_business(policy jsonb, start timestamptz, offsets bigint[])
RETURNS timestamptz[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    result   timestamptz[] := array_fill(NULL::timestamptz, ARRAY[cardinality(offsets)]);
    ordered  integer[];
    k        integer := 1;
    used     double precision := 0;  -- business seconds from start to the current interval
    span     double precision;
    opens    timestamptz;
    day      date;
    interval_row record;
BEGIN
    IF start IS NULL OR cardinality(offsets) = 0 THEN
        RETURN result;
    END IF;
    IF policy->'business_hours' = public.sla_always_open_hours() AND policy->'holidays' = '[]'::jsonb THEN
        FOR i IN 1 .. cardinality(offsets) LOOP
            result[i] := start + make_interval(secs => offsets[i]);
        END LOOP;
        RETURN result;
    END IF;
    ordered := ARRAY(SELECT i FROM generate_subscripts(offsets, 1) i WHERE offsets[i] IS NOT NULL ORDER BY offsets[i]);
    IF cardinality(ordered) = 0 THEN
        RETURN result;
    END IF;
    day := (start AT TIME ZONE (policy->>'time_zone'))::date;
    FOR n IN 0 .. 1100 LOOP
        FOR interval_row IN SELECT * FROM public.sla_day_intervals(policy, day + n) LOOP
            opens := greatest(interval_row.opens, start);
            CONTINUE WHEN interval_row.closes <= opens;
            span := extract(epoch FROM interval_row.closes - opens);
            WHILE k <= cardinality(ordered) AND offsets[ordered[k]] - used <= span LOOP
                result[ordered[k]] := opens + make_interval(secs => greatest(offsets[ordered[k]] - used, 0));
                k := k + 1;
            END LOOP;
            IF k > cardinality(ordered) THEN
                RETURN result;
            END IF;
            used := used + span;
        END LOOP;
    END LOOP;
    RETURN result;
END
$$;

-- The business seconds between two instants (0 when `till` is not after `since`).
CREATE OR REPLACE FUNCTION public.sla_business_seconds(policy jsonb, since timestamptz, till timestamptz)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    total double precision := 0;
    first_day date;
    last_day date;
    interval_row record;
BEGIN
    IF since IS NULL OR till IS NULL OR till <= since THEN
        RETURN 0;
    END IF;
    IF policy->'business_hours' = public.sla_always_open_hours() AND policy->'holidays' = '[]'::jsonb THEN
        RETURN round(extract(epoch FROM till - since))::bigint;
    END IF;
    first_day := (since AT TIME ZONE (policy->>'time_zone'))::date;
    last_day := (till AT TIME ZONE (policy->>'time_zone'))::date;
    FOR n IN 0 .. (last_day - first_day) LOOP
        FOR interval_row IN SELECT * FROM public.sla_day_intervals(policy, first_day + n) LOOP
            IF least(interval_row.closes, till) > greatest(interval_row.opens, since) THEN
                total := total + extract(epoch FROM least(interval_row.closes, till) - greatest(interval_row.opens, since));
            END IF;
        END LOOP;
    END LOOP;
    RETURN round(total)::bigint;
END
$$;

-- Each ticket's due times (BEFORE INSERT, and UPDATE of what they depend on). The clock of a target runs in business
-- time from the ticket's creation and stands still while the ticket is paused: in one of the policy's pause
-- statuses, or resolved or closed (a reopened ticket's clock goes on from where it stopped). Leaving a pause adds
-- the business time it lasted to `sla_paused_seconds`, and every due time moves out by it. A target's due time is
-- the instant its clock reaches the target, its at-risk instant the one it reaches 80 % of it. A change of priority
-- recomputes both from the new priority's targets (as if the ticket always had it). SECURITY DEFINER: the helpers
-- above are the owner's, and the runtime role may execute nothing it does not need.
CREATE OR REPLACE FUNCTION public.ticket_sla_times() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    policy   jsonb;
    pausing  boolean;
    clock_moved boolean := TG_OP = 'INSERT';
    first_response bigint;
    resolution bigint;
    times    timestamptz[];
BEGIN
    policy := public.sla_policy(NEW.user_id);
    IF TG_OP = 'INSERT' THEN
        pausing := NEW.status IN ('resolved', 'closed') OR policy->'pause_statuses' ? NEW.status::text;
        NEW.sla_paused_seconds := 0;
        -- a ticket made already resolved (a data load) stopped its clock when it was resolved
        NEW.sla_paused_at := CASE WHEN NEW.status IN ('resolved', 'closed') THEN coalesce(NEW.resolved_at, NEW.created_at)
                                  WHEN pausing THEN NEW.created_at END;
    ELSE
        NEW.sla_paused_seconds := coalesce(OLD.sla_paused_seconds, 0);
        NEW.sla_paused_at := OLD.sla_paused_at;
        IF NEW.status IS DISTINCT FROM OLD.status THEN
            pausing := NEW.status IN ('resolved', 'closed') OR policy->'pause_statuses' ? NEW.status::text;
            IF OLD.sla_paused_at IS NOT NULL AND NOT pausing THEN
                NEW.sla_paused_seconds := NEW.sla_paused_seconds
                                          + public.sla_business_seconds(policy, OLD.sla_paused_at, public.sla_clock());
                NEW.sla_paused_at := NULL;
            ELSIF OLD.sla_paused_at IS NULL AND pausing THEN
                NEW.sla_paused_at := public.sla_clock();
            END IF;
        END IF;
        clock_moved := NEW.priority IS DISTINCT FROM OLD.priority OR NEW.created_at IS DISTINCT FROM OLD.created_at
                       OR NEW.sla_paused_seconds IS DISTINCT FROM OLD.sla_paused_seconds
                       OR OLD.first_response_due_at IS NULL;
    END IF;
    IF clock_moved THEN
        first_response := (policy->'targets'->(NEW.priority::text)->>'first_response_minutes')::bigint * 60;
        resolution := (policy->'targets'->(NEW.priority::text)->>'resolution_minutes')::bigint * 60;
        times := public.sla_add_business(policy, NEW.created_at, ARRAY[
            first_response * 4 / 5 + NEW.sla_paused_seconds, first_response + NEW.sla_paused_seconds,
            resolution * 4 / 5 + NEW.sla_paused_seconds, resolution + NEW.sla_paused_seconds]);
        NEW.first_response_risk_at := times[1];
        NEW.first_response_due_at := times[2];
        NEW.resolution_risk_at := times[3];
        NEW.resolution_due_at := times[4];
    END IF;
    -- The SLA clock's reading when a target is met: business time since creation, less the pauses (those ended,
    -- and the one still running, if any). Cleared when the target is open again (a reopened ticket).
    IF NEW.first_responded_at IS NULL THEN
        NEW.first_response_business_seconds := NULL;
    ELSIF TG_OP = 'INSERT' OR OLD.first_responded_at IS DISTINCT FROM NEW.first_responded_at
          OR NEW.first_response_business_seconds IS NULL THEN
        NEW.first_response_business_seconds := greatest(0,
            public.sla_business_seconds(policy, NEW.created_at, NEW.first_responded_at) - NEW.sla_paused_seconds
            - public.sla_business_seconds(policy, NEW.sla_paused_at, NEW.first_responded_at));
    END IF;
    IF NEW.resolved_at IS NULL THEN
        NEW.resolution_business_seconds := NULL;
    ELSIF TG_OP = 'INSERT' OR OLD.resolved_at IS DISTINCT FROM NEW.resolved_at
          OR NEW.resolution_business_seconds IS NULL THEN
        NEW.resolution_business_seconds := greatest(0,
            public.sla_business_seconds(policy, NEW.created_at, NEW.resolved_at) - NEW.sla_paused_seconds
            - public.sla_business_seconds(policy, NEW.sla_paused_at, NEW.resolved_at));
    END IF;
    RETURN NEW;
END
$$;

-- Named so that it runs after support_tickets_first_responded_at (BEFORE triggers run in name order).
CREATE OR REPLACE TRIGGER support_tickets_sla
    BEFORE INSERT OR UPDATE OF status, priority, created_at, first_response_time, resolved_at ON public.support_tickets
    FOR EACH ROW EXECUTE FUNCTION public.ticket_sla_times();

-- The sweep's queue (ticket_sla_checks): the instants still ahead of a running clock, and the earliest of them. A
-- target met (first response given, ticket resolved) or a paused clock leaves none; a ticket with none left has no
-- row. The row keeps past instants too (check_at is then in the past): the next sweep records what they passed,
-- once (the events' unique key), and moves check_at on. Owner-only table, hence SECURITY DEFINER.
CREATE OR REPLACE FUNCTION public.ticket_sla_queue() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    running boolean := NEW.sla_paused_at IS NULL;
    fr_pending boolean := running AND NEW.first_response_time IS NULL;
    res_pending boolean := running AND NEW.resolved_at IS NULL;
BEGIN
    IF TG_OP = 'UPDATE'
       AND (NEW.first_response_due_at, NEW.resolution_due_at, NEW.sla_paused_at, NEW.first_response_time IS NULL,
            NEW.resolved_at IS NULL)
           IS NOT DISTINCT FROM (OLD.first_response_due_at, OLD.resolution_due_at, OLD.sla_paused_at,
                                 OLD.first_response_time IS NULL, OLD.resolved_at IS NULL) THEN
        RETURN NULL;
    END IF;
    IF NOT ((fr_pending AND NEW.first_response_due_at IS NOT NULL) OR (res_pending AND NEW.resolution_due_at IS NOT NULL))
    THEN
        IF TG_OP = 'UPDATE' THEN
            DELETE FROM public.ticket_sla_checks c WHERE c.user_id = NEW.user_id AND c.ticket_id = NEW.id;
        END IF;
        RETURN NULL;
    END IF;
    INSERT INTO public.ticket_sla_checks AS c (user_id, ticket_id, first_response_risk_at, first_response_due_at,
                                               resolution_risk_at, resolution_due_at, check_at)
    SELECT NEW.user_id, NEW.id, p.frr, p.frd, p.rr, p.rd, least(p.frr, p.frd, p.rr, p.rd)
    FROM (SELECT CASE WHEN fr_pending THEN NEW.first_response_risk_at END AS frr,
                 CASE WHEN fr_pending THEN NEW.first_response_due_at END AS frd,
                 CASE WHEN res_pending THEN NEW.resolution_risk_at END AS rr,
                 CASE WHEN res_pending THEN NEW.resolution_due_at END AS rd) p
    ON CONFLICT (user_id, ticket_id) DO UPDATE
    SET first_response_risk_at = excluded.first_response_risk_at, first_response_due_at = excluded.first_response_due_at,
        resolution_risk_at = excluded.resolution_risk_at, resolution_due_at = excluded.resolution_due_at,
        check_at = excluded.check_at;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER support_tickets_sla_queue
    AFTER INSERT OR UPDATE OF status, priority, created_at, first_response_time, resolved_at ON public.support_tickets
    FOR EACH ROW EXECUTE FUNCTION public.ticket_sla_queue();

-- The dashboard's compliance per tenant and priority (ticket_sla_totals, sql/0033): each ticket's contribution (a
-- target measured once met or missed, met if by its due time, the clock's reading then) taken away as it was and
-- added as it is, when it changed. Row by row, in the change's transaction, as the owner.
CREATE OR REPLACE FUNCTION public.add_ticket_sla_totals(t public.support_tickets, sign integer) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    INSERT INTO public.ticket_sla_totals AS s (user_id, priority, first_response_measured, first_response_met,
                                               first_response_business_seconds, resolution_measured, resolution_met,
                                               resolution_business_seconds)
    SELECT t.user_id, t.priority, sign * fr::integer, sign * (fr AND t.first_responded_at <= t.first_response_due_at)::integer,
           sign * CASE WHEN fr THEN t.first_response_business_seconds ELSE 0 END,
           sign * res::integer, sign * (res AND t.resolved_at <= t.resolution_due_at)::integer,
           sign * CASE WHEN res THEN t.resolution_business_seconds ELSE 0 END
    FROM (SELECT t.first_response_business_seconds IS NOT NULL AND t.first_response_due_at IS NOT NULL AS fr,
                 t.resolution_business_seconds IS NOT NULL AND t.resolution_due_at IS NOT NULL AS res) m
    WHERE m.fr OR m.res
    ON CONFLICT (user_id, priority) DO UPDATE SET
        first_response_measured = s.first_response_measured + excluded.first_response_measured,
        first_response_met = s.first_response_met + excluded.first_response_met,
        first_response_business_seconds = s.first_response_business_seconds + excluded.first_response_business_seconds,
        resolution_measured = s.resolution_measured + excluded.resolution_measured,
        resolution_met = s.resolution_met + excluded.resolution_met,
        resolution_business_seconds = s.resolution_business_seconds + excluded.resolution_business_seconds;
END
$$;

CREATE OR REPLACE FUNCTION public.ticket_sla_totals_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND public.retention_deleting_now() THEN
        RETURN NULL;  -- the retention job's delete: the figures keep counting history (sql/definitions/retention.sql)
    END IF;
    IF TG_OP = 'UPDATE' AND (OLD.priority, OLD.first_response_due_at, OLD.first_responded_at,
                             OLD.first_response_business_seconds, OLD.resolution_due_at, OLD.resolved_at,
                             OLD.resolution_business_seconds)
        IS NOT DISTINCT FROM (NEW.priority, NEW.first_response_due_at, NEW.first_responded_at,
                              NEW.first_response_business_seconds, NEW.resolution_due_at, NEW.resolved_at,
                              NEW.resolution_business_seconds) THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM public.add_ticket_sla_totals(OLD, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM public.add_ticket_sla_totals(NEW, 1);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER support_tickets_sla_totals
    AFTER INSERT OR DELETE OR UPDATE OF status, priority, created_at, first_response_time, resolved_at
    ON public.support_tickets
    FOR EACH ROW EXECUTE FUNCTION public.ticket_sla_totals_change();

-- The sweep (support.services.sla.sweep, every minute from WorkflowSweepFunction): for every tenant at once, the
-- queue rows whose check_at has come (`at`, the caller's clock), oldest first, at most `batch` of them (the rest on
-- the next run), locked with SKIP LOCKED so that two sweeps take disjoint rows. It records each threshold passed as
-- an event (a warning is skipped when the breach has come too: the breach says more), moves check_at to the next
-- instant ahead (NULL when none), and answers the events it recorded now: an event recorded by an earlier sweep
-- conflicts on the unique key and is not answered again. It reads and writes only the two SLA tables (ENABLEd, not
-- FORCEd: sql/definitions/row_level_security.sql) and answers ids and instants, no content. The index on check_at
-- (partial: only rows with an instant ahead) makes its cost grow with the tickets near or past a due time.
CREATE OR REPLACE FUNCTION public.sla_sweep(at timestamptz, batch integer)
RETURNS TABLE (id uuid, user_id uuid, ticket_id uuid, target text, kind text, due_at timestamptz,
               occurred_at timestamptz)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH due AS (
        SELECT c.ctid AS row_id, c.user_id, c.ticket_id, c.first_response_risk_at, c.first_response_due_at,
               c.resolution_risk_at, c.resolution_due_at
        FROM public.ticket_sla_checks c
        WHERE c.check_at <= at
        ORDER BY c.check_at
        LIMIT least(greatest(batch, 1), 10000)
        FOR UPDATE SKIP LOCKED
    ), passed AS (
        SELECT d.user_id, d.ticket_id, v.target, v.kind, v.due_at, v.occurred_at
        FROM due d
        CROSS JOIN LATERAL (VALUES
            ('first_response', 'at_risk', d.first_response_due_at, d.first_response_risk_at),
            ('first_response', 'breached', d.first_response_due_at, d.first_response_due_at),
            ('resolution', 'at_risk', d.resolution_due_at, d.resolution_risk_at),
            ('resolution', 'breached', d.resolution_due_at, d.resolution_due_at)
        ) AS v (target, kind, due_at, occurred_at)
        WHERE v.occurred_at <= at AND NOT (v.kind = 'at_risk' AND v.due_at <= at)
    ), advanced AS (
        -- by the rows' own addresses (a TID scan of the rows locked above): a join on the key would let the
        -- planner hash the whole queue for what it expects to be `batch` rows
        UPDATE public.ticket_sla_checks c
        SET check_at = (SELECT min(x) FROM unnest(ARRAY[c.first_response_risk_at, c.first_response_due_at,
                                                        c.resolution_risk_at, c.resolution_due_at]) AS x
                        WHERE x > at)
        WHERE c.ctid = ANY (ARRAY(SELECT d.row_id FROM due d))
    )
    INSERT INTO public.ticket_sla_events AS e (user_id, ticket_id, target, kind, due_at, occurred_at, recorded_at)
    SELECT p.user_id, p.ticket_id, p.target, p.kind, p.due_at, p.occurred_at, at FROM passed p
    ORDER BY p.user_id, p.ticket_id, p.target, p.kind
    ON CONFLICT (user_id, ticket_id, target, kind) DO NOTHING
    RETURNING e.id, e.user_id, e.ticket_id, e.target, e.kind, e.due_at, e.occurred_at
$$;
REVOKE ALL ON FUNCTION public.sla_sweep(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.sla_sweep(timestamptz, integer) TO support_app;
