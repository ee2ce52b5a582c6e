-- Social and other channels (issue 17): a connector (a WhatsApp, Facebook or Instagram relay, a Zapier step) posts a
-- normalised message to /api/support/channels/{channelId}/messages, signed with the channel's secret (HMAC-SHA256).
-- Follows 0010's rules: row-level security on the new tables, exactly the grants the code uses (sql/privileges.toml).
-- The functions (the signature check, the secret's rotation, a social sender's contact) live in
-- sql/definitions/channels.sql; the service is layers/support/support/services/channels.py.

-- 1. The channel. ------------------------------------------------------------------------------------------------
-- Disabled, never deleted: its messages keep naming it, and a disabled channel refuses every delivery (401).
CREATE TABLE public.support_channels (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind        text NOT NULL CHECK (kind IN ('whatsapp', 'facebook', 'instagram', 'telegram', 'sms', 'other')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz,
    UNIQUE (user_id, id)
);
CREATE INDEX support_channels_list_idx ON public.support_channels (user_id, created_at DESC, id DESC);

-- 2. Its signing secrets: the owner's alone. ----------------------------------------------------------------------
-- No role but the owner has any privilege on this table: the runtime role reaches a secret only through the
-- SECURITY DEFINER functions of sql/definitions/channels.sql, which store a new one (answered to the admin once) and
-- check a signature inside the database (answering the channel's tenant, never the secret). A stolen runtime
-- credential therefore cannot list the tenants' secrets. `expires_at` is NULL for the current secret; a rotation
-- gives the previous one 24 hours.
CREATE TABLE public.support_channel_secrets (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL,
    channel_id uuid NOT NULL,
    secret     text NOT NULL CHECK (length(secret) BETWEEN 32 AND 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    FOREIGN KEY (user_id, channel_id) REFERENCES public.support_channels (user_id, id) ON DELETE CASCADE
);
CREATE INDEX support_channel_secrets_channel_idx ON public.support_channel_secrets (channel_id);

-- 3. Signatures already used (replays refused): the owner's alone, kept 15 minutes (a signature's timestamp is
-- accepted 5 minutes either side of now, so one is never accepted again once its row is gone).
CREATE TABLE public.channel_signatures_seen (
    channel_id uuid NOT NULL,
    user_id    uuid NOT NULL,
    signature  bytea NOT NULL,
    seen_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, signature)
);
CREATE INDEX channel_signatures_seen_age_idx ON public.channel_signatures_seen (channel_id, seen_at);

-- 4. The messages a channel delivered, by the connector's external id: a message delivered twice is stored once.
-- The row is claimed first (ticket_id NULL), then the ticket and its conversation entry are written and the row is
-- completed, all in one transaction: a concurrent delivery of the same id waits on the claim and then answers the
-- first one's ticket.
CREATE TABLE public.channel_messages (
    user_id             uuid NOT NULL,
    channel_id          uuid NOT NULL,
    external_message_id text COLLATE "C" NOT NULL CHECK (length(external_message_id) BETWEEN 1 AND 200),
    ticket_id           uuid,
    conversation_id     uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, channel_id, external_message_id),
    FOREIGN KEY (user_id, channel_id) REFERENCES public.support_channels (user_id, id),
    FOREIGN KEY (user_id, ticket_id) REFERENCES public.support_tickets (user_id, id) ON DELETE CASCADE
);
-- A ticket's delete finds its rows along this.
CREATE INDEX channel_messages_ticket_idx ON public.channel_messages (user_id, ticket_id);

-- Row-level security: enabled here, forced (or not) with its tenant_isolation policy by
-- sql/definitions/row_level_security.sql, which lists every tenant table.
ALTER TABLE public.support_channels ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.support_channel_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.channel_signatures_seen ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.channel_messages ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON public.support_channels, public.support_channel_secrets, public.channel_signatures_seen,
    public.channel_messages FROM PUBLIC;
-- Channels are made, listed and disabled by an admin; never deleted.
GRANT SELECT ON public.support_channels TO support_app;
GRANT INSERT (user_id, name, kind) ON public.support_channels TO support_app;
GRANT UPDATE (disabled_at) ON public.support_channels TO support_app;
-- A delivery claims its external id, then completes the row with its ticket and entry.
GRANT SELECT ON public.channel_messages TO support_app;
GRANT INSERT (user_id, channel_id, external_message_id) ON public.channel_messages TO support_app;
GRANT UPDATE (ticket_id, conversation_id) ON public.channel_messages TO support_app;
-- support_channel_secrets and channel_signatures_seen: no grant to any role but the owner.
