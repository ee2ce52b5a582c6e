-- The sums and counts behind each day's averages (layers/support/support/services/analytics.py), so that a range's
-- means are exact means weighted by their counts (GET /api/support/analytics/summary), not means of the days'
-- rounded means. Every figure of a day is additive (a count or a sum of events that happened that day), so a
-- range's figure is the sum of its days'. Written only by the rollup job (support_analytics_job), like the rest.
--   first_response_count/seconds: the tickets first answered that day, and the sum of their first response times;
--   resolution_count/seconds:     the tickets resolved that day (with a resolution time), and the sum of those;
--   chat_duration_count/seconds:  the sessions ended that day (with a duration), and the sum of their durations;
--   agent_response_count/seconds: the sessions started that day that got an agent message, and their waits' sum;
--   rating_count/rating_sum:      the ticket feedback given that day, and the sum of its ratings.
-- A row rolled up before this migration has zeros in them until its day is rolled up again (make backfill, or
-- the backfill event); the job shipped with this change, so outside development there are none.
ALTER TABLE public.support_analytics
    ADD COLUMN first_response_count   integer NOT NULL DEFAULT 0 CHECK (first_response_count >= 0),
    ADD COLUMN first_response_seconds bigint  NOT NULL DEFAULT 0 CHECK (first_response_seconds >= 0),
    ADD COLUMN resolution_count       integer NOT NULL DEFAULT 0 CHECK (resolution_count >= 0),
    ADD COLUMN resolution_seconds     bigint  NOT NULL DEFAULT 0 CHECK (resolution_seconds >= 0),
    ADD COLUMN chat_duration_count    integer NOT NULL DEFAULT 0 CHECK (chat_duration_count >= 0),
    ADD COLUMN chat_duration_seconds  bigint  NOT NULL DEFAULT 0 CHECK (chat_duration_seconds >= 0),
    ADD COLUMN agent_response_count   integer NOT NULL DEFAULT 0 CHECK (agent_response_count >= 0),
    ADD COLUMN agent_response_seconds bigint  NOT NULL DEFAULT 0 CHECK (agent_response_seconds >= 0),
    ADD COLUMN rating_count           integer NOT NULL DEFAULT 0 CHECK (rating_count >= 0),
    ADD COLUMN rating_sum             bigint  NOT NULL DEFAULT 0 CHECK (rating_sum >= 0);

GRANT INSERT (first_response_count, first_response_seconds, resolution_count, resolution_seconds,
              chat_duration_count, chat_duration_seconds, agent_response_count, agent_response_seconds,
              rating_count, rating_sum)
    ON public.support_analytics TO support_analytics_job;
GRANT UPDATE (first_response_count, first_response_seconds, resolution_count, resolution_seconds,
              chat_duration_count, chat_duration_seconds, agent_response_count, agent_response_seconds,
              rating_count, rating_sum)
    ON public.support_analytics TO support_analytics_job;
