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


# A cursor names the last row of a page by its sort key and id: (created_at, id) for newest-first lists,
# (a count, id) for lists ordered by a counter, such as canned responses by usage.
MAX_COUNT = 2**31 - 1  # PostgreSQL integer: a larger count in a forged cursor would fail as a query


def encode_cursor(position: datetime | int, row_id: UUID) -> str:
    key = position.isoformat() if isinstance(position, datetime) else position
    raw = json.dumps([key, str(row_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _invalid_cursor() -> InvalidInput:
    return InvalidInput(
        "cursor is not valid",
        details=[{"field": "query.cursor", "message": "not a cursor returned by this API"}],
    )


def _decode(cursor: str) -> tuple[Any, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, row_id = json.loads(raw)
        return key, UUID(row_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise _invalid_cursor() from exc


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """A (created_at, id) cursor."""
    key, row_id = _decode(cursor)
    try:
        return datetime.fromisoformat(key), row_id
    except (ValueError, TypeError) as exc:
        raise _invalid_cursor() from exc


def decode_count_cursor(cursor: str) -> tuple[int, UUID]:
    """A (count, id) cursor. A cursor of a newest-first list is refused here, as any other foreign one."""
    key, row_id = _decode(cursor)
    if type(key) is not int or not 0 <= key <= MAX_COUNT:
        raise _invalid_cursor()
    return key, row_id


def page_of(rows: list[dict[str, Any]], limit: int, build: Any, *, key: str = "created_at") -> Page[Any]:
    """`rows` were fetched with LIMIT limit + 1: the extra row only says whether a next page exists.
    `key` is the column the list is ordered by (then by id), which the cursor carries."""
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(last[key], last["id"])
    return Page(data=[build(row) for row in items], next_cursor=next_cursor)
