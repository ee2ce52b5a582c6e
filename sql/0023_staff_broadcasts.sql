-- Staff broadcasts coalesced and off the request path (issue 16): what a change to a tenant's queue or to an
-- agent's presence leaves for the broadcast run (functions/broadcast, support.services.broadcasts), and what the
-- run remembers of the queue positions it told. Follows 0010's rules: row-level security on the new tables,
-- exactly the grants the code uses (sql/privileges.toml).

-- 1. A tenant's pending broadcast. -----------------------------------------------------------------------------
-- One row per tenant at most. A change (a new waiting chat, a claim, an assignment, an end, an agent's status)
-- upserts it inside its own transaction: `queue` ORed, its agent added to `agent_ids`. Only the change that
-- inserts the row (or finds it older than a few seconds: a trigger that was lost) starts a run after its commit;
-- every other change of the burst rides along. The run deletes the row first in its one transaction, so a change
-- committed after that inserts it again and starts the next run: nothing is lost, and a burst costs one run.
CREATE TABLE broadcast_requests (
    user_id      uuid PRIMARY KEY,
    queue        boolean NOT NULL DEFAULT false,
    agent_ids    uuid[] NOT NULL DEFAULT '{}',
    requested_at timestamptz NOT NULL DEFAULT now()
);

-- 2. The queue position each waiting visitor was last told. ------------------------------------------------------
-- So that a run re-tells only the visitors whose position changed (a new chat at the end of the queue re-tells no
-- one; a claim of the head re-tells each remaining visitor once): O(n) per burst, not O(n) per change. A table of
-- its own, not a column of live_chat_sessions: the run holds its tenant's request row (deleted, uncommitted) while
-- it writes these, and a change holds its session's row lock while it upserts the request row; marking the
-- sessions themselves would make the run wait for the change and the change for the run (a deadlock). Nothing
-- but the run and the start of a chat (its own first position, told on the request path) writes here, and no
-- foreign key ties a row to its session for the same reason (a key check would take a share lock on the
-- session): the run deletes the rows of sessions that no longer wait.
CREATE TABLE queue_positions_told (
    user_id    uuid NOT NULL,
    session_id uuid NOT NULL,
    position   integer NOT NULL CHECK (position > 0),
    PRIMARY KEY (user_id, session_id)
);

-- Row-level security: enabled here (closed until the policy exists), forced with its tenant_isolation policy by
-- sql/definitions/row_level_security.sql, which lists every tenant table.
ALTER TABLE public.broadcast_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.queue_positions_told ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON public.broadcast_requests FROM PUBLIC;
REVOKE ALL ON public.queue_positions_told FROM PUBLIC;
-- The upsert reads the row it updates (ON CONFLICT ... DO UPDATE and RETURNING), the run deletes it.
GRANT SELECT ON public.broadcast_requests TO support_app;
GRANT INSERT (user_id, queue, agent_ids, requested_at) ON public.broadcast_requests TO support_app;
GRANT UPDATE (queue, agent_ids, requested_at) ON public.broadcast_requests TO support_app;
GRANT DELETE ON public.broadcast_requests TO support_app;
GRANT SELECT ON public.queue_positions_told TO support_app;
GRANT INSERT (user_id, session_id, position) ON public.queue_positions_told TO support_app;
GRANT UPDATE (position) ON public.queue_positions_told TO support_app;
GRANT DELETE ON public.queue_positions_told TO support_app;
