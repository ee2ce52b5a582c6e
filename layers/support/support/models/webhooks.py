"""Webhooks: a tenant's endpoints, the events they subscribe to, and the log of their deliveries (docs/webhooks.md)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import Field, StringConstraints, field_validator

from support.models.base import ApiModel, NoNul, Record


class WebhookEvent(StrEnum):
    """The events an endpoint may subscribe to (written by the capture triggers of sql/definitions/webhooks.sql)."""

    TICKET_CREATED = "ticket.created"
    TICKET_STATUS_CHANGED = "ticket.status_changed"
    TICKET_ASSIGNED = "ticket.assigned"
    TICKET_MESSAGE_CREATED = "ticket.message_created"
    CHAT_MESSAGE_CREATED = "chat.message_created"
    CHAT_STARTED = "chat.started"
    CHAT_ENDED = "chat.ended"
    FEEDBACK_RECEIVED = "feedback.received"


class DeliveryState(StrEnum):
    PENDING = "pending"  # written with the change, not yet handed to SQS
    QUEUED = "queued"  # in SQS: the next attempt is due at nextAttemptAt
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"  # no 2xx answer within a day of attempts: dead-lettered


WebhookUrl = Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=2048), NoNul]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), NoNul]
EventList = Annotated[
    list[WebhookEvent],
    Field(min_length=1, max_length=len(WebhookEvent), description="the event names the endpoint receives"),
]


def _distinct(events: list[WebhookEvent]) -> list[WebhookEvent]:
    return list(dict.fromkeys(events))


class WebhookCreate(ApiModel):
    url: WebhookUrl = Field(description="https, and a name that resolves to public addresses only")
    events: EventList
    description: Description | None = None
    enabled: bool = True

    _events = field_validator("events")(_distinct)


class WebhookUpdate(ApiModel):
    """The fields to change; the others stay."""

    url: WebhookUrl | None = None
    events: EventList | None = None
    description: Description | None = None
    enabled: bool | None = None

    @field_validator("events")
    @classmethod
    def _distinct_events(cls, events: list[WebhookEvent] | None) -> list[WebhookEvent] | None:
        return None if events is None else _distinct(events)


class Webhook(Record):
    id: UUID
    url: str
    events: list[WebhookEvent]
    description: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime
    previous_secret_valid_until: datetime | None = Field(
        default=None, description="after a rotation, until when deliveries are also signed with the previous secret"
    )


class WebhookWithSecret(Webhook):
    """An endpoint as created or its secret rotated: the only answers that carry its signing secret."""

    secret: str = Field(description="the signing secret, shown once: keep it in the receiver's configuration")


class WebhookDelivery(Record):
    """One delivery of one event to one endpoint: its id is the X-Support-Delivery header of every attempt."""

    id: UUID = Field(description="the delivery id, the same on every attempt")
    event_id: UUID = Field(description="the event's id (the body's `id`), shared by its deliveries to every endpoint")
    event: WebhookEvent
    state: DeliveryState
    attempts: int
    response_status: int | None = Field(description="the HTTP status of the last attempt (none: no answer)")
    duration_ms: int | None = Field(description="how long the last attempt took")
    last_error: str | None = Field(description="why the last attempt failed, when it had no HTTP answer")
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = Field(description="when the next attempt is due (queued deliveries)")
    created_at: datetime
    completed_at: datetime | None = Field(description="when it was delivered, or given up on")
