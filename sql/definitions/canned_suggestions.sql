-- Canned response suggestions: the side table's upkeep and the one way to read it (sql/0027 says why a side table).

-- The document: the title weighs more (A) than the content (B); English stemming, so "refunds" finds "refund".
CREATE OR REPLACE FUNCTION public.canned_response_document(title text, content text)
RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', content), 'B');

-- The side table's rows, by statement (a bulk load is one upsert): written or rewritten with every insert and update
-- of canned responses (a use changes the usage count, the ranking's tie-breaker).
CREATE OR REPLACE FUNCTION public.index_canned_responses() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    INSERT INTO public.canned_response_search AS s (response_id, user_id, usage_count, search_vector)
    SELECT n.id, n.user_id, n.usage_count, public.canned_response_document(n.response_title, n.response_content)
    FROM new_rows n ORDER BY n.id
    ON CONFLICT (response_id) DO UPDATE
        SET usage_count = EXCLUDED.usage_count, search_vector = EXCLUDED.search_vector;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS canned_responses_search ON public.canned_responses;
DROP FUNCTION IF EXISTS public.index_canned_response();
CREATE OR REPLACE TRIGGER canned_responses_search_insert
    AFTER INSERT ON public.canned_responses REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.index_canned_responses();
CREATE OR REPLACE TRIGGER canned_responses_search_update
    AFTER UPDATE ON public.canned_responses REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.index_canned_responses();

-- The words' document counts, by statement (a bulk load counts each word once): what the statement added less what
-- it removed, per tenant and word, in word order (concurrent writers lock the counters in the same order).
CREATE OR REPLACE FUNCTION public.count_canned_response_terms() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO public.canned_response_terms AS t (user_id, lexeme, documents)
        SELECT n.user_id, l, count(*) FROM new_rows n, unnest(tsvector_to_array(n.search_vector)) AS l
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (user_id, lexeme) DO UPDATE SET documents = t.documents + EXCLUDED.documents;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE public.canned_response_terms t SET documents = t.documents - d.documents
        FROM (SELECT o.user_id, l AS lexeme, count(*) AS documents
              FROM old_rows o, unnest(tsvector_to_array(o.search_vector)) AS l GROUP BY 1, 2 ORDER BY 1, 2) d
        WHERE t.user_id = d.user_id AND t.lexeme = d.lexeme;
    ELSE  -- the words a statement's rewrites removed count down, those they added up (a use changes none)
        WITH delta AS (
            SELECT user_id, lexeme, sum(change)::integer AS change FROM (
                SELECT n.user_id, l AS lexeme, 1 AS change
                FROM new_rows n, unnest(tsvector_to_array(n.search_vector)) AS l
                UNION ALL
                SELECT o.user_id, l, -1 FROM old_rows o, unnest(tsvector_to_array(o.search_vector)) AS l) d
            GROUP BY 1, 2 HAVING sum(change) <> 0),
        fewer AS (
            UPDATE public.canned_response_terms t SET documents = t.documents + delta.change
            FROM delta WHERE delta.change < 0 AND t.user_id = delta.user_id AND t.lexeme = delta.lexeme)
        INSERT INTO public.canned_response_terms AS t (user_id, lexeme, documents)
        SELECT user_id, lexeme, change FROM delta WHERE change > 0 ORDER BY 1, 2
        ON CONFLICT (user_id, lexeme) DO UPDATE SET documents = t.documents + EXCLUDED.documents;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER canned_response_search_terms_insert
    AFTER INSERT ON public.canned_response_search REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.count_canned_response_terms();
CREATE OR REPLACE TRIGGER canned_response_search_terms_update
    AFTER UPDATE ON public.canned_response_search REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.count_canned_response_terms();
CREATE OR REPLACE TRIGGER canned_response_search_terms_delete
    AFTER DELETE ON public.canned_response_search REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.count_canned_response_terms();

-- The tenant's canned responses that share a word (after English stemming) with p_text, best first, at most
-- p_limit, each with the words of p_text it contains, as the customer wrote them (lower case, in their order).
--
-- Which words count: the text's plain words (letters, digits, _: an address or a URL is split into its words), its
-- first 32 distinct stems (the English stemmer of the document, which drops stop words), and of
-- those the rarest in the library first, as long as together they appear in at most MATCH_BUDGET responses (at
-- least the rarest one, at most 16): like a search engine's inverse document frequency, a word that most responses
-- contain tells nothing apart, and matching on it would make the whole library a candidate to rank (10,000
-- responses, about 110 ms; bench.suggestions). The candidates, found through the GIN index, are ranked by ts_rank over all the text's
-- words with the title weighing more than the content, then by use, then id. So a long text costs no more than a
-- short one.
--
-- The tenant is the transaction's (fails closed without one); the caller reads the responses themselves from
-- canned_responses under its own row-level security, so an id from here never brings back another tenant's.
CREATE OR REPLACE FUNCTION public.suggest_canned_responses(p_text text, p_limit integer)
RETURNS TABLE (response_id uuid, score real, matched_words text[])
LANGUAGE plpgsql STABLE SECURITY DEFINER
ROWS 5  -- a handful: the planner then looks each response up by id, rather than hashing the whole library
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    tenant constant uuid := current_setting('app.tenant_id')::uuid;
    match_budget constant integer := 300;
    words text[];
    stems text[];
    query tsquery;
    everything tsquery;
BEGIN
    SELECT array_agg(w.word ORDER BY w.first), array_agg(w.stem ORDER BY w.first) INTO words, stems
    FROM (SELECT stem, min(t.word) AS word, min(t.n) AS first
          FROM regexp_split_to_table(lower(left(p_text, 20000)), '[^[:alnum:]_]+') WITH ORDINALITY AS t(word, n),
               unnest(ts_lexize('english_stem', t.word)) AS stem  -- the document's stemmer; {} for a stop word
          WHERE t.word <> ''
          GROUP BY stem
          ORDER BY min(t.n)
          LIMIT 32) w;
    IF stems IS NULL OR p_limit < 1 THEN
        RETURN;
    END IF;
    SELECT string_agg('''' || c.lexeme || '''', ' | ')::tsquery INTO query
    FROM (SELECT t.lexeme, sum(t.documents) OVER (ORDER BY t.documents, t.lexeme) AS running,
                 row_number() OVER (ORDER BY t.documents, t.lexeme) AS n
          FROM public.canned_response_terms t
          WHERE t.user_id = tenant AND t.lexeme = ANY (stems) AND t.documents > 0) c
    WHERE c.n = 1 OR (c.running <= match_budget AND c.n <= 16);
    IF query IS NULL THEN  -- no word of the text is in the library
        RETURN;
    END IF;
    everything := (SELECT string_agg('''' || s || '''', ' | ')::tsquery FROM unnest(stems) AS s);
    -- Ranked first; the words that matched then for the few kept only.
    RETURN QUERY
        SELECT best.response_id, best.score,
               ARRAY(SELECT words[i] FROM generate_subscripts(stems, 1) AS i
                     WHERE best.search_vector @@ ('''' || stems[i] || '''')::tsquery ORDER BY i)
        FROM (SELECT r.response_id, ts_rank(r.search_vector, everything) AS score, r.usage_count, r.search_vector
              FROM public.canned_response_search r
              WHERE r.user_id = tenant AND r.search_vector @@ query
              ORDER BY 2 DESC, r.usage_count DESC, r.response_id
              LIMIT p_limit) best
        ORDER BY best.score DESC, best.usage_count DESC, best.response_id;
END
$$;

REVOKE ALL ON FUNCTION public.index_canned_responses() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.canned_response_document(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.count_canned_response_terms() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.suggest_canned_responses(text, integer) TO support_app;
