-- Every ticket knows its channel and a short human reference; phone calls are conversation entries (issue 17).
-- Follows 0010's rules: row-level security on the new tables, exactly the grants the code uses
-- (sql/privileges.toml). The triggers and functions that keep what is added here live in sql/definitions
-- (ticket_references.sql, running_totals.sql, dashboard.sql, recount.sql, updated_at.sql), applied in this same transaction.

-- 1. The channel a ticket came in by. ---------------------------------------------------------------------------
-- Every ticket so far was made through the API. A constant default adds the column without rewriting the table;
-- the CHECK is one scan of it. The channel is set on insert and never changes (no UPDATE grant).
ALTER TABLE public.support_tickets
    ADD COLUMN channel text NOT NULL DEFAULT 'api'
        CONSTRAINT support_tickets_channel_check
        CHECK (channel IN ('api', 'email', 'web_form', 'chat', 'phone', 'social'));
-- GET /tickets?channel= pages newest first like the other filters, each with its index in that order.
CREATE INDEX support_tickets_channel_idx ON public.support_tickets (user_id, channel, created_at DESC, id DESC);
-- The search takes the channel filter too (sql/definitions/ticket_search.sql): the old signature goes.
DROP FUNCTION public.search_ticket_ids(text, integer, timestamptz, uuid, text, text, uuid, text);

-- 2. The ticket's reference (#1001, #1002, ... per tenant). -----------------------------------------------------
-- Assigned on insert by a trigger (sql/definitions/ticket_references.sql) from the tenant's counter row below, so
-- every path that creates tickets (the API, email, the web form, a chat, a bulk load) gets one, and nothing the
-- API sends can choose it (no INSERT grant on the column). NULL only for a ticket created before this migration
-- until the backfill reaches it (support.db.references): the column cannot be NOT NULL before that, and the
-- backfill runs after this transaction in bounded batches, each its own commit, so that a million tickets never
-- hold one transaction or a lock on the table.
ALTER TABLE public.support_tickets ADD COLUMN reference bigint CONSTRAINT support_tickets_reference_check
    CHECK (reference > 0);
-- Unique per tenant (several NULLs allowed until the backfill is done); also the lookup of a search by reference
-- and the trigger's "highest reference so far" (one index descent).
CREATE UNIQUE INDEX support_tickets_reference_key ON public.support_tickets (user_id, reference);

-- The highest reference handed out per tenant. Never goes down, so a deleted ticket's reference is never reused
-- (it may still be in a customer's inbox). A tenant's first ticket is #1001: references are short, and a
-- four-digit start does not tell a customer that they are the desk's third.
CREATE TABLE public.ticket_reference_counters (
    user_id        uuid PRIMARY KEY,
    last_reference bigint NOT NULL CHECK (last_reference >= 1000)
);

-- Both tables are the owner's alone (the trigger's and the backfill's): RLS enabled, not forced
-- (sql/definitions/row_level_security.sql), no grant to any other role.
-- Where the backfill of each tenant stands: the next reference to give and the last ticket given one, in
-- (created_at, id) order, so each batch is one index range from there and the old tickets are numbered in the
-- order they were created. A tenant's row is deleted when its last old ticket has a reference.
CREATE TABLE public.ticket_reference_backfill (
    user_id          uuid PRIMARY KEY,
    next_reference   bigint NOT NULL CHECK (next_reference > 1000),
    ceiling          bigint NOT NULL,  -- the last reference reserved for this tenant's old tickets
    after_created_at timestamptz,
    after_id         uuid
);

-- Reserve a range per tenant for the tickets already there: 1001 .. 1000 + their count. A ticket created from now
-- on gets a reference above it, so the backfill and new tickets never meet, whichever commits first. The owner is
-- subject to the forced policies: lift them for this transaction only (ALTER TABLE locks until commit).
ALTER TABLE public.support_tickets NO FORCE ROW LEVEL SECURITY;
INSERT INTO public.ticket_reference_counters (user_id, last_reference)
SELECT user_id, 1000 + count(*) FROM public.support_tickets GROUP BY user_id;
INSERT INTO public.ticket_reference_backfill (user_id, next_reference, ceiling)
SELECT user_id, 1001, last_reference FROM public.ticket_reference_counters;
ALTER TABLE public.support_tickets FORCE ROW LEVEL SECURITY;

ALTER TABLE public.ticket_reference_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.ticket_reference_backfill ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.ticket_reference_counters, public.ticket_reference_backfill FROM PUBLIC;
-- The trigger runs as the owner: the runtime role reads a counter only through its tickets.

-- 3. The running totals by channel. -----------------------------------------------------------------------------
-- A ticket's channel joins its group in ticket_totals (status, priority, category, channel): the dashboard's
-- ticketsByChannel comes from the same few rows in the same statement, and a create still upserts one group row
-- (a table of channel totals would be a second row locked by every create). Existing groups are all `api`.
ALTER TABLE public.ticket_totals ADD COLUMN channel text NOT NULL DEFAULT 'api';
ALTER TABLE public.ticket_totals DROP CONSTRAINT ticket_totals_user_id_status_priority_category_key;
ALTER TABLE public.ticket_totals ADD CONSTRAINT ticket_totals_group_key
    UNIQUE NULLS NOT DISTINCT (user_id, status, priority, category, channel);

-- 4. The daily analytics by channel. ----------------------------------------------------------------------------
-- As tickets_by_category: the tickets created on the day, by channel. Every ticket rolled up so far was `api`, so
-- the rows already there are exact as {"api": tickets created}.
ALTER TABLE public.support_analytics
    ADD COLUMN tickets_by_channel jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tickets_by_channel) = 'object');
ALTER TABLE public.support_analytics_cumulative
    ADD COLUMN tickets_by_channel jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tickets_by_channel) = 'object');
ALTER TABLE public.support_analytics NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.support_analytics_cumulative NO FORCE ROW LEVEL SECURITY;
UPDATE public.support_analytics SET tickets_by_channel = jsonb_build_object('api', total_tickets_created)
WHERE total_tickets_created > 0;
UPDATE public.support_analytics_cumulative SET tickets_by_channel = jsonb_build_object('api', total_tickets_created)
WHERE total_tickets_created > 0;
ALTER TABLE public.support_analytics FORCE ROW LEVEL SECURITY;
ALTER TABLE public.support_analytics_cumulative FORCE ROW LEVEL SECURITY;

-- 5. Phone calls: a conversation entry of their own kind. -------------------------------------------------------
-- Columns of ticket_conversations, not a table of calls: a call is one entry of the thread, listed in its order by
-- the thread's index with no join, written by one insert; `kind` is the place the other channels' entries (an
-- email's) take too. The call's fields are typed and checked, present exactly when the entry is a call. The call's
-- notes are the entry's message. (The new foreign key's check reads both tables as the owner: the forced policies
-- lifted for this transaction only.)
ALTER TABLE public.ticket_conversations NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.support_agents NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.ticket_conversations
    ADD COLUMN kind text NOT NULL DEFAULT 'message' CONSTRAINT ticket_conversations_kind_check
        CHECK (kind IN ('message', 'call')),
    ADD COLUMN call_direction text CHECK (call_direction IN ('inbound', 'outbound')),
    ADD COLUMN caller_number text CHECK (length(caller_number) BETWEEN 3 AND 40),
    ADD COLUMN call_duration_seconds integer CHECK (call_duration_seconds BETWEEN 0 AND 86400),
    ADD COLUMN agent_id uuid,
    ADD CONSTRAINT ticket_conversations_call_check
        CHECK ((kind = 'call') = (call_direction IS NOT NULL AND call_duration_seconds IS NOT NULL)),
    ADD CONSTRAINT ticket_conversations_agent_fkey FOREIGN KEY (user_id, agent_id)
        REFERENCES public.support_agents (user_id, id) ON DELETE SET NULL (agent_id);
ALTER TABLE public.ticket_conversations FORCE ROW LEVEL SECURITY;
ALTER TABLE public.support_agents FORCE ROW LEVEL SECURITY;
-- An agent's delete finds their calls along this, not by a scan of every thread.
CREATE INDEX ticket_conversations_agent_idx ON public.ticket_conversations (user_id, agent_id)
    WHERE agent_id IS NOT NULL;

-- The runtime role: the new columns it writes.
GRANT INSERT (channel) ON public.support_tickets TO support_app;
GRANT INSERT (kind, call_direction, caller_number, call_duration_seconds, agent_id)
    ON public.ticket_conversations TO support_app;
-- The analytics job: the channel it counts and the figures it writes.
GRANT SELECT (channel) ON public.support_tickets TO support_analytics_job;
GRANT INSERT (tickets_by_channel), UPDATE (tickets_by_channel) ON public.support_analytics TO support_analytics_job;
GRANT INSERT (tickets_by_channel), UPDATE (tickets_by_channel)
    ON public.support_analytics_cumulative TO support_analytics_job;
