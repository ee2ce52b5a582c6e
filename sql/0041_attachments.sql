-- Attachments up to 100 MB (issue 20): files uploaded straight to S3 with a presigned POST, then claimed by the
-- ticket conversation or chat message that refers to them. The service is layers/support/support/services/
-- attachments.py; docs/ARCHITECTURE.md ("Attachments") says why the rows exist before the file does.
-- Follows 0010's rules: row-level security on the new table, exactly the grants the code uses (sql/privileges.toml).
--
-- One row per upload URL handed out: `pending` until a message claims it (its size and type then checked with S3's
-- HeadObject against `size_bytes` and `content_type`, the object copied from `incoming/` to the kept prefix and
-- `object_key` pointed there), `claimed` after. Exactly one owner: a ticket or a chat session of the same tenant
-- (composite foreign keys, so a row never points across tenants); the claiming conversation or message is
-- recorded for the privacy export and erasure. `uploaded_by`: 'staff' (the API) or 'visitor' (the widget).
CREATE TABLE public.attachments (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id            uuid NOT NULL,
    ticket_id          uuid,
    session_id         uuid,
    file_name          text NOT NULL CHECK (length(file_name) BETWEEN 1 AND 255),
    content_type       text NOT NULL CHECK (length(content_type) BETWEEN 1 AND 255),
    size_bytes         bigint NOT NULL CHECK (size_bytes BETWEEN 1 AND 104857600),
    object_key         text NOT NULL CHECK (length(object_key) BETWEEN 1 AND 1024),
    state              text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'claimed')),
    uploaded_by        text NOT NULL CHECK (uploaded_by IN ('staff', 'visitor')),
    conversation_id    uuid,
    chat_message_id    uuid,
    created_at         timestamptz NOT NULL DEFAULT now(),
    claimed_at         timestamptz,
    CHECK ((ticket_id IS NULL) <> (session_id IS NULL)),
    CHECK ((state = 'claimed') = (claimed_at IS NOT NULL)),
    FOREIGN KEY (user_id, ticket_id) REFERENCES public.support_tickets (user_id, id) ON DELETE CASCADE,
    FOREIGN KEY (user_id, session_id) REFERENCES public.live_chat_sessions (user_id, id) ON DELETE CASCADE
);
CREATE INDEX attachments_ticket_idx ON public.attachments (user_id, ticket_id) WHERE ticket_id IS NOT NULL;
CREATE INDEX attachments_session_idx ON public.attachments (user_id, session_id) WHERE session_id IS NOT NULL;

-- A chat message's files, as its answer shows them ({"id", "fileName", "contentType", "sizeBytes"}, the shape of a
-- ticket conversation's `attachments` entries), written once by the claim (chat_send_message_with_attachments,
-- sql/definitions/attachments.sql). The older attachment_url / attachment_type stay as they were.
ALTER TABLE public.chat_messages
    ADD COLUMN attachments jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(attachments) = 'array');

-- Row-level security: enabled here, forced and its tenant_isolation policy by sql/definitions/row_level_security.sql.
ALTER TABLE public.attachments ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.attachments FORCE ROW LEVEL SECURITY;

REVOKE ALL ON public.attachments FROM PUBLIC;
GRANT SELECT ON public.attachments TO support_app;
GRANT INSERT (id, user_id, ticket_id, session_id, file_name, content_type, size_bytes, object_key, uploaded_by)
    ON public.attachments TO support_app;
GRANT UPDATE (state, object_key, conversation_id, chat_message_id, claimed_at) ON public.attachments TO support_app;
-- The privacy erasure and retention (support.services.attachments.delete_objects) delete the rows they erase.
GRANT DELETE ON public.attachments TO support_app;
GRANT UPDATE (attachments) ON public.chat_messages TO support_app;
