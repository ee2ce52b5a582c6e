"""Automation rules: an event, conditions and ordered actions (issue 18), validated strictly when saved: an unknown
event, field, operator or action, a value of the wrong kind, an action the event has no subject for, are each a 422
naming what is wrong. A saved rule is then trusted: the runner evaluates its stored JSON as it is
(support.services.automations), without validating it again on every event.

    {"name": "VIP first", "event": "ticket_created",
     "conditions": {"all": [{"field": "category", "operator": "equals", "value": "vip"}]},
     "actions": [{"type": "set_priority", "value": "urgent"}]}
"""

from __future__ import annotations

import re
from datetime import datetime, time
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, StringConstraints, field_validator, model_validator

from support.models.base import ApiModel, Name, NoNul, Record
from support.models.tickets import TicketChannel, TicketPriority, TicketStatus


class Event(StrEnum):
    TICKET_CREATED = "ticket_created"
    TICKET_UPDATED = "ticket_updated"
    TICKET_STATUS_CHANGED = "ticket_status_changed"
    CUSTOMER_REPLIED = "customer_replied"
    AGENT_REPLIED = "agent_replied"
    CHAT_STARTED = "chat_started"
    CHAT_ENDED = "chat_ended"
    CHAT_WAITING_TOO_LONG = "chat_waiting_too_long"
    CHAT_IDLE = "chat_idle"
    SLA_AT_RISK = "sla_at_risk"
    SLA_BREACHED = "sla_breached"
    TICKET_IN_STATUS = "ticket_in_status"


TICKET_EVENTS = frozenset(
    {
        Event.TICKET_CREATED,
        Event.TICKET_UPDATED,
        Event.TICKET_STATUS_CHANGED,
        Event.CUSTOMER_REPLIED,
        Event.AGENT_REPLIED,
        Event.SLA_AT_RISK,
        Event.SLA_BREACHED,
        Event.TICKET_IN_STATUS,
    }
)
CHAT_EVENTS = frozenset({Event.CHAT_STARTED, Event.CHAT_ENDED, Event.CHAT_WAITING_TOO_LONG, Event.CHAT_IDLE})
# Fired by the sweep, not by a change: each names the parameters it needs.
TIME_BASED = {
    Event.TICKET_IN_STATUS: ("status", "hours"),
    Event.CHAT_IDLE: ("minutes",),
    Event.CHAT_WAITING_TOO_LONG: ("minutes",),
}
MESSAGE_EVENTS = frozenset({Event.CUSTOMER_REPLIED, Event.AGENT_REPLIED})
STATUS_EVENTS = frozenset({Event.TICKET_UPDATED, Event.TICKET_STATUS_CHANGED})


class Operator(StrEnum):
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    CONTAINS = "contains"
    IN = "in"
    GREATER_THAN = "greater_than"
    LESS_THAN = "less_than"


class ActionType(StrEnum):
    SET_PRIORITY = "set_priority"
    SET_STATUS = "set_status"
    SET_CATEGORY = "set_category"
    ASSIGN_TO_AGENT = "assign_to_agent"
    ROUTE_BY_SKILLS = "route_by_skills"
    ADD_INTERNAL_NOTE = "add_internal_note"
    SEND_CANNED_RESPONSE = "send_canned_response"
    NOTIFY_STAFF = "notify_staff"
    NOTIFY_EMAIL = "notify_email"
    END_CHAT = "end_chat"


# What each action needs: a ticket, a chat, or either (the ticket of a chat made into one counts as its ticket).
TICKET_ACTIONS = frozenset(
    {
        ActionType.SET_PRIORITY,
        ActionType.SET_STATUS,
        ActionType.SET_CATEGORY,
        ActionType.ASSIGN_TO_AGENT,
        ActionType.ADD_INTERNAL_NOTE,
        ActionType.SEND_CANNED_RESPONSE,
        ActionType.NOTIFY_EMAIL,
    }
)
CHAT_ACTIONS = frozenset({ActionType.END_CHAT})

PRIORITY_RANK = {p.value: rank for rank, p in enumerate(TicketPriority)}
CHAT_STATUSES = ("active", "waiting", "transferred", "closed")
BUSINESS_HOURS_VALUES = ("inside", "outside")

# The kinds of field: which operators each takes and which values are valid.
TEXT, ENUM, PRIORITY, HOURS, ANY = "text", "enum", "priority", "business_hours", "any"
OPERATORS = {
    TEXT: {Operator.EQUALS, Operator.NOT_EQUALS, Operator.CONTAINS, Operator.IN},
    ENUM: {Operator.EQUALS, Operator.NOT_EQUALS, Operator.IN},
    PRIORITY: set(Operator) - {Operator.CONTAINS},
    HOURS: {Operator.EQUALS, Operator.NOT_EQUALS},
    ANY: set(Operator),
}
CUSTOM_FIELD = re.compile(r"^customFields\.([A-Za-z0-9_\-]{1,100})$")

_TICKET_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "status": (ENUM, tuple(TicketStatus)),
    "priority": (PRIORITY, tuple(TicketPriority)),
    "category": (TEXT, ()),
    "channel": (ENUM, tuple(TicketChannel)),
    "subject": (TEXT, ()),
    "description": (TEXT, ()),
    "customerName": (TEXT, ()),
    "customerEmail": (TEXT, ()),
    "assignedAgentId": (TEXT, ()),
    "businessHours": (HOURS, BUSINESS_HOURS_VALUES),
}
_CHAT_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "status": (ENUM, CHAT_STATUSES),
    "channel": (ENUM, ("chat",)),
    "visitorName": (TEXT, ()),
    "visitorEmail": (TEXT, ()),
    "assignedAgentId": (TEXT, ()),
    "businessHours": (HOURS, BUSINESS_HOURS_VALUES),
}


def fields_for(event: Event) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The fields a rule on `event` may test (customFields.<name> besides, on ticket events)."""
    if event in CHAT_EVENTS:
        return dict(_CHAT_FIELDS)
    fields = dict(_TICKET_FIELDS)
    if event in MESSAGE_EVENTS:
        fields["message"] = (TEXT, ())
    if event in STATUS_EVENTS:
        fields["previousStatus"] = (ENUM, tuple(TicketStatus))
    return fields


Scalar = str | int | float | bool | None
ShortText = Annotated[str, StringConstraints(max_length=1000), NoNul]


class Condition(ApiModel):
    field: Annotated[str, StringConstraints(min_length=1, max_length=120)]
    operator: Operator
    value: ShortText | int | float | bool | Annotated[list[ShortText | int | float], Field(max_length=100)] | None


class Conditions(ApiModel):
    """`all` (every condition holds) or `any` (at least one does); none at all: the rule always matches."""

    all: Annotated[list[Condition], Field(max_length=20)] | None = None
    any: Annotated[list[Condition], Field(max_length=20)] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Conditions:
        if self.all is not None and self.any is not None:
            raise ValueError("give either `all` or `any`, not both")
        if self.all is None and self.any is None:
            self.all = []
        return self

    def items(self) -> list[Condition]:
        return list(self.all if self.all is not None else self.any or [])


class Action(ApiModel):
    type: ActionType
    value: ShortText | Annotated[str, StringConstraints(max_length=10000), NoNul] | None = None


class Parameters(ApiModel):
    """The time-based events' parameters: ticket_in_status needs `status` and `hours`; chat_idle and
    chat_waiting_too_long need `minutes`."""

    status: TicketStatus | None = None
    hours: Annotated[float, Field(gt=0, le=8760)] | None = None
    minutes: Annotated[int, Field(ge=1, le=43200)] | None = None


class BusinessHours(ApiModel):
    """The rule's own business hours, for the `businessHours` condition: weekdays (ISO, 1 = Monday) and a daily
    window in a time zone (a field left out: Monday to Friday, 09:00 to 17:00, UTC). Without a window of its own the
    rule's condition reads the desk's business hours from its SLA settings (time zone, weekday hours, holidays)."""

    time_zone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "UTC"
    days: Annotated[list[Annotated[int, Field(ge=1, le=7)]], Field(max_length=7)] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5]
    )
    start: time = time(9, 0)
    end: time = time(17, 0)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("start", "end")
    @classmethod
    def _wall_clock(cls, value: time) -> time:
        # Wall-clock times in `timeZone`: an offset of its own ("17:00Z") has no meaning here (and a time with
        # one cannot be compared with one without).
        if value.tzinfo is not None:
            raise ValueError("a time of day without an offset: `timeZone` gives the zone")
        return value

    @model_validator(mode="after")
    def _window(self) -> BusinessHours:
        if self.end <= self.start:
            raise ValueError("`end` must be after `start`")
        return self


def _check_condition(event: Event, index: int, condition: Condition) -> None:
    fields = fields_for(event)
    where = f"conditions.{index}"
    custom = CUSTOM_FIELD.match(condition.field)
    allowed: tuple[str, ...]
    if custom is not None and event in TICKET_EVENTS:
        kind, allowed = ANY, ()
    elif condition.field in fields:
        kind, allowed = fields[condition.field]
    else:
        known = ", ".join([*fields, *(["customFields.<name>"] if event in TICKET_EVENTS else [])])
        raise ValueError(f"{where}: unknown field {condition.field!r} for {event.value}; the fields are: {known}")
    if condition.operator not in OPERATORS[kind]:
        ops = ", ".join(sorted(op.value for op in OPERATORS[kind]))
        raise ValueError(
            f"{where}: operator {condition.operator.value!r} does not apply to {condition.field!r} ({ops})"
        )
    value = condition.value
    values: list[Any]
    if condition.operator is Operator.IN:
        if not isinstance(value, list) or not value:
            raise ValueError(f"{where}: `in` takes a non-empty list of values")
        values = list(value)
    else:
        if isinstance(value, list):
            raise ValueError(f"{where}: {condition.operator.value!r} takes one value, not a list")
        values = [value]
    if condition.operator in (Operator.GREATER_THAN, Operator.LESS_THAN):
        if kind == PRIORITY:
            if value not in PRIORITY_RANK:
                raise ValueError(f"{where}: a priority is one of {', '.join(PRIORITY_RANK)}")
        elif isinstance(value, bool) or not isinstance(value, int | float):  # type: ignore[unreachable,unused-ignore]
            raise ValueError(f"{where}: {condition.operator.value!r} takes a number")
        return
    if condition.operator is Operator.CONTAINS and not isinstance(value, str):
        raise ValueError(f"{where}: `contains` takes text")
    if allowed:
        wrong = [v for v in values if v not in allowed]
        if wrong:
            raise ValueError(f"{where}: {wrong[0]!r} is not a value of {condition.field!r} ({', '.join(allowed)})")


def _check_action(event: Event, index: int, action: Action) -> None:
    where = f"actions.{index}"
    kind = action.type
    if kind in TICKET_ACTIONS and event in CHAT_EVENTS:
        raise ValueError(f"{where}: {kind.value} acts on a ticket, and {event.value} is a chat's event")
    if kind in CHAT_ACTIONS and event in TICKET_EVENTS:
        raise ValueError(f"{where}: {kind.value} acts on a chat, and {event.value} is a ticket's event")
    value = action.value
    if kind is ActionType.SET_PRIORITY and value not in PRIORITY_RANK:
        raise ValueError(f"{where}: set_priority takes one of {', '.join(PRIORITY_RANK)}")
    if kind is ActionType.SET_STATUS and value not in tuple(TicketStatus):
        raise ValueError(f"{where}: set_status takes one of {', '.join(TicketStatus)}")
    if kind is ActionType.SET_CATEGORY and (not isinstance(value, str) or not 1 <= len(value.strip()) <= 100):
        raise ValueError(f"{where}: set_category takes a category of 1 to 100 characters")
    if kind is ActionType.ASSIGN_TO_AGENT:
        try:
            UUID(str(value))
        except ValueError as exc:
            raise ValueError(f"{where}: assign_to_agent takes an agent's id") from exc
    if kind in (ActionType.ADD_INTERNAL_NOTE, ActionType.NOTIFY_STAFF) and (
        not isinstance(value, str) or not value.strip()
    ):
        raise ValueError(f"{where}: {kind.value} takes the text to send")
    if kind is ActionType.SEND_CANNED_RESPONSE and (not isinstance(value, str) or not 1 <= len(value.strip()) <= 100):
        raise ValueError(f"{where}: send_canned_response takes a canned response's id or shortcut")
    if kind is ActionType.NOTIFY_EMAIL and (
        not isinstance(value, str) or not re.fullmatch(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+", value) or len(value) > 254
    ):
        raise ValueError(f"{where}: notify_email takes an email address")
    if kind in (ActionType.ROUTE_BY_SKILLS, ActionType.END_CHAT) and value is not None:
        raise ValueError(f"{where}: {kind.value} takes no value (null)")


class RuleFields(ApiModel):
    """What a rule says (the body of a POST; a PATCH's fields merged into the stored rule are checked as this)."""

    name: Name
    event: Event
    conditions: Conditions = Field(default_factory=Conditions)
    actions: Annotated[list[Action], Field(min_length=1, max_length=20)]
    parameters: Parameters = Field(default_factory=Parameters)
    business_hours: BusinessHours | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _coherent(self) -> RuleFields:
        needed = TIME_BASED.get(self.event, ())
        given = {k for k, v in self.parameters.model_dump().items() if v is not None}
        missing = [p for p in needed if p not in given]
        if missing:
            raise ValueError(
                f"{self.event.value} needs the parameters {', '.join(needed)} (missing: {', '.join(missing)})"
            )
        extra = sorted(given - set(needed))
        if extra:
            raise ValueError(f"{self.event.value} takes no parameter {', '.join(extra)}")
        for index, condition in enumerate(self.conditions.items()):
            _check_condition(self.event, index, condition)
        for index, action in enumerate(self.actions):
            _check_action(self.event, index, action)
        return self

    def definition(self) -> dict[str, Any]:
        """What is stored in automation_rules.definition (wire names, as the runner reads them)."""
        dumped = self.model_dump(mode="json", by_alias=True, exclude_none=True, include={"conditions", "actions"})
        dumped["actions"] = [{"type": a.type.value, "value": a.value} for a in self.actions]
        dumped["parameters"] = self.parameters.model_dump(mode="json", exclude_none=True)
        if self.business_hours is not None:
            dumped["businessHours"] = self.business_hours.model_dump(mode="json", by_alias=True)
        return dumped


class RuleCreate(RuleFields):
    position: Annotated[int, Field(ge=0, le=10_000)] | None = Field(
        default=None, description="where the rule runs among the tenant's rules (0 first); default: last"
    )


class RuleUpdate(ApiModel):
    """A PATCH: only the fields given change; the rule as changed is validated whole."""

    name: Name | None = None
    event: Event | None = None
    conditions: Conditions | None = None
    actions: Annotated[list[Action], Field(min_length=1, max_length=20)] | None = None
    parameters: Parameters | None = None
    business_hours: BusinessHours | None = None
    enabled: bool | None = None
    position: Annotated[int, Field(ge=0, le=10_000)] | None = None


class Rule(Record):
    id: UUID
    name: str
    event: Event
    conditions: dict[str, Any]
    actions: list[dict[str, Any]]
    parameters: dict[str, Any] = Field(default_factory=dict)
    business_hours: dict[str, Any] | None = None
    position: int
    enabled: bool
    created_at: datetime
    updated_at: datetime


class RunOutcome(StrEnum):
    APPLIED = "applied"
    SKIPPED = "skipped"
    FAILED = "failed"


class AutomationRun(Record):
    id: UUID
    event_id: UUID
    rule_id: UUID | None = Field(description="null once the rule is deleted (its name is kept)")
    rule_name: str
    event: str
    ticket_id: UUID | None
    session_id: UUID | None
    outcome: RunOutcome
    error: str | None
    actions: list[dict[str, Any]] = Field(description="each action and what became of it")
    depth: int = Field(description="0: a person's or the system's change; n: the n-th rule of a chain")
    created_at: datetime
