-- Running totals for the dashboard, so that it reads a few dozen rows per tenant instead of counting a
-- million tickets on every request. Kept by statement-level triggers with transition tables: a statement
-- adds what it inserted, subtracts what it deleted, and moves what it updated, one upsert per group.
-- They are tenant tables like the others (RLS forced); the triggers run as the caller, in the caller's
-- tenant transaction. Concurrent writes to the same group queue on its row, which is cheap at support-desk
-- write rates.

CREATE TABLE ticket_totals (
    user_id              uuid NOT NULL,
    status               text NOT NULL,
    priority             text NOT NULL,
    category             text,
    tickets              bigint NOT NULL DEFAULT 0,
    resolution_seconds   bigint NOT NULL DEFAULT 0,  -- sum over tickets with a resolution_time
    resolution_count     bigint NOT NULL DEFAULT 0,
    first_response_seconds bigint NOT NULL DEFAULT 0,  -- sum over tickets with a first_response_time
    first_response_count bigint NOT NULL DEFAULT 0,
    UNIQUE NULLS NOT DISTINCT (user_id, status, priority, category)
);

CREATE TABLE chat_totals (
    user_id          uuid NOT NULL,
    status           text NOT NULL,
    sessions         bigint NOT NULL DEFAULT 0,
    duration_seconds bigint NOT NULL DEFAULT 0,  -- sum over sessions with a duration
    duration_count   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, status)
);

CREATE TABLE feedback_totals (
    user_id      uuid PRIMARY KEY,
    ratings      bigint NOT NULL DEFAULT 0,
    rating_sum   bigint NOT NULL DEFAULT 0
);

CREATE FUNCTION add_ticket_totals() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO ticket_totals AS t (user_id, status, priority, category, tickets, resolution_seconds,
                                        resolution_count, first_response_seconds, first_response_count)
        SELECT user_id, status, priority, category, -count(*), -coalesce(sum(resolution_time), 0),
               -count(resolution_time), -coalesce(sum(first_response_time), 0), -count(first_response_time)
        FROM old_rows GROUP BY user_id, status, priority, category
        ON CONFLICT (user_id, status, priority, category) DO UPDATE SET
            tickets = t.tickets + excluded.tickets,
            resolution_seconds = t.resolution_seconds + excluded.resolution_seconds,
            resolution_count = t.resolution_count + excluded.resolution_count,
            first_response_seconds = t.first_response_seconds + excluded.first_response_seconds,
            first_response_count = t.first_response_count + excluded.first_response_count;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO ticket_totals AS t (user_id, status, priority, category, tickets, resolution_seconds,
                                        resolution_count, first_response_seconds, first_response_count)
        SELECT user_id, status, priority, category, count(*), coalesce(sum(resolution_time), 0),
               count(resolution_time), coalesce(sum(first_response_time), 0), count(first_response_time)
        FROM new_rows GROUP BY user_id, status, priority, category
        ON CONFLICT (user_id, status, priority, category) DO UPDATE SET
            tickets = t.tickets + excluded.tickets,
            resolution_seconds = t.resolution_seconds + excluded.resolution_seconds,
            resolution_count = t.resolution_count + excluded.resolution_count,
            first_response_seconds = t.first_response_seconds + excluded.first_response_seconds,
            first_response_count = t.first_response_count + excluded.first_response_count;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER support_tickets_totals_insert AFTER INSERT ON support_tickets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION add_ticket_totals();
CREATE TRIGGER support_tickets_totals_update AFTER UPDATE ON support_tickets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION add_ticket_totals();
CREATE TRIGGER support_tickets_totals_delete AFTER DELETE ON support_tickets
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION add_ticket_totals();

CREATE FUNCTION add_chat_totals() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO chat_totals AS c (user_id, status, sessions, duration_seconds, duration_count)
        SELECT user_id, status, -count(*), -coalesce(sum(duration), 0), -count(duration)
        FROM old_rows GROUP BY user_id, status
        ON CONFLICT (user_id, status) DO UPDATE SET
            sessions = c.sessions + excluded.sessions,
            duration_seconds = c.duration_seconds + excluded.duration_seconds,
            duration_count = c.duration_count + excluded.duration_count;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO chat_totals AS c (user_id, status, sessions, duration_seconds, duration_count)
        SELECT user_id, status, count(*), coalesce(sum(duration), 0), count(duration)
        FROM new_rows GROUP BY user_id, status
        ON CONFLICT (user_id, status) DO UPDATE SET
            sessions = c.sessions + excluded.sessions,
            duration_seconds = c.duration_seconds + excluded.duration_seconds,
            duration_count = c.duration_count + excluded.duration_count;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER live_chat_sessions_totals_insert AFTER INSERT ON live_chat_sessions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION add_chat_totals();
CREATE TRIGGER live_chat_sessions_totals_update AFTER UPDATE ON live_chat_sessions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION add_chat_totals();
CREATE TRIGGER live_chat_sessions_totals_delete AFTER DELETE ON live_chat_sessions
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION add_chat_totals();

CREATE FUNCTION add_feedback_totals() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO feedback_totals AS f (user_id, ratings, rating_sum)
        SELECT user_id, -count(*), -sum(rating) FROM old_rows GROUP BY user_id
        ON CONFLICT (user_id) DO UPDATE SET
            ratings = f.ratings + excluded.ratings, rating_sum = f.rating_sum + excluded.rating_sum;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO feedback_totals AS f (user_id, ratings, rating_sum)
        SELECT user_id, count(*), sum(rating) FROM new_rows GROUP BY user_id
        ON CONFLICT (user_id) DO UPDATE SET
            ratings = f.ratings + excluded.ratings, rating_sum = f.rating_sum + excluded.rating_sum;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER ticket_feedback_totals_insert AFTER INSERT ON ticket_feedback
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION add_feedback_totals();
CREATE TRIGGER ticket_feedback_totals_update AFTER UPDATE ON ticket_feedback
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION add_feedback_totals();
CREATE TRIGGER ticket_feedback_totals_delete AFTER DELETE ON ticket_feedback
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION add_feedback_totals();

-- The same row-level security as every tenant table; the runtime role reads them and its triggers write.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['ticket_totals', 'chat_totals', 'feedback_totals']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (user_id = current_setting(''app.tenant_id'')::uuid) '
            'WITH CHECK (user_id = current_setting(''app.tenant_id'')::uuid)', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I TO support_app', t);
    END LOOP;
END
$$;

-- Backfill from the rows already there. The owner is subject to the forced policies, which would hide
-- every row without a tenant: lift them for this transaction only (ALTER TABLE locks until commit).
ALTER TABLE support_tickets NO FORCE ROW LEVEL SECURITY;
ALTER TABLE live_chat_sessions NO FORCE ROW LEVEL SECURITY;
ALTER TABLE ticket_feedback NO FORCE ROW LEVEL SECURITY;
ALTER TABLE ticket_totals NO FORCE ROW LEVEL SECURITY;
ALTER TABLE chat_totals NO FORCE ROW LEVEL SECURITY;
ALTER TABLE feedback_totals NO FORCE ROW LEVEL SECURITY;
INSERT INTO ticket_totals (user_id, status, priority, category, tickets, resolution_seconds, resolution_count,
                           first_response_seconds, first_response_count)
SELECT user_id, status, priority, category, count(*), coalesce(sum(resolution_time), 0), count(resolution_time),
       coalesce(sum(first_response_time), 0), count(first_response_time)
FROM support_tickets GROUP BY user_id, status, priority, category;
INSERT INTO chat_totals (user_id, status, sessions, duration_seconds, duration_count)
SELECT user_id, status, count(*), coalesce(sum(duration), 0), count(duration)
FROM live_chat_sessions GROUP BY user_id, status;
INSERT INTO feedback_totals (user_id, ratings, rating_sum)
SELECT user_id, count(*), sum(rating) FROM ticket_feedback GROUP BY user_id;
ALTER TABLE support_tickets FORCE ROW LEVEL SECURITY;
ALTER TABLE live_chat_sessions FORCE ROW LEVEL SECURITY;
ALTER TABLE ticket_feedback FORCE ROW LEVEL SECURITY;
ALTER TABLE ticket_totals FORCE ROW LEVEL SECURITY;
ALTER TABLE chat_totals FORCE ROW LEVEL SECURITY;
ALTER TABLE feedback_totals FORCE ROW LEVEL SECURITY;

-- The daily trends read a week of rows by creation time.
CREATE INDEX live_chat_sessions_started_idx ON live_chat_sessions (user_id, session_start_time);
