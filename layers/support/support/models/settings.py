"""Settings per tenant, one model per area (`GET`/`PUT /api/support/settings/<area>`).

Each area is a model whose defaults are what a new tenant gets; a PUT sends the whole model and is validated as a
whole (a field left out takes its default), so what is stored is always a valid model. Chat, email, SLA and
routing so far; retention will follow in the same shape.
"""

from __future__ import annotations

import itertools
import re
from datetime import date
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator
from pydantic_core import PydanticCustomError

from support.models.agents import Skill
from support.models.base import ApiModel, Email, HttpsUrl, Name, NoNul
from support.models.tickets import TicketChannel

DEFAULT_QUEUE_CAP = 50
MAX_QUEUE_CAP = 10_000


class LimitsSettings(ApiModel):
    """A tenant's own budget of the authenticated API (support.services.rate_limits): a token bucket of `api_burst`
    requests that refills at `api_per_second`; a field left out (null) is the deployment's default
    (TENANT_API_BURST, TENANT_API_PER_SECOND). Set by the operator (the `limits` row of tenant_settings), never
    through the API: a tenant's admin cannot raise the tenant's own share of the shared database."""

    api_burst: int | None = Field(default=None, ge=1, le=1_000_000, description="requests at once")
    api_per_second: float | None = Field(default=None, gt=0, le=100_000, description="requests a second")

    @model_validator(mode="after")
    def _full_within_an_hour(self) -> Self:
        # A bucket's row idle for an hour may be deleted (support.services.rate_limits): it must be full by then.
        if self.api_burst and self.api_per_second and self.api_burst / self.api_per_second > 3600:
            raise ValueError("the bucket must refill within an hour: api_burst / api_per_second <= 3600")
        return self


class ChatSettings(ApiModel):
    """Live chat: how many visitors may wait for an agent, and where to send those who find the desk busy."""

    queue_cap: int = Field(
        default=DEFAULT_QUEUE_CAP,
        ge=1,
        le=MAX_QUEUE_CAP,
        description="the most chat sessions that wait for an agent at once; a visitor's new chat beyond it is "
        "answered `desk_busy`",
    )
    web_form_url: HttpsUrl | None = Field(
        default=None, description="the tenant's contact form, offered to a visitor who finds the desk busy"
    )


MAX_INBOUND_ADDRESSES = 20


class EmailSettings(ApiModel):
    """Email: the addresses the desk receives at, who the desk's mail comes from, and which events tell the customer.

    Nothing is sent until `fromAddress` is set (a verified SES identity); from then on each switch that is on sends
    its notice. An inbound address belongs to one tenant only: naming one that another tenant holds is a 409."""

    inbound_addresses: list[Email] = Field(
        default_factory=list,
        max_length=MAX_INBOUND_ADDRESSES,
        description="the addresses the desk receives at (for example support@shop.example, forwarded to the "
        "stack's receiving domain); each belongs to one tenant only",
    )
    from_name: Name | None = Field(default=None, description="the sender name of the desk's mail")
    from_address: Email | None = Field(
        default=None, description="the address the desk's mail comes from: an identity verified in SES"
    )
    notify_received: bool = Field(default=True, description="tell the customer their ticket was received")
    notify_replied: bool = Field(default=True, description="send the customer an agent's public reply")
    notify_resolved: bool = Field(
        default=True, description="tell the customer their ticket was resolved, and how to rate it"
    )
    notify_closed: bool = Field(default=True, description="tell the customer their ticket was closed")

    @field_validator("inbound_addresses")
    @classmethod
    def _distinct_addresses(cls, addresses: list[str]) -> list[str]:
        lowered = [address.lower() for address in addresses]
        if len(set(lowered)) != len(lowered):
            raise PydanticCustomError("duplicate_address", "each inbound address may be named once")
        return lowered

    @field_validator("from_address")
    @classmethod
    def _sendable(cls, address: str | None) -> str | None:
        """SES sends from ASCII addresses only: an internationalised domain is kept in its ASCII form (IDNA)."""
        if address is None:
            return None
        local, _, domain = address.rpartition("@")
        if not local.isascii():
            raise PydanticCustomError("value_error", "SES sends only from an address whose local part is ASCII")
        return f"{local}@{domain.encode('idna').decode('ascii') if not domain.isascii() else domain}"

    def sends(self, kind: str) -> bool:
        """Whether a notice of `kind` (received, replied, resolved, closed) goes out."""
        return self.from_address is not None and bool(getattr(self, f"notify_{kind}"))


# --- SLA (issue 18; support.services.sla, sql/definitions/sla.sql, docs/sla.md) ----------------------------------
# The defaults below are what sla_default_policy() in sql/definitions/sla.sql answers for a tenant that never chose
# (tests/integration/test_sla.py keeps the two equal).
MAX_TARGET_MINUTES = 366 * 24 * 60
MAX_INTERVALS_PER_DAY = 6
MAX_HOLIDAYS = 400
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


class SlaTarget(ApiModel):
    """A priority's targets in minutes of business time; null: no target of that kind."""

    first_response_minutes: int | None = Field(
        default=None, ge=1, le=MAX_TARGET_MINUTES, description="from creation to the first public agent reply"
    )
    resolution_minutes: int | None = Field(
        default=None, ge=1, le=MAX_TARGET_MINUTES, description="from creation to resolution"
    )


def _target(first_response: int, resolution: int) -> SlaTarget:
    return SlaTarget(first_response_minutes=first_response, resolution_minutes=resolution)


class SlaTargets(ApiModel):
    urgent: SlaTarget = Field(default_factory=lambda: _target(60, 480))
    high: SlaTarget = Field(default_factory=lambda: _target(240, 1440))
    medium: SlaTarget = Field(default_factory=lambda: _target(480, 2880))
    low: SlaTarget = Field(default_factory=lambda: _target(1440, 5760))


class BusinessInterval(ApiModel):
    """Local wall-clock time, "HH:MM"; `end` may be "24:00" (midnight at the end of the day) and is after `start`."""

    start: str = Field(examples=["09:00"])
    end: str = Field(examples=["17:00"])

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise PydanticCustomError("clock_time", 'a time of day is "HH:MM", 00:00 to 24:00')
        return value

    @model_validator(mode="after")
    def _ordered(self) -> BusinessInterval:
        if self.start == "24:00":
            raise PydanticCustomError("clock_time", "an interval cannot start at 24:00")
        if self.end <= self.start:
            raise PydanticCustomError("interval_order", "an interval ends after it starts")
        return self


# The statuses that may pause the clock; resolved and closed stop it anyway (they are not a pause but an end).
PausableStatus = Literal["open", "in_progress", "waiting_customer"]


def _default_pause_statuses() -> list[PausableStatus]:
    return ["waiting_customer"]


def _always_open() -> list[BusinessInterval]:
    return [BusinessInterval(start="00:00", end="24:00")]


Intervals = Annotated[list[BusinessInterval], Field(default_factory=_always_open, max_length=MAX_INTERVALS_PER_DAY)]


class BusinessHours(ApiModel):
    """Each weekday's business hours, a list of intervals (empty: closed all day). The default: open around the
    clock."""

    monday: Intervals
    tuesday: Intervals
    wednesday: Intervals
    thursday: Intervals
    friday: Intervals
    saturday: Intervals
    sunday: Intervals

    @field_validator(*WEEKDAYS)
    @classmethod
    def _no_overlap(cls, intervals: list[BusinessInterval]) -> list[BusinessInterval]:
        ordered = sorted(intervals, key=lambda interval: interval.start)
        for before, after in itertools.pairwise(ordered):
            if after.start < before.end:
                raise PydanticCustomError(
                    "overlapping_hours", f"{before.start}-{before.end} and {after.start}-{after.end} overlap"
                )
        return ordered


# The shape of an IANA name here; whether the zone exists is asked of PostgreSQL, whose time zone database computes
# the due times (support.services.sla: an unknown zone is a 422 too).
_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9][A-Za-z0-9_+\-]*){0,2}$")


def _time_zone(name: str) -> str:
    if not _ZONE_NAME.match(name):
        raise PydanticCustomError("time_zone", "an IANA time zone name, such as Europe/Berlin or America/New_York")
    return name


TimeZoneName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64), AfterValidator(_time_zone)]


class SlaSettings(ApiModel):
    """SLA policy: targets per priority, the business hours and holidays they are counted in, and the statuses that
    pause the clock. Due times are computed when a ticket is created and whenever its priority or status changes:
    a change of policy applies to those tickets then, not to every open ticket at once (docs/sla.md)."""

    targets: SlaTargets = Field(default_factory=SlaTargets)
    time_zone: TimeZoneName = Field(default="UTC", description="the IANA time zone of the business hours and holidays")
    business_hours: BusinessHours = Field(default_factory=BusinessHours)
    holidays: list[date] = Field(
        default_factory=list, max_length=MAX_HOLIDAYS, description="local dates with no business hours"
    )
    pause_statuses: list[PausableStatus] = Field(
        default_factory=_default_pause_statuses,
        max_length=3,
        description="the statuses in which the clock stands still (resolved and closed stop it anyway)",
    )

    @field_validator("holidays")
    @classmethod
    def _distinct_holidays(cls, holidays: list[date]) -> list[date]:
        if len(set(holidays)) != len(holidays):
            raise PydanticCustomError("duplicate_holiday", "each holiday may be named once")
        return sorted(holidays)

    @field_validator("pause_statuses")
    @classmethod
    def _distinct_statuses(cls, statuses: list[str]) -> list[str]:
        if len(set(statuses)) != len(statuses):
            raise PydanticCustomError("duplicate_status", "each status may be named once")
        return statuses

    @model_validator(mode="after")
    def _some_business_hours(self) -> SlaSettings:
        if not any(getattr(self.business_hours, day) for day in WEEKDAYS):
            raise PydanticCustomError("no_business_hours", "at least one weekday needs business hours")
        return self


# Routing (issue 18): sql/definitions/routing.sql reads these from the stored JSON (snake_case) with the same
# defaults (a test compares them); support.services.routing says what they do.
DEFAULT_TICKET_LIMIT_PER_AGENT = 10
MAX_TICKET_LIMIT_PER_AGENT = 1_000
DEFAULT_CHAT_WAIT_LIMIT_SECONDS = 600
MIN_CHAT_WAIT_LIMIT_SECONDS = 60
MAX_CHAT_WAIT_LIMIT_SECONDS = 86_400
MAX_ROUTING_RULES = 100

CustomFieldName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoNul]
CustomFieldValue = Annotated[str, StringConstraints(min_length=1, max_length=500), NoNul]
Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoNul]


class RoutingRule(ApiModel):
    """Items that match require these skills: a ticket of this `category`, or of this `channel` (a chat's is
    `chat`), or whose `customFields[customField]` equals `value` (compared as text). Exactly one of the three."""

    category: Category | None = None
    channel: TicketChannel | None = None
    custom_field: CustomFieldName | None = None
    value: CustomFieldValue | None = None
    required_skills: list[Skill] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _one_match(self) -> Self:
        given = [name for name in ("category", "channel", "custom_field") if getattr(self, name) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "rule_match", "a rule matches by exactly one of category, channel or customField (with value)"
            )
        if (self.custom_field is None) != (self.value is None):
            raise PydanticCustomError("rule_value", "value goes with customField, and customField needs a value")
        return self

    @field_validator("required_skills")
    @classmethod
    def _distinct_skills(cls, skills: list[str]) -> list[str]:
        if len(set(skills)) != len(skills):
            raise PydanticCustomError("duplicate_skill", "each required skill may be named once")
        return skills


class RoutingSettings(ApiModel):
    """Who gets new and unassigned tickets and chats (support.services.routing)."""

    auto_assign_tickets: bool = Field(
        default=False, description="give each new or unassigned ticket to an agent automatically"
    )
    auto_assign_chats: bool = Field(
        default=True, description="give each waiting chat to an agent automatically (else agents claim them)"
    )
    ticket_limit_per_agent: int = Field(
        default=DEFAULT_TICKET_LIMIT_PER_AGENT,
        ge=1,
        le=MAX_TICKET_LIMIT_PER_AGENT,
        description="the open tickets (neither resolved nor closed) an agent holds at most before the router "
        "gives them no more",
    )
    rules: list[RoutingRule] = Field(
        default_factory=list,
        max_length=MAX_ROUTING_RULES,
        description="the skills an item requires: every matching rule's (an agent must have all of them)",
    )
    chat_wait_limit_seconds: int | None = Field(
        default=DEFAULT_CHAT_WAIT_LIMIT_SECONDS,
        ge=MIN_CHAT_WAIT_LIMIT_SECONDS,
        le=MAX_CHAT_WAIT_LIMIT_SECONDS,
        description="a chat still waiting for an agent this long becomes a ticket (channel `chat`) and the visitor "
        "is offered to leave their email; null: chats wait as long as the visitor does",
    )
    reassign_tickets_when_away: bool = Field(
        default=False,
        description="an agent going away or offline gives their open tickets back to the router (else they stay "
        "theirs)",
    )


# Retention (issue 19): the spec's default is to keep everything forever.
MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 36_500
MIN_AUDIT_RETENTION_DAYS = 365  # audit entries are kept at least a year once a limit is set
RetentionMode = Literal["keep", "delete", "archive"]


class RetentionRule(ApiModel):
    """What becomes of a closed ticket (resolved or closed) or an ended chat `days` after it closed or ended."""

    mode: RetentionMode = Field(
        default="keep",
        description="`keep`: forever; `delete`: deleted after `days`; `archive`: written to the archive bucket as JSON "
        "lines, then deleted, after `days`",
    )
    days: int | None = Field(
        default=None,
        ge=MIN_RETENTION_DAYS,
        le=MAX_RETENTION_DAYS,
        description="days after closing (a ticket's `resolvedAt`) or ending (a chat's `sessionEndTime`); required "
        "unless the mode is `keep`, where it must be null",
    )

    @model_validator(mode="after")
    def _days_go_with_the_mode(self) -> Self:
        if self.mode == "keep" and self.days is not None:
            raise PydanticCustomError("retention_days", "days goes with mode delete or archive; keep takes none")
        if self.mode != "keep" and self.days is None:
            raise PydanticCustomError("retention_days", "mode delete or archive needs days")
        return self


class RetentionSettings(ApiModel):
    """How long the desk keeps closed tickets, ended chats and audit entries (support.services.retention)."""

    tickets: RetentionRule = Field(
        default_factory=RetentionRule, description="closed tickets, with their conversations and feedback"
    )
    chats: RetentionRule = Field(default_factory=RetentionRule, description="ended chats, with their messages")
    audit_days: int | None = Field(
        default=None,
        ge=MIN_AUDIT_RETENTION_DAYS,
        le=MAX_RETENTION_DAYS,
        description="audit entries older than this many days are pruned (at least 365); null: kept forever",
    )
