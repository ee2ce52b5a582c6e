-- Email in (issue 17): every message SES received for a tenant, once. SES stores the raw message in S3 and invokes
-- the email function (functions/email_in, support.services.email_in), which finds the tenant by the receiving
-- address (email_inbound_tenant, sql/definitions/email_in.sql) and records here, in the tenant's transaction, what
-- became of the message: threaded onto a ticket, a new ticket, ignored as automatic mail, or rejected. Follows
-- 0010's rules: row-level security on the new table, exactly the grants the code uses (sql/privileges.toml).

-- 1. One row per message and tenant. ----------------------------------------------------------------------------
-- `message_id` is the Message-ID header without angle brackets (`ses:<SES message id>` for a message without
-- one): unique per tenant, so the same message delivered twice (SES retries, a forwarder resends, two deliveries
-- race) is stored once. The row is inserted first (ON CONFLICT DO NOTHING), then the ticket work, in one
-- transaction: a second delivery waits on the unique index until the first commits, then finds it.
-- `s3_key` is the raw original SES stored (kept in every case: the full message stays retrievable).
CREATE TABLE inbound_emails (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL,
    message_id      text NOT NULL CHECK (length(message_id) BETWEEN 1 AND 998),
    ses_message_id  text NOT NULL CHECK (length(ses_message_id) BETWEEN 1 AND 300),
    s3_key          text NOT NULL CHECK (length(s3_key) BETWEEN 1 AND 1024),
    recipient       text NOT NULL CHECK (length(recipient) BETWEEN 3 AND 320),
    sender          text CHECK (length(sender) <= 320),
    subject         text CHECK (length(subject) <= 998),
    size_bytes      bigint NOT NULL CHECK (size_bytes >= 0),
    outcome         text NOT NULL CHECK (outcome IN ('threaded', 'created', 'ignored_automatic', 'rejected')),
    reason          text CHECK (length(reason) <= 1000),
    ticket_id       uuid,
    conversation_id uuid,
    received_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((outcome IN ('threaded', 'created')) = (ticket_id IS NOT NULL)),
    CHECK (outcome IN ('ignored_automatic', 'rejected') OR reason IS NULL),
    FOREIGN KEY (user_id, ticket_id) REFERENCES support_tickets (user_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX inbound_emails_message_key ON inbound_emails (user_id, message_id);
-- The original of a conversation entry (GET .../conversations/{conversationId}/original).
CREATE INDEX inbound_emails_conversation_idx ON inbound_emails (user_id, conversation_id)
    WHERE conversation_id IS NOT NULL;

-- 2. Threading by Message-ID. ----------------------------------------------------------------------------------
-- A reply names the desk's mails in In-Reply-To and References: the outbox rows are found by their Message-ID.
CREATE INDEX email_outbox_message_id_idx ON public.email_outbox (user_id, message_id);

ALTER TABLE public.inbound_emails ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.inbound_emails FROM PUBLIC;
GRANT SELECT ON public.inbound_emails TO support_app;
GRANT INSERT (user_id, message_id, ses_message_id, s3_key, recipient, sender, subject, size_bytes, outcome, reason,
    ticket_id) ON public.inbound_emails TO support_app;
-- The entry written after the row (a ticket's first message, or the reply threaded) is recorded on it.
GRANT UPDATE (conversation_id) ON public.inbound_emails TO support_app;
