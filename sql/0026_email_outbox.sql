-- Email out (issue 17): the customer hears back by email. The addresses a tenant receives at, the outbox of
-- notifications that the email outbox function drains after the commit (functions/email_outbox,
-- support.services.email_outbox), and the addresses SES reported as bounced or complaining. Email settings
-- themselves (sender, switches) are the `email` area of tenant_settings (sql/0018). Follows 0010's rules:
-- row-level security on every new table, exactly the grants the code uses (sql/privileges.toml).

-- 1. The addresses a tenant receives at. -------------------------------------------------------------------------
-- An address belongs to one tenant only: the unique index is global (not per tenant), so a tenant that names an
-- address another tenant holds is refused by the index itself, row-level security or not (409 in the API).
CREATE TABLE email_inbound_addresses (
    user_id    uuid NOT NULL,
    address    text NOT NULL CHECK (length(address) BETWEEN 3 AND 254 AND address = lower(address)),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, address)
);
CREATE UNIQUE INDEX email_inbound_addresses_address_key ON email_inbound_addresses (address);

-- 2. The outbox: one row per notification. ----------------------------------------------------------------------
-- Written in the same transaction as the change it tells (a ticket created, an agent's public reply, a ticket
-- resolved or closed), so a rolled-back change leaves none. Unique per notification: enqueuing twice stores it
-- once. The drain claims due rows (`pending`, or `sending` whose lease ran out) with FOR UPDATE SKIP LOCKED, so two
-- workers never take the same row; `next_attempt_at` is the lease while `sending` and the backoff while `pending`.
-- `notice_key` names the notification within its ticket and kind: `received` and `closed` happen once per ticket
-- (a closed ticket never changes again), a reply is its conversation entry's id, and a resolution its resolved_at
-- (a ticket resolved, reopened and resolved again tells the customer again; resolving it twice tells once).
CREATE TABLE email_outbox (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id            uuid NOT NULL,
    ticket_id          uuid NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('received', 'replied', 'resolved', 'closed')),
    conversation_id    uuid,
    notice_key         text NOT NULL CHECK (length(notice_key) BETWEEN 1 AND 100),
    recipient          text NOT NULL CHECK (length(recipient) BETWEEN 3 AND 320),
    state              text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
    attempts           integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    last_error         text CHECK (length(last_error) <= 2000),
    message_id         text NOT NULL CHECK (length(message_id) BETWEEN 3 AND 300),
    ses_message_id     text CHECK (length(ses_message_id) <= 300),
    created_at         timestamptz NOT NULL DEFAULT now(),
    sent_at            timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'replied') = (conversation_id IS NOT NULL)),
    FOREIGN KEY (user_id, ticket_id) REFERENCES support_tickets (user_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX email_outbox_notification_key ON email_outbox (user_id, ticket_id, kind, notice_key);
-- The drain's claim: only the rows still to send, oldest due first.
CREATE INDEX email_outbox_due_idx ON email_outbox (next_attempt_at) WHERE state IN ('pending', 'sending');
-- Threading: the ticket's earlier mails (In-Reply-To / References).
CREATE INDEX email_outbox_ticket_idx ON email_outbox (user_id, ticket_id, created_at);
-- A bounce or complaint names the SES message id.
CREATE INDEX email_outbox_ses_message_idx ON email_outbox (ses_message_id) WHERE ses_message_id IS NOT NULL;

-- 3. Suppressed recipients per tenant. ---------------------------------------------------------------------------
-- A permanent bounce or a complaint (SES notifications through SNS) marks the address: no further mail to it.
CREATE TABLE email_suppressions (
    user_id    uuid NOT NULL,
    address    text NOT NULL CHECK (length(address) BETWEEN 3 AND 320 AND address = lower(address)),
    reason     text NOT NULL CHECK (reason IN ('bounce', 'complaint')),
    detail     text CHECK (length(detail) <= 2000),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, address)
);

-- Row-level security: enabled here (closed until the policy exists), with its tenant_isolation policy by
-- sql/definitions/row_level_security.sql, which lists every tenant table. email_outbox is ENABLEd but not FORCEd
-- there, so that the owner's functions in sql/definitions/email_outbox.sql can claim due rows across tenants and
-- find a bounce's tenant by its SES message id; the runtime role sees only its tenant's rows.
ALTER TABLE public.email_inbound_addresses ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.email_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.email_suppressions ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON public.email_inbound_addresses, public.email_outbox, public.email_suppressions FROM PUBLIC;
-- The settings PUT replaces a tenant's set of addresses.
GRANT SELECT, DELETE ON public.email_inbound_addresses TO support_app;
GRANT INSERT (user_id, address) ON public.email_inbound_addresses TO support_app;
-- Enqueued by the change, marked by the drain (claiming is email_outbox_claim's, as the owner).
GRANT SELECT ON public.email_outbox TO support_app;
GRANT INSERT (id, user_id, ticket_id, kind, conversation_id, notice_key, recipient, message_id)
    ON public.email_outbox TO support_app;
GRANT UPDATE (state, attempts, next_attempt_at, last_error, ses_message_id, sent_at, updated_at)
    ON public.email_outbox TO support_app;
GRANT SELECT ON public.email_suppressions TO support_app;
GRANT INSERT (user_id, address, reason, detail) ON public.email_suppressions TO support_app;
GRANT UPDATE (reason, detail) ON public.email_suppressions TO support_app;
