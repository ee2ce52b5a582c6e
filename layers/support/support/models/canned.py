"""Canned responses: reusable replies agents insert by shortcut."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import Field, StringConstraints

from support.models.base import ApiModel, Category, MessageText, NoNul, Record, SearchText
from support.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

# The same rule as the table's CHECK: what an agent types after "/" in the console, no spaces.
SHORTCUT_KEY_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"

ShortcutKey = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32, pattern=SHORTCUT_KEY_PATTERN)
]
ResponseTitle = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoNul]


class CannedResponseSort(StrEnum):
    NEWEST = "newest"  # created_at, newest first
    USAGE = "usage"  # usage_count, most used first


class CannedResponseCreate(ApiModel):
    response_title: ResponseTitle
    response_content: MessageText  # kept as sent; at most 50 KB of UTF-8, like a message: 413 over
    shortcut_key: ShortcutKey
    category: Category | None = None


class CannedResponseUpdate(ApiModel):
    """Only the fields present are changed; `category: null` clears the category, and null for the others
    means "leave as is" (as in a ticket update)."""

    response_title: ResponseTitle | None = None
    response_content: MessageText | None = None
    shortcut_key: ShortcutKey | None = None
    category: Category | None = None


class CannedResponseQuery(ApiModel):
    category: Category | None = None
    search: SearchText | None = None
    sort: CannedResponseSort = CannedResponseSort.NEWEST
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = None


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


class SuggestedResponse(CannedResponse):
    """A canned response suggested for a conversation: how well it matches the customer's recent messages (`score`,
    higher is better; full-text rank with the title weighing more than the content) and the customer's words that
    matched (`matchedWords`, as written, lower case, in the order they came)."""

    score: float
    matched_words: list[str]
