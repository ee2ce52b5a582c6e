"""Keyset pagination: an opaque cursor naming the last row of a page, and the page envelope."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from support.errors import InvalidInput

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50


class Page[T](BaseModel):
    data: list[T]
    next_cursor: str | None = Field(default=None, serialization_alias="nextCursor")


def encode_cursor(created_at: datetime, row_id: UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        return datetime.fromisoformat(created_at), UUID(row_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            "cursor is not valid",
            details=[{"field": "query.cursor", "message": "not a cursor returned by this API"}],
        ) from exc


def page_of(rows: list[dict[str, Any]], limit: int, build: Any) -> Page[Any]:
    """`rows` were fetched with LIMIT limit + 1: the extra row only says whether a next page exists."""
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(last["created_at"], last["id"])
    return Page(data=[build(row) for row in items], next_cursor=next_cursor)
