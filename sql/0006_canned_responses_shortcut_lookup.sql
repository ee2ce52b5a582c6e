-- Canned responses: a lookup by shortcut that is one index probe under row-level security, and an
-- updated_at that means "last edited".

-- 1. lower() is not LEAKPROOF, so under RLS (FORCEd on this table) PostgreSQL never evaluates
--    `lower(shortcut_key) = ...` inside an index: the unique index on (user_id, lower(shortcut_key)) of 0001
--    kept shortcut keys unique but was never used to find one, and each lookup filtered all of the tenant's
--    rows (up to 10,000). Plain text equality is leakproof: keep the folded key in a generated column and
--    make the unique index (same name, same rule) on it. Keys are ASCII letters, digits, - and _ (CHECK),
--    so lower() folds every one the same way under any locale.
ALTER TABLE canned_responses
    ADD COLUMN shortcut_key_lower text GENERATED ALWAYS AS (lower(shortcut_key)) STORED;
DROP INDEX canned_responses_shortcut_key;
CREATE UNIQUE INDEX canned_responses_shortcut_key ON canned_responses (user_id, shortcut_key_lower);

-- 2. Using a response (usage_count + 1, last_used_at) is an UPDATE too, and the trigger of 0001 stamped
--    every use as an edit. Now it fires only when a column an agent edits is set.
DROP TRIGGER canned_responses_updated_at ON canned_responses;
CREATE TRIGGER canned_responses_updated_at
    BEFORE UPDATE OF response_title, response_content, shortcut_key, category ON canned_responses
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
