"""Privacy requests: a customer's data exported, or erased (support.services.privacy)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import Field

from support.models.base import ApiModel, Email, Record


class PrivacyState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class PrivacyRequestCreate(ApiModel):
    customer_email: Email = Field(description="the customer the request is about, as they gave it (any case)")


class PrivacyExport(Record):
    """An export of everything held about one customer, as one JSON document."""

    id: UUID
    state: PrivacyState
    customer_email: str | None = Field(description="null once the customer was erased")
    attempts: int
    progress: dict[str, Any] = Field(description="when done: the records per section, and the document's bytes")
    error: str | None = None
    created_at: datetime
    finished_at: datetime | None = None
    download_url: str | None = Field(
        default=None, description="when done: a presigned GET of the document, valid for an hour from this answer"
    )
    download_expires_at: datetime | None = None


class PrivacyErasure(Record):
    """An erasure of one customer's personal data, and how far it got."""

    id: UUID
    state: PrivacyState
    customer_email: str | None = Field(description="whom it is about while it runs; null once done")
    attempts: int
    step: str | None = Field(default=None, description="the step it is at (null before it starts and once done)")
    progress: dict[str, Any] = Field(description="rows changed (or S3 objects deleted) per step so far")
    error: str | None = None
    created_at: datetime
    finished_at: datetime | None = None
