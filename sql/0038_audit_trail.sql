-- The audit trail (issue 19): who changed what, when, captured by row triggers on every tenant table in the
-- change's own transaction, chained per tenant by a hash that a separate sealing step computes. The trigger, the
-- sealer, the checks, the pruning and the erasure are definitions (sql/definitions/audit.sql); docs/ARCHITECTURE.md
-- ("Audit trail") says why it is built this way. Follows 0010's rules: row-level security on the new tables, exactly
-- the grants the code uses (sql/privileges.toml).
--
-- audit_entries: one row per row changed. Written only by the owner's trigger (SECURITY DEFINER): the runtime roles
-- have no INSERT, UPDATE, DELETE or TRUNCATE at all, only SELECT of their own tenant's rows (the API's history).
-- `seq` and `entry_hash` are NULL until the sealer (audit_seal) chains the entry: the trigger never reads or locks
-- anything of the chain, so a tenant's writes are never serialised by it. No message text and no personal value
-- is ever copied here: `changes` names a text column as changed only, and a personal column's values go to
-- audit_personal_values, which the entry covers by `personal_digest` alone.
CREATE TABLE public.audit_entries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         uuid NOT NULL,
    occurred_at     timestamptz NOT NULL,
    actor_type      text NOT NULL CHECK (length(actor_type) BETWEEN 1 AND 40),
    actor_id        text CHECK (length(actor_id) <= 200),
    request_id      text CHECK (length(request_id) <= 200),
    db_role         text NOT NULL,
    table_name      text NOT NULL,
    row_id          text NOT NULL,
    action          text NOT NULL CHECK (action IN ('insert', 'update', 'delete')),
    changes         jsonb NOT NULL CHECK (jsonb_typeof(changes) = 'object'),
    personal_digest bytea CHECK (length(personal_digest) = 32),
    seq             bigint,
    entry_hash      bytea CHECK (length(entry_hash) = 32),
    CHECK ((seq IS NULL) = (entry_hash IS NULL))
);
-- the sealer's queue: only the entries not chained yet
CREATE INDEX audit_entries_unsealed_idx ON public.audit_entries (user_id, id) WHERE seq IS NULL;
-- the chain in its order (verification, pruning)
CREATE UNIQUE INDEX audit_entries_chain_idx ON public.audit_entries (user_id, seq) WHERE seq IS NOT NULL;
-- the API: newest first (ids follow the inserts), one entity's history, one actor's entries
CREATE INDEX audit_entries_list_idx ON public.audit_entries (user_id, id DESC);
CREATE INDEX audit_entries_entity_idx ON public.audit_entries (user_id, table_name, row_id, id DESC);
CREATE INDEX audit_entries_actor_idx ON public.audit_entries (user_id, actor_id, id DESC);

-- The personal values an entry names (emails, names, phones, IPs, browser strings, attachments' names, custom
-- fields), apart from the chained entry, keyed by a subject (the customer's normalised email where the row names
-- one, else the row's ticket or chat session, else the row itself) so that an erasure deletes them without
-- touching the chain: the entry keeps `personal_digest` = sha256(salt || values), and the salt goes with the
-- values, so the digest left behind cannot be tested against a guessed email.
CREATE TABLE public.audit_personal_values (
    entry_id bigint PRIMARY KEY REFERENCES public.audit_entries (id) ON DELETE CASCADE,
    user_id  uuid NOT NULL,
    subject  text NOT NULL,
    salt     bytea NOT NULL,
    vals     jsonb NOT NULL CHECK (jsonb_typeof(vals) = 'object')
);
CREATE INDEX audit_personal_values_subject_idx ON public.audit_personal_values (user_id, subject);

-- Each tenant's chain: its head (the last sealed entry), the anchor it starts from (zero bytes, or the hash of the
-- last entry pruned), and the scheduled check's cursor and its last finding. The owner's functions alone touch it.
CREATE TABLE public.audit_chain_state (
    user_id        uuid PRIMARY KEY,
    last_seq       bigint NOT NULL DEFAULT 0,
    last_hash      bytea NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000',
    anchor_seq     bigint NOT NULL DEFAULT 0,
    anchor_hash    bytea NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000',
    sealed_at      timestamptz,
    verified_seq   bigint,
    verified_hash  bytea,
    verified_at    timestamptz,
    broken_seq     bigint,
    broken_problem text
);

-- Row-level security: enabled here, the tenant_isolation policies by sql/definitions/row_level_security.sql. Not
-- forced: the capture trigger (the owner's) writes the entry of a row whatever the session's tenant setting (an
-- owner's load, the SLA sweep's cross-tenant insert), and the sealer and the check chain every tenant at once; the
-- runtime role reads only its tenant's entries and nothing of the other two tables.
ALTER TABLE public.audit_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.audit_personal_values ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.audit_chain_state ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON public.audit_entries, public.audit_personal_values, public.audit_chain_state FROM PUBLIC;
GRANT SELECT ON public.audit_entries TO support_app;
