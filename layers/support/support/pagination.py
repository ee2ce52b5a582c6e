"""Keyset pagination: an opaque cursor naming the last row of a page, and the page envelope."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field, Strict, TypeAdapter, ValidationError

from support.errors import InvalidInput

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50


class Page[T](BaseModel):
    data: list[T]
    next_cursor: str | None = Field(default=None, serialization_alias="nextCursor")


# A cursor names the last row of a page by its sort key and id: (created_at, id) for newest-first lists,
# (a count, id) for lists ordered by a counter, such as canned responses by usage. On the wire it is the
# base64url (unpadded) of the JSON array `[key, "id"]`.
MAX_COUNT = 2**31 - 1  # PostgreSQL integer: a larger count in a forged cursor would fail as a query

# The shapes a cursor may decode to, checked by pydantic rather than by hand, so that whatever a client sends
# (a naive or unparseable datetime, a float, a bool or a string for the count, nested arrays, objects, extra
# elements, a number where the id goes) is a 422 on `query.cursor` and never reaches the query. Strict: a
# number is not a datetime (pydantic would read it as a Unix time) and 5.0 or true is not a count.
_CREATED_CURSOR: TypeAdapter[tuple[datetime, UUID]] = TypeAdapter(tuple[Annotated[AwareDatetime, Strict()], UUID])
_COUNT_CURSOR: TypeAdapter[tuple[int, UUID]] = TypeAdapter(
    tuple[Annotated[int, Strict(), Field(ge=0, le=MAX_COUNT)], UUID]
)


def encode_cursor(position: datetime | int, row_id: UUID) -> str:
    key = position.isoformat() if isinstance(position, datetime) else position
    raw = json.dumps([key, str(row_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _invalid_cursor(reason: str) -> InvalidInput:
    return InvalidInput(
        "cursor is not valid",
        details=[
            {
                "field": "query.cursor",
                "message": f"not a cursor returned by this API ({reason})",
                "type": "cursor_invalid",
            }
        ],
    )


def _decode[K](cursor: str, adapter: TypeAdapter[tuple[K, UUID]]) -> tuple[K, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError) as exc:  # ValueError: characters outside ASCII
        raise _invalid_cursor("not base64url") from exc
    try:
        return adapter.validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise _invalid_cursor(first["msg"]) from exc


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """A (created_at, id) cursor: the datetime must carry a UTC offset, as the ones this API issues do."""
    return _decode(cursor, _CREATED_CURSOR)


def decode_count_cursor(cursor: str) -> tuple[int, UUID]:
    """A (count, id) cursor. A cursor of a newest-first list is refused here, as any other foreign one."""
    return _decode(cursor, _COUNT_CURSOR)


def page_of(rows: list[dict[str, Any]], limit: int, build: Any, *, key: str = "created_at") -> Page[Any]:
    """`rows` were fetched with LIMIT limit + 1: the extra row only says whether a next page exists.
    `key` is the column the list is ordered by (then by id), which the cursor carries."""
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(last[key], last["id"])
    return Page(data=[build(row) for row in items], next_cursor=next_cursor)
