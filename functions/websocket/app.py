"""WebSocket endpoint group: $connect, $disconnect and every action of the live chat protocol.

Each action is a model (what the client sends) and a few lines that call one service function with the caller's
`Principal` and connection; the services fan out to the session's participants and give the caller's answer,
which the function returns as the route's response (support.websocket).
Routes live in template.yaml; a contract test checks that every template route has an action here and every
action a route.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from support.auth import Principal, Role
from support.config import get_settings
from support.errors import Forbidden
from support.models.chat import ChatMessageCreate, ChatRating, ChatSessionStart, VisitorContext
from support.models.realtime import (
    ClaimChat,
    EndChat,
    JoinSession,
    LeaveEmail,
    MarkRead,
    Ping,
    Pong,
    RateChat,
    SendMessage,
    SetStatus,
    StartChat,
    Sync,
    Transfer,
    Typing,
)
from support.models.tickets import SenderType
from support.observability import logger, metrics
from support.services import agents, chat, chat_expiry
from support.services.connections import Caller, Outbox
from support.websocket import Action, handle

get_settings()  # a misconfigured function fails at cold start


def _visitor_only(principal: Principal, action: str) -> None:
    if principal.role is not Role.VISITOR:
        raise Forbidden(f"{action} is a visitor's action")


def start_chat(principal: Principal, request: StartChat, caller: Caller) -> None:
    _visitor_only(principal, "startChat")
    data = ChatSessionStart(
        visitor_id=principal.visitor_id or "",
        visitor_name=request.visitor_name,
        visitor_email=request.visitor_email,
    )
    seen = VisitorContext.from_request(caller.source_ip, caller.user_agent)
    chat.start_chat_session(principal, data, seen, caller=caller, client_start_id=request.client_start_id)
    metrics.add_metric(name="ChatSessionsStarted", unit="Count", value=1)


def send_message(principal: Principal, request: SendMessage, caller: Caller) -> None:
    sender = SenderType.CUSTOMER if principal.role is Role.VISITOR else SenderType.AGENT
    data = ChatMessageCreate(
        sender_type=sender,
        message=request.message,
        attachment_url=request.attachment_url,
        attachment_type=request.attachment_type,
        attachment_ids=request.attachment_ids,
    )
    chat.add_chat_message(
        principal, request.session_id, data, caller=caller, client_message_id=request.client_message_id
    )


def typing(principal: Principal, request: Typing, caller: Caller) -> None:
    chat.typing(principal, request.session_id, request.is_typing, caller=caller)


def mark_read(principal: Principal, request: MarkRead, caller: Caller) -> None:
    chat.mark_chat_messages_read(principal, request.session_id, request.up_to_message_id, caller=caller)


def end_chat(principal: Principal, request: EndChat, caller: Caller) -> None:
    chat.end_chat_session(principal, request.session_id, caller=caller)


def rate_chat(principal: Principal, request: RateChat, caller: Caller) -> None:
    rating = ChatRating(rating=request.rating, feedback=request.feedback)
    chat.rate_chat_session(principal, request.session_id, rating, caller=caller)


def sync(principal: Principal, request: Sync, caller: Caller) -> None:
    chat.sync(principal, request.session_id, request.after_message_id, caller=caller)


def set_status(principal: Principal, request: SetStatus, caller: Caller) -> None:
    if principal.role is not Role.AGENT or principal.agent_id is None:
        raise Forbidden("setStatus is an agent's action (a token with agent_id)")
    agents.update_agent_status(principal, principal.agent_id, request.status, caller=caller)


def claim_chat(principal: Principal, request: ClaimChat, caller: Caller) -> None:
    chat.claim_chat_session(principal, request.session_id, caller=caller)


def transfer(principal: Principal, request: Transfer, caller: Caller) -> None:
    chat.transfer_chat_session(principal, request.session_id, request.to_agent_id, caller=caller)


def join_session(principal: Principal, request: JoinSession, caller: Caller) -> None:
    chat.join_session(principal, request.session_id, caller=caller)


def leave_email(principal: Principal, request: LeaveEmail, caller: Caller) -> None:
    _visitor_only(principal, "leaveEmail")
    chat_expiry.leave_email(principal, request.session_id, request.email, caller=caller)


def ping(principal: Principal, request: Ping, caller: Caller) -> None:
    outbox = Outbox(principal.tenant_id, caller)
    outbox.answer("pong", Pong(server_time=datetime.now(UTC)))
    outbox.send()


ACTIONS: dict[str, Action] = {
    "startChat": Action(StartChat, start_chat),
    "sendMessage": Action(SendMessage, send_message, checked_in_transaction=True),
    "typing": Action(Typing, typing, answers=False),
    "markRead": Action(MarkRead, mark_read, checked_in_transaction=True),
    "endChat": Action(EndChat, end_chat),
    "rateChat": Action(RateChat, rate_chat),
    "sync": Action(Sync, sync),
    "setStatus": Action(SetStatus, set_status),
    "claimChat": Action(ClaimChat, claim_chat),
    "transfer": Action(Transfer, transfer),
    "joinSession": Action(JoinSession, join_session),
    "ping": Action(Ping, ping),
    "leaveEmail": Action(LeaveEmail, leave_email),
}


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def lambda_handler(event_: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event_, ACTIONS)
