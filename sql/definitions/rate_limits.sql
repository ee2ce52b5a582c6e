-- Fair limits (issue 20): a tenant's API budget, a token bucket in rate_limit_counters (scope 'api', subject
-- 'tenant'; sql/0018), taken once per request of a signed-in caller (support.services.rate_limits, api_admission).
--
-- One call, whose plans PL/pgSQL keeps per connection (parsed and planned on every request, the same statement
-- cost more than its work), that binds the tenant itself (set_config(..., true): transaction-local), so it is one
-- statement: alone on the autocommit connection it is its own transaction, one round trip; in front of a request's
-- first transaction it goes between BEGIN and COMMIT of its own, in the same pipeline. Its transaction commits
-- without waiting for the WAL flush (synchronous_commit off, for it alone: a crash may forget the last counts).
-- The budget is the tenant's `limits` row of tenant_settings, else p_burst and p_rate (the code's defaults). A
-- token is taken if the level now (the stored level plus the refill since, up to the burst) holds one, and the
-- answer is NULL; otherwise the answer is the whole seconds until one more request is admitted, and nothing is
-- written. A refusal is an answer, not an error: a flood's refused requests would otherwise be an ERROR line each
-- in the server's log. Concurrent calls serialise on the bucket's row (INSERT ... ON CONFLICT DO UPDATE locks it),
-- for this statement and its commit only, so no two callers spend the same token.
-- SECURITY INVOKER: under the caller's row-level security, for that tenant only.
--
-- api_admit_answer answers; api_admit (below) raises, as it always did: it keeps its name, result and behaviour,
-- so the code of a release before this one (a deploy's window between the migration and the functions' update, a
-- rollback) still refuses what it should. A changed result type would be a new function anyway.
CREATE OR REPLACE FUNCTION public.api_admit_answer(p_tenant uuid, p_burst double precision, p_rate double precision)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    tenant constant uuid := set_config('app.tenant_id', p_tenant::text, true)::uuid;
    budget jsonb;
    burst double precision := p_burst;
    rate double precision := p_rate;
    level double precision;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT s.settings INTO budget FROM public.tenant_settings s WHERE s.user_id = tenant AND s.area = 'limits';
    IF budget IS NOT NULL THEN
        burst := coalesce((budget ->> 'api_burst')::double precision, p_burst);
        rate := coalesce((budget ->> 'api_per_second')::double precision, p_rate);
    END IF;
    INSERT INTO public.rate_limit_counters AS c (user_id, scope, subject, tokens, admitted, refilled_at)
    VALUES (tenant, 'api', 'tenant', burst - 1, true, statement_timestamp())
    ON CONFLICT (user_id, scope, subject) DO UPDATE
        SET tokens = least(burst, c.tokens + rate * greatest(0, extract(epoch FROM statement_timestamp()
                                                                       - c.refilled_at))::double precision) - 1,
            admitted = true, refilled_at = statement_timestamp()
        WHERE least(burst, c.tokens + rate * greatest(0, extract(epoch FROM statement_timestamp()
                                                                 - c.refilled_at))::double precision) >= 1;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    SELECT least(burst, c.tokens + rate * greatest(0, extract(epoch FROM statement_timestamp()
                                                              - c.refilled_at))::double precision)
    INTO level
    FROM public.rate_limit_counters c WHERE c.user_id = tenant AND c.scope = 'api' AND c.subject = 'tenant';
    RETURN least(greatest(1, ceil((1 - coalesce(level, 0)) / rate)), 2147483647)::integer;
END
$$;
REVOKE ALL ON FUNCTION public.api_admit_answer(uuid, double precision, double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.api_admit_answer(uuid, double precision, double precision) TO support_app;

-- The same check where the request's work is already on the wire behind it, in one pipeline (support.db.connection:
-- read_snapshot, write_one, pipelined without `once`): there only an error makes the server skip what follows, so a
-- refusal raises SQLSTATE APR29 with the seconds as its DETAIL, and the work's statements are never run. Knowing the
-- answer before sending the work would cost such a request a round trip; these refusals stay one log line each.
CREATE OR REPLACE FUNCTION public.api_admit(p_tenant uuid, p_burst double precision, p_rate double precision)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    wait constant integer := public.api_admit_answer(p_tenant, p_burst, p_rate);
BEGIN
    IF wait IS NOT NULL THEN
        RAISE EXCEPTION 'over the tenant''s API budget' USING ERRCODE = 'APR29', DETAIL = wait::text;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION public.api_admit(uuid, double precision, double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.api_admit(uuid, double precision, double precision) TO support_app;
