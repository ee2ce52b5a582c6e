"""Routing (issue 18): who gets a new or unassigned ticket or chat, by the tenant's routing settings
(support.models.settings.RoutingSettings, `GET`/`PUT /api/support/settings/routing`).

The rule, the same for both: an `available` agent under their limit (tickets: `ticketLimitPerAgent` open tickets,
neither resolved nor closed; chats: `max_concurrent_chats`) whose `skills` cover the item's required skills (every
matching rule's), fewest open items first, then the longest idle (the least recently given one of its kind), then the
lowest id. With no such agent the item waits in order (its creation); when one frees up (a chat ends, a ticket is
resolved or closed or leaves them, an agent becomes available) the oldest waiting items they can take go to them.

Where it runs: in the database, in the transaction of the change, so a decision reads the agents as they are and
costs no round trip of its own (sql/definitions/routing.sql; the chat side, chat_drain_queue, in chat.sql). Chats
are decided under the tenant's chat queue lock (support.services.chat), tickets under the tenant's ticket routing
lock: each serialises the decisions of its kind, so no agent is given more than their limit and no item is given
twice, under any concurrency. Lock order: the chat queue lock, a ticket's row, the ticket routing lock, agents (the
routing lock's holder takes other tickets only with SKIP LOCKED).

What calls it:
* a new ticket, whatever path makes it (support.services.tickets._insert_ticket, email in, social channels):
  `pick_agent` before the insert, which then names the agent (the insert's figure triggers lock the agent before the
  tenant's totals, as every ticket write does);
* a ticket change that frees an agent or leaves a ticket without one (update, close, assign in the tickets
  service): `lock_for_change` before the write, `drain_tickets` after;
* an agent's status (agent_set_status, chat.sql): available takes waiting tickets; away or offline hands back the
  unanswered chats (and the open tickets when `reassignTicketsWhenAway`);
* the automation rules' `route_by_skills` action: `route_ticket`;
* the every-minute sweep: `expire_waiting_chats(now)` (a chat waiting longer than `chatWaitLimitSeconds` becomes a
  ticket; support.services.chat_expiry).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from support.auth import Principal
from support.db.connection import Cursor


def pick_agent(
    cur: Cursor, principal: Principal, *, category: str | None, channel: str, custom_fields: dict[str, Any]
) -> UUID | None:
    """The agent a new ticket with these fields goes to (ticket_pick_agent: the routing lock taken, the agent stamped
    as given one now), or None (automatic assignment off, or no agent can take it: it waits in the ticket queue). The
    caller inserts the ticket with it, in the same transaction."""
    cur.execute(
        "SELECT ticket_pick_agent(%s, %s, %s, %s) AS agent_id",
        (principal.tenant_id, category, channel, Jsonb(custom_fields)),
    )
    row = cur.fetchone()
    return row["agent_id"] if row is not None else None


def route_ticket(cur: Cursor, principal: Principal, ticket_id: UUID) -> UUID | None:
    """Route one ticket that exists, in the open transaction (ticket_route; the automation rules' `route_by_skills`
    calls this): when the tenant assigns tickets automatically and the
    ticket has no agent and is neither resolved nor closed, it goes to the best agent who can take it. Answers the
    agent it went to, else None (automatic assignment off, the ticket unknown, finished or already assigned, or no
    agent can take it now: it then waits in the ticket queue, oldest first). Locks the ticket (if the caller has not
    already), then the tenant's ticket routing lock."""
    cur.execute("SELECT outcome, agent_id FROM ticket_route(%s, %s)", (principal.tenant_id, ticket_id))
    row = cur.fetchone()
    return row["agent_id"] if row is not None and row["outcome"] == "assigned" else None


def lock_for_change(cur: Cursor, principal: Principal) -> None:
    """Before a ticket change that can free an agent (a resolve, a close, a reassignment), with the ticket's row
    already locked and before the write (whose figure triggers lock the agent): the tenant's ticket routing lock,
    when tickets are routed automatically. See the lock order."""
    cur.execute(
        """SELECT routing_lock_tickets(%(tenant)s)
        WHERE coalesce((routing_settings(%(tenant)s) ->> 'auto_assign_tickets')::boolean, false)""",
        {"tenant": principal.tenant_id},
    )


def drain_tickets(cur: Cursor, principal: Principal, agent_ids: list[UUID] | None = None) -> list[tuple[UUID, UUID]]:
    """The ticket queue's drain (ticket_drain): the oldest waiting tickets to the agents who can take them (only
    `agent_ids` when given). Answers (ticket, agent) per assignment. Nothing when automatic assignment is off."""
    cur.execute("SELECT ticket_id, agent_id FROM ticket_drain(%s, %s)", (principal.tenant_id, agent_ids))
    return [(row["ticket_id"], row["agent_id"]) for row in cur.fetchall()]
