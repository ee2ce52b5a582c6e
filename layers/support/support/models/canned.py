"""Canned responses: reusable replies agents insert by shortcut."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from support.models.base import Record


class CannedResponse(Record):
    id: UUID
    user_id: UUID
    response_title: str
    response_content: str
    shortcut_key: str
    category: str | None
    usage_count: int
    last_used_at: datetime | None
    created_at: datetime
    updated_at: datetime
