-- The eight tables of the spec. `user_id` is the tenant: the merchant account that owns the desk.
-- Times are timestamptz; durations are whole seconds; ids are UUIDs.
-- Cross-table references carry the tenant too (composite foreign keys on (user_id, id)), so a row can
-- never point at another tenant's row, whatever the application does.

CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TABLE support_agents (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                 uuid NOT NULL,
    agent_name              text NOT NULL CHECK (length(agent_name) BETWEEN 1 AND 200),
    agent_email             text NOT NULL CHECK (length(agent_email) BETWEEN 3 AND 320),
    department              text CHECK (length(department) <= 100),
    skills                  jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(skills) = 'array'),
    status                  text NOT NULL DEFAULT 'offline'
                            CHECK (status IN ('available', 'busy', 'away', 'offline')),
    current_chats           integer NOT NULL DEFAULT 0 CHECK (current_chats >= 0),
    max_concurrent_chats    integer NOT NULL DEFAULT 5 CHECK (max_concurrent_chats BETWEEN 1 AND 50),
    total_tickets_resolved  integer NOT NULL DEFAULT 0 CHECK (total_tickets_resolved >= 0),
    average_resolution_time integer CHECK (average_resolution_time >= 0),
    average_rating          numeric(3, 2) CHECK (average_rating BETWEEN 1 AND 5),
    response_time_average   integer CHECK (response_time_average >= 0),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    last_activity_at        timestamptz,
    UNIQUE (user_id, id),
    CHECK (current_chats <= max_concurrent_chats)
);
CREATE UNIQUE INDEX support_agents_email_key ON support_agents (user_id, lower(agent_email));
CREATE INDEX support_agents_list_idx ON support_agents (user_id, created_at DESC, id DESC);
CREATE INDEX support_agents_status_idx ON support_agents (user_id, status);

CREATE TABLE support_tickets (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid NOT NULL,
    customer_name       text NOT NULL CHECK (length(customer_name) BETWEEN 1 AND 200),
    customer_email      text NOT NULL CHECK (length(customer_email) BETWEEN 3 AND 320),
    customer_phone      text CHECK (length(customer_phone) <= 40),
    subject             text NOT NULL CHECK (length(subject) BETWEEN 1 AND 500),
    description         text CHECK (octet_length(description) <= 51200),
    category            text CHECK (length(category) <= 100),
    priority            text NOT NULL DEFAULT 'medium' CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    status              text NOT NULL DEFAULT 'open'
                        CHECK (status IN ('open', 'in_progress', 'waiting_customer', 'resolved', 'closed')),
    assigned_agent_id   uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    resolved_at         timestamptz,
    first_response_time integer CHECK (first_response_time >= 0),
    resolution_time     integer CHECK (resolution_time >= 0),
    custom_fields       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(custom_fields) = 'object'),
    -- Case-insensitive word and prefix search over subject, description, customer name and email.
    -- 'simple' keeps names and addresses unstemmed; the email also counts as its local part and domain.
    search_vector       tsvector GENERATED ALWAYS AS (
                            to_tsvector('simple',
                                subject || ' ' || coalesce(description, '') || ' ' || customer_name || ' '
                                || customer_email || ' ' || replace(customer_email, '@', ' '))
                        ) STORED,
    UNIQUE (user_id, id),
    FOREIGN KEY (user_id, assigned_agent_id) REFERENCES support_agents (user_id, id)
        ON DELETE SET NULL (assigned_agent_id)
);
-- Keyset pagination is newest first on (created_at, id); each filter has an index in that order.
CREATE INDEX support_tickets_list_idx ON support_tickets (user_id, created_at DESC, id DESC);
CREATE INDEX support_tickets_status_idx ON support_tickets (user_id, status, created_at DESC, id DESC);
CREATE INDEX support_tickets_priority_idx ON support_tickets (user_id, priority, created_at DESC, id DESC);
CREATE INDEX support_tickets_agent_idx ON support_tickets (user_id, assigned_agent_id, created_at DESC, id DESC)
    WHERE assigned_agent_id IS NOT NULL;
CREATE INDEX support_tickets_category_idx ON support_tickets (user_id, category, created_at DESC, id DESC)
    WHERE category IS NOT NULL;
CREATE INDEX support_tickets_search_idx ON support_tickets USING gin (search_vector);

CREATE TABLE ticket_conversations (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ticket_id    uuid NOT NULL,
    user_id      uuid NOT NULL,
    sender_type  text NOT NULL CHECK (sender_type IN ('customer', 'agent', 'system')),
    sender_name  text NOT NULL CHECK (length(sender_name) BETWEEN 1 AND 200),
    sender_email text CHECK (length(sender_email) <= 320),
    message      text NOT NULL CHECK (octet_length(message) BETWEEN 1 AND 51200),
    is_internal  boolean NOT NULL DEFAULT false,
    attachments  jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(attachments) = 'array'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (user_id, ticket_id) REFERENCES support_tickets (user_id, id) ON DELETE CASCADE
);
CREATE INDEX ticket_conversations_thread_idx ON ticket_conversations (ticket_id, created_at, id);

CREATE TABLE live_chat_sessions (
    id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                   uuid NOT NULL,
    visitor_id                text NOT NULL CHECK (length(visitor_id) BETWEEN 1 AND 200),
    visitor_name              text CHECK (length(visitor_name) <= 200),
    visitor_email             text CHECK (length(visitor_email) <= 320),
    status                    text NOT NULL DEFAULT 'waiting'
                              CHECK (status IN ('active', 'waiting', 'transferred', 'closed')),
    assigned_agent_id         uuid,
    transferred_from_agent_id uuid,
    visitor_ip                inet,
    visitor_browser           text CHECK (length(visitor_browser) <= 1000),
    session_start_time        timestamptz NOT NULL DEFAULT now(),
    session_end_time          timestamptz,
    total_messages            integer NOT NULL DEFAULT 0 CHECK (total_messages >= 0),
    message_count             integer NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    duration                  integer CHECK (duration >= 0),
    rating                    smallint CHECK (rating BETWEEN 1 AND 5),
    feedback                  text CHECK (length(feedback) <= 5000),
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, id),
    FOREIGN KEY (user_id, assigned_agent_id) REFERENCES support_agents (user_id, id)
        ON DELETE SET NULL (assigned_agent_id),
    FOREIGN KEY (user_id, transferred_from_agent_id) REFERENCES support_agents (user_id, id)
        ON DELETE SET NULL (transferred_from_agent_id),
    CHECK (session_end_time IS NULL OR session_end_time >= session_start_time)
);
CREATE INDEX live_chat_sessions_list_idx ON live_chat_sessions (user_id, created_at DESC, id DESC);
CREATE INDEX live_chat_sessions_status_idx ON live_chat_sessions (user_id, status, created_at DESC, id DESC);
CREATE INDEX live_chat_sessions_agent_idx ON live_chat_sessions (user_id, assigned_agent_id)
    WHERE assigned_agent_id IS NOT NULL;

CREATE TABLE chat_messages (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id      uuid NOT NULL,
    user_id         uuid NOT NULL,
    sender_type     text NOT NULL CHECK (sender_type IN ('customer', 'agent', 'system')),
    sender_name     text CHECK (length(sender_name) <= 200),
    message         text NOT NULL CHECK (octet_length(message) BETWEEN 1 AND 51200),
    attachment_url  text CHECK (length(attachment_url) <= 2048),
    attachment_type text CHECK (length(attachment_type) <= 255),
    is_read         boolean NOT NULL DEFAULT false,
    read_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (user_id, session_id) REFERENCES live_chat_sessions (user_id, id) ON DELETE CASCADE
);
CREATE INDEX chat_messages_session_idx ON chat_messages (session_id, created_at, id);

CREATE TABLE canned_responses (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          uuid NOT NULL,
    response_title   text NOT NULL CHECK (length(response_title) BETWEEN 1 AND 200),
    response_content text NOT NULL CHECK (octet_length(response_content) BETWEEN 1 AND 51200),
    shortcut_key     text NOT NULL CHECK (shortcut_key ~ '^[A-Za-z0-9_-]{1,32}$'),
    category         text CHECK (length(category) <= 100),
    usage_count      integer NOT NULL DEFAULT 0 CHECK (usage_count >= 0),
    last_used_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX canned_responses_shortcut_key ON canned_responses (user_id, lower(shortcut_key));
CREATE INDEX canned_responses_list_idx ON canned_responses (user_id, created_at DESC, id DESC);
CREATE INDEX canned_responses_usage_idx ON canned_responses (user_id, usage_count DESC, id DESC);

CREATE TABLE support_analytics (
    id                          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                     uuid NOT NULL,
    analytics_date              date NOT NULL,
    total_tickets_created       integer NOT NULL DEFAULT 0 CHECK (total_tickets_created >= 0),
    total_tickets_resolved      integer NOT NULL DEFAULT 0 CHECK (total_tickets_resolved >= 0),
    total_chats_started         integer NOT NULL DEFAULT 0 CHECK (total_chats_started >= 0),
    total_chats_completed       integer NOT NULL DEFAULT 0 CHECK (total_chats_completed >= 0),
    average_resolution_time     integer CHECK (average_resolution_time >= 0),
    average_first_response_time integer CHECK (average_first_response_time >= 0),
    average_chat_duration       integer CHECK (average_chat_duration >= 0),
    customer_satisfaction_score numeric(3, 2) CHECK (customer_satisfaction_score BETWEEN 1 AND 5),
    agent_response_time         integer CHECK (agent_response_time >= 0),
    tickets_by_status           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tickets_by_status) = 'object'),
    tickets_by_priority         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tickets_by_priority) = 'object'),
    tickets_by_category         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tickets_by_category) = 'object'),
    chats_by_agent              jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(chats_by_agent) = 'object'),
    created_at                  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, analytics_date)  -- one row per tenant and day: the daily rollup is an upsert
);

CREATE TABLE ticket_feedback (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ticket_id             uuid NOT NULL,
    user_id               uuid NOT NULL,
    rating                smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    -- Likelihood to recommend, 0 to 10 (the Net Promoter question).
    recommendation        smallint CHECK (recommendation BETWEEN 0 AND 10),
    feedback              text CHECK (length(feedback) <= 5000),
    resolved_issue        boolean,
    agent_rating          smallint CHECK (agent_rating BETWEEN 1 AND 5),
    response_time_rating  smallint CHECK (response_time_rating BETWEEN 1 AND 5),
    communication_rating  smallint CHECK (communication_rating BETWEEN 1 AND 5),
    created_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (ticket_id),  -- once per ticket
    FOREIGN KEY (user_id, ticket_id) REFERENCES support_tickets (user_id, id) ON DELETE CASCADE
);
CREATE INDEX ticket_feedback_tenant_idx ON ticket_feedback (user_id, created_at);

CREATE TRIGGER support_agents_updated_at BEFORE UPDATE ON support_agents
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER support_tickets_updated_at BEFORE UPDATE ON support_tickets
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER ticket_conversations_updated_at BEFORE UPDATE ON ticket_conversations
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER live_chat_sessions_updated_at BEFORE UPDATE ON live_chat_sessions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER canned_responses_updated_at BEFORE UPDATE ON canned_responses
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
