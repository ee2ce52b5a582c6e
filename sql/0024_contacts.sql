-- Contacts (issue 17): one customer per tenant across channels, found by any of their identities (email addresses,
-- phone numbers, chat visitor ids, social sender ids), and every ticket and chat session linked to its contact.
-- Follows 0010's rules: row-level security on the new tables, exactly the grants the code uses
-- (sql/privileges.toml). The functions that find or create a contact and the backfill's tenant list live in
-- sql/definitions/contacts.sql; the service is layers/support/support/services/contacts.py.

-- 1. The contact. ------------------------------------------------------------------------------------------------
-- Merging keeps the other row with `merged_into` set to the survivor, so an old id still answers (the API answers
-- the survivor for it). Chains are kept flat: a merge re-points the rows merged into the one it absorbs, so one
-- hop always reaches a live contact. Never deleted by the API (the privacy erasure of a later issue will).
CREATE TABLE public.support_contacts (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL,
    name        text CHECK (length(name) BETWEEN 1 AND 200),
    merged_into uuid CHECK (merged_into <> id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, id),
    FOREIGN KEY (user_id, merged_into) REFERENCES public.support_contacts (user_id, id)
);
-- The list: newest first, live contacts only.
CREATE INDEX support_contacts_list_idx ON public.support_contacts (user_id, created_at DESC, id DESC)
    WHERE merged_into IS NULL;
CREATE INDEX support_contacts_merged_idx ON public.support_contacts (user_id, merged_into)
    WHERE merged_into IS NOT NULL;

-- 2. What finds a contact. -----------------------------------------------------------------------------------------
-- One row per identity, owned by exactly one contact per tenant (the primary key), stored normalised
-- (contact_normalise in sql/definitions/contacts.sql): an email lower-cased, a phone number as its digits with a
-- leading + kept, a visitor id and a social sender id as given. `scope` is '' except for a social sender id, whose
-- external id is unique only within its channel (scope: the channel's id).
CREATE TABLE public.contact_identities (
    user_id    uuid NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('email', 'phone', 'visitor', 'social')),
    scope      text NOT NULL DEFAULT '' CHECK (length(scope) <= 200 AND (scope <> '') = (kind = 'social')),
    -- Byte order (COLLATE "C"): a search for the beginning of an address or number is a range of the primary key
    -- with leakproof comparisons (row-level security keeps LIKE out of index scans; sql/0006 says why).
    value      text COLLATE "C" NOT NULL CHECK (length(value) BETWEEN 1 AND 320),
    contact_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, kind, scope, value),
    FOREIGN KEY (user_id, contact_id) REFERENCES public.support_contacts (user_id, id) ON DELETE CASCADE
);
CREATE INDEX contact_identities_contact_idx ON public.contact_identities (user_id, contact_id, kind, value);

-- 3. Tickets and chat sessions name their contact. --------------------------------------------------------------
-- Nullable: rows from before this migration have none until the backfill (services/contacts.py: backfill) links
-- them by email (sessions without one by their visitor id). Adding a nullable column without a default rewrites
-- nothing. The index serves the contact's page (newest first) and is also the backfill's to-do list: the rows
-- with contact_id IS NULL of one tenant, found by the same index, newest first. Building it holds writes to the
-- table for its duration (a migration run is one transaction, so not CONCURRENTLY): about 1 s per 100,000 tickets
-- on the development machine.
-- The foreign keys' validation reads every row as the owner, whom FORCE filters too: lifted for this transaction
-- only (ALTER TABLE locks until commit), as 0012 does.
ALTER TABLE public.support_tickets NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.live_chat_sessions NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.support_tickets ADD COLUMN contact_id uuid;
ALTER TABLE public.support_tickets ADD CONSTRAINT support_tickets_contact_fkey
    FOREIGN KEY (user_id, contact_id) REFERENCES public.support_contacts (user_id, id) ON DELETE SET NULL (contact_id);
CREATE INDEX support_tickets_contact_idx ON public.support_tickets (user_id, contact_id, created_at DESC, id DESC);

ALTER TABLE public.live_chat_sessions ADD COLUMN contact_id uuid;
ALTER TABLE public.live_chat_sessions ADD CONSTRAINT live_chat_sessions_contact_fkey
    FOREIGN KEY (user_id, contact_id) REFERENCES public.support_contacts (user_id, id) ON DELETE SET NULL (contact_id);
CREATE INDEX live_chat_sessions_contact_idx ON public.live_chat_sessions (user_id, contact_id, created_at DESC, id DESC);
ALTER TABLE public.support_tickets FORCE ROW LEVEL SECURITY;
ALTER TABLE public.live_chat_sessions FORCE ROW LEVEL SECURITY;

-- Row-level security: enabled here (closed until the policy exists), forced with its tenant_isolation policy by
-- sql/definitions/row_level_security.sql, which lists every tenant table.
ALTER TABLE public.support_contacts ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.contact_identities ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON public.support_contacts FROM PUBLIC;
REVOKE ALL ON public.contact_identities FROM PUBLIC;
-- Contacts are made (by a ticket, a chat, the backfill), renamed and merged; never deleted by the API.
GRANT SELECT ON public.support_contacts TO support_app;
GRANT INSERT (user_id, id, name) ON public.support_contacts TO support_app;
GRANT UPDATE (name, merged_into) ON public.support_contacts TO support_app;
-- Identities are added, moved by a merge, and removed by an edit of the contact.
GRANT SELECT ON public.contact_identities TO support_app;
GRANT INSERT (user_id, kind, scope, value, contact_id) ON public.contact_identities TO support_app;
GRANT UPDATE (contact_id) ON public.contact_identities TO support_app;
GRANT DELETE ON public.contact_identities TO support_app;
-- A new ticket or chat session is made with its contact; the backfill and a merge re-link existing rows.
GRANT INSERT (contact_id), UPDATE (contact_id) ON public.support_tickets TO support_app;
GRANT INSERT (contact_id), UPDATE (contact_id) ON public.live_chat_sessions TO support_app;
