-- Automation rules (issue 18): per-tenant rules (an event, conditions, ordered actions), the events the desk's
-- changes write for them (an outbox, written by triggers in the same transaction as the change:
-- sql/definitions/automations.sql), and the record of every run. The service is support.services.automations.
-- Follows 0010's rules: row-level security on the new tables, exactly the grants the code uses (sql/privileges.toml).

-- 1. The rules. ----------------------------------------------------------------------------------------------------
-- `definition` holds the rule as validated by support.models.automations (conditions, actions, parameters, business
-- hours); `event` is a column of its own because the capture triggers look a tenant's enabled rules up by it.
-- `swept_until`: for a time-based rule, the sweep has considered everything up to this time (NULL: never swept, or
-- the rule changed since).
CREATE TABLE public.automation_rules (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    event       text NOT NULL CHECK (length(event) BETWEEN 1 AND 50),
    definition  jsonb NOT NULL CHECK (jsonb_typeof(definition) = 'object'),
    position    integer NOT NULL CHECK (position >= 0),
    enabled     boolean NOT NULL DEFAULT true,
    swept_until timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text CHECK (length(updated_by) <= 300),
    UNIQUE (user_id, id)
);
CREATE INDEX automation_rules_order_idx ON public.automation_rules (user_id, position, created_at, id);
CREATE INDEX automation_rules_event_idx ON public.automation_rules (user_id, event) WHERE enabled;

-- 2. The tenants that were given the default rules (the auto-close rules), once: a tenant that deletes one does not
-- get it back. A tenant is given them by its first ticket or chat (the capture triggers), or when an admin first
-- opens the rules; the tenants that exist today are given them below.
CREATE TABLE public.automation_tenants (
    user_id   uuid PRIMARY KEY,
    seeded_at timestamptz NOT NULL DEFAULT now()
);

-- 3. The events: an outbox. -----------------------------------------------------------------------------------------
-- Written by the change's own transaction (triggers on support_tickets, ticket_conversations, live_chat_sessions),
-- only when the tenant has an enabled rule on that event; by the sweep for the time-based events (`rule_id` then
-- names the one rule it is for, and `dedup_key` makes it once per rule, subject and stint); by the SLA sweep for
-- sla_at_risk and sla_breached (automation_record). `caused_by_rule` and `depth`: the change was a rule's action
-- (a rule never fires on its own change; a chain stops at a small depth). Run after the commit, then marked.
CREATE TABLE public.automation_events (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        uuid NOT NULL,
    event          text NOT NULL CHECK (length(event) BETWEEN 1 AND 50),
    ticket_id      uuid,
    session_id     uuid,
    rule_id        uuid,
    data           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(data) = 'object'),
    caused_by_rule uuid,
    depth          smallint NOT NULL DEFAULT 0 CHECK (depth >= 0),
    dedup_key      text CHECK (length(dedup_key) <= 300),
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    processed_at   timestamptz,
    FOREIGN KEY (user_id, ticket_id) REFERENCES public.support_tickets (user_id, id) ON DELETE CASCADE,
    FOREIGN KEY (user_id, session_id) REFERENCES public.live_chat_sessions (user_id, id) ON DELETE CASCADE,
    FOREIGN KEY (user_id, rule_id) REFERENCES public.automation_rules (user_id, id) ON DELETE CASCADE
);
CREATE INDEX automation_events_pending_idx ON public.automation_events (user_id, created_at, id)
    WHERE processed_at IS NULL;
CREATE UNIQUE INDEX automation_events_dedup_key ON public.automation_events (user_id, dedup_key)
    WHERE dedup_key IS NOT NULL;
CREATE INDEX automation_events_ticket_idx ON public.automation_events (user_id, ticket_id) WHERE ticket_id IS NOT NULL;
CREATE INDEX automation_events_session_idx ON public.automation_events (user_id, session_id)
    WHERE session_id IS NOT NULL;
CREATE INDEX automation_events_rule_idx ON public.automation_events (user_id, rule_id) WHERE rule_id IS NOT NULL;
CREATE INDEX automation_events_age_idx ON public.automation_events (processed_at) WHERE processed_at IS NOT NULL;

-- 4. The runs: one per event and rule (the unique key: a retry or a second runner never acts twice). --------------
-- Kept after the rule is deleted (rule_id NULL, its name kept) and the event pruned.
CREATE TABLE public.automation_runs (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL,
    event_id   uuid NOT NULL,
    rule_id    uuid,
    rule_name  text NOT NULL CHECK (length(rule_name) BETWEEN 1 AND 200),
    event      text NOT NULL CHECK (length(event) BETWEEN 1 AND 50),
    ticket_id  uuid,
    session_id uuid,
    outcome    text NOT NULL CHECK (outcome IN ('applied', 'skipped', 'failed')),
    error      text CHECK (length(error) <= 2000),
    actions    jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(actions) = 'array'),
    depth      smallint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (event_id, rule_id),
    FOREIGN KEY (user_id, rule_id) REFERENCES public.automation_rules (user_id, id) ON DELETE SET NULL (rule_id),
    FOREIGN KEY (user_id, ticket_id) REFERENCES public.support_tickets (user_id, id) ON DELETE CASCADE,
    FOREIGN KEY (user_id, session_id) REFERENCES public.live_chat_sessions (user_id, id) ON DELETE CASCADE
);
CREATE INDEX automation_runs_ticket_idx ON public.automation_runs (user_id, ticket_id, created_at, id)
    WHERE ticket_id IS NOT NULL;
CREATE INDEX automation_runs_session_idx ON public.automation_runs (user_id, session_id) WHERE session_id IS NOT NULL;
CREATE INDEX automation_runs_rule_idx ON public.automation_runs (user_id, rule_id) WHERE rule_id IS NOT NULL;

-- 5. Since when a ticket is in its status (the time-based event ticket_in_status): set by a trigger when the status
-- changes; NULL for a ticket whose status has not changed since this migration (its updated_at stands in: an older
-- ticket's last change is at or after its last status change). No rewrite, no backfill.
ALTER TABLE public.support_tickets ADD COLUMN status_changed_at timestamptz;
CREATE INDEX support_tickets_status_since_idx
    ON public.support_tickets (user_id, status, (coalesce(status_changed_at, updated_at)));

-- 6. A notification an automation mails to an address (notify_email): the email outbox's kind `automation`, its
-- text in `note`, to the address the rule names.
ALTER TABLE public.email_outbox DROP CONSTRAINT email_outbox_kind_check;
ALTER TABLE public.email_outbox ADD CONSTRAINT email_outbox_kind_check
    CHECK (kind IN ('received', 'replied', 'resolved', 'closed', 'automation'));
ALTER TABLE public.email_outbox ADD COLUMN note text CHECK (octet_length(note) <= 20000);

-- Row-level security: enabled here, forced (or not) with its tenant_isolation policy by
-- sql/definitions/row_level_security.sql. automation_rules, automation_tenants and automation_events are not forced:
-- the capture triggers (SECURITY DEFINER) look up rules and write events for any write, an owner's bulk load
-- without a tenant setting included, and the sweep lists the tenants with work (automation_sweep_work).
ALTER TABLE public.automation_rules ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.automation_tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.automation_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.automation_runs ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON public.automation_rules, public.automation_tenants, public.automation_events, public.automation_runs
    FROM PUBLIC;
GRANT SELECT, DELETE ON public.automation_rules TO support_app;
GRANT INSERT (user_id, name, event, definition, position, enabled, updated_by) ON public.automation_rules TO support_app;
GRANT UPDATE (name, event, definition, position, enabled, swept_until, updated_at, updated_by)
    ON public.automation_rules TO support_app;
GRANT SELECT ON public.automation_tenants TO support_app;
GRANT SELECT, DELETE ON public.automation_events TO support_app;
GRANT INSERT (user_id, event, ticket_id, session_id, rule_id, data, caused_by_rule, depth, dedup_key)
    ON public.automation_events TO support_app;
GRANT UPDATE (processed_at) ON public.automation_events TO support_app;
GRANT SELECT ON public.automation_runs TO support_app;
GRANT INSERT (user_id, event_id, rule_id, rule_name, event, ticket_id, session_id, outcome, error, actions, depth)
    ON public.automation_runs TO support_app;
GRANT UPDATE (outcome, error, actions) ON public.automation_runs TO support_app;
GRANT INSERT (note) ON public.email_outbox TO support_app;

-- 7. The default rules for the tenants that exist today (a tenant is any that has tickets, chats or agents). The same
-- two rules as automation_seed_defaults (sql/definitions/automations.sql), which gives them to every later tenant;
-- tests/integration/test_automations.py checks the two agree. The auto-close of resolved tickets starts from now
-- (swept_until): a ticket resolved within the last 3 days closes on time, an older resolved one is left as it is
-- (closing years of them at once would mail every one of those customers); idle chats are ended whatever their age. The totals tables are forced: lifted for this
-- transaction's reads only.
ALTER TABLE public.ticket_totals NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.chat_totals NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.support_agents NO FORCE ROW LEVEL SECURITY;
WITH tenants AS (
    SELECT user_id FROM public.ticket_totals
    UNION SELECT user_id FROM public.chat_totals
    UNION SELECT user_id FROM public.support_agents
), seeded AS (
    INSERT INTO public.automation_tenants (user_id) SELECT user_id FROM tenants RETURNING user_id
)
INSERT INTO public.automation_rules (user_id, name, event, definition, position, swept_until)
SELECT s.user_id, d.name, d.event, d.definition::jsonb, d.position,
    CASE WHEN d.event = 'ticket_in_status' THEN now() END
FROM seeded s CROSS JOIN (VALUES
    ('Auto-close resolved tickets', 'ticket_in_status',
     '{"parameters": {"status": "resolved", "hours": 72}, "conditions": {"all": []}, "actions": [{"type": "set_status", "value": "closed"}]}',
     0),
    ('Auto-close idle chats', 'chat_idle',
     '{"parameters": {"minutes": 30}, "conditions": {"all": []}, "actions": [{"type": "end_chat", "value": null}]}',
     1)
) AS d (name, event, definition, position);
ALTER TABLE public.ticket_totals FORCE ROW LEVEL SECURITY;
ALTER TABLE public.chat_totals FORCE ROW LEVEL SECURITY;
ALTER TABLE public.support_agents FORCE ROW LEVEL SECURITY;
