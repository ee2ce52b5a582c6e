"""Staff broadcasts: what all of a tenant's staff (and the waiting visitors) hear of the queue and of agents'
presence, coalesced and sent off the request path, so that no visitor's or agent's answer waits on the number of
staff online.

The shape of it:

* A change (a new waiting chat, a claim, an assignment by the drain, the end or transfer of a chat that changes
  the queue, an agent's status) calls `request` inside its own transaction (or, for the queue's actions, which run
  in the database, its SQL twin broadcast_request, sql/definitions/broadcasts.sql): one upsert of the tenant's row in
  `broadcast_requests` (sql/0023) that ORs `queue` and adds the agent to `agent_ids`. The upsert says whether
  this transaction must start a run: when it inserted the row, or found it older than STALE_AFTER_SECONDS (a
  start that was lost, an invocation that failed for good: a tenant is never silenced for longer). Only then,
  after the commit (connections.Outbox.after_send, once the caller's own answer is sent), `start` invokes the
  broadcast function asynchronously (support.invocations; BROADCAST_FUNCTION_NAME), or, with no function
  configured (tests that call services directly), runs it in the caller's process through the same code. Every
  other change of a burst finds the row there and rides along: a burst costs one run.
* `run` (functions/broadcast) waits BROADCAST_COALESCE_MS, then in ONE short transaction, under the tenant's
  broadcast lock (so runs of a tenant never overlap), deletes the tenant's row (a change committed after that
  inserts it again and starts the next run: nothing is lost), reads the queue (waiting sessions oldest first,
  with positions), the changed agents' statuses, the staff connections and the connections of the waiting
  visitors whose position changed since they were last told (`queue_positions_told`); records the positions it
  tells; commits; then posts. Each staff connection gets one `queue.updated` and one `agent.status` per changed
  agent; each waiting visitor whose position changed one `chat.queued`. So a new chat at the end of the queue
  re-tells no one, a claim of the head re-tells each remaining visitor once, and a burst of changes re-tells each
  visitor at most once: O(n) per burst, where every change used to re-tell every waiting visitor.
* With more recipients than BROADCAST_SLICE_SIZE, the run delivers the first slice itself and hands each other
  slice (its connection ids and the events) to an asynchronous invocation of the same function (`deliver_slice`).

Ordering: events from two runs may arrive in either order; `queue.updated` and `chat.queued` carry `asOf` (the
time the run read the queue; runs of a tenant are serialised, so a later run's is later), and clients keep the
newest. The caller's own answer (setStatus's agent.status, startChat's chat.started and chat.queued, claimChat's
chat.assigned) stays on the request path, immediate; a staff caller also hears the broadcast's copy.

Lock order: a change upserts the request row last in its transaction, after its queue lock, sessions and agents.
The run takes only its tenant's broadcast lock and the request row, reads without locks, and writes only
`queue_positions_told`, which no change locks: it never waits for a change while holding the row a change waits
for (which is why the told positions are not a column of live_chat_sessions).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from support.config import get_settings
from support.db import tenant_transaction
from support.db.connection import Cursor
from support.db.statements import lock_for_tenant
from support.invocations import invoke_or_run
from support.models.realtime import AgentStatusNotice, Queued, QueuedSession, QueueUpdate
from support.observability import logger
from support.realtime import Delivery, deliver, event
from support.services.connections import Outbox, forget_connections, staff_connections, visitor_connections

STALE_AFTER_SECONDS = 5  # a request row this old was left by a start that never ran: the next change starts again
QUEUE_SESSIONS_SHOWN = 100  # the sessions queue.updated lists, oldest first (`waiting` counts them all)

# One statement: record the change, and say whether this transaction starts a run (broadcast_request,
# sql/definitions/broadcasts.sql, which chat_start calls too).
_REQUEST = "SELECT broadcast_request(%(tenant)s, %(queue)s, %(agents)s::uuid[], %(stale)s) AS start"

# The queue with each session's position and the position its visitor was last told (NULL: never).
# With each one's expected wait (chat_wait_estimates, sql/definitions/routing.sql, once for every position).
_QUEUE = """WITH queue AS (
    SELECT s.id, s.visitor_id, s.visitor_name, s.created_at,
        (row_number() OVER (ORDER BY s.created_at, s.id))::integer AS position, t.position AS told
    FROM live_chat_sessions s
    LEFT JOIN queue_positions_told t ON t.user_id = s.user_id AND t.session_id = s.id
    WHERE s.user_id = %(tenant)s AND s.status = 'waiting'
), waits AS (
    SELECT chat_wait_estimates(%(tenant)s, ARRAY(SELECT q.position FROM queue q ORDER BY q.position)) AS seconds
)
SELECT q.*, w.seconds[q.position] AS expected_wait FROM queue q, waits w ORDER BY q.position"""

_TELL = """INSERT INTO queue_positions_told (user_id, session_id, position)
SELECT %s, told.session_id, told.position FROM unnest(%s::uuid[], %s::int[]) AS told(session_id, position)
ON CONFLICT (user_id, session_id) DO UPDATE SET position = excluded.position"""

# The told positions of sessions that no longer wait (claimed, assigned, ended): read at the time of the delete,
# so a session that began waiting since the queue was read keeps the position its start told.
_FORGET = """DELETE FROM queue_positions_told t WHERE t.user_id = %s AND NOT EXISTS (
    SELECT FROM live_chat_sessions s WHERE s.user_id = t.user_id AND s.id = t.session_id AND s.status = 'waiting')"""


def request(cur: Cursor, outbox: Outbox, *, queue: bool = False, agent_ids: Iterable[UUID] = ()) -> None:
    """Record a change for the tenant's next broadcast, in the change's transaction (last: see the lock order);
    the first change of a burst starts the run after its commit (`outbox.send`)."""
    agents = sorted(set(agent_ids))
    cur.execute(
        _REQUEST,
        {"tenant": outbox.tenant_id, "queue": queue, "agents": agents, "stale": STALE_AFTER_SECONDS},
    )
    row = cur.fetchone()
    if row is not None and row["start"]:
        start_after(outbox)


def start_after(outbox: Outbox) -> None:
    """Start the run once the outbox is sent (after the commit): for the change whose request said it starts one
    (`request` here; a start's, chat_start's `start_broadcast`)."""
    tenant_id = outbox.tenant_id
    outbox.after_send(lambda: start(tenant_id))


def start(tenant_id: UUID) -> None:
    """Start a run for the tenant: an asynchronous invocation of the broadcast function, or, with none configured
    (or when the invocation fails), the run itself, here. Never raises: the request row stays, and the next change
    after STALE_AFTER_SECONDS starts again."""
    invoke_or_run(
        get_settings().broadcast_function_name,
        {"tenantId": str(tenant_id)},
        lambda: run(tenant_id),
        what="staff broadcast",
    )


@dataclass(frozen=True)
class Slice:
    """What one invocation delivers: `events`, and for each connection the indexes of the events it gets."""

    events: list[dict[str, Any]]
    recipients: list[tuple[str, list[int]]]

    def payload(self) -> dict[str, Any]:
        return {"events": self.events, "recipients": [[c, list(e)] for c, e in self.recipients]}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Slice:
        return cls(list(data["events"]), [(str(c), [int(i) for i in e]) for c, e in data["recipients"]])


@dataclass
class RunReport:
    """What a run did (for the logs and the tests)."""

    ran: bool = False
    staff_connections: int = 0
    queue_events: int = 0  # queue.updated sent (one per staff connection when the queue changed)
    retold: list[UUID] = field(default_factory=list)  # sessions whose visitor was told a new position
    slices_handed_on: int = 0


def run(tenant_id: UUID, *, function_name: str | None = None) -> RunReport:
    """One broadcast run of the tenant (see the module's docstring). `function_name` is the function to hand further
    slices to (the broadcast function's own name in AWS); without it, BROADCAST_FUNCTION_NAME, else each slice is
    delivered here in turn."""
    settings = get_settings()
    if settings.broadcast_coalesce_ms:
        time.sleep(settings.broadcast_coalesce_ms / 1000)
    report = RunReport()
    staff_events: list[dict[str, Any]] = []
    visitor_events: list[tuple[list[str], dict[str, Any]]] = []
    with tenant_transaction(tenant_id) as cur:
        lock_for_tenant(cur, tenant_id, "broadcast")
        cur.execute(
            "DELETE FROM broadcast_requests WHERE user_id = %s RETURNING queue, agent_ids, clock_timestamp() AS as_of",
            (tenant_id,),
        )
        pending = cur.fetchone()
        if pending is None:
            return report  # an earlier run took the changes this run was started for
        report.ran = True
        staff = staff_connections(cur, tenant_id)
        report.staff_connections = len(staff)
        if pending["queue"]:
            update, visitor_events = _read_queue(cur, tenant_id, pending["as_of"], report)
            staff_events.append(event("queue.updated", update.model_dump(mode="json", by_alias=True)))
            report.queue_events = len(staff)
        if pending["agent_ids"]:
            cur.execute(
                "SELECT id, status FROM support_agents WHERE user_id = %s AND id = ANY(%s) ORDER BY id",
                (tenant_id, pending["agent_ids"]),
            )
            for row in cur.fetchall():
                notice = AgentStatusNotice(agent_id=row["id"], status=row["status"])
                staff_events.append(event("agent.status", notice.model_dump(mode="json", by_alias=True)))
    # After the commit: every staff connection gets the staff events, each moved visitor's connections its own.
    events = staff_events + [wire for _, wire in visitor_events]
    everything = list(range(len(staff_events)))
    recipients = [(connection_id, everything) for connection_id in staff] if staff_events else []
    for index, (connection_ids, _) in enumerate(visitor_events, start=len(staff_events)):
        recipients.extend((connection_id, [index]) for connection_id in connection_ids)
    slices = _slices(events, recipients, settings.broadcast_slice_size)
    target = function_name or settings.broadcast_function_name
    for later in slices[1:]:
        if target is not None and _hand_on(target, tenant_id, later):
            report.slices_handed_on += 1
        else:
            deliver_slice(tenant_id, later)
    if slices:
        deliver_slice(tenant_id, slices[0])
    return report


def _read_queue(
    cur: Cursor, tenant_id: UUID, as_of: Any, report: RunReport
) -> tuple[QueueUpdate, list[tuple[list[str], dict[str, Any]]]]:
    """The queue as it is now, and chat.queued (with the visitor's connections) for each waiting visitor whose
    position changed since they were last told; records the positions told and forgets those of sessions gone."""
    cur.execute(_QUEUE, {"tenant": tenant_id})
    queue = cur.fetchall()
    update = QueueUpdate(
        waiting=len(queue),
        sessions=[QueuedSession.model_validate(row) for row in queue[:QUEUE_SESSIONS_SHOWN]],
        as_of=as_of,
    )
    moved = [row for row in queue if row["told"] != row["position"]]
    if moved:
        cur.execute(_TELL, (tenant_id, [row["id"] for row in moved], [row["position"] for row in moved]))
    cur.execute(_FORGET, (tenant_id,))
    report.retold = [row["id"] for row in moved]
    connections = visitor_connections(cur, tenant_id, [row["visitor_id"] for row in moved])
    told: list[tuple[list[str], dict[str, Any]]] = []
    for row in moved:
        notice = Queued(
            session_id=row["id"], position=row["position"], as_of=as_of, expected_wait_seconds=row["expected_wait"]
        )
        wire = event("chat.queued", notice.model_dump(mode="json", by_alias=True))
        told.append((connections.get(row["visitor_id"], []), wire))
    return update, told


def _slices(events: Sequence[dict[str, Any]], recipients: Sequence[tuple[str, list[int]]], size: int) -> list[Slice]:
    """The recipients in slices of `size` connections, each with only the events its connections get."""
    slices = []
    for first in range(0, len(recipients), size):
        chunk = recipients[first : first + size]
        used = sorted({i for _, indexes in chunk for i in indexes})
        renumber = {old: new for new, old in enumerate(used)}
        slices.append(Slice([events[i] for i in used], [(c, [renumber[i] for i in indexes]) for c, indexes in chunk]))
    return slices


def _hand_on(function_name: str, tenant_id: UUID, part: Slice) -> bool:
    """Queue an invocation that delivers `part`; False (the caller delivers it) when Lambda did not take it."""
    from support.invocations import lambda_invoker

    try:
        lambda_invoker().invoke_async(function_name, {"tenantId": str(tenant_id), "slice": part.payload()})
    except Exception:
        logger.exception("a broadcast slice was not handed on; delivering it here")
        return False
    return True


def deliver_slice(tenant_id: UUID, part: Slice) -> None:
    """Post each recipient its events, and forget the connections that turned out to be gone."""
    deliveries = [Delivery(c, part.events[i]) for c, indexes in part.recipients for i in indexes]
    gone = deliver(deliveries)
    if gone:
        forget_connections(tenant_id, gone)
