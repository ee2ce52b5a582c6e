-- The analytics job reads the columns its figures are made of, not whole rows (issue 15, minor 4).
--
-- 0012 granted support_analytics_job SELECT on the four source tables whole, so a stolen job credential read
-- every message text, customer name, email and phone, and every feedback comment, though the rollup
-- (layers/support/support/services/analytics.py, _DAY_FIGURES) only counts and times them. Here its SELECT is
-- narrowed to exactly the columns that statement names: the tenant column (also what the row-level security
-- policies compare), times, statuses, durations, the assigned agent, the sender's type and the rating.
-- Nothing else changes for the job (its writes to support_analytics and support_analytics_cumulative, and
-- analytics_tenants(), which runs as support_analytics_lister with column grants of its own since 0012).
-- sql/privileges.toml lists the same columns; tests/integration/test_privileges.py compares them with the catalog.

REVOKE SELECT ON public.support_tickets, public.live_chat_sessions, public.chat_messages, public.ticket_feedback
    FROM support_analytics_job;

GRANT SELECT (user_id, created_at, status, priority, category, resolved_at, resolution_time, first_responded_at,
              first_response_time)
    ON public.support_tickets TO support_analytics_job;
GRANT SELECT (id, user_id, session_start_time, session_end_time, duration, assigned_agent_id)
    ON public.live_chat_sessions TO support_analytics_job;
GRANT SELECT (user_id, session_id, sender_type, created_at)
    ON public.chat_messages TO support_analytics_job;
GRANT SELECT (user_id, created_at, rating)
    ON public.ticket_feedback TO support_analytics_job;
