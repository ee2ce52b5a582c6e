"""Canned response suggestions: the tenant's canned responses ranked by relevance to what the customer wrote last in a
ticket or a chat, for the reply box.

The text is the conversation's recent customer side, newest first (the database counts the first words only): a
ticket's last SUGGESTION_MESSAGES customer entries (never an internal note or an agent's words), then its subject and
description (its first message); a chat's last SUGGESTION_MESSAGES visitor messages. The ranking is the
database's (suggest_canned_responses, sql/definitions/canned_suggestions.sql): English full-text matching, the
customer's rarer words first, through a GIN index on a side table (row-level security keeps a non-leakproof `@@` out
of index scans on canned_responses itself, as the ticket search found), `ts_rank` with the title weighing more than
the content, then the most used, at most MAX_SUGGESTIONS, each with the customer's words that matched. One
statement, one round trip: the conversation is read under the caller's row-level security (another tenant's id is
not found), then the responses themselves.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from support.auth import Principal
from support.db import pipelined
from support.errors import NotFound
from support.models.canned import SuggestedResponse
from support.services.canned_responses import CANNED_COLUMNS

MAX_SUGGESTIONS = 5
SUGGESTION_MESSAGES = 3

_RANKED = f"""
SELECT source.found, s.score, s.matched_words, {", ".join(f"c.{c.strip()}" for c in CANNED_COLUMNS.split(","))}
FROM source
LEFT JOIN LATERAL public.suggest_canned_responses(source.text, %(limit)s) WITH ORDINALITY AS s ON true
LEFT JOIN canned_responses c ON c.user_id = %(tenant)s AND c.id = s.response_id
ORDER BY s.ordinality
"""  # noqa: S608 (fixed text; every value is bound)

_TICKET = (
    """WITH source AS (
    SELECT true AS found, concat_ws(E'\\n', (
        SELECT string_agg(recent.message, E'\\n' ORDER BY recent.created_at DESC, recent.id DESC) FROM (
            SELECT m.message, m.created_at, m.id FROM ticket_conversations m
            WHERE m.user_id = t.user_id AND m.ticket_id = t.id AND m.sender_type = 'customer' AND NOT m.is_internal
            ORDER BY m.created_at DESC, m.id DESC LIMIT %(messages)s) recent), t.subject, t.description) AS text
    FROM support_tickets t WHERE t.user_id = %(tenant)s AND t.id = %(id)s)"""  # noqa: S608 (fixed text)
    + _RANKED
)

_CHAT = (
    """WITH source AS (
    SELECT true AS found, (
        SELECT string_agg(recent.message, E'\\n' ORDER BY recent.created_at DESC, recent.id DESC) FROM (
            SELECT m.message, m.created_at, m.id FROM chat_messages m
            WHERE m.user_id = s.user_id AND m.session_id = s.id AND m.sender_type = 'customer'
            ORDER BY m.created_at DESC, m.id DESC LIMIT %(messages)s) recent) AS text
    FROM live_chat_sessions s WHERE s.user_id = %(tenant)s AND s.id = %(id)s)"""  # noqa: S608 (fixed text)
    + _RANKED
)


def _suggest(principal: Principal, statement: str, conversation_id: UUID, what: str) -> list[SuggestedResponse]:
    params: dict[str, Any] = {
        "tenant": principal.tenant_id,
        "id": conversation_id,
        "limit": MAX_SUGGESTIONS,
        "messages": SUGGESTION_MESSAGES,
    }
    [rows] = pipelined(principal.tenant_id, [(statement, params)], snapshot=True)
    if not rows:
        raise NotFound(f"{what} not found")
    return [SuggestedResponse.model_validate(row) for row in rows if row["id"] is not None]


def suggest_for_ticket(principal: Principal, ticket_id: UUID) -> list[SuggestedResponse]:
    return _suggest(principal, _TICKET, ticket_id, "ticket")


def suggest_for_chat(principal: Principal, session_id: UUID) -> list[SuggestedResponse]:
    return _suggest(principal, _CHAT, session_id, "chat session")
