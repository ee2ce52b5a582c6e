"""The live chat protocol over the WebSocket API: what clients send (one model per action) and what the server
sends back (events: `{"type", "requestId"?, "data"}`).

Every client message is `{"action": "...", "requestId": "optional, echoed back", ...fields}`. Sessions and
messages have the same camelCase shape as in the HTTP API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import Field, StringConstraints

from support.models.agents import AgentStatus
from support.models.base import ApiModel, AttachmentIds, Email, MessageText, Name, NoNul, Record
from support.models.chat import ChatMessage, ChatSession

RequestId = Annotated[str, StringConstraints(min_length=1, max_length=128), NoNul]
ClientMessageId = Annotated[str, StringConstraints(min_length=1, max_length=64), NoNul]
SYNC_PAGE = 100  # messages per `sync` answer; `hasMore` says whether to ask again


class ClientMessage(ApiModel):
    action: str
    request_id: RequestId | None = None


class StartChat(ClientMessage):
    visitor_name: Name | None = None
    visitor_email: Email | None = None
    # The client's own id for this attempt: a retry with it (after a lost chat.started) answers the session it
    # started instead of starting another.
    client_start_id: ClientMessageId | None = None


class SessionAction(ClientMessage):
    session_id: UUID


class SendMessage(SessionAction):
    message: MessageText  # at most 50 KB of UTF-8: `too_large` over
    client_message_id: ClientMessageId
    attachment_url: Annotated[str, StringConstraints(min_length=1, max_length=2048), NoNul] | None = None
    attachment_type: Annotated[str, StringConstraints(min_length=1, max_length=255), NoNul] | None = None
    # files uploaded for this chat (the widget: POST /api/support/widget/attachments/upload-url), claimed with it
    attachment_ids: AttachmentIds = Field(default_factory=list)


class Typing(SessionAction):
    is_typing: bool


class MarkRead(SessionAction):
    up_to_message_id: UUID


class EndChat(SessionAction):
    pass


class RateChat(SessionAction):
    rating: Annotated[int, Field(ge=1, le=5)]
    feedback: Annotated[str, StringConstraints(max_length=5000), NoNul] | None = None


class Sync(SessionAction):
    after_message_id: UUID | None = None


class SetStatus(ClientMessage):
    status: AgentStatus


class ClaimChat(SessionAction):
    pass


class Transfer(SessionAction):
    to_agent_id: UUID


class JoinSession(SessionAction):
    pass


class Ping(ClientMessage):
    pass


class LeaveEmail(SessionAction):
    """A visitor whose waiting chat became a ticket (chat.ticketed with emailRequested) leaves their email: the desk
    answers the ticket there."""

    email: Email


# --- what the server sends --------------------------------------------------------------------------------


class Queued(Record):
    session_id: UUID
    position: int = Field(description="1 = next to be assigned")
    as_of: datetime = Field(description="when the position was computed: keep the newest")
    expected_wait_seconds: int | None = Field(
        default=None,
        description="the expected wait in whole seconds, from the live capacity and recent handle times of the "
        "agents who could take the chat; null when no agent could take it now",
    )


class SyncAnswer(Record):
    session: ChatSession
    messages: list[ChatMessage]
    has_more: bool


class TypingNotice(Record):
    session_id: UUID
    sender_type: str
    is_typing: bool


class ReadNotice(Record):
    session_id: UUID
    up_to_message_id: UUID
    read_at: datetime
    marked_count: int


class AgentStatusNotice(Record):
    agent_id: UUID
    status: AgentStatus


class Pong(Record):
    server_time: datetime


class QueuedSession(Record):
    id: UUID
    visitor_name: str | None
    position: int = Field(description="1 = next to be assigned")
    created_at: datetime


class QueueUpdate(Record):
    """queue.updated: the tenant's waiting queue as a broadcast run read it (support.services.broadcasts)."""

    waiting: int = Field(description="how many sessions wait, all of them")
    sessions: list[QueuedSession] = Field(description="the first 100 waiting, oldest first")
    as_of: datetime = Field(description="when the queue was read: keep the newest")
