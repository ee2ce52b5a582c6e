"""Contacts: one customer per tenant across channels, and the identities that find them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from support.models.base import ApiModel, Email, Name, Phone, Record, SearchText
from support.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

MAX_IDENTITY_CHANGES = 20  # emails or phones added or removed by one edit
DEFAULT_HISTORY_PAGE = 20  # tickets and chats on the contact's page before its cursor


class IdentityKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    VISITOR = "visitor"
    SOCIAL = "social"


class ConversationKind(StrEnum):
    TICKET = "ticket"
    CHAT = "chat"


class ContactQuery(ApiModel):
    search: SearchText | None = None
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = None


def _three_digits(value: str) -> str:
    # Stored as its digits (contact_normalise): fewer than three would leave nothing that finds anyone.
    if sum(ch.isdigit() for ch in value) < 3:
        raise PydanticCustomError("phone_digits", "a phone number needs at least 3 digits")
    return value


Emails = Annotated[list[Email], Field(max_length=MAX_IDENTITY_CHANGES)]
Phones = Annotated[list[Annotated[Phone, AfterValidator(_three_digits)]], Field(max_length=MAX_IDENTITY_CHANGES)]


class ContactUpdate(ApiModel):
    """Only the fields present change. An email or phone number another contact owns is a 409 (merge them)."""

    name: Name | None = None
    add_emails: Emails = Field(default_factory=list)
    remove_emails: Emails = Field(default_factory=list)
    add_phones: Phones = Field(default_factory=list)
    remove_phones: Phones = Field(default_factory=list)


class ContactMerge(ApiModel):
    other_contact_id: UUID = Field(description="the contact merged into this one: its identities, tickets and chats")


class Identity(Record):
    kind: IdentityKind
    value: str = Field(description="normalised: an email lower-cased, a phone number as digits with a leading +")
    scope: str | None = Field(default=None, description="a social sender id's channel; null for the other kinds")


class Contact(Record):
    id: UUID
    user_id: UUID
    name: str | None
    emails: list[str]
    phones: list[str]
    created_at: datetime
    updated_at: datetime


class ContactConversation(Record):
    """One of the contact's tickets or chat sessions, newest first across both."""

    kind: ConversationKind
    id: UUID
    created_at: datetime
    status: str
    subject: str | None = Field(description="the ticket's subject; null for a chat")
    assigned_agent_id: UUID | None


class ContactDetails(Contact):
    identities: list[Identity]
    conversations: list[ContactConversation]
    conversations_next_cursor: str | None = Field(
        description="the next page of conversations: GET this contact with ?cursor=; null on the last page"
    )
