"""Email in: the original of a conversation entry that came by email (support.services.email_in)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from support.models.base import Record


class OriginalEmail(Record):
    url: str = Field(description="a presigned GET of the raw message as received (message/rfc822), short-lived")
    expires_in: int = Field(description="seconds the url stays valid")
    content_type: str = Field(description="message/rfc822")
    size_bytes: int
    message_id: str = Field(description="the Message-ID header without angle brackets (`ses:<id>` without one)")
    received_at: datetime
