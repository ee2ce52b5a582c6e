"""SLA policies (issue 18, docs/sla.md): the tenant's policy (the `sla` settings area), each ticket's state against
it, and the every-minute sweep that records warnings and breaches.

The due times themselves are the database's: the trigger support_tickets_sla (sql/definitions/sla.sql) computes
them in business time whenever a ticket is created or its priority or status changes, whichever path changes it
(the API, email in, a channel, a chat made into a ticket), and keeps the sweep's queue (ticket_sla_checks). What the
code here adds is the state of a ticket at read time (SLA_STATE, a column expression of the ticket queries), the
settings' validation against PostgreSQL's time zone database, and the sweep's entry point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from support.auth import Principal
from support.db import tenant_transaction
from support.db.connection import Cursor, anonymous_transaction
from support.errors import InvalidInput
from support.models.settings import SlaSettings
from support.observability import logger
from support.services.settings import read_settings, write_settings

SLA = "sla"

# The clock of a ticket: now while it runs, the instant it stopped while it stands still (a pause, or resolved).
_CLOCK = "coalesce(sla_paused_at, now())"
# A ticket's SLA state, as an expression over its own columns (sql/0033): breached once a due time passed before its
# target was met (the first public agent reply, the resolution), met when resolved or closed without a breach,
# at risk once a pending target's at-risk instant (80 % of its business time) has come, else ok.
SLA_STATE = f"""CASE
    WHEN first_response_due_at < coalesce(first_responded_at, {_CLOCK})
      OR resolution_due_at < coalesce(resolved_at, {_CLOCK}) THEN 'breached'
    WHEN status IN ('resolved', 'closed') THEN 'met'
    WHEN (first_responded_at IS NULL AND first_response_risk_at <= {_CLOCK})
      OR (resolved_at IS NULL AND resolution_risk_at <= {_CLOCK}) THEN 'at_risk'
    ELSE 'ok' END"""
# The SLA columns of the ticket JSON (support.services.tickets.TICKET_COLUMNS).
TICKET_SLA_COLUMNS = f"first_response_due_at, resolution_due_at, sla_paused_at, {SLA_STATE} AS sla_state"
TICKET_SLA_COLUMN_NAMES = ("first_response_due_at", "resolution_due_at", "sla_paused_at", "sla_state")

# The most queue rows one sweep takes (sla_sweep caps it too); any beyond wait for the next minute's sweep.
SWEEP_BATCH = 10_000


def sla_settings(cur: Cursor, tenant_id: UUID) -> SlaSettings:
    return read_settings(cur, tenant_id, SLA, SlaSettings)


def get_sla_settings(principal: Principal) -> SlaSettings:
    with tenant_transaction(principal.tenant_id) as cur:
        return sla_settings(cur, principal.tenant_id)


def put_sla_settings(principal: Principal, data: SlaSettings) -> SlaSettings:
    """The whole policy (admins only). The time zone must be one PostgreSQL knows, since PostgreSQL computes the due
    times: an unknown one is a 422 like any invalid field."""
    principal.require_admin(f"change the {SLA} settings")
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute("SELECT EXISTS (SELECT FROM pg_timezone_names WHERE name = %s) AS known", (data.time_zone,))
        row = cur.fetchone()
    if not (row and row["known"]):
        raise InvalidInput(
            "unknown time zone",
            details=[{"field": "body.timeZone", "message": "not a known IANA time zone", "type": "time_zone"}],
        )
    return write_settings(principal, SLA, data)


@dataclass(frozen=True)
class SlaEvent:
    """A warning (`at_risk`) or a breach (`breached`) of a ticket's `first_response` or `resolution` target, recorded
    once (ticket_sla_events is unique per ticket, target and kind)."""

    id: UUID
    tenant_id: UUID
    ticket_id: UUID
    target: str
    kind: str
    due_at: datetime
    occurred_at: datetime


def record_due_events(cur: Cursor, now: datetime, batch: int = SWEEP_BATCH) -> list[SlaEvent]:
    """Record, in the open transaction, every SLA threshold passed by `now` (at most `batch` tickets' worth), for all
    tenants: sla_sweep (sql/definitions/sla.sql, SECURITY DEFINER over the two SLA tables only). Answers the events
    recorded by this call; one an earlier call recorded is not recorded or answered again."""
    cur.execute("SELECT id, user_id, ticket_id, target, kind, due_at, occurred_at FROM sla_sweep(%s, %s)", (now, batch))
    return [
        SlaEvent(
            id=row["id"],
            tenant_id=row["user_id"],
            ticket_id=row["ticket_id"],
            target=row["target"],
            kind=row["kind"],
            due_at=row["due_at"],
            occurred_at=row["occurred_at"],
        )
        for row in cur.fetchall()
    ]


# What happens to each SLA event once it is recorded and committed: one call per event, in the order recorded. The
# automation rules subscribe here (their `sla_at_risk` / `sla_breached` events); empty until they do.
EVENT_HANDLERS: list[Callable[[SlaEvent], None]] = []


def event_recorded(event: SlaEvent) -> None:
    """One SLA event, recorded and committed by the sweep: hand it to every subscriber (EVENT_HANDLERS). A subscriber
    that fails is logged and the others still hear of it; the event itself stays recorded."""
    for handler in EVENT_HANDLERS:
        try:
            handler(event)
        except Exception:
            logger.exception("an SLA event handler failed", extra={"event": event.id, "kind": event.kind})


def sweep(now: datetime) -> list[SlaEvent]:
    """The SLA step of the every-minute workflow sweep (functions/workflow_sweep): records each warning and breach
    that `now` has reached, once, in one transaction of its own, then hands each to event_recorded, and answers
    what it recorded. Its cost follows the tickets due, not the tickets open: the queue is read by its partial index
    on the next instant (docs/sla.md)."""
    with anonymous_transaction() as cur:
        events = record_due_events(cur, now)
    for event in events:
        event_recorded(event)
    return events
