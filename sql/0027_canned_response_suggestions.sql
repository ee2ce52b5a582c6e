-- Canned response suggestions (issue 17): the tenant's canned responses ranked by relevance to a conversation's
-- recent customer messages, read through suggest_canned_responses() (sql/definitions/canned_suggestions.sql).
--
-- As for the ticket search (0003): `tsvector @@ tsquery` is not LEAKPROOF, so row-level security keeps a GIN index
-- on canned_responses (FORCEd) from ever serving it. The weighted search document lives in a side table kept by a
-- trigger, ENABLEd but not FORCEd, which the runtime roles cannot read at all; the owner's SECURITY DEFINER function
-- is the only way in and takes the tenant from the transaction's app.tenant_id, as the policies do. It carries the
-- usage count too, the ranking's tie-breaker.
--
-- canned_response_terms counts, per tenant and word (stem), the responses that contain it (kept by a statement
-- trigger on the side table): a suggestion matches on the customer's rarer words first, because a word most of the
-- library contains ("order", "thanks") tells nothing apart and would make every response a candidate to rank.

CREATE TABLE canned_response_search (
    response_id   uuid PRIMARY KEY,
    user_id       uuid NOT NULL,
    usage_count   integer NOT NULL,
    search_vector tsvector NOT NULL,
    FOREIGN KEY (response_id) REFERENCES canned_responses (id) ON DELETE CASCADE
);
ALTER TABLE canned_response_search ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON canned_response_search FROM PUBLIC;

-- Backfill, the owner's FORCEd RLS lifted for this transaction only (as 0003 does), with the document as
-- canned_response_document() writes it (the title weighs more than the content; English stemming).
ALTER TABLE canned_responses NO FORCE ROW LEVEL SECURITY;
INSERT INTO canned_response_search (response_id, user_id, usage_count, search_vector)
SELECT id, user_id, usage_count,
    setweight(to_tsvector('english', response_title), 'A') || setweight(to_tsvector('english', response_content), 'B')
FROM canned_responses;
ALTER TABLE canned_responses FORCE ROW LEVEL SECURITY;

CREATE INDEX canned_response_search_terms_idx ON canned_response_search USING gin (search_vector)
    WITH (fastupdate = off);

CREATE TABLE canned_response_terms (
    user_id   uuid NOT NULL,
    lexeme    text NOT NULL,
    documents integer NOT NULL CHECK (documents >= 0),
    PRIMARY KEY (user_id, lexeme)
);
ALTER TABLE canned_response_terms ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON canned_response_terms FROM PUBLIC;
INSERT INTO canned_response_terms (user_id, lexeme, documents)
SELECT user_id, lexeme, count(*) FROM canned_response_search, unnest(tsvector_to_array(search_vector)) AS lexeme
GROUP BY user_id, lexeme;
