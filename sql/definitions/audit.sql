-- The audit trail (sql/0038; docs/ARCHITECTURE.md, "Audit trail"): the capture trigger, attached below to every
-- tenant table but the exempt ones; the sealer that chains the entries per tenant; the verification, the scheduled
-- check, the pruning and the erasure of a subject's personal values.

-- The canonical content of an entry, what its hash covers: every column but the hash itself, in a fixed order and
-- a fixed rendering (the time in UTC with microseconds; jsonb prints its keys sorted), so that the sealer and every
-- later check compute the same bytes.
CREATE OR REPLACE FUNCTION public.audit_entry_canonical(e public.audit_entries) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT jsonb_build_array(
        e.seq, e.id, e.user_id,
        to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        e.actor_type, e.actor_id, e.request_id, e.db_role, e.table_name, e.row_id, e.action, e.changes,
        encode(e.personal_digest, 'hex')
    )::text
$$;
REVOKE ALL ON FUNCTION public.audit_entry_canonical(public.audit_entries) FROM PUBLIC;

-- The link: sha256(previous hash || the entry's canonical content).
CREATE OR REPLACE FUNCTION public.audit_entry_hash(previous bytea, e public.audit_entries) RETURNS bytea
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT sha256(previous || convert_to(public.audit_entry_canonical(e), 'UTF8'))
$$;
REVOKE ALL ON FUNCTION public.audit_entry_hash(bytea, public.audit_entries) FROM PUBLIC;

-- The capture: one entry per row inserted, updated or deleted, in the change's transaction. SECURITY DEFINER (the
-- runtime roles have no privilege on the audit tables), so it writes whatever role makes the change. Its arguments
-- are the table's column classes, computed from the catalog by the block below when it attaches the trigger:
--   TG_ARGV[0] personal columns: their values go to audit_personal_values, the entry says {"personal": true};
--   TG_ARGV[1] text columns (messages, descriptions, comments, secrets): never copied, {"redacted": true};
--   TG_ARGV[2] columns not recorded at all (derived counters, last-activity times, generated columns);
--   TG_ARGV[3] the columns that name the row (its id, else its key without user_id or personal values);
--   TG_ARGV[4] the columns whose value names the subject (an email), the first one set wins.
-- The actor is the transaction's `app.actor` (support.audit_actor: JSON {"type", "id", "requestId"}, bound with
-- the tenant), or "unknown" without one; `db_role` is the login role either way.
CREATE OR REPLACE FUNCTION public.audit_capture() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    personal constant text[] := TG_ARGV[0]::text[];
    redacted constant text[] := TG_ARGV[1]::text[];
    ignored constant text[] := TG_ARGV[2]::text[];
    key_columns constant text[] := TG_ARGV[3]::text[];
    subject_columns constant text[] := TG_ARGV[4]::text[];
    old_row jsonb;
    new_row jsonb;
    named jsonb;
    col text;
    changes jsonb := '{}';
    vals jsonb := '{}';
    actor jsonb;
    raw_actor text := current_setting('app.actor', true);
    subject text;
    salt bytea;
    digest bytea;
    entry_id bigint;
    row_name text;
    automation_rule text;
BEGIN
    IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD) - ignored; END IF;
    IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW) - ignored; END IF;
    named := coalesce(new_row, old_row);
    IF TG_OP = 'DELETE' AND public.retention_deleting_now() THEN
        -- the retention job's delete (sql/definitions/retention.sql): the entry names the row and the job, not its
        -- values, which the archive holds (or the policy deleted): the audit keeps nothing retention removed, and
        -- a batch's delete is not paid twice (the full entries were 85 % of its time)
        changes := '{"retention": true}';
    ELSE
        -- the recorded columns in one statement (a loop of jsonb concatenations costs twice as much per row)
        SELECT coalesce(jsonb_object_agg(x.col, CASE WHEN x.col = ANY (redacted) THEN '{"redacted": true}'::jsonb
                                                     WHEN x.col = ANY (personal) THEN '{"personal": true}'::jsonb
                                                     ELSE x.diff END), '{}'),
               coalesce(jsonb_object_agg(x.col, x.diff) FILTER (WHERE x.col = ANY (personal)
                                                                  AND x.col <> ALL (redacted)), '{}')
        INTO changes, vals
        FROM (SELECT k AS col, CASE TG_OP WHEN 'INSERT' THEN jsonb_build_object('new', new_row -> k)
                                          WHEN 'DELETE' THEN jsonb_build_object('old', old_row -> k)
                                          ELSE jsonb_build_object('old', old_row -> k, 'new', new_row -> k) END AS diff
              FROM jsonb_object_keys(named) AS k
              WHERE k <> 'user_id'
                AND CASE WHEN TG_OP = 'UPDATE' THEN (old_row -> k) IS DISTINCT FROM (new_row -> k)
                         ELSE coalesce(old_row -> k, new_row -> k) <> 'null'::jsonb END) x;
    END IF;
    IF TG_OP = 'UPDATE' AND changes = '{}'::jsonb THEN
        RETURN NULL;  -- only columns not recorded changed
    END IF;
    IF raw_actor IS NOT NULL AND raw_actor <> '' THEN
        -- no exception block (a subtransaction per row): an unreadable setting is recorded as such
        actor := CASE WHEN pg_input_is_valid(raw_actor, 'jsonb') THEN raw_actor::jsonb
                      ELSE '{"type": "unreadable"}'::jsonb END;
    END IF;
    -- a change an automation rule's action makes is the rule's (sql/definitions/automations.sql binds it)
    automation_rule := current_setting('app.automation_rule', true);
    IF automation_rule IS NOT NULL AND automation_rule <> '' THEN
        actor := jsonb_build_object('type', 'automation', 'id', automation_rule, 'requestId', actor ->> 'requestId');
    END IF;
    IF cardinality(key_columns) = 1 THEN
        row_name := coalesce(named ->> key_columns[1], '');
    ELSE
        row_name := coalesce((SELECT string_agg(coalesce(named ->> k, ''), '/' ORDER BY o)
                              FROM unnest(key_columns) WITH ORDINALITY AS u (k, o)), '');
    END IF;
    IF vals <> '{}'::jsonb THEN
        FOREACH col IN ARRAY subject_columns LOOP
            subject := lower(btrim(coalesce(old_row ->> col, new_row ->> col)));
            EXIT WHEN subject IS NOT NULL AND subject <> '';
        END LOOP;
        IF subject IS NULL OR subject = '' THEN
            subject := CASE
                WHEN named ? 'ticket_id' AND named ->> 'ticket_id' IS NOT NULL
                    THEN 'support_tickets:' || (named ->> 'ticket_id')
                WHEN named ? 'session_id' AND named ->> 'session_id' IS NOT NULL
                    THEN 'live_chat_sessions:' || (named ->> 'session_id')
                ELSE TG_TABLE_NAME || ':' || row_name
            END;
        END IF;
        salt := uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid());
        digest := sha256(salt || convert_to(vals::text, 'UTF8'));
    END IF;
    INSERT INTO public.audit_entries (user_id, occurred_at, actor_type, actor_id, request_id, db_role, table_name,
                                      row_id, action, changes, personal_digest)
    VALUES ((named ->> 'user_id')::uuid, now(), coalesce(left(actor ->> 'type', 40), 'unknown'),
            left(actor ->> 'id', 200), left(actor ->> 'requestId', 200), session_user, TG_TABLE_NAME,
            row_name, lower(TG_OP), changes, digest)
    RETURNING id INTO entry_id;
    IF digest IS NOT NULL THEN
        INSERT INTO public.audit_personal_values (entry_id, user_id, subject, salt, vals)
        VALUES (entry_id, (named ->> 'user_id')::uuid, subject, salt, vals);
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION public.audit_capture() FROM PUBLIC;

-- The attachment: every table of the schema with a user_id column gets the capture, but the exemptions, each with
-- its reason (derived figures a trigger keeps, ephemeral state, side tables, the audit's own). The block reads the
-- catalog on every run of the definitions, so a table added later is captured the day its migration runs, and
-- tests/integration/test_audit.py fails for a tenant table with neither the triggers nor an entry here.
-- Two triggers per table: AFTER INSERT OR DELETE, and AFTER UPDATE with a WHEN clause over the recorded columns
-- only, so an update of derived counters alone (a chat's message counters, an agent's figures, a read receipt)
-- never even calls the function: the live chat's hot path pays nothing for them.
DO $$
DECLARE
    exempt constant text[] := ARRAY[
        -- the audit's own tables
        'audit_entries', 'audit_personal_values', 'audit_chain_state',
        -- running totals and day totals (statement triggers derive them from the audited rows)
        'ticket_totals', 'chat_totals', 'feedback_totals', 'ticket_day_totals', 'feedback_day_totals',
        'ticket_sla_totals',
        -- the analytics rollups (a job recomputes them from the rows)
        'support_analytics', 'support_analytics_cumulative',
        -- search side tables (a trigger keeps them from the audited rows)
        'ticket_search_index', 'canned_response_search', 'canned_response_terms',
        -- counters and progress of the ticket references (the reference itself is on the audited ticket)
        'ticket_reference_counters', 'ticket_reference_backfill',
        -- the SLA sweep's queue (derived from the ticket's due times; the events themselves are audited)
        'ticket_sla_checks',
        -- live connections and what they follow, spent connect tokens, rate limit buckets, the staff broadcast's
        -- pending request and the queue positions told: ephemeral state of the real-time layer
        'ws_connections', 'session_watchers', 'visitor_connect_tokens', 'rate_limit_counters', 'broadcast_requests',
        'queue_positions_told',
        -- delivery machinery: the email outbox's queue (its notices follow audited ticket changes), the channels'
        -- replay guards (signatures seen, message ids delivered: the messages land in audited tickets)
        'email_outbox', 'channel_signatures_seen', 'channel_messages',
        -- the automations' queue and run log (the changes their actions make are audited on their tables, with
        -- the automation as the actor), and the marker of the tenants given the default rules
        'automation_events', 'automation_runs', 'automation_tenants',
        -- Idempotency-Keys: a create's replay cache, kept 24 hours
        'idempotency_keys',
        -- webhooks: the outbox and delivery log (each delivery follows an audited change; its payload copies the
        -- change's texts and names, which the audit never holds) and the signing secrets (owner only, never copied)
        'webhook_deliveries', 'webhook_secrets',
        -- retention: what the figures still count of the rows the retention job deleted (the deletes are audited)
        'retention_ticket_tombstones', 'retention_chat_tombstones'
    ];
    -- columns never recorded: derived counters and last-activity times (an update of them alone is no entry)
    ignored_by_table constant jsonb := '{
        "support_agents": ["current_chats", "total_tickets_resolved", "average_resolution_time", "average_rating",
                           "response_time_average", "last_activity_at", "resolution_seconds", "resolution_count",
                           "first_response_seconds", "first_response_count", "rating_sum", "rating_count",
                           "last_assigned_at", "open_tickets", "last_ticket_assigned_at"],
        "live_chat_sessions": ["total_messages", "message_count"],
        "chat_messages": ["is_read", "read_at"],
        "canned_responses": ["usage_count", "last_used_at"],
        "automation_rules": ["swept_until"],
        "privacy_requests": ["attempts", "lease_until", "step", "cursor", "progress", "contact_ids", "ticket_ids",
                             "session_ids"]
    }';
    -- the columns that name a row whose key holds a personal value
    key_by_table constant jsonb := '{"contact_identities": ["contact_id", "kind", "scope"]}';
    tenant_table record;
    personal text[];
    redacted text[];
    ignored text[];
    key_columns text[];
    subject_columns text[];
    recorded text[];
    when_clause text;
    arguments text;
    wanted_write text;
    wanted_update text;
BEGIN
    FOR tenant_table IN
        SELECT c.oid, c.relname FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
          AND EXISTS (SELECT FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped)
        ORDER BY c.relname
    LOOP
        IF tenant_table.relname = ANY (exempt) THEN
            EXECUTE format('DROP TRIGGER IF EXISTS audit_capture_write ON public.%I', tenant_table.relname);
            EXECUTE format('DROP TRIGGER IF EXISTS audit_capture_update ON public.%I', tenant_table.relname);
            CONTINUE;
        END IF;
        -- The column classes, by name: a new table's columns are classed the day it lands, erring towards hiding.
        SELECT
            coalesce(array_agg(a.attname ORDER BY a.attnum) FILTER (WHERE a.attgenerated = '' AND (
                a.attname ~ '(^|_)(name|email|phone|number|ip|browser|user_agent|address|recipient|sender|url)$'
                OR a.attname IN ('value', 'custom_fields', 'attachments', 'visitor_id', 'client_sender', 'updated_by',
                                 'filename', 'file_name'))
                AND a.attname NOT IN ('shortcut_key', 'kind')), '{}'),
            coalesce(array_agg(a.attname ORDER BY a.attnum) FILTER (WHERE a.attgenerated = '' AND
                a.attname ~ '(^|_)(message|description|subject|feedback|comment|content|body|text|secret|detail|note|error|reason|title|signature|token)$'), '{}'),
            coalesce(array_agg(a.attname ORDER BY a.attnum) FILTER (WHERE a.attgenerated <> ''
                OR a.atttypid IN ('tsvector'::regtype, 'bytea'::regtype)
                OR a.attname = 'updated_at'
                OR a.attname IN (SELECT jsonb_array_elements_text(ignored_by_table -> tenant_table.relname))), '{}'),
            coalesce(array_agg(a.attname ORDER BY a.attnum) FILTER (WHERE a.attgenerated = '' AND
                a.attname ~ '(^|_)(email|address|recipient|sender)$' OR a.attname = 'value'), '{}')
        INTO personal, redacted, ignored, subject_columns
        FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = tenant_table.oid AND a.attnum > 0 AND NOT a.attisdropped;
        -- a personal column is not also a text column (a sender's email stays erasable, not redacted)
        redacted := ARRAY(SELECT r FROM unnest(redacted) r WHERE r <> ALL (personal));
        IF key_by_table ? tenant_table.relname THEN
            key_columns := ARRAY(SELECT jsonb_array_elements_text(key_by_table -> tenant_table.relname));
        ELSIF EXISTS (SELECT FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = tenant_table.oid AND a.attname = 'id' AND NOT a.attisdropped) THEN
            key_columns := ARRAY['id'];
        ELSE
            SELECT coalesce(array_agg(a.attname ORDER BY k.o), '{}') INTO key_columns
            FROM pg_catalog.pg_constraint pk
            CROSS JOIN LATERAL unnest(pk.conkey) WITH ORDINALITY AS k (attnum, o)
            JOIN pg_catalog.pg_attribute a ON a.attrelid = pk.conrelid AND a.attnum = k.attnum
            WHERE pk.conrelid = tenant_table.oid AND pk.contype = 'p'
              AND a.attname <> 'user_id' AND a.attname <> ALL (personal);
        END IF;
        -- the recorded columns as the WHEN clause compares them: a type without equality (json, xml, the
        -- geometric ones) by its text
        SELECT array_agg(format(CASE WHEN a.atttypid IN ('json'::regtype, 'xml'::regtype, 'point'::regtype,
                                                         'line'::regtype, 'lseg'::regtype, 'box'::regtype,
                                                         'path'::regtype, 'polygon'::regtype, 'circle'::regtype)
                                     THEN '%%1$s.%I::text' ELSE '%%1$s.%I' END, a.attname) ORDER BY a.attnum)
        INTO recorded
        FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = tenant_table.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> ALL (ignored);
        when_clause := format('(%s) IS DISTINCT FROM (%s)',
            (SELECT string_agg(format(r, 'old'), ', ') FROM unnest(recorded) r),
            (SELECT string_agg(format(r, 'new'), ', ') FROM unnest(recorded) r));
        IF cardinality(recorded) = 1 THEN
            when_clause := format('%s IS DISTINCT FROM %s', format(recorded[1], 'old'), format(recorded[1], 'new'));
        END IF;
        arguments := format('%L, %L, %L, %L, %L', personal, redacted, ignored, key_columns, subject_columns);
        wanted_write := format('CREATE OR REPLACE TRIGGER audit_capture_write AFTER INSERT OR DELETE ON public.%I '
                               'FOR EACH ROW EXECUTE FUNCTION public.audit_capture(%s)', tenant_table.relname, arguments);
        wanted_update := format('CREATE OR REPLACE TRIGGER audit_capture_update AFTER UPDATE ON public.%I FOR EACH ROW '
                                'WHEN (%s) EXECUTE FUNCTION public.audit_capture(%s)',
                                tenant_table.relname, when_clause, arguments);
        EXECUTE wanted_write;
        EXECUTE wanted_update;
    END LOOP;
END
$$;

-- The sealer: chains every tenant's unsealed entries, in id order within a run, after the tenant's head. Run by the
-- workflow sweep's `audit` step every minute and on demand (support.services.audit.seal). The chain order is the
-- seal order, not the id order: an entry whose transaction commits after a later id was sealed is chained by the
-- next run, after it, so nothing is ever inserted into the middle of a chain. A tenant's head row is locked for
-- the run (two sealers never chain one tenant at once); the writers never wait for it, they only insert.
-- SECURITY DEFINER: the runtime role may run it but has no privilege on what it writes. At most `batch` entries.
CREATE OR REPLACE FUNCTION public.audit_seal(batch integer DEFAULT 50000) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    tenant uuid;
    head public.audit_chain_state;
    e public.audit_entries;
    sealed integer := 0;
BEGIN
    FOR tenant IN SELECT DISTINCT a.user_id FROM public.audit_entries a WHERE a.seq IS NULL LOOP
        EXIT WHEN sealed >= batch;
        INSERT INTO public.audit_chain_state (user_id) VALUES (tenant) ON CONFLICT (user_id) DO NOTHING;
        SELECT * INTO head FROM public.audit_chain_state s WHERE s.user_id = tenant FOR UPDATE;
        FOR e IN
            SELECT * FROM public.audit_entries a WHERE a.user_id = tenant AND a.seq IS NULL
            ORDER BY a.id LIMIT batch - sealed FOR UPDATE
        LOOP
            e.seq := head.last_seq + 1;
            e.entry_hash := public.audit_entry_hash(head.last_hash, e);
            UPDATE public.audit_entries SET seq = e.seq, entry_hash = e.entry_hash WHERE id = e.id;
            head.last_seq := e.seq;
            head.last_hash := e.entry_hash;
            sealed := sealed + 1;
        END LOOP;
        UPDATE public.audit_chain_state
        SET last_seq = head.last_seq, last_hash = head.last_hash, sealed_at = now()
        WHERE user_id = tenant;
    END LOOP;
    RETURN sealed;
END
$$;
REVOKE ALL ON FUNCTION public.audit_seal(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.audit_seal(integer) TO support_app;

-- The check of one stretch of a tenant's chain: from the entry after `after_seq` (whose hash the caller vouches for,
-- `after_hash`; NULL: from the tenant's anchor) at most `max_entries` entries, each recomputed from its content and
-- its predecessor's hash, with its personal values (unless erased) against its digest; at the chain's end, the
-- last entry against the head the sealer recorded (a deleted tail). Answers how far it got and the first break:
-- `problem` is 'missing' (a sequence number skipped: an entry deleted), 'changed' (the content or the order differs
-- from what was sealed: an edit, a swap), 'personal values changed', or 'truncated'. The owner's, for make
-- verify-audit and the scheduled check; no role but the owner may run it.
CREATE OR REPLACE FUNCTION public.audit_verify(tenant uuid, after_seq bigint, after_hash bytea, max_entries integer)
RETURNS TABLE (checked integer, last_seq bigint, last_hash bytea, at_end boolean, broken_seq bigint, problem text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    head public.audit_chain_state;
    e public.audit_entries;
    p public.audit_personal_values;
    expected bytea;
BEGIN
    SELECT * INTO head FROM public.audit_chain_state s WHERE s.user_id = tenant;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 0, 0::bigint, NULL::bytea, true, NULL::bigint, NULL::text;
        RETURN;
    END IF;
    IF after_seq IS NULL OR after_seq < head.anchor_seq THEN
        last_seq := head.anchor_seq;
        last_hash := head.anchor_hash;
    ELSE
        last_seq := after_seq;
        last_hash := after_hash;
    END IF;
    checked := 0;
    at_end := false;
    FOR e IN
        SELECT * FROM public.audit_entries a WHERE a.user_id = tenant AND a.seq > last_seq
        ORDER BY a.seq LIMIT max_entries
    LOOP
        IF e.seq <> last_seq + 1 THEN
            broken_seq := last_seq + 1;
            problem := 'missing';
            RETURN NEXT;
            RETURN;
        END IF;
        expected := public.audit_entry_hash(last_hash, e);
        IF expected IS DISTINCT FROM e.entry_hash THEN
            broken_seq := e.seq;
            problem := 'changed';
            RETURN NEXT;
            RETURN;
        END IF;
        SELECT * INTO p FROM public.audit_personal_values v WHERE v.entry_id = e.id;
        IF FOUND AND (e.personal_digest IS NULL
                      OR sha256(p.salt || convert_to(p.vals::text, 'UTF8')) <> e.personal_digest) THEN
            broken_seq := e.seq;
            problem := 'personal values changed';
            RETURN NEXT;
            RETURN;
        END IF;
        last_seq := e.seq;
        last_hash := expected;
        checked := checked + 1;
    END LOOP;
    IF checked < max_entries THEN
        at_end := true;
        IF last_seq <> head.last_seq OR last_hash IS DISTINCT FROM head.last_hash THEN
            broken_seq := last_seq + 1;
            problem := CASE WHEN last_seq < head.last_seq THEN 'truncated' ELSE 'changed' END;
        END IF;
    END IF;
    RETURN NEXT;
END
$$;
REVOKE ALL ON FUNCTION public.audit_verify(uuid, bigint, bytea, integer) FROM PUBLIC;

-- The tenants with a chain (make verify-audit), the owner's.
CREATE OR REPLACE FUNCTION public.audit_chained_tenants() RETURNS TABLE (user_id uuid, last_seq bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT s.user_id, s.last_seq FROM public.audit_chain_state s ORDER BY s.user_id
$$;
REVOKE ALL ON FUNCTION public.audit_chained_tenants() FROM PUBLIC;

-- The scheduled check (the workflow sweep's `audit` step): every run verifies the next `budget` entries of the
-- chains, each tenant from where the last run left it (a rolling cursor in audit_chain_state: the whole of every
-- chain is verified again and again, at a bounded cost per run); a tenant at its chain's end starts over from its
-- anchor next time. Answers the tenants found broken (also kept in the state, `broken_seq` and `broken_problem`,
-- until a run finds the chain whole again). SECURITY DEFINER, run by the sweep's runtime role: it reads hashes and
-- answers tenant ids and sequence numbers only.
CREATE OR REPLACE FUNCTION public.audit_check(budget integer)
RETURNS TABLE (user_id uuid, broken_seq bigint, problem text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    s public.audit_chain_state;
    result record;
    left_over integer := budget;
BEGIN
    FOR s IN
        SELECT * FROM public.audit_chain_state c ORDER BY c.verified_at NULLS FIRST, c.user_id FOR UPDATE SKIP LOCKED
    LOOP
        EXIT WHEN left_over <= 0;
        SELECT * INTO result FROM public.audit_verify(s.user_id, s.verified_seq, s.verified_hash, left_over);
        left_over := left_over - result.checked - 1;
        IF result.problem IS NOT NULL THEN
            UPDATE public.audit_chain_state c
            SET broken_seq = result.broken_seq, broken_problem = result.problem, verified_seq = NULL,
                verified_hash = NULL, verified_at = now()
            WHERE c.user_id = s.user_id;
            user_id := s.user_id;
            broken_seq := result.broken_seq;
            problem := result.problem;
            RETURN NEXT;
        ELSIF result.at_end THEN
            UPDATE public.audit_chain_state c
            SET broken_seq = NULL, broken_problem = NULL, verified_seq = NULL, verified_hash = NULL,
                verified_at = now()
            WHERE c.user_id = s.user_id;
        ELSE
            UPDATE public.audit_chain_state c
            SET verified_seq = result.last_seq, verified_hash = result.last_hash
            WHERE c.user_id = s.user_id;
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION public.audit_check(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.audit_check(integer) TO support_app;

-- Refuses (42501) a `tenant` that is not the transaction's own (app.tenant_id, failing closed without it): the first
-- step of the functions below that take the tenant as an argument (`caller`, named in the message). Internal: the
-- owner's only (they run as the owner).
CREATE OR REPLACE FUNCTION public.audit_require_own_tenant(tenant uuid, caller text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF tenant IS DISTINCT FROM current_setting('app.tenant_id')::uuid THEN
        RAISE EXCEPTION '%: the tenant must be the transaction''s own', caller USING ERRCODE = '42501';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION public.audit_require_own_tenant(uuid, text) FROM PUBLIC;

-- Pruning (the retention job's, per tenant: support.services.audit.prune): deletes the tenant's sealed entries
-- older than `older_than`, oldest first, at most `batch`, and only a prefix of the chain (it stops at the first
-- entry that is newer, or not sealed yet), and records the last one deleted as the chain's anchor, so the rest still
-- verifies from there. Their personal values go with them. For the transaction's own tenant only (app.tenant_id,
-- failing closed without it), and never an entry of the last 365 days (the retention's floor for audit entries),
-- so a runtime role that may run it still cannot remove recent history. Answers the number deleted.
CREATE OR REPLACE FUNCTION public.audit_prune(tenant uuid, older_than timestamptz, batch integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    head public.audit_chain_state;
    deleted integer;
    new_anchor_seq bigint;
    new_anchor_hash bytea;
BEGIN
    PERFORM public.audit_require_own_tenant(tenant, 'audit_prune');
    IF older_than > now() - interval '365 days' THEN
        RAISE EXCEPTION 'audit_prune: audit entries are kept at least 365 days' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO head FROM public.audit_chain_state s WHERE s.user_id = tenant FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    WITH oldest AS (
        SELECT a.id, a.seq, a.occurred_at FROM public.audit_entries a
        WHERE a.user_id = tenant AND a.seq > head.anchor_seq
        ORDER BY a.seq LIMIT batch
    ), prefix AS (
        SELECT o.id, bool_and(o.occurred_at < older_than) OVER (ORDER BY o.seq) AS all_old FROM oldest o
    ), gone AS (
        DELETE FROM public.audit_entries a USING prefix
        WHERE a.id = prefix.id AND prefix.all_old
        RETURNING a.seq, a.entry_hash
    )
    SELECT count(*)::integer, max(g.seq), (array_agg(g.entry_hash ORDER BY g.seq DESC))[1]
    INTO deleted, new_anchor_seq, new_anchor_hash FROM gone g;
    IF deleted > 0 THEN
        -- the anchor: the last entry deleted, its sequence number and hash (the link its successor was sealed on)
        UPDATE public.audit_chain_state s
        SET anchor_seq = new_anchor_seq, anchor_hash = new_anchor_hash, verified_seq = NULL, verified_hash = NULL
        WHERE s.user_id = tenant;
    END IF;
    RETURN deleted;
END
$$;
REVOKE ALL ON FUNCTION public.audit_prune(uuid, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.audit_prune(uuid, timestamptz, integer) TO support_app;

-- When the tenant's oldest audit entry (after the chain's anchor) was written, or NULL: the retention step's list of
-- due tenants asks it (retention_tenants_due, owned by the analytics lister, which may see nothing of the audit).
CREATE OR REPLACE FUNCTION public.audit_oldest_entry_at(tenant uuid) RETURNS timestamptz
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT a.occurred_at FROM public.audit_entries a
    WHERE a.user_id = tenant AND a.seq IS NOT NULL
    ORDER BY a.seq LIMIT 1
$$;
REVOKE ALL ON FUNCTION public.audit_oldest_entry_at(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.audit_oldest_entry_at(uuid) TO support_analytics_lister;

-- The erasure of personal values (the privacy erasure calls it last, after it has anonymised the rows, whose
-- updates captured the old values under the same subjects): deletes the values kept for `subjects` (normalised
-- emails, 'support_tickets:<id>', 'live_chat_sessions:<id>', ...) of the transaction's own tenant. The entries stay
-- and still verify: the chain covers a digest of the values, with a salt that goes with them. Answers the number of
-- entries whose values were erased.
CREATE OR REPLACE FUNCTION public.audit_erase_subjects(tenant uuid, subjects text[]) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    erased integer;
BEGIN
    PERFORM public.audit_require_own_tenant(tenant, 'audit_erase_subjects');
    DELETE FROM public.audit_personal_values v
    WHERE v.user_id = tenant AND v.subject = ANY (ARRAY(SELECT lower(btrim(s)) FROM unnest(subjects) s));
    GET DIAGNOSTICS erased = ROW_COUNT;
    RETURN erased;
END
$$;
REVOKE ALL ON FUNCTION public.audit_erase_subjects(uuid, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.audit_erase_subjects(uuid, text[]) TO support_app;

-- A privacy erasure's last statement (support.services.privacy, in the transaction that marks the erasure done): the
-- personal values of every entry about the customer, whatever subject the capture filed them under: the subjects
-- given (their emails, normalised), the entries of their rows (their tickets and what hangs off them: thread entries,
-- feedback, files, inbound mail; their chats and messages; their contacts and the contacts' identities), and any
-- values that hold one of their emails. The entries
-- stay, and their chain still verifies (it covers the values by digest only). For the caller's own tenant only.
CREATE OR REPLACE FUNCTION public.audit_erase_customer(
    tenant uuid, subjects text[], ticket_ids uuid[], session_ids uuid[], contact_ids uuid[]
) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    erased integer;
BEGIN
    PERFORM public.audit_require_own_tenant(tenant, 'audit_erase_customer');
    WITH named (subject) AS (
        SELECT lower(btrim(x)) FROM unnest(subjects) x
        UNION ALL SELECT 'support_tickets:' || t FROM unnest(ticket_ids) t
        UNION ALL SELECT 'live_chat_sessions:' || x FROM unnest(session_ids) x
        UNION ALL SELECT 'support_contacts:' || c FROM unnest(contact_ids) c
    ), rows_of (table_name, row_id) AS (
        SELECT 'support_tickets', t::text FROM unnest(ticket_ids) t
        UNION ALL SELECT 'live_chat_sessions', x::text FROM unnest(session_ids) x
        UNION ALL SELECT 'support_contacts', c::text FROM unnest(contact_ids) c
        UNION ALL SELECT 'ticket_conversations', r.id::text FROM public.ticket_conversations r
            WHERE r.user_id = tenant AND r.ticket_id = ANY (ticket_ids)
        UNION ALL SELECT 'ticket_feedback', r.id::text FROM public.ticket_feedback r
            WHERE r.user_id = tenant AND r.ticket_id = ANY (ticket_ids)
        UNION ALL SELECT 'chat_messages', r.id::text FROM public.chat_messages r
            WHERE r.user_id = tenant AND r.session_id = ANY (session_ids)
        UNION ALL SELECT 'attachments', r.id::text FROM public.attachments r
            WHERE r.user_id = tenant AND (r.ticket_id = ANY (ticket_ids) OR r.session_id = ANY (session_ids))
        UNION ALL SELECT 'inbound_emails', r.id::text FROM public.inbound_emails r
            WHERE r.user_id = tenant AND r.ticket_id = ANY (ticket_ids)
    )
    DELETE FROM public.audit_personal_values v
    WHERE v.user_id = tenant
      AND (v.subject IN (SELECT n.subject FROM named n)
           OR v.entry_id IN (SELECT e.id FROM public.audit_entries e JOIN rows_of r
                                 ON e.table_name = r.table_name AND e.row_id = r.row_id
                             WHERE e.user_id = tenant)
           OR v.entry_id IN (SELECT e.id FROM public.audit_entries e
                             WHERE e.user_id = tenant AND e.table_name = 'contact_identities'
                               AND split_part(e.row_id, '/', 1) = ANY (contact_ids::text[]))
           -- and whatever else names them (a mail they sent that opened no ticket, filed under the desk's address):
           -- one pass over the tenant's personal values, once per erasure
           OR EXISTS (SELECT FROM unnest(subjects) x
                      WHERE btrim(x) <> '' AND strpos(lower(v.vals::text), lower(btrim(x))) > 0));
    GET DIAGNOSTICS erased = ROW_COUNT;
    RETURN erased;
END
$$;
REVOKE ALL ON FUNCTION public.audit_erase_customer(uuid, text[], uuid[], uuid[], uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.audit_erase_customer(uuid, text[], uuid[], uuid[], uuid[]) TO support_app;
