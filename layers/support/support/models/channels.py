"""Social and other channels: what an admin configures, and the normalised message a connector posts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from support.models.base import ApiModel, MessageText, Name, NoNul, Record
from support.models.tickets import _reference_text


class ChannelKind(StrEnum):
    WHATSAPP = "whatsapp"
    FACEBOOK = "facebook"
    INSTAGRAM = "instagram"
    TELEGRAM = "telegram"
    SMS = "sms"
    OTHER = "other"


class ChannelCreate(ApiModel):
    name: Name
    kind: ChannelKind


class Channel(Record):
    id: UUID
    name: str
    kind: ChannelKind
    created_at: datetime
    disabled_at: datetime | None = Field(description="set once disabled: every delivery is refused (401)")
    previous_secret_valid_until: datetime | None = Field(
        default=None, description="after a rotation, until when the previous secret is still accepted"
    )


class ChannelWithSecret(Channel):
    """A channel as created or rotated: the only answers that carry its signing secret."""

    secret: str = Field(description="the signing secret, shown once: keep it in the connector's configuration")


def _no_control(value: str) -> str:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("may not contain control characters")
    return value


ExternalId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoNul, AfterValidator(_no_control)
]


class ChannelMessage(ApiModel):
    """The normalised message a connector posts (WhatsApp, Facebook, Instagram relays, a Zapier step, ...)."""

    external_sender_id: ExternalId = Field(description="the sender's id on the channel (a phone number, a PSID)")
    sender_name: Name | None = None
    text: MessageText
    external_message_id: ExternalId = Field(description="the message's id on the channel: a redelivery is stored once")
    sent_at: datetime | None = Field(default=None, description="when the customer sent it (ISO 8601); informational")


class ChannelDelivery(Record):
    ticket_id: UUID
    reference: Annotated[str | None, BeforeValidator(_reference_text)]
    conversation_id: UUID | None = Field(description="the entry of the thread this message is (none: it opened it)")
    created_ticket: bool = Field(description="true when this message opened the ticket")
    duplicate: bool = Field(description="true when this external message id was delivered before: nothing stored")
