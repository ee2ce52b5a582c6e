"""The audit trail as the API shows it (GET /api/support/audit): one entry per row a change touched."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, Field

from support.models.base import ApiModel, Record


class AuditEntity(StrEnum):
    """What the `entity` filter names, each one table (support.services.audit.ENTITY_TABLES)."""

    TICKET = "ticket"
    CONVERSATION = "conversation"
    FEEDBACK = "feedback"
    AGENT = "agent"
    CHAT_SESSION = "chat_session"
    CHAT_MESSAGE = "chat_message"
    CANNED_RESPONSE = "canned_response"
    CONTACT = "contact"
    CONTACT_IDENTITY = "contact_identity"
    WIDGET_KEY = "widget_key"
    SETTINGS = "settings"
    CHANNEL = "channel"
    CHANNEL_SECRET = "channel_secret"  # noqa: S105 - an entity's name, not a secret
    AUTOMATION_RULE = "automation_rule"
    SLA_EVENT = "sla_event"
    INBOUND_EMAIL = "inbound_email"
    EMAIL_ADDRESS = "email_address"
    EMAIL_SUPPRESSION = "email_suppression"


class AuditAction(StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


class AuditQuery(ApiModel):
    entity: AuditEntity | None = None
    id: str | None = Field(default=None, min_length=1, max_length=200)
    actor: str | None = Field(default=None, min_length=1, max_length=200)
    action: AuditAction | None = None
    from_: AwareDatetime | None = Field(default=None, alias="from")
    to: AwareDatetime | None = None


class AuditActor(Record):
    type: str = Field(description="admin, agent, visitor, public (a route without a token), job, automation or unknown")
    id: str | None = Field(
        description="the agent's id (else the token's subject), the visitor's, the job's name, the rule's"
    )
    request_id: str | None = Field(description="API Gateway's request id of the change")
    db_role: str = Field(description="the database role that made the change")


class AuditEntry(Record):
    id: int
    occurred_at: datetime
    actor: AuditActor
    entity: str = Field(description="the entity the row is (`ticket`, ...), or its table's name where none is mapped")
    entity_id: str = Field(description="the row's id (its key where it has no id; empty where the key is personal)")
    table: str
    action: AuditAction
    changes: dict[str, Any] = Field(
        description="per column: {old, new} (an insert has new, a delete old); a text is {redacted: true} and a "
        "personal value {personal: true} (kept apart, erasable, never in the chain)"
    )
    sealed: bool = Field(description="whether the entry is chained yet (the sealer runs every minute)")
