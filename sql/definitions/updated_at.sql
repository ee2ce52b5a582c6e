-- updated_at: set on every UPDATE of the tables that have it (history: sql/0001; canned responses since 0006
-- only when a column an agent edits is set, so using a response is not an edit; tickets and chat sessions since
-- 0024 not when their contact_id changes, so that the contacts backfill and a merge, which set nothing else, leave
-- the ticket or chat as it was; tickets since 0025 not when the backfill numbers them; contacts since 0024). Not in a
-- privacy erasure's own statements (app.privacy_erasure, sql/definitions/privacy.sql): anonymising is not an edit.
CREATE OR REPLACE FUNCTION public.set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER support_agents_updated_at BEFORE UPDATE ON public.support_agents
    FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

-- Not when the update sets the ticket's reference (sql/0025's backfill, sql/definitions/ticket_references.sql) or
-- its contact (the contacts backfill and a merge): numbering or linking a ticket is not an edit of it. Nothing else
-- changes either.
CREATE OR REPLACE TRIGGER support_tickets_updated_at BEFORE UPDATE ON public.support_tickets
    FOR EACH ROW WHEN (OLD.contact_id IS NOT DISTINCT FROM NEW.contact_id
                       AND OLD.reference IS NOT DISTINCT FROM NEW.reference
                       AND current_setting('app.privacy_erasure', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION public.set_updated_at();

CREATE OR REPLACE TRIGGER ticket_conversations_updated_at BEFORE UPDATE ON public.ticket_conversations
    FOR EACH ROW WHEN (current_setting('app.privacy_erasure', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION public.set_updated_at();

CREATE OR REPLACE TRIGGER live_chat_sessions_updated_at BEFORE UPDATE ON public.live_chat_sessions
    FOR EACH ROW WHEN (OLD.contact_id IS NOT DISTINCT FROM NEW.contact_id
                       AND current_setting('app.privacy_erasure', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION public.set_updated_at();

CREATE OR REPLACE TRIGGER canned_responses_updated_at
    BEFORE UPDATE OF response_title, response_content, shortcut_key, category ON public.canned_responses
    FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

CREATE OR REPLACE TRIGGER support_contacts_updated_at BEFORE UPDATE ON public.support_contacts
    FOR EACH ROW WHEN (current_setting('app.privacy_erasure', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION public.set_updated_at();
