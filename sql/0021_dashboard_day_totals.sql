-- The dashboard's week from running totals per UTC day, so that it reads seven rows whatever a tenant's volume,
-- and "today" and the trend count the same thing at every hour.
--
-- Before: the week's trends read each past day from its rollup row (support_analytics, written by the daily job)
-- and today, and every past day without a row, from the tickets and feedback themselves. Right after a deploy, or
-- for a new tenant, no day is rolled up, and at 1,000,000 tickets (1,370 a day) that was 8,000 index entries to
-- group by day on every call: the dashboard took 2.4x its time at 10,000 tickets (bench/RESULTS.md, issue 15).
-- Today's count was `created_at >= midnight` with no end, from a clock read before the snapshot: a ticket created
-- just after midnight could count in the day before's "today" and then move to the new day.
--
-- Now: ticket_day_totals (tickets created per tenant and UTC day) and feedback_day_totals (ratings given per tenant
-- and UTC day: their count and sum), kept by statement-level triggers exactly as the running totals of sql/0007 and
-- sql/0010 are (as the owner, one upsert per statement, groups at zero deleted, applied in key order). The
-- dashboard reads a past day from its rollup row when it has one (a day's figure is what happened that day, even
-- if a ticket is deleted later) and from these otherwise; today always from these. The day of a row is the UTC date
-- of its created_at, as the rollup's (services/analytics.py).
--
-- Writes: a ticket's create also upserts its tenant's row of the day, so a tenant's concurrent creates queue on
-- that row from their trigger to their commit (one round trip), as creates of one priority and category already
-- queue on their ticket_totals group. Tickets and feedback have tables of their own, so a transaction that adds
-- both never holds one row while waiting for another of the same table in the opposite order.

CREATE TABLE public.ticket_day_totals (
    user_id uuid   NOT NULL,
    day     date   NOT NULL,  -- UTC
    tickets bigint NOT NULL DEFAULT 0,  -- created on the day
    PRIMARY KEY (user_id, day)
);

CREATE TABLE public.feedback_day_totals (
    user_id    uuid   NOT NULL,
    day        date   NOT NULL,  -- UTC
    ratings    bigint NOT NULL DEFAULT 0,  -- feedback given on the day
    rating_sum bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
);

-- Row-level security: enabled here (the owner's backfill below is not subject to it until it is forced); forced,
-- with the tenant_isolation policy, by sql/definitions/row_level_security.sql. The triggers that keep the tables
-- and the functions they call are in sql/definitions/day_totals.sql, applied in the same transaction as this
-- migration (support.db.migrations), so no write falls between the backfill and the triggers.
ALTER TABLE public.ticket_day_totals ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.feedback_day_totals ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.ticket_day_totals, public.feedback_day_totals FROM PUBLIC;
GRANT SELECT ON public.ticket_day_totals, public.feedback_day_totals TO support_app;

-- Backfill from the rows already there. The owner is subject to the forced policies of the source tables, which
-- would hide every row without a tenant: lift them for this transaction only (ALTER TABLE locks until commit, so
-- no write is missed).
ALTER TABLE public.support_tickets NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.ticket_feedback NO FORCE ROW LEVEL SECURITY;
INSERT INTO public.ticket_day_totals (user_id, day, tickets)
SELECT user_id, (created_at AT TIME ZONE 'UTC')::date, count(*) FROM public.support_tickets GROUP BY 1, 2;
INSERT INTO public.feedback_day_totals (user_id, day, ratings, rating_sum)
SELECT user_id, (created_at AT TIME ZONE 'UTC')::date, count(*), sum(rating) FROM public.ticket_feedback GROUP BY 1, 2;
ALTER TABLE public.support_tickets FORCE ROW LEVEL SECURITY;
ALTER TABLE public.ticket_feedback FORCE ROW LEVEL SECURITY;

-- The five top agents in the order the dashboard ranks them, so that the top five are five index entries instead of a
-- sort of every agent (500 at the cap: with the agents by status, most of what a big desk's dashboard cost more
-- than a small one's once the week was bounded). The figures change on a resolution or a rating, not on every
-- status or chat count change of an agent.
CREATE INDEX support_agents_top_idx
    ON public.support_agents (user_id, total_tickets_resolved DESC, average_rating DESC NULLS LAST, agent_name, id);


-- The dashboard's figures take their own day now (sql/definitions/dashboard.sql): the old signature goes.
DROP FUNCTION public.dashboard_figures(uuid, timestamptz, date, date);
