"""Automation rules (issue 18): per-tenant rules that act on the desk's events, after the change commits.

The shape of it:

* Rules (`automation_rules`, sql/0034): an event, conditions (`all` or `any`), ordered actions, a position among the
  tenant's rules and `enabled`; validated strictly when saved (support.models.automations), then evaluated from
  their stored JSON. Admins edit them (`/api/support/automations`); every tenant starts with the two auto-close rules
  (`automation_seed_defaults`, sql/definitions/automations.sql), which it may edit, disable or delete.
* Events (`automation_events`): an outbox. The triggers of sql/definitions/automations.sql write one row per event
  in the change's own transaction, whatever code path made the change (a ticket created or updated, its status
  changed, a customer's message, an agent's public reply, a chat started or ended), and only for an event the
  tenant has an enabled rule on. The sweep writes the time-based ones (ticket_in_status, chat_idle,
  chat_waiting_too_long); the SLA sweep writes sla_at_risk and sla_breached (`record_event`).
* Runs: after the commit. Every path that writes events starts a run for the tenant once its change committed
  (`kick`, or `start_after` for a change sent through an outbox: an asynchronous invocation of the automations
  function, AUTOMATIONS_FUNCTION_NAME, else the run here): the tickets function after its answer is built; the
  chat's start and end (HTTP and WebSocket) and the chat expiry; an agent's status or settings (hand-backs, routing);
  inbound email; channel deliveries; the web form; the routing settings. The sweep
  (`sweep(now)`, a step of the every-minute workflow sweep) runs whatever is left, so an event whose start was lost
  runs within a minute. An event is run in ONE transaction: its row locked (FOR UPDATE SKIP LOCKED: a second runner
  passes it by), the tenant's enabled rules on it in order, each matching rule's run row inserted (unique per event
  and rule: a retry or a concurrent runner never acts twice) and its actions applied under a savepoint (a failing
  action rolls back that rule's actions alone and is recorded as `failed` with the error), the event marked. Effects
  outside the database (a staff notification, the end of a chat) follow the commit: at most once.
* Loops: a change made by a rule's action carries the rule and the chain's depth (the transaction-local
  app.automation_rule and app.automation_depth, read by the capture triggers). A rule is never run on its own
  change (recorded `skipped`), and a chain stops at MAX_DEPTH (recorded `skipped`).
* Runs are read per ticket: `GET /api/support/tickets/{ticketId}/automation-runs`.
"""

from __future__ import annotations

import time as clock
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import psycopg
from psycopg.types.json import Jsonb

from support.auth import Principal, Role
from support.config import get_settings
from support.db import tenant_transaction
from support.db.connection import Cursor, anonymous_transaction
from support.db.statements import lock_for_tenant, oldest_first
from support.errors import DomainError, InvalidInput, QuotaExceeded, found
from support.invocations import invoke_or_run
from support.models.automations import (
    PRIORITY_RANK,
    ActionType,
    AutomationRun,
    Event,
    Rule,
    RuleCreate,
    RuleFields,
    RuleUpdate,
    RunOutcome,
)
from support.models.settings import WEEKDAYS, SlaSettings
from support.models.tickets import TicketUpdate
from support.observability import logger
from support.pagination import Page, page_of

if TYPE_CHECKING:
    from support.services.connections import Outbox
    from support.services.sla import SlaEvent

MAX_RULES_PER_TENANT = 200
MAX_DEPTH = 3  # a chain of rules firing on each other's changes stops here (recorded)
EVENTS_PER_RUN = 200  # events one run takes before it returns (the sweep comes back a minute later)
KEEP_EVENTS = timedelta(days=30)  # processed events are pruned after this; the runs stay
SYSTEM_SUBJECT = "automation"
NOTE_SENDER = "Automation"
REPLY_SENDER = "Support team"
NOTICE = "automation.notice"  # the staff's WebSocket event of notify_staff
ROUTING_SKIPPED = "skipped: not routed (automatic ticket assignment off, an agent already, or none can take it now)"

RULE_COLUMNS = "id, name, event, definition, position, enabled, created_at, updated_at"
RUN_COLUMNS = """id, event_id, rule_id, rule_name, event, ticket_id, session_id, outcome, error, actions, depth,
    created_at"""


def _rule(row: dict[str, Any]) -> Rule:
    definition = row["definition"]
    return Rule.model_validate(
        {
            **row,
            "conditions": definition.get("conditions", {"all": []}),
            "actions": definition.get("actions", []),
            "parameters": definition.get("parameters", {}),
            "business_hours": definition.get("businessHours"),
        }
    )


# --- the rules: GET / POST / PATCH / DELETE /api/support/automations ---------------------------------------------


def ensure_defaults(cur: Cursor, tenant_id: UUID) -> None:
    """Give the tenant the default rules, once (a tenant that deleted them does not get them back). The database
    takes the tenant from the transaction's binding (`tenant_id` is the one the transaction was opened for)."""
    del tenant_id
    cur.execute("SELECT automation_seed_own_defaults()")


def list_rules(principal: Principal) -> list[Rule]:
    """The tenant's rules in the order they run (at most MAX_RULES_PER_TENANT: one page)."""
    principal.require_admin("read the automation rules")
    with tenant_transaction(principal.tenant_id) as cur:
        ensure_defaults(cur, principal.tenant_id)
        cur.execute(
            f"""SELECT {RULE_COLUMNS} FROM automation_rules WHERE user_id = %s
            ORDER BY position, created_at, id""",  # noqa: S608
            (principal.tenant_id,),
        )
        return [_rule(row) for row in cur.fetchall()]


def get_rule(principal: Principal, rule_id: UUID) -> Rule:
    principal.require_admin("read the automation rules")
    with tenant_transaction(principal.tenant_id) as cur:
        return _rule(_read_rule(cur, principal.tenant_id, rule_id))


def _read_rule(cur: Cursor, tenant_id: UUID, rule_id: UUID, *, lock: bool = False) -> dict[str, Any]:
    cur.execute(
        f"SELECT {RULE_COLUMNS} FROM automation_rules WHERE user_id = %s AND id = %s"  # noqa: S608
        + (" FOR UPDATE" if lock else ""),
        (tenant_id, rule_id),
    )
    return found(cur.fetchone(), "automation rule")


def _place(cur: Cursor, tenant_id: UUID, rule_id: UUID | None, position: int | None) -> int:
    """Renumber the tenant's rules 0, 1, 2, ... with `rule_id` at `position` (the end when None); its position."""
    cur.execute("SELECT id FROM automation_rules WHERE user_id = %s ORDER BY position, created_at, id", (tenant_id,))
    order = [row["id"] for row in cur.fetchall() if row["id"] != rule_id]
    at = len(order) if position is None else min(position, len(order))
    if rule_id is not None:
        order.insert(at, rule_id)
    cur.execute(
        """UPDATE automation_rules r SET position = o.position - 1
        FROM unnest(%s::uuid[]) WITH ORDINALITY AS o (id, position)
        WHERE r.user_id = %s AND r.id = o.id AND r.position <> o.position - 1""",
        (order, tenant_id),
    )
    return at


def create_rule(principal: Principal, data: RuleCreate) -> Rule:
    principal.require_admin("create automation rules")
    with tenant_transaction(principal.tenant_id) as cur:
        lock_for_tenant(cur, principal.tenant_id, "automation-rules")  # the renumbering and the cap, one at a time
        ensure_defaults(cur, principal.tenant_id)
        cur.execute("SELECT count(*) AS n FROM automation_rules WHERE user_id = %s", (principal.tenant_id,))
        row = cur.fetchone()
        if row is not None and row["n"] >= MAX_RULES_PER_TENANT:
            raise QuotaExceeded(f"a tenant may have at most {MAX_RULES_PER_TENANT} automation rules")
        cur.execute(
            """INSERT INTO automation_rules (user_id, name, event, definition, position, enabled, updated_by)
            VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
            (
                principal.tenant_id,
                data.name,
                data.event.value,
                Jsonb(data.definition()),
                10_000_000,
                data.enabled,
                principal.subject[:300] or None,
            ),
        )
        rule_id = found(cur.fetchone(), "automation rule")["id"]
        if _wait(data.event, data.definition()["parameters"]) is not None:  # from now on: never retroactive
            cur.execute(
                "UPDATE automation_rules SET swept_until = now() WHERE user_id = %s AND id = %s",
                (principal.tenant_id, rule_id),
            )
        _place(cur, principal.tenant_id, rule_id, data.position)
        return _rule(_read_rule(cur, principal.tenant_id, rule_id))


def update_rule(principal: Principal, rule_id: UUID, changes: RuleUpdate) -> Rule:
    """Only the fields given change; the rule as changed is validated whole (422). A time-based rule that changes
    its event or parameters is swept from scratch."""
    principal.require_admin("change automation rules")
    given = changes.model_dump(exclude_unset=True, by_alias=True, mode="json")
    with tenant_transaction(principal.tenant_id) as cur:
        lock_for_tenant(cur, principal.tenant_id, "automation-rules")
        current = _rule(_read_rule(cur, principal.tenant_id, rule_id, lock=True))
        merged = current.model_dump(
            mode="json",
            by_alias=True,
            include={"name", "event", "conditions", "actions", "parameters", "business_hours", "enabled"},
        )
        position = given.pop("position", None)
        merged.update(given)
        try:
            data = RuleFields.model_validate(merged)
        except ValueError as exc:  # a pydantic ValidationError: the whole rule's, named as the body's fields
            raise _invalid(exc) from exc
        definition = data.definition()
        cur.execute(
            "SELECT swept_until, now() AS now FROM automation_rules WHERE user_id = %s AND id = %s",
            (principal.tenant_id, rule_id),
        )
        row = found(cur.fetchone(), "automation rule")
        swept_until = _swept_after_change(
            row["swept_until"], row["now"], current.event, current.parameters, data.event, definition["parameters"]
        )
        cur.execute(
            """UPDATE automation_rules SET name = %s, event = %s, definition = %s, enabled = %s, updated_at = now(),
                updated_by = %s, swept_until = %s
            WHERE user_id = %s AND id = %s""",
            (
                data.name,
                data.event.value,
                Jsonb(definition),
                data.enabled,
                principal.subject[:300] or None,
                swept_until,
                principal.tenant_id,
                rule_id,
            ),
        )
        if position is not None:
            _place(cur, principal.tenant_id, rule_id, position)
        return _rule(_read_rule(cur, principal.tenant_id, rule_id))


def _wait(event: str, parameters: dict[str, Any]) -> timedelta | None:
    """How long a time-based rule waits (None: the event is not time-based)."""
    if event == Event.TICKET_IN_STATUS:
        return timedelta(hours=float(parameters["hours"]))
    if event in (Event.CHAT_IDLE, Event.CHAT_WAITING_TOO_LONG):
        return timedelta(minutes=int(parameters["minutes"]))
    return None


def _swept_after_change(
    swept: datetime | None,
    now: datetime,
    old_event: str,
    old_parameters: dict[str, Any],
    new_event: str,
    new_parameters: dict[str, Any],
) -> datetime | None:
    """A time-based rule's watermark after an edit. The subjects it has considered are those that began their wait
    (entered the status, went idle, started waiting) by `swept - wait`; a new wait keeps that point, so nothing
    considered fires again and nothing not yet considered is skipped. A rule that becomes time-based starts from now
    (never retroactive: a rule does not act at once on everything already overdue)."""
    new_wait = _wait(new_event, new_parameters)
    if new_wait is None:
        return None
    old_wait = _wait(old_event, old_parameters)
    if old_event != new_event or old_wait is None or swept is None:
        return now
    return swept - old_wait + new_wait


def _invalid(error: ValueError) -> InvalidInput:
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        details = [
            {
                "field": ".".join(["body", *(str(p) for p in e["loc"])]),
                "message": e["msg"],
                "type": e["type"],
            }
            for e in error.errors(include_url=False)
        ]
        first = details[0]["message"] if details else str(error)
        return InvalidInput(f"the rule is not valid: {first}", details=details)
    return InvalidInput(f"the rule is not valid: {error}")


def delete_rule(principal: Principal, rule_id: UUID) -> Rule:
    """Deleted for good (answered as it was); its runs stay (without the rule's id, with its name)."""
    principal.require_admin("delete automation rules")
    with tenant_transaction(principal.tenant_id) as cur:
        lock_for_tenant(cur, principal.tenant_id, "automation-rules")
        cur.execute(
            f"DELETE FROM automation_rules WHERE user_id = %s AND id = %s RETURNING {RULE_COLUMNS}",  # noqa: S608
            (principal.tenant_id, rule_id),
        )
        deleted = _rule(found(cur.fetchone(), "automation rule"))
        _place(cur, principal.tenant_id, None, None)
        return deleted


def list_ticket_runs(
    principal: Principal, ticket_id: UUID, *, limit: int, cursor: str | None = None
) -> Page[AutomationRun]:
    """The runs of a ticket, oldest first (any member of the desk: it is part of the ticket's history)."""
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute("SELECT 1 FROM support_tickets WHERE user_id = %s AND id = %s", (principal.tenant_id, ticket_id))
        found(cur.fetchone(), "ticket")
        rows = oldest_first(
            cur,
            principal.tenant_id,
            "automation_runs",
            RUN_COLUMNS,
            ("ticket_id", ticket_id),
            limit=limit,
            cursor=cursor,
        )
    return page_of(rows, limit, AutomationRun.model_validate)


# --- evaluating a rule -------------------------------------------------------------------------------------------

DEFAULT_HOURS: dict[str, Any] = {"timeZone": "UTC", "days": [1, 2, 3, 4, 5], "start": "09:00:00", "end": "17:00:00"}


def inside_business_hours(window: dict[str, Any] | None, at: datetime) -> bool:
    """Whether `at` falls in a rule's own window (`businessHours` of its definition). Without one the runner asks
    `inside_desk_hours` (the tenant's SLA settings); DEFAULT_HOURS (Monday to Friday 09:00 to 17:00 UTC) is for an
    evaluation that knows no tenant (the benchmark's `select_rules`)."""
    window = window or DEFAULT_HOURS
    local = at.astimezone(ZoneInfo(window.get("timeZone", "UTC")))
    if local.isoweekday() not in window.get("days", DEFAULT_HOURS["days"]):
        return False
    start = time.fromisoformat(window.get("start", "09:00:00"))
    end = time.fromisoformat(window.get("end", "17:00:00"))
    return start <= local.time().replace(tzinfo=None) < end


def inside_desk_hours(desk: SlaSettings, at: datetime) -> bool:
    """Whether `at` falls in the tenant's business hours as its SLA settings give them (GET/PUT /settings/sla,
    docs/sla.md): the weekday's intervals in the settings' time zone, none on a holiday (a local date)."""
    local = at.astimezone(ZoneInfo(desk.time_zone))
    if local.date() in desk.holidays:
        return False
    clock_time = f"{local.hour:02d}:{local.minute:02d}"  # "HH:MM" compares as text, "24:00" the end of the day
    intervals = getattr(desk.business_hours, WEEKDAYS[local.weekday()])
    return any(interval.start <= clock_time < interval.end for interval in intervals)


def _same(fact: Any, wanted: Any) -> bool:
    if isinstance(fact, str) and isinstance(wanted, str):
        return fact.casefold() == wanted.casefold()
    if isinstance(fact, bool) or isinstance(wanted, bool):
        return fact is wanted
    if isinstance(fact, int | float) and isinstance(wanted, int | float):
        return float(fact) == float(wanted)
    if (isinstance(fact, int | float) and isinstance(wanted, str)) or (
        isinstance(fact, str) and isinstance(wanted, int | float)
    ):
        return str(fact) == str(wanted)
    return bool(fact == wanted)


def _number(value: Any, field_name: str) -> float | None:
    if field_name == "priority":
        rank = PRIORITY_RANK.get(value) if isinstance(value, str) else None
        return float(rank) if rank is not None else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _holds(condition: dict[str, Any], facts: Facts) -> bool:
    name = condition["field"]
    operator = condition["operator"]
    wanted = condition.get("value")
    fact = facts.get(name)
    if operator == "equals":
        return _same(fact, wanted)
    if operator == "not_equals":
        return not _same(fact, wanted)
    if operator == "in":
        return any(_same(fact, w) for w in wanted or [])
    if operator == "contains":
        if isinstance(fact, list):
            return any(_same(item, wanted) for item in fact)
        return isinstance(fact, str) and str(wanted).casefold() in fact.casefold()
    left, right = _number(fact, name), _number(wanted, name)
    if left is None or right is None:
        return False
    return left > right if operator == "greater_than" else left < right


def matches(definition: dict[str, Any], facts: Facts) -> bool:
    """Whether the rule's conditions hold for the facts: every one (`all`, and none given) or at least one (`any`)."""
    conditions = definition.get("conditions") or {}
    if "any" in conditions and conditions["any"] is not None:
        return any(_holds(c, facts) for c in conditions["any"])
    return all(_holds(c, facts) for c in conditions.get("all") or [])


class Facts:
    """What the conditions test: the ticket's or chat's fields by their wire names, `customFields.<name>`, the event's
    own (`message`, `previousStatus`), and `businessHours` (computed only when asked: with the rule's own window,
    else with the tenant's SLA business hours, `desk_hours`, read once when first needed)."""

    __slots__ = ("_values", "at", "desk_hours", "window")

    def __init__(self, values: dict[str, Any], at: datetime) -> None:
        self._values = values
        self.at = at
        self.window: dict[str, Any] | None = None
        self.desk_hours: Callable[[], SlaSettings] | None = None

    def get(self, name: str) -> Any:
        if name == "businessHours":
            if self.window is None and self.desk_hours is not None:
                inside = inside_desk_hours(self.desk_hours(), self.at)
            else:
                inside = inside_business_hours(self.window, self.at)
            return "inside" if inside else "outside"
        if name.startswith("customFields."):
            custom = self._values.get("customFields") or {}
            return custom.get(name[len("customFields.") :])
        return self._values.get(name)


def ticket_facts(ticket: dict[str, Any], data: dict[str, Any], at: datetime) -> Facts:
    agent = ticket.get("assigned_agent_id")
    return Facts(
        {
            "status": ticket["status"],
            "priority": ticket["priority"],
            "category": ticket.get("category"),
            "channel": ticket.get("channel"),
            "subject": ticket.get("subject"),
            "description": ticket.get("description"),
            "customerName": ticket.get("customer_name"),
            "customerEmail": ticket.get("customer_email"),
            "assignedAgentId": str(agent) if agent is not None else None,
            "customFields": ticket.get("custom_fields") or {},
            "message": data.get("message"),
            "previousStatus": data.get("previousStatus"),
        },
        at,
    )


def chat_facts(session: dict[str, Any], at: datetime) -> Facts:
    agent = session.get("assigned_agent_id")
    return Facts(
        {
            "status": session["status"],
            "channel": "chat",
            "visitorName": session.get("visitor_name"),
            "visitorEmail": session.get("visitor_email"),
            "assignedAgentId": str(agent) if agent is not None else None,
        },
        at,
    )


def _desk_hours(cur: Cursor, tenant_id: UUID) -> Callable[[], SlaSettings]:
    """The tenant's SLA settings (their business hours, time zone and holidays), read on first use and kept for the
    event: a rule without its own window reads the desk's hours (`Facts.get("businessHours")`)."""
    from support.services.sla import sla_settings

    read: list[SlaSettings] = []

    def desk() -> SlaSettings:
        if not read:
            read.append(sla_settings(cur, tenant_id))
        return read[0]

    return desk


def select_rules(rules: Iterable[dict[str, Any]], facts: Facts) -> list[dict[str, Any]]:
    """The rules whose conditions hold, in their order (the runner's evaluation, and the benchmark's)."""
    chosen = []
    for rule in rules:
        facts.window = rule["definition"].get("businessHours")
        if matches(rule["definition"], facts):
            chosen.append(rule)
    return chosen


# --- running the events ------------------------------------------------------------------------------------------

_TICKET = """SELECT id, user_id, customer_name, customer_email, subject, description, category, priority, status,
    assigned_agent_id, custom_fields, channel, reference FROM support_tickets WHERE user_id = %s AND id = %s"""
_SESSION = """SELECT id, status, visitor_name, visitor_email, assigned_agent_id, ticket_id
    FROM live_chat_sessions WHERE user_id = %s AND id = %s"""


def record_event(
    cur: Cursor,
    tenant_id: UUID,
    event: Event | str,
    *,
    ticket_id: UUID | None = None,
    session_id: UUID | None = None,
    data: dict[str, Any] | None = None,
    dedup_key: str | None = None,
) -> bool:
    """Write an event in the caller's transaction (the SLA sweep's sla_at_risk and sla_breached; `dedup_key` makes it
    once). Written only when the tenant has an enabled rule on it, as the capture triggers do. True if written."""
    name = Event(event).value
    cur.execute(
        """INSERT INTO automation_events (user_id, event, ticket_id, session_id, data, dedup_key)
        SELECT %(tenant)s, %(event)s, %(ticket)s, %(session)s, %(data)s, %(key)s
        WHERE EXISTS (SELECT FROM automation_rules r WHERE r.user_id = %(tenant)s AND r.event = %(event)s AND r.enabled)
        ON CONFLICT (user_id, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING""",
        {
            "tenant": tenant_id,
            "event": name,
            "ticket": ticket_id,
            "session": session_id,
            "data": Jsonb(data or {}),
            "key": dedup_key,
        },
    )
    return cur.rowcount == 1


@dataclass
class RunReport:
    """What a run did (for the logs and the tests)."""

    events: int = 0
    runs: dict[str, int] = field(default_factory=dict)  # outcome -> count

    def count(self, outcome: str) -> None:
        self.runs[outcome] = self.runs.get(outcome, 0) + 1

    def add(self, other: RunReport) -> None:
        self.events += other.events
        for outcome, n in other.runs.items():
            self.runs[outcome] = self.runs.get(outcome, 0) + n


def system_principal(tenant_id: UUID) -> Principal:
    """Who a rule acts as: the desk itself, with an admin's rights over its own tenant."""
    return Principal(tenant_id=tenant_id, role=Role.ADMIN, subject=SYSTEM_SUBJECT)


def start(tenant_id: UUID) -> None:
    """Run the tenant's pending events soon: an asynchronous invocation of the automations function, or, with none
    configured (or when the invocation fails), the run itself, here. Never raises: the sweep runs what is left."""
    invoke_or_run(
        get_settings().automations_function_name,
        {"tenantId": str(tenant_id)},
        lambda: run_pending(tenant_id),
        what="automations",
    )


def kick(tenant_id: UUID) -> None:
    """After a write of the tenant committed: start a run if it left pending events (one indexed probe)."""
    try:
        with tenant_transaction(tenant_id) as cur:
            cur.execute(
                "SELECT 1 FROM automation_events WHERE user_id = %s AND processed_at IS NULL LIMIT 1", (tenant_id,)
            )
            pending = cur.fetchone() is not None
    except psycopg.Error:
        logger.exception("could not look for pending automation events; the sweep runs them")
        return
    if pending:
        start(tenant_id)


# The probe of `kick`, for a change to send in its own transaction (after its writes; a pipeline's last statement):
# whether it left events pending, known without a round trip of its own.
PENDING = "SELECT EXISTS (SELECT FROM automation_events WHERE user_id = %s AND processed_at IS NULL) AS pending"


def pending(cur: Cursor, tenant_id: UUID) -> bool:
    """In the change's transaction, after its writes: whether the tenant has events pending (its own among them)."""
    cur.execute(PENDING, (tenant_id,))
    row = cur.fetchone()
    return bool(row and row["pending"])


def start_after(outbox: Outbox, rows: list[Any] | bool) -> None:
    """For a change whose effects go out through an outbox (a chat's start or end, an agent's status or settings):
    when it left events pending (`rows`: PENDING's answer, or `pending`'s), start their run once the outbox is sent
    after the commit (Outbox.after_send, beside a staff broadcast's start), so the caller's answer and the
    participants' events never wait for it."""
    if rows if isinstance(rows, bool) else bool(rows and rows[0]["pending"]):
        tenant_id = outbox.tenant_id
        outbox.after_send(lambda: start(tenant_id))


def run_pending(tenant_id: UUID, *, now: datetime | None = None, limit: int = EVENTS_PER_RUN) -> RunReport:
    """Run the tenant's pending events, oldest first, each in its own transaction (see the module's docstring); the
    events its actions write (a chain) are run by the same loop, up to `limit` events."""
    report = RunReport()
    while report.events < limit:
        with tenant_transaction(tenant_id) as cur:
            cur.execute(
                """SELECT id FROM automation_events WHERE user_id = %s AND processed_at IS NULL
                ORDER BY created_at, id LIMIT %s""",
                (tenant_id, min(50, limit - report.events)),
            )
            ids = [row["id"] for row in cur.fetchall()]
        if not ids:
            break
        ran = 0
        for event_id in ids:
            one = run_event(tenant_id, event_id, now=now)
            if one is not None:
                ran += 1
                report.add(one)
        if ran == 0:
            break  # all taken by other runners
    return report


@dataclass
class _After:
    """Effects that follow the commit (at most once): posts to the staff's connections, chats to end."""

    tenant_id: UUID
    notices: list[tuple[list[str], dict[str, Any]]] = field(default_factory=list)
    end_chats: list[tuple[UUID, UUID]] = field(default_factory=list)  # (run id, session id)


def run_event(tenant_id: UUID, event_id: UUID, *, now: datetime | None = None) -> RunReport | None:
    """Run one event (None when another runner has it, or it was run already)."""
    after = _After(tenant_id)
    report = RunReport()
    with tenant_transaction(tenant_id) as cur:
        cur.execute(
            """SELECT id, event, ticket_id, session_id, rule_id, data, caused_by_rule, depth, created_at
            FROM automation_events WHERE user_id = %s AND id = %s AND processed_at IS NULL
            FOR UPDATE SKIP LOCKED""",
            (tenant_id, event_id),
        )
        event = cur.fetchone()
        if event is None:
            return None
        report.events = 1
        if event["rule_id"] is not None:
            cur.execute(
                f"SELECT {RULE_COLUMNS} FROM automation_rules WHERE user_id = %s AND id = %s AND enabled",  # noqa: S608
                (tenant_id, event["rule_id"]),
            )
        else:
            cur.execute(
                f"""SELECT {RULE_COLUMNS} FROM automation_rules WHERE user_id = %s AND event = %s AND enabled
                ORDER BY position, created_at, id""",  # noqa: S608
                (tenant_id, event["event"]),
            )
        rules = cur.fetchall()
        # business hours at the change's time; a time-based event's at the sweep's (its clock: a test clock in tests)
        at = now if now is not None and event["rule_id"] is not None else event["created_at"]
        facts: Facts | None = None
        desk_hours = _desk_hours(cur, tenant_id)
        for rule in rules:
            if facts is None:  # read once, and again after a rule acted: the next rule sees its change
                facts = _facts(cur, tenant_id, event, at)
                if facts is None:
                    break  # the ticket or chat is gone
                facts.desk_hours = desk_hours
            facts.window = rule["definition"].get("businessHours")
            if not matches(rule["definition"], facts):
                continue
            outcome = _run_rule(cur, tenant_id, event, rule, after)
            if outcome is not None:
                report.count(outcome)
            if outcome == RunOutcome.APPLIED:
                facts = None
        cur.execute(
            "UPDATE automation_events SET processed_at = now() WHERE user_id = %s AND id = %s", (tenant_id, event_id)
        )
    _follow(after)
    return report


def _facts(cur: Cursor, tenant_id: UUID, event: dict[str, Any], at: datetime) -> Facts | None:
    if event["ticket_id"] is not None:
        cur.execute(_TICKET, (tenant_id, event["ticket_id"]))
        ticket = cur.fetchone()
        return ticket_facts(ticket, event["data"], at) if ticket else None
    cur.execute(_SESSION, (tenant_id, event["session_id"]))
    session = cur.fetchone()
    return chat_facts(session, at) if session else None


def _run_rule(cur: Cursor, tenant_id: UUID, event: dict[str, Any], rule: dict[str, Any], after: _After) -> str | None:
    """One matching rule on one event: its run row first (None if it ran before), then its actions."""
    skip = None
    if event["caused_by_rule"] == rule["id"]:
        skip = "the rule's own change: a rule never fires on it"
    elif event["depth"] >= MAX_DEPTH:
        skip = f"the chain of rules was cut at depth {MAX_DEPTH}"
    cur.execute(
        """INSERT INTO automation_runs (user_id, event_id, rule_id, rule_name, event, ticket_id, session_id, outcome,
            error, depth)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (event_id, rule_id) DO NOTHING RETURNING id""",
        (
            tenant_id,
            event["id"],
            rule["id"],
            rule["name"],
            event["event"],
            event["ticket_id"],
            event["session_id"],
            RunOutcome.SKIPPED if skip else RunOutcome.FAILED,  # completed below
            skip,
            event["depth"],
        ),
    )
    row = cur.fetchone()
    if row is None:
        return None  # this event and rule ran before: never twice
    if skip:
        return RunOutcome.SKIPPED.value
    run_id = row["id"]
    results: list[dict[str, Any]] = []
    error = None
    cur.execute(
        "SELECT set_config('app.automation_rule', %s, true), set_config('app.automation_depth', %s, true)",
        (str(rule["id"]), str(event["depth"] + 1)),
    )
    pending_after = _After(tenant_id)
    try:
        with cur.connection.transaction():  # a savepoint: a failing action undoes this rule's actions only
            for action in rule["definition"].get("actions", []):
                outcome = _act(cur, tenant_id, event, rule, run_id, action, pending_after)
                results.append({"type": action["type"], "value": action.get("value"), "outcome": outcome})
    except (DomainError, psycopg.Error, ValueError) as exc:
        error = (getattr(exc, "message", None) or str(exc) or type(exc).__name__)[:2000]
        results.append({"type": "error", "value": None, "outcome": f"failed: {error}"})
        pending_after = _After(tenant_id)
    cur.execute("SELECT set_config('app.automation_rule', '', true), set_config('app.automation_depth', '', true)")
    applied = any(r["outcome"] == "applied" for r in results)
    outcome = RunOutcome.FAILED if error else RunOutcome.APPLIED if applied else RunOutcome.SKIPPED
    if outcome is RunOutcome.SKIPPED and error is None:
        error = "; ".join(r["outcome"] for r in results if r["outcome"] != "applied")[:2000] or None
    cur.execute(
        "UPDATE automation_runs SET outcome = %s, error = %s, actions = %s WHERE user_id = %s AND id = %s",
        (outcome, error, Jsonb(results), tenant_id, run_id),
    )
    after.notices += pending_after.notices
    after.end_chats += pending_after.end_chats
    return outcome.value


def _ticket_of(cur: Cursor, tenant_id: UUID, event: dict[str, Any]) -> UUID | None:
    if event["ticket_id"] is not None:
        return UUID(str(event["ticket_id"]))
    cur.execute(
        "SELECT ticket_id FROM live_chat_sessions WHERE user_id = %s AND id = %s", (tenant_id, event["session_id"])
    )
    row = cur.fetchone()
    return row["ticket_id"] if row and row["ticket_id"] else None


def route_by_skills(cur: Cursor, tenant_id: UUID, *, ticket_id: UUID | None, session_id: UUID | None) -> str:
    """The route_by_skills action: the ticket to the best agent whose skills cover it (support.services.routing.
    route_ticket, in the run's transaction, which the ticket's lock and then the routing lock guard). A chat is routed
    by its queue (chat_drain_queue), not by a rule. Skipped when the tenant does not route tickets automatically, the
    ticket already has an agent or is finished, or no agent can take it now (it then waits in the ticket queue)."""
    from support.services import routing

    del session_id
    if ticket_id is None:
        return "skipped: a chat is routed by the chat queue"
    if routing.route_ticket(cur, system_principal(tenant_id), ticket_id) is None:
        return ROUTING_SKIPPED
    return "applied"


def _act(
    cur: Cursor,
    tenant_id: UUID,
    event: dict[str, Any],
    rule: dict[str, Any],
    run_id: UUID,
    action: dict[str, Any],
    after: _After,
) -> str:
    """Apply one action in the run's transaction; what became of it (`applied`, or `skipped: why`). A refusal
    (a closed ticket, an unknown agent or canned response) raises: the rule's run fails."""
    from support.services import email_outbox, tickets
    from support.services.connections import staff_connections
    from support.services.settings import email_settings

    kind = ActionType(action["type"])
    value = action.get("value")
    principal = system_principal(tenant_id)
    ticket_id = _ticket_of(cur, tenant_id, event)
    if kind is ActionType.ROUTE_BY_SKILLS:
        return route_by_skills(cur, tenant_id, ticket_id=ticket_id, session_id=event["session_id"])
    if kind is ActionType.NOTIFY_STAFF:
        notice = {
            "ruleId": str(rule["id"]),
            "ruleName": rule["name"],
            "event": event["event"],
            "ticketId": str(ticket_id) if ticket_id else None,
            "sessionId": str(event["session_id"]) if event["session_id"] else None,
            "message": value,
        }
        after.notices.append((staff_connections(cur, tenant_id), notice))
        return "applied"
    if kind is ActionType.END_CHAT:
        after.end_chats.append((run_id, UUID(str(event["session_id"]))))
        return "applied"
    if ticket_id is None:
        return "skipped: the chat has no ticket"
    if kind in (ActionType.SET_PRIORITY, ActionType.SET_STATUS, ActionType.SET_CATEGORY, ActionType.ASSIGN_TO_AGENT):
        name = {
            ActionType.SET_PRIORITY: "priority",
            ActionType.SET_STATUS: "status",
            ActionType.SET_CATEGORY: "category",
            ActionType.ASSIGN_TO_AGENT: "assigned_agent_id",
        }[kind]
        cur.execute(
            "SELECT status, priority, category, assigned_agent_id FROM support_tickets WHERE user_id = %s AND id = %s",
            (tenant_id, ticket_id),
        )
        current = found(cur.fetchone(), "ticket")
        if str(current[name]) == str(value):
            return "skipped: already so"
        tickets.update_ticket(principal, ticket_id, TicketUpdate.model_validate({name: value}))
        return "applied"
    if kind is ActionType.ADD_INTERNAL_NOTE:
        cur.execute(
            """INSERT INTO ticket_conversations (ticket_id, user_id, sender_type, sender_name, message, is_internal,
                created_at, updated_at)
            SELECT %s, %s, 'system', %s, %s, true, stamp.at, stamp.at FROM (SELECT clock_timestamp() AS at) stamp""",
            (ticket_id, tenant_id, f"{NOTE_SENDER}: {rule['name']}"[:200], value),
        )
        return "applied"
    if kind is ActionType.SEND_CANNED_RESPONSE:
        try:
            by_id: UUID | None = UUID(str(value))
        except ValueError:
            by_id = None
        cur.execute(
            """SELECT id, response_content FROM canned_responses WHERE user_id = %s
            AND (id = %s OR shortcut_key = %s) ORDER BY (id = %s) DESC LIMIT 1""",
            (tenant_id, by_id, str(value), by_id),
        )
        canned = found(cur.fetchone(), "canned response")
        cur.execute(
            "SELECT status FROM support_tickets WHERE user_id = %s AND id = %s FOR NO KEY UPDATE",
            (tenant_id, ticket_id),
        )
        if found(cur.fetchone(), "ticket")["status"] == "closed":
            return "skipped: a closed ticket takes no new messages"
        cur.execute(
            """INSERT INTO ticket_conversations (ticket_id, user_id, sender_type, sender_name, message, is_internal,
                created_at, updated_at)
            SELECT %s, %s, 'agent', %s, %s, false, stamp.at, stamp.at FROM (SELECT clock_timestamp() AS at) stamp
            RETURNING id, ticket_id, sender_type, is_internal""",
            (ticket_id, tenant_id, REPLY_SENDER, canned["response_content"]),
        )
        email_outbox.notify_reply(cur, tenant_id, cur.fetchone())  # the ticket's own channel: mailed if by email
        return "applied"
    if kind is ActionType.NOTIFY_EMAIL:
        settings = email_settings(cur, tenant_id)
        if settings.from_address is None:
            return "skipped: the desk has no sender address (email settings, fromAddress)"
        cur.execute(
            "SELECT reference, subject FROM support_tickets WHERE user_id = %s AND id = %s", (tenant_id, ticket_id)
        )
        ticket = found(cur.fetchone(), "ticket")
        note = (
            f'The automation rule "{rule["name"]}" ran on ticket #{ticket["reference"]} ("{ticket["subject"]}") '
            f"for the event {event['event']}."
        )
        outbox_id = uuid4()
        domain = settings.from_address.rsplit("@", 1)[1]
        cur.execute(
            """INSERT INTO email_outbox (id, user_id, ticket_id, kind, notice_key, recipient, message_id, note)
            VALUES (%s, %s, %s, 'automation', %s, %s, %s, %s)
            ON CONFLICT (user_id, ticket_id, kind, notice_key) DO NOTHING""",
            (
                outbox_id,
                tenant_id,
                ticket_id,
                str(run_id),
                str(value),
                email_outbox.message_id(ticket_id, outbox_id, domain),
                note,
            ),
        )
        return "applied"
    raise AssertionError(f"an action without an implementation: {kind}")  # pragma: no cover


def _follow(after: _After) -> None:
    """The effects after the commit: the staff's notices, the chats to end (a failure recorded on its run)."""
    from support.realtime import Delivery, deliver, event
    from support.services import chat
    from support.services.connections import forget_connections

    deliveries = [Delivery(c, event(NOTICE, notice)) for connections, notice in after.notices for c in connections]
    if deliveries:
        try:
            gone = deliver(deliveries)
            if gone:
                forget_connections(after.tenant_id, gone)
        except Exception:
            logger.exception("an automation's staff notice was not delivered")
    for run_id, session_id in after.end_chats:
        try:
            chat.end_chat_session(system_principal(after.tenant_id), session_id, by_system=True)
        except DomainError as exc:
            _note_failure(after.tenant_id, run_id, f"end_chat: {exc.message}")
        except Exception as exc:
            logger.exception("an automation's end_chat failed")
            _note_failure(after.tenant_id, run_id, f"end_chat: {type(exc).__name__}")


def _note_failure(tenant_id: UUID, run_id: UUID, error: str) -> None:
    with tenant_transaction(tenant_id) as cur:
        cur.execute(
            "UPDATE automation_runs SET outcome = 'failed', error = %s WHERE user_id = %s AND id = %s",
            (error[:2000], tenant_id, run_id),
        )


# --- the sweep: the time-based events, and whatever is left --------------------------------------------------------

_IN_STATUS = """
INSERT INTO automation_events (user_id, event, ticket_id, rule_id, data, dedup_key)
SELECT t.user_id, 'ticket_in_status', t.id, %(rule)s::uuid,
    jsonb_build_object('status', t.status, 'since', coalesce(t.status_changed_at, t.updated_at)),
    'ticket_in_status:' || %(rule)s::text || ':' || t.id || ':'
        || extract(epoch FROM coalesce(t.status_changed_at, t.updated_at))
FROM support_tickets t
WHERE t.user_id = %(tenant)s AND t.status = %(status)s
  AND coalesce(t.status_changed_at, t.updated_at) <= %(due)s
  AND (%(after)s::timestamptz IS NULL OR coalesce(t.status_changed_at, t.updated_at) > %(after)s)
ON CONFLICT (user_id, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
"""
_CHAT_IDLE = """
INSERT INTO automation_events (user_id, event, session_id, rule_id, data, dedup_key)
SELECT s.user_id, 'chat_idle', s.id, %(rule)s::uuid, jsonb_build_object('idleSince', s.updated_at),
    'chat_idle:' || %(rule)s::text || ':' || s.id || ':' || extract(epoch FROM s.updated_at)
FROM live_chat_sessions s
WHERE s.user_id = %(tenant)s AND s.status <> 'closed' AND s.updated_at <= %(due)s
  AND (%(after)s::timestamptz IS NULL OR s.updated_at > %(after)s)
ON CONFLICT (user_id, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
"""
_CHAT_WAITING = """
INSERT INTO automation_events (user_id, event, session_id, rule_id, data, dedup_key)
SELECT s.user_id, 'chat_waiting_too_long', s.id, %(rule)s::uuid,
    jsonb_build_object('waitingSince', s.session_start_time),
    'chat_waiting_too_long:' || %(rule)s::text || ':' || s.id
FROM live_chat_sessions s
WHERE s.user_id = %(tenant)s AND s.status = 'waiting' AND s.session_start_time <= %(due)s
  AND (%(after)s::timestamptz IS NULL OR s.session_start_time > %(after)s)
ON CONFLICT (user_id, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
"""


def fire_time_based(tenant_id: UUID, now: datetime) -> int:
    """Write the tenant's due time-based events (once per rule, subject and stint), in one transaction. Each rule
    remembers up to when it was swept (`swept_until`), so a sweep reads only what became due since the last one.
    The number of events written."""
    written = 0
    with tenant_transaction(tenant_id) as cur:
        cur.execute(
            """SELECT id, event, definition, swept_until FROM automation_rules
            WHERE user_id = %s AND enabled AND event IN ('ticket_in_status', 'chat_idle', 'chat_waiting_too_long')
            ORDER BY position FOR UPDATE SKIP LOCKED""",
            (tenant_id,),
        )
        for rule in cur.fetchall():
            parameters = rule["definition"].get("parameters", {})
            if rule["event"] == Event.TICKET_IN_STATUS:
                wait = timedelta(hours=float(parameters["hours"]))
                statement, extra = _IN_STATUS, {"status": parameters["status"]}
            else:
                wait = timedelta(minutes=int(parameters["minutes"]))
                statement = _CHAT_IDLE if rule["event"] == Event.CHAT_IDLE else _CHAT_WAITING
                extra = {}
            swept = rule["swept_until"]
            cur.execute(
                statement,
                {
                    **extra,
                    "tenant": tenant_id,
                    "rule": str(rule["id"]),
                    "due": now - wait,
                    "after": swept - wait if swept is not None else None,
                },
            )
            written += cur.rowcount
            cur.execute(
                """UPDATE automation_rules SET swept_until = greatest(coalesce(swept_until, %s), %s)
                WHERE user_id = %s AND id = %s""",
                (now, now, tenant_id, rule["id"]),
            )
    return written


@dataclass
class SweepReport:
    tenants: int = 0
    fired: int = 0
    run: RunReport = field(default_factory=RunReport)
    pruned: int = 0
    seconds: float = 0.0


PRUNE_MINUTE = 0  # processed events are pruned by the sweep of this minute of each hour


def sweep(now: datetime | None = None, *, tenants: Callable[[], list[UUID]] | None = None) -> SweepReport:
    """The workflow sweep's step (every minute): for every tenant with work (automation_sweep_work), fire the due
    time-based events and run every pending event; once an hour, prune processed events older than KEEP_EVENTS.
    `now` is the sweep's clock (a test clock in the tests); `tenants`, when given, limits the sweep to those (tests).
    A tenant's failure is logged and leaves its events for the next sweep."""
    started = clock.perf_counter()
    now = now or datetime.now(UTC)
    report = SweepReport()
    with anonymous_transaction() as cur:
        cur.execute("SELECT user_id, pending, timed FROM automation_sweep_work()")
        work = {row["user_id"]: (row["pending"], row["timed"]) for row in cur.fetchall()}
    listed = list(work) if tenants is None else tenants()
    for tenant_id in listed:
        pending, timed = work.get(tenant_id, (False, False))
        try:
            fired = fire_time_based(tenant_id, now) if timed else 0
            report.fired += fired
            if pending or fired:
                report.run.add(run_pending(tenant_id, now=now))
            if now.minute == PRUNE_MINUTE:
                with tenant_transaction(tenant_id) as cur:
                    cur.execute(
                        """DELETE FROM automation_events WHERE user_id = %s AND processed_at IS NOT NULL
                        AND processed_at < %s""",
                        (tenant_id, now - KEEP_EVENTS),
                    )
                    report.pruned += cur.rowcount
            report.tenants += 1
        except Exception:
            logger.exception("the automation sweep failed for a tenant", extra={"tenant": str(tenant_id)})
    report.seconds = clock.perf_counter() - started
    return report


def record_sla_event(event: SlaEvent) -> None:
    """An SLA warning or breach the SLA sweep recorded (sla.EVENT_HANDLERS; functions/workflow_sweep subscribes this):
    the `sla_at_risk` or `sla_breached` event of the ticket, written once (its dedup key is the SLA event's id, so a
    sweep that hands it over again writes nothing), and run by this minute's automations step, which follows the SLA
    step."""
    name = Event.SLA_AT_RISK if event.kind == "at_risk" else Event.SLA_BREACHED
    data = {"target": event.target, "dueAt": event.due_at.isoformat(), "occurredAt": event.occurred_at.isoformat()}
    with tenant_transaction(event.tenant_id) as cur:
        record_event(cur, event.tenant_id, name, ticket_id=event.ticket_id, data=data, dedup_key=f"sla:{event.id}")


def sweep_step(now: datetime) -> int:
    """The workflow sweep's step: `sweep`, counted as the time-based events fired and the events run."""
    report = sweep(now)
    return report.fired + report.run.events
