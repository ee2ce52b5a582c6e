"""The sample events in `events/`, one per route kind, for `sam local invoke -e` and the tests.

They are built by the local gateway's own event builder, so they have the shape API Gateway's HTTP API
sends (payload format 2.0, claims from the JWT authorizer). Regenerate after changing a route or a
request model: `python -m local.sample_events` (a contract test fails when the files are stale).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from local.gateway import (
    build_http_event,
    build_websocket_authorizer_event,
    build_websocket_event,
    websocket_request_context,
)
from local.jwt_keys import AUDIENCE, ISSUER
from local.template import REPO

EVENTS_DIR = REPO / "events"
TENANT_ID = "11111111-1111-4111-8111-111111111111"
TICKET_ID = "22222222-2222-4222-8222-222222222222"
AGENT_ID = "33333333-3333-4333-8333-333333333333"
DOMAIN = "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"
RECEIVED_AT = datetime(2025, 1, 15, 10, 0, 0, tzinfo=UTC)
TICKET_PATH = f"/api/support/tickets/{TICKET_ID}"
AGENT_PATH = f"/api/support/agents/{AGENT_ID}"
CANNED_RESPONSE_ID = "66666666-6666-4666-8666-666666666666"
CANNED_BASE = "/api/support/canned-responses"
CANNED_PATH = f"{CANNED_BASE}/{CANNED_RESPONSE_ID}"
CHAT_SESSION_ID = "77777777-7777-4777-8777-777777777777"
CHAT_MESSAGE_ID = "88888888-8888-4888-8888-888888888888"
CHAT_BASE = "/api/support/chat/sessions"
CHAT_PATH = f"{CHAT_BASE}/{CHAT_SESSION_ID}"
CONTACT_ID = "99999999-9999-4999-8999-999999999999"
OTHER_CONTACT_ID = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
CONTACTS_BASE = "/api/support/contacts"
CONTACT_PATH = f"{CONTACTS_BASE}/{CONTACT_ID}"
WIDGET_KEY = "wk_SampleWidgetKey0123456789abcdef"
WIDGET_ORIGIN = "https://shop.example"
ATTACHMENT_ID = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
ATTACHMENTS_PATH = f"/api/support/attachments/{ATTACHMENT_ID}"
# A visitor's resume token as the widget session route answers it (its signature is a placeholder: the sample shows
# the request's shape; a real one is minted by POST /api/support/widget/session).
VISITOR_RESUME_TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ2aXNpdG9yIn0.c2lnbmF0dXJl"  # noqa: S105


@dataclass(frozen=True)
class SampleEvent:
    file: str  # relative to events/
    route_key: str
    path: str
    query: dict[str, str] | None = None
    body: dict[str, Any] | None = None
    # A public route (no JWT authorizer): no Authorization header and no claims; a browser's Origin instead.
    origin: str | None = None


SAMPLES = (
    SampleEvent(
        "tickets/list.json",
        "GET /api/support/tickets",
        "/api/support/tickets",
        query={"status": "open", "priority": "high", "limit": "20"},
    ),
    SampleEvent(
        "tickets/create.json",
        "POST /api/support/tickets",
        "/api/support/tickets",
        body={
            "customerName": "Ada Lovelace",
            "customerEmail": "ada@example.com",
            "customerPhone": "+44 20 7946 0018",
            "subject": "Order #1042 arrived damaged",
            "description": "The box was crushed and the mug inside is broken.",
            "category": "shipping",
            "priority": "high",
        },
    ),
    SampleEvent(
        "tickets/list_by_channel.json",
        "GET /api/support/tickets",
        "/api/support/tickets",
        query={"channel": "phone", "search": "#1001", "limit": "20"},
    ),
    SampleEvent(
        "tickets/create_phone.json",
        "POST /api/support/tickets",
        "/api/support/tickets",
        body={
            "customerName": "Grace Hopper",
            "customerEmail": "grace@example.com",
            "customerPhone": "+1 555 0100",
            "subject": "Cannot log in to the shop",
            "category": "account",
            "channel": "phone",
            "call": {
                "direction": "inbound",
                "callerNumber": "+1 555 0100",
                "durationSeconds": 240,
                "notes": "Password reset link never arrived; resent it while on the phone.",
            },
        },
    ),
    SampleEvent("tickets/get.json", "GET /api/support/tickets/{ticketId}", TICKET_PATH),
    SampleEvent(
        "tickets/update.json",
        "PATCH /api/support/tickets/{ticketId}",
        TICKET_PATH,
        body={
            "status": "waiting_customer",
            "priority": "urgent",
            "category": "shipping",
            "customFields": {"orderNumber": "1042", "carrier": "DHL"},
        },
    ),
    SampleEvent("tickets/close.json", "POST /api/support/tickets/{ticketId}/close", f"{TICKET_PATH}/close"),
    SampleEvent(
        "tickets/assign.json",
        "POST /api/support/tickets/{ticketId}/assign",
        f"{TICKET_PATH}/assign",
        body={"agentId": AGENT_ID},
    ),
    SampleEvent(
        "tickets/list_conversations.json",
        "GET /api/support/tickets/{ticketId}/conversations",
        f"{TICKET_PATH}/conversations",
        query={"limit": "50"},
    ),
    SampleEvent(
        "tickets/add_conversation.json",
        "POST /api/support/tickets/{ticketId}/conversations",
        f"{TICKET_PATH}/conversations",
        body={
            "senderType": "agent",
            "senderName": "Grace Hopper",
            "senderEmail": "grace@support.example.com",
            "message": "Sorry about that! A replacement is on its way; here is the return label.",
            "isInternal": False,
            "attachments": [
                {
                    "fileName": "return-label.pdf",
                    "contentType": "application/pdf",
                    "sizeBytes": 48213,
                    "url": "https://files.example.com/labels/return-label.pdf",
                }
            ],
        },
    ),
    SampleEvent(
        "tickets/log_call.json",
        "POST /api/support/tickets/{ticketId}/calls",
        f"{TICKET_PATH}/calls",
        body={
            "direction": "outbound",
            "callerNumber": "+44 20 7946 0018",
            "durationSeconds": 312,
            "notes": "Called back: a replacement mug goes out today with a prepaid return label.",
        },
    ),
    SampleEvent(  # email in: the raw mail a conversation entry came by (sql/0028)
        "tickets/get_original_email.json",
        "GET /api/support/tickets/{ticketId}/conversations/{conversationId}/original",
        f"{TICKET_PATH}/conversations/{CHAT_MESSAGE_ID}/original",
    ),
    SampleEvent(
        "tickets/get_feedback.json",
        "GET /api/support/tickets/{ticketId}/feedback",
        f"{TICKET_PATH}/feedback",
    ),
    SampleEvent(
        "tickets/add_feedback.json",
        "POST /api/support/tickets/{ticketId}/feedback",
        f"{TICKET_PATH}/feedback",
        body={
            "rating": 5,
            "recommendation": 9,
            "feedback": "Quick and friendly, thank you.",
            "resolvedIssue": True,
            "agentRating": 5,
            "responseTimeRating": 4,
            "communicationRating": 5,
        },
    ),
    # dashboard
    SampleEvent(
        "dashboard/get.json",
        "GET /api/support/dashboard",
        "/api/support/dashboard",
        query={"userId": TENANT_ID},
    ),
    SampleEvent(
        "dashboard/analytics.json",
        "GET /api/support/analytics",
        "/api/support/analytics",
        query={"from": "2025-01-01", "to": "2025-01-31"},
    ),
    SampleEvent(
        "dashboard/summary.json",
        "GET /api/support/analytics/summary",
        "/api/support/analytics/summary",
        query={"from": "2025-01-01", "to": "2025-01-31"},
    ),
    # agents
    SampleEvent("agents/list.json", "GET /api/support/agents", "/api/support/agents", query={"status": "available"}),
    SampleEvent("agents/get.json", "GET /api/support/agents/{agentId}", AGENT_PATH),
    SampleEvent(
        "agents/update.json",
        "PATCH /api/support/agents/{agentId}",
        AGENT_PATH,
        body={"department": "Billing", "skills": ["billing", "refunds"], "maxConcurrentChats": 8},
    ),
    SampleEvent(
        "agents/update_status.json",
        "PATCH /api/support/agents/{agentId}/status",
        f"{AGENT_PATH}/status",
        body={"status": "available"},
    ),
    SampleEvent(
        "agents/create.json",
        "POST /api/support/agents",
        "/api/support/agents",
        body={
            "agentName": "Grace Hopper",
            "agentEmail": "grace@support.example.com",
            "department": "Customer Care",
            "skills": ["shipping", "refunds"],
            "maxConcurrentChats": 5,
        },
    ),
    # canned responses
    SampleEvent(
        "canned_responses/list.json",
        f"GET {CANNED_BASE}",
        CANNED_BASE,
        query={"category": "billing", "search": "refund", "sort": "usage", "limit": "20"},
    ),
    SampleEvent(
        "canned_responses/create.json",
        f"POST {CANNED_BASE}",
        CANNED_BASE,
        body={
            "responseTitle": "Refund policy",
            "responseContent": "Refunds go back to the original payment method within 5 to 7 business days.",
            "shortcutKey": "refund-policy",
            "category": "billing",
        },
    ),
    SampleEvent(
        "canned_responses/get_by_shortcut.json",
        f"GET {CANNED_BASE}/by-shortcut/{{shortcutKey}}",
        f"{CANNED_BASE}/by-shortcut/refund-policy",
    ),
    SampleEvent(
        "canned_responses/update.json",
        f"PATCH {CANNED_BASE}/{{responseId}}",
        CANNED_PATH,
        body={"responseTitle": "Shipping delay apology", "category": "shipping"},
    ),
    SampleEvent("canned_responses/use.json", f"POST {CANNED_BASE}/{{responseId}}/use", f"{CANNED_PATH}/use"),
    SampleEvent("canned_responses/delete.json", f"DELETE {CANNED_BASE}/{{responseId}}", CANNED_PATH),
    SampleEvent(
        "canned_responses/suggest_for_ticket.json",
        "GET /api/support/tickets/{ticketId}/suggested-responses",
        f"{TICKET_PATH}/suggested-responses",
    ),
    SampleEvent(
        "canned_responses/suggest_for_chat.json",
        f"GET {CHAT_BASE}/{{sessionId}}/suggested-responses",
        f"{CHAT_PATH}/suggested-responses",
    ),
    # live chat (the visitor's IP and browser come from the event's source IP and User-Agent, not the body)
    SampleEvent(
        "chat/start.json",
        f"POST {CHAT_BASE}",
        CHAT_BASE,
        body={"visitorId": "visitor-5f2c", "visitorName": "Ada Lovelace", "visitorEmail": "ada@example.com"},
    ),
    SampleEvent("chat/list.json", f"GET {CHAT_BASE}", CHAT_BASE, query={"status": "active", "limit": "20"}),
    SampleEvent("chat/get.json", f"GET {CHAT_BASE}/{{sessionId}}", CHAT_PATH),
    SampleEvent(
        "chat/transfer.json",
        f"POST {CHAT_BASE}/{{sessionId}}/transfer",
        f"{CHAT_PATH}/transfer",
        body={"toAgentId": AGENT_ID},
    ),
    SampleEvent(
        "chat/list_messages.json",
        f"GET {CHAT_BASE}/{{sessionId}}/messages",
        f"{CHAT_PATH}/messages",
        query={"limit": "50"},
    ),
    SampleEvent(
        "chat/add_message.json",
        f"POST {CHAT_BASE}/{{sessionId}}/messages",
        f"{CHAT_PATH}/messages",
        body={
            "senderType": "agent",
            "senderName": "Grace Hopper",
            "message": "Here is the return label for your order.",
            "attachmentUrl": "https://files.example.com/labels/return-label.pdf",
            "attachmentType": "application/pdf",
        },
    ),
    SampleEvent(
        "chat/read.json",
        f"POST {CHAT_BASE}/{{sessionId}}/read",
        f"{CHAT_PATH}/read",
        body={"upToMessageId": CHAT_MESSAGE_ID},
    ),
    SampleEvent("chat/end.json", f"POST {CHAT_BASE}/{{sessionId}}/end", f"{CHAT_PATH}/end"),
    SampleEvent(
        "chat/make_ticket.json",
        f"POST {CHAT_BASE}/{{sessionId}}/ticket",
        f"{CHAT_PATH}/ticket",
        body={"subject": "Order 1042 arrived damaged", "customerEmail": "ada@example.com"},
    ),
    SampleEvent(
        "chat/rating.json",
        f"POST {CHAT_BASE}/{{sessionId}}/rating",
        f"{CHAT_PATH}/rating",
        body={"rating": 5, "feedback": "Quick and friendly, thank you."},
    ),
    SampleEvent(
        "widgets/create.json",
        "POST /api/support/widgets",
        "/api/support/widgets",
        body={"name": "Demo shop", "allowedOrigins": [WIDGET_ORIGIN]},
    ),
    SampleEvent("widgets/list.json", "GET /api/support/widgets", "/api/support/widgets", query={"limit": "20"}),
    SampleEvent(
        "widgets/update_origins.json",
        "PATCH /api/support/widgets/{widgetKey}",
        f"/api/support/widgets/{WIDGET_KEY}",
        body={"allowedOrigins": [WIDGET_ORIGIN, "https://www.shop.example"]},
    ),
    SampleEvent("widgets/revoke.json", "DELETE /api/support/widgets/{widgetKey}", f"/api/support/widgets/{WIDGET_KEY}"),
    SampleEvent(
        "widgets/start_visitor_session.json",
        "POST /api/support/widget/session",
        "/api/support/widget/session",
        body={"widgetKey": WIDGET_KEY},
        origin=WIDGET_ORIGIN,
    ),
    SampleEvent(
        "widgets/submit_web_form.json",
        "POST /api/support/widget/tickets",
        "/api/support/widget/tickets",
        body={
            "widgetKey": WIDGET_KEY,
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "subject": "Where is my order?",
            "message": "I ordered a teapot on Monday and have heard nothing since. Order 1042.",
            "category": "shipping",
            "website": "",
        },
        origin=WIDGET_ORIGIN,
    ),
    SampleEvent(
        "widgets/visitor_upload_url.json",
        "POST /api/support/widget/attachments/upload-url",
        "/api/support/widget/attachments/upload-url",
        body={
            "widgetKey": WIDGET_KEY,
            "resumeToken": VISITOR_RESUME_TOKEN,
            "sessionId": CHAT_SESSION_ID,
            "fileName": "damaged-mug.jpg",
            "contentType": "image/jpeg",
            "sizeBytes": 482133,
        },
        origin=WIDGET_ORIGIN,
    ),
    SampleEvent(
        "widgets/visitor_download_url.json",
        "POST /api/support/widget/attachments/{attachmentId}/download-url",
        f"/api/support/widget/attachments/{ATTACHMENT_ID}/download-url",
        body={"widgetKey": WIDGET_KEY, "resumeToken": VISITOR_RESUME_TOKEN},
        origin=WIDGET_ORIGIN,
    ),
    SampleEvent(
        "widgets/get_openapi_document.json",
        "GET /api/support/openapi.json",
        "/api/support/openapi.json",
        origin=WIDGET_ORIGIN,
    ),
    SampleEvent(
        "attachments/upload_url.json",
        "POST /api/support/attachments/upload-url",
        "/api/support/attachments/upload-url",
        body={
            "ticketId": TICKET_ID,
            "fileName": "invoice-1042.pdf",
            "contentType": "application/pdf",
            "sizeBytes": 48213,
        },
    ),
    SampleEvent("attachments/get.json", "GET /api/support/attachments/{attachmentId}", ATTACHMENTS_PATH),
    SampleEvent(
        "contacts/list.json", "GET /api/support/contacts", CONTACTS_BASE, query={"search": "ada", "limit": "20"}
    ),
    SampleEvent("contacts/get.json", "GET /api/support/contacts/{contactId}", CONTACT_PATH),
    SampleEvent(
        "contacts/update.json",
        "PATCH /api/support/contacts/{contactId}",
        CONTACT_PATH,
        body={"name": "Ada Lovelace", "addEmails": ["ada@home.example"], "addPhones": ["+44 20 7946 0018"]},
    ),
    SampleEvent(
        "contacts/merge.json",
        "POST /api/support/contacts/{contactId}/merge",
        f"{CONTACT_PATH}/merge",
        body={"otherContactId": OTHER_CONTACT_ID},
    ),
    SampleEvent("settings/get_chat.json", "GET /api/support/settings/chat", "/api/support/settings/chat"),
    SampleEvent(
        "settings/put_chat.json",
        "PUT /api/support/settings/chat",
        "/api/support/settings/chat",
        body={"queueCap": 20, "webFormUrl": "https://shop.example/contact"},
    ),
    SampleEvent("settings/get_email.json", "GET /api/support/settings/email", "/api/support/settings/email"),
    SampleEvent(
        "settings/put_email.json",
        "PUT /api/support/settings/email",
        "/api/support/settings/email",
        body={
            "inboundAddresses": ["support@shop.example"],
            "fromName": "Shop Support",
            "fromAddress": "support@shop.example",
            "notifyReceived": True,
            "notifyReplied": True,
            "notifyResolved": True,
            "notifyClosed": False,
        },
    ),
    SampleEvent("settings/get_sla.json", "GET /api/support/settings/sla", "/api/support/settings/sla"),
    SampleEvent(
        "settings/put_sla.json",
        "PUT /api/support/settings/sla",
        "/api/support/settings/sla",
        body={
            "targets": {
                "urgent": {"firstResponseMinutes": 30, "resolutionMinutes": 240},
                "high": {"firstResponseMinutes": 120, "resolutionMinutes": 960},
                "medium": {"firstResponseMinutes": 480, "resolutionMinutes": 2400},
                "low": {"firstResponseMinutes": 960, "resolutionMinutes": 4800},
            },
            "timeZone": "Europe/Berlin",
            "businessHours": {
                **{day: [{"start": "09:00", "end": "17:00"}] for day in ("monday", "tuesday", "wednesday", "thursday")},
                "friday": [{"start": "09:00", "end": "13:00"}, {"start": "14:00", "end": "17:00"}],
                "saturday": [],
                "sunday": [],
            },
            "holidays": ["2026-12-25", "2026-12-26"],
            "pauseStatuses": ["waiting_customer"],
        },
    ),
    SampleEvent("settings/get_routing.json", "GET /api/support/settings/routing", "/api/support/settings/routing"),
    SampleEvent(
        "settings/put_routing.json",
        "PUT /api/support/settings/routing",
        "/api/support/settings/routing",
        body={
            "autoAssignTickets": True,
            "autoAssignChats": True,
            "ticketLimitPerAgent": 10,
            "rules": [
                {"category": "billing", "requiredSkills": ["billing"]},
                {"channel": "chat", "requiredSkills": ["chat"]},
            ],
            "chatWaitLimitSeconds": 600,
            "reassignTicketsWhenAway": False,
        },
    ),
    SampleEvent(
        "settings/get_retention.json", "GET /api/support/settings/retention", "/api/support/settings/retention"
    ),
    SampleEvent(
        "settings/put_retention.json",
        "PUT /api/support/settings/retention",
        "/api/support/settings/retention",
        body={
            "tickets": {"mode": "archive", "days": 365},
            "chats": {"mode": "delete", "days": 90},
            "auditDays": 730,
        },
    ),
)


def render(sample: SampleEvent) -> dict[str, Any]:
    method, template_path = sample.route_key.split(" ", 1)
    names = [part[1:-1] for part in template_path.split("/") if part.startswith("{")]
    values = [v for t, v in zip(template_path.split("/"), sample.path.split("/"), strict=True) if t[:1] == "{"]
    body = json.dumps(sample.body, separators=(",", ":")).encode() if sample.body is not None else b""
    headers = [("accept", "application/json")]
    headers += [("origin", sample.origin)] if sample.origin else [("authorization", "Bearer <redacted>")]
    headers += [("host", DOMAIN), ("user-agent", "curl/8.5.0")]
    if body:
        headers += [("content-type", "application/json"), ("content-length", str(len(body)))]
    issued_at = int(RECEIVED_AT.timestamp()) - 60
    event = build_http_event(
        route_key=sample.route_key,
        method=method,
        raw_path=sample.path,
        raw_query_string=urlencode(sample.query or {}),
        headers=headers,
        body=body,
        path_parameters=dict(zip(names, values, strict=True)),
        claims=None
        if sample.origin
        else {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": f"local|admin|{TENANT_ID}",
            "iat": issued_at,
            "exp": issued_at + 3600,
            "tenant_id": TENANT_ID,
            "role": "admin",
        },
        source_ip="203.0.113.10",
        domain_name=DOMAIN,
        api_id=DOMAIN.split(".", 1)[0],
        request_id="EXAMPLEreqId0=",
        received_at=RECEIVED_AT,
    )
    event["headers"]["x-amzn-trace-id"] = "Root=1-67878660-0123456789abcdef01234567"
    return event


# The WebSocket API: one sample per route of WebSocketFunction, and the $connect authorizer's event. The
# connection is an agent's (the authorizer's context, as API Gateway passes it to every later event).
WS_DOMAIN = "f6g7h8i9j0.execute-api.us-east-1.amazonaws.com"
WS_STAGE = "dev"
WS_CONNECTION = "L0SM9cOFvHcCIhw="
WS_CONNECTED_AT = int(RECEIVED_AT.timestamp() * 1000) - 5000
WS_AUTHORIZER = {
    "tenantId": TENANT_ID,
    "role": "agent",
    "subject": f"local|agent|{TENANT_ID}",
    "agentId": AGENT_ID,
    "principalId": f"local|agent|{TENANT_ID}",
}
WS_HEADERS = [
    ("host", WS_DOMAIN),
    ("origin", WIDGET_ORIGIN),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("sec-websocket-version", "13"),
    ("user-agent", "Mozilla/5.0 (sample)"),
    ("x-forwarded-for", "203.0.113.10"),
]
# Each action's message: what a client sends (docs/websocket.md).
WS_MESSAGES: dict[str, dict[str, Any]] = {
    "startChat": {"visitorName": "Lin"},
    "sendMessage": {"sessionId": CHAT_SESSION_ID, "message": "Here is the return label.", "clientMessageId": "c-1"},
    "typing": {"sessionId": CHAT_SESSION_ID, "isTyping": True},
    "markRead": {"sessionId": CHAT_SESSION_ID, "upToMessageId": CHAT_MESSAGE_ID},
    "endChat": {"sessionId": CHAT_SESSION_ID},
    "rateChat": {"sessionId": CHAT_SESSION_ID, "rating": 5, "feedback": "Thanks"},
    "sync": {"sessionId": CHAT_SESSION_ID},
    "setStatus": {"status": "available"},
    "claimChat": {"sessionId": CHAT_SESSION_ID},
    "transfer": {"sessionId": CHAT_SESSION_ID, "toAgentId": AGENT_ID},
    "joinSession": {"sessionId": CHAT_SESSION_ID},
    "ping": {},
    "leaveEmail": {"sessionId": CHAT_SESSION_ID, "email": "lin@shop.example"},
    "$default": {"action": "noSuchAction"},
}


def _ws_context(route_key: str, event_type: str) -> dict[str, Any]:
    return websocket_request_context(
        route_key=route_key,
        event_type=event_type,
        connection_id=WS_CONNECTION,
        connected_at=WS_CONNECTED_AT,
        source_ip="203.0.113.10",
        user_agent="Mozilla/5.0 (sample)",
        host=WS_DOMAIN,
        stage=WS_STAGE,
        api_id=WS_DOMAIN.split(".", 1)[0],
        received_at=RECEIVED_AT,
        request_id="EXAMPLEwsReqId=",
    )


def _file_name(route_key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", route_key.lstrip("$")).lower()


def websocket_samples() -> dict[str, dict[str, Any]]:
    """File (under events/) -> event, for every route of the WebSocket API and the authorizer."""
    samples: dict[str, dict[str, Any]] = {
        "websocket/connect.json": build_websocket_event(
            _ws_context("$connect", "CONNECT"),
            authorizer=WS_AUTHORIZER,
            headers=WS_HEADERS,
            raw_query_string="token=%3Credacted%3E",
        ),
        "websocket/disconnect.json": build_websocket_event(
            _ws_context("$disconnect", "DISCONNECT"), authorizer=WS_AUTHORIZER, disconnect=(1001, "Going away")
        ),
        # a visitor connecting: the query string holds the connect token the widget session route gave it
        "ws_authorizer/connect_visitor.json": build_websocket_authorizer_event(
            headers=WS_HEADERS,
            raw_query_string="visitorToken=%3Cthe+connectToken+of+POST+%2Fapi%2Fsupport%2Fwidget%2Fsession%3E",
            request_context=_ws_context("$connect", "CONNECT"),
            api_id=WS_DOMAIN.split(".", 1)[0],
            stage=WS_STAGE,
        ),
    }
    for route_key, fields in WS_MESSAGES.items():
        body = fields if route_key == "$default" else {"action": route_key, "requestId": "r-1", **fields}
        samples[f"websocket/{_file_name(route_key)}.json"] = build_websocket_event(
            _ws_context(route_key, "MESSAGE"),
            authorizer=WS_AUTHORIZER,
            body=json.dumps(body, separators=(",", ":")),
            message_id="EXAMPLEmsgId0=",
        )
    return samples


def analytics_samples() -> dict[str, dict[str, Any]]:
    """The AnalyticsFunction's two events: what EventBridge Scheduler sends (the template's Input, its
    <aws.scheduler.scheduled-time> filled in, shortly after midnight UTC) and a backfill of one tenant."""
    scheduled_at = datetime.combine(RECEIVED_AT.date() + timedelta(days=1), time(0, 15), tzinfo=UTC)
    return {
        "analytics/scheduled.json": {"scheduledTime": scheduled_at.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "analytics/backfill.json": {"from": "2025-01-01", "to": RECEIVED_AT.date().isoformat(), "tenantId": TENANT_ID},
    }


def email_outbox_samples() -> dict[str, dict[str, Any]]:
    """The EmailOutboxFunction's events: EventBridge Scheduler's every minute (the template's Input, filled in), and
    SNS's with an SES event of the stack's configuration set: a permanent bounce (event publishing's `eventType`)
    and a complaint (the identity notification's `notificationType`; the function reads either)."""
    topic = "arn:aws:sns:us-east-1:123456789012:support-dev-EmailFeedbackTopic-1A2B3C4D5E6F"
    subscription = f"{topic}:3f1c2e4a-5b6c-4d7e-8f90-a1b2c3d4e5f6"
    mail = {
        "timestamp": "2025-01-15T10:01:03.000Z",
        "messageId": "010001946a0e1f2b-7c8d9e0f-1a2b-4c3d-9e8f-7a6b5c4d3e2f-000000",
        "source": "support@shop.example",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/shop.example",
        "sendingAccountId": "123456789012",
        "destination": ["ana.customer@example.com"],
        "headersTruncated": False,
        "commonHeaders": {
            "from": ["Shop Support <support@shop.example>"],
            "to": ["Ana Customer <ana.customer@example.com>"],
            "messageId": f"<ticket-{TICKET_ID}.8a1d2c3b-4e5f-4a6b-9c7d-0e1f2a3b4c5d@shop.example>",
            "subject": "Order 1043 arrived damaged",
        },
        "tags": {"ses:configuration-set": ["support-dev-EmailConfigurationSet-7G8H9I0J"]},
    }
    bounce = {
        "eventType": "Bounce",
        "bounce": {
            "feedbackId": "010001946a0e2a11-aaaabbbb-cccc-dddd-eeee-ffff00001111-000000",
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": "ana.customer@example.com",
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": "2025-01-15T10:02:10.000Z",
            "remoteMtaIp": "198.51.100.25",
            "reportingMTA": "dns; a8-50.smtp-out.amazonses.com",
        },
        "mail": mail,
    }
    complaint = {
        "notificationType": "Complaint",
        "complaint": {
            "feedbackId": "010001946a0e3b22-bbbbcccc-dddd-eeee-ffff-000011112222-000000",
            "complaintSubType": None,
            "complainedRecipients": [{"emailAddress": "ana.customer@example.com"}],
            "timestamp": "2025-01-15T11:20:00.000Z",
            "userAgent": "Yahoo!-Mail-Feedback/2.0",
            "complaintFeedbackType": "abuse",
            "arrivalDate": "2025-01-15T10:01:03.000Z",
        },
        "mail": mail,
    }

    def sns(notification: dict[str, Any], message_id: str) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "EventSource": "aws:sns",
                    "EventVersion": "1.0",
                    "EventSubscriptionArn": subscription,
                    "Sns": {
                        "Type": "Notification",
                        "MessageId": message_id,
                        "TopicArn": topic,
                        "Subject": None,
                        "Message": json.dumps(notification, separators=(",", ":")),
                        "Timestamp": "2025-01-15T10:02:11.314Z",
                        "SignatureVersion": "1",
                        "Signature": "EXAMPLEpH+signature==",
                        "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-example.pem",
                        "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
                        f"&SubscriptionArn={subscription}",
                        "MessageAttributes": {},
                    },
                }
            ]
        }

    return {
        "email_outbox/scheduled.json": {
            "scheduledTime": (RECEIVED_AT + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        },
        "email_outbox/sns_bounce.json": sns(bounce, "95df01b4-ee98-5cb9-9903-4c221d41eb5e"),
        "email_outbox/sns_complaint.json": sns(complaint, "a1c4e2f0-3b5d-5e7f-8a9b-0c1d2e3f4a5b"),
    }


PRE_TOKEN_CLIENT_ID = "4example5client6id7abc8def"  # noqa: S105 - an app client id, public


def contacts_backfill_samples() -> dict[str, dict[str, Any]]:
    """The ContactsBackfillFunction's events: every tenant, and one tenant with smaller batches."""
    return {
        "contacts_backfill/all_tenants.json": {},
        "contacts_backfill/one_tenant.json": {"tenantId": TENANT_ID, "batchSize": 200},
    }


# Social and other channels (support.services.channels): the admin's routes, and a connector's signed delivery.
CHANNEL_ID = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
CHANNELS_BASE = "/api/support/channels"
CHANNEL_PATH = f"{CHANNELS_BASE}/{CHANNEL_ID}"
# The sample delivery's signing secret (a sample's, never a real channel's): docs/api.md signs the same body with it.
CHANNEL_SAMPLE_SECRET = "chs_" + "0123456789abcdef" * 4
CHANNEL_SAMPLES = (
    SampleEvent(
        "channels/create.json",
        "POST /api/support/channels",
        CHANNELS_BASE,
        body={"name": "WhatsApp (shop number)", "kind": "whatsapp"},
    ),
    SampleEvent("channels/list.json", "GET /api/support/channels", CHANNELS_BASE, query={"limit": "20"}),
    SampleEvent("channels/get.json", "GET /api/support/channels/{channelId}", CHANNEL_PATH),
    SampleEvent("channels/disable.json", "DELETE /api/support/channels/{channelId}", CHANNEL_PATH),
    SampleEvent(
        "channels/rotate_secret.json",
        "POST /api/support/channels/{channelId}/rotate-secret",
        f"{CHANNEL_PATH}/rotate-secret",
    ),
)
CHANNEL_MESSAGE = {
    "externalSenderId": "+4915112345678",
    "senderName": "Grace Hopper",
    "text": "Hello, my order #1042 has not arrived yet. Can you check where it is?",
    "externalMessageId": "wamid.HBgMNDkxNTExMjM0NTY3OBUCABIYFjNFQjBDMEE",
    "sentAt": "2025-01-15T09:59:58Z",
}


def channel_samples() -> dict[str, dict[str, Any]]:
    """The ChannelsFunction's events. The delivery is signed at the sample's time (RECEIVED_AT) with
    CHANNEL_SAMPLE_SECRET: its shape is API Gateway's; its timestamp is long past, so a handler refuses it (401)."""
    import hashlib
    import hmac

    samples = {s.file: render(s) for s in CHANNEL_SAMPLES}
    body = json.dumps(CHANNEL_MESSAGE, separators=(",", ":")).encode()
    timestamp = str(int(RECEIVED_AT.timestamp()))
    signature = hmac.new(CHANNEL_SAMPLE_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    event = build_http_event(
        route_key="POST /api/support/channels/{channelId}/messages",
        method="POST",
        raw_path=f"{CHANNEL_PATH}/messages",
        headers=[
            ("host", DOMAIN),
            ("user-agent", "connector/1.0"),
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            ("x-signature-timestamp", timestamp),
            ("x-signature", f"v1={signature}"),
        ],
        body=body,
        path_parameters={"channelId": CHANNEL_ID},
        claims=None,
        source_ip="203.0.113.20",
        domain_name=DOMAIN,
        api_id=DOMAIN.split(".", 1)[0],
        request_id="EXAMPLEreqId1=",
        received_at=RECEIVED_AT,
    )
    event["headers"]["x-amzn-trace-id"] = "Root=1-67878660-0123456789abcdef01234568"
    samples["channels/post_message.json"] = event
    return samples


def pre_token_samples() -> dict[str, dict[str, Any]]:
    """The Cognito pre-token-generation trigger's `V2_0` events (version "2"): an admin signing in, an agent's
    refresh, and a user an administrator created without the custom attributes (the trigger refuses them)."""

    def event(trigger_source: str, sub: str, email: str, custom: dict[str, str]) -> dict[str, Any]:
        return {
            "version": "2",
            "triggerSource": trigger_source,
            "region": "us-east-1",
            "userPoolId": "us-east-1_EXAMPLE01",
            "userName": sub,
            "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": PRE_TOKEN_CLIENT_ID},
            "request": {
                "userAttributes": {
                    "sub": sub,
                    "cognito:user_status": "CONFIRMED",
                    "email_verified": "true",
                    "email": email,
                    **custom,
                },
                "groupConfiguration": {"groupsToOverride": [], "iamRolesToOverride": [], "preferredRole": None},
                "scopes": ["aws.cognito.signin.user.admin"],
            },
            "response": {"claimsAndScopeOverrideDetails": None},
        }

    return {
        "pre_token/admin_sign_in.json": event(
            "TokenGeneration_Authentication",
            "6f1e2c3a-0b7d-4e8a-9c21-3d5f7a9b1c2e",
            "admin@shop.example",
            {"custom:tenant_id": TENANT_ID, "custom:role": "admin"},
        ),
        "pre_token/agent_refresh.json": event(
            "TokenGeneration_RefreshTokens",
            "0b9d8c7e-6f5a-4b3c-8d2e-1f0a9b8c7d6e",
            "agent@shop.example",
            {"custom:tenant_id": TENANT_ID, "custom:role": "agent", "custom:agent_id": AGENT_ID},
        ),
        "pre_token/user_without_tenant.json": event(
            "TokenGeneration_Authentication", "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d", "new.hire@shop.example", {}
        ),
    }


SES_RECEIVING_ADDRESS = "kestrel-outdoor@inbound.desk.example"  # the stack's receiving domain; support@ forwards here


def ses_receipt_event(
    raw: bytes, *, message_id: str, recipients: list[str], received_at: datetime, function_arn: str
) -> dict[str, Any]:
    """The event an SES receipt rule's Lambda action sends for the message in `raw`, after an S3 action stored it
    under `message_id` (SES's id, not the Message-ID header): the headers (every one, unfolded, as SES lists them),
    the common headers, the envelope recipients and SES's verdicts. The body is not in it; it is in S3."""
    from email import policy
    from email.parser import BytesHeaderParser

    head = BytesHeaderParser(policy=policy.compat32).parsebytes(raw)
    headers = [{"name": name, "value": re.sub(r"\r?\n[ \t]+", " ", str(value))} for name, value in head.items()]

    def first(name: str) -> str | None:
        return next((h["value"] for h in headers if h["name"].lower() == name), None)

    return_path = (first("return-path") or "").strip("<>")
    timestamp = received_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    common: dict[str, Any] = {"returnPath": return_path}
    for key, name in (("from", "from"), ("date", "date"), ("to", "to"), ("cc", "cc")):
        value = first(name)
        if value is not None:
            common[key] = value if key == "date" else [value]
    common["messageId"] = first("message-id")
    common["subject"] = first("subject")
    verdict = {"status": "PASS"}
    return {
        "Records": [
            {
                "eventSource": "aws:ses",
                "eventVersion": "1.0",
                "ses": {
                    "mail": {
                        "timestamp": timestamp,
                        "source": return_path,
                        "messageId": message_id,
                        "destination": recipients,
                        "headersTruncated": False,
                        "headers": headers,
                        "commonHeaders": common,
                    },
                    "receipt": {
                        "timestamp": timestamp,
                        "processingTimeMillis": 612,
                        "recipients": recipients,
                        "spamVerdict": verdict,
                        "virusVerdict": verdict,
                        "spfVerdict": verdict,
                        "dkimVerdict": verdict,
                        "dmarcVerdict": verdict,
                        "dmarcPolicy": "none",
                        "action": {"type": "Lambda", "functionArn": function_arn, "invocationType": "Event"},
                    },
                },
            }
        ]
    }


def email_samples() -> dict[str, dict[str, Any]]:
    """SES's receipt event for events/email/gmail_reply.eml (the MIME samples beside it are written by hand, as
    their clients send them; this event is made from one so that the two agree)."""
    raw = (EVENTS_DIR / "email" / "gmail_reply.eml").read_bytes()
    return {
        "email/ses_receipt.json": ses_receipt_event(
            raw,
            message_id="2k8v1q9m3c7n4h6t0s2d5f8g1j3l6p9r0b2e4u6o",  # the SMTP id in the eml's Received header
            recipients=[SES_RECEIVING_ADDRESS],
            received_at=datetime(2026, 12, 7, 9, 2, 43, 512000, tzinfo=UTC),
            function_arn="arn:aws:lambda:us-east-1:123456789012:function:support-desk-EmailInboundFunction-a1B2c3D4e5F6",
        )
    }


def workflow_sweep_samples() -> dict[str, dict[str, Any]]:
    """The WorkflowSweepFunction's event: EventBridge Scheduler's every minute (the template's Input, filled in)."""
    return {"workflow_sweep/scheduled.json": {"scheduledTime": "2025-01-15T10:01:00Z"}}


# Automation rules (support.services.automations): the admin's rules and a ticket's runs.
AUTOMATION_RULE_ID = "cccccccc-cccc-4ccc-8ccc-cccccccccccc"
AUTOMATIONS_BASE = "/api/support/automations"
AUTOMATION_RULE_PATH = f"{AUTOMATIONS_BASE}/{AUTOMATION_RULE_ID}"
AUTOMATION_RULE = {
    "name": "VIP first",
    "event": "ticket_created",
    "conditions": {"all": [{"field": "category", "operator": "equals", "value": "vip"}]},
    "actions": [{"type": "set_priority", "value": "urgent"}],
}
AUTOMATION_SAMPLES = (
    SampleEvent("automations/list.json", "GET /api/support/automations", AUTOMATIONS_BASE),
    SampleEvent("automations/create.json", "POST /api/support/automations", AUTOMATIONS_BASE, body=AUTOMATION_RULE),
    SampleEvent("automations/get.json", "GET /api/support/automations/{ruleId}", AUTOMATION_RULE_PATH),
    SampleEvent(
        "automations/update.json",
        "PATCH /api/support/automations/{ruleId}",
        AUTOMATION_RULE_PATH,
        body={"enabled": False, "position": 0},
    ),
    SampleEvent("automations/delete.json", "DELETE /api/support/automations/{ruleId}", AUTOMATION_RULE_PATH),
    SampleEvent(
        "automations/ticket_runs.json",
        "GET /api/support/tickets/{ticketId}/automation-runs",
        f"/api/support/tickets/{TICKET_ID}/automation-runs",
        query={"limit": "20"},
    ),
)


# Privacy requests (support.services.privacy): an export and an erasure asked for and read; the job's invocation.
PRIVACY_REQUEST_ID = "dddddddd-dddd-4ddd-8ddd-dddddddddddd"
PRIVACY_BASE = "/api/support/privacy"
PRIVACY_SAMPLES = (
    SampleEvent(
        "privacy/request_export.json",
        "POST /api/support/privacy/exports",
        f"{PRIVACY_BASE}/exports",
        body={"customerEmail": "jane.doe@example.com"},
    ),
    SampleEvent(
        "privacy/get_export.json",
        "GET /api/support/privacy/exports/{exportId}",
        f"{PRIVACY_BASE}/exports/{PRIVACY_REQUEST_ID}",
    ),
    SampleEvent(
        "privacy/request_erasure.json",
        "POST /api/support/privacy/erasures",
        f"{PRIVACY_BASE}/erasures",
        body={"customerEmail": "jane.doe@example.com"},
    ),
    SampleEvent(
        "privacy/get_erasure.json",
        "GET /api/support/privacy/erasures/{erasureId}",
        f"{PRIVACY_BASE}/erasures/{PRIVACY_REQUEST_ID}",
    ),
)


# The audit trail (support.services.audit): an admin's read of a ticket's history.
AUDIT_SAMPLES = (
    SampleEvent(
        "audit/ticket_history.json",
        "GET /api/support/audit",
        "/api/support/audit",
        query={"entity": "ticket", "id": TICKET_ID, "limit": "20"},
    ),
)


# Webhooks (support.services.webhooks): the admin's endpoints and their delivery log; the delivery function's SQS
# batch and its dispatch after a change.
WEBHOOK_ID = "dddddddd-dddd-4ddd-8ddd-dddddddddddd"
WEBHOOKS_BASE = "/api/support/webhooks"
WEBHOOK_PATH = f"{WEBHOOKS_BASE}/{WEBHOOK_ID}"
WEBHOOK_SAMPLES = (
    SampleEvent(
        "webhooks/create.json",
        "POST /api/support/webhooks",
        WEBHOOKS_BASE,
        body={"url": "https://crm.example.com/hooks/support", "events": ["ticket.created", "ticket.status_changed"]},
    ),
    SampleEvent("webhooks/list.json", "GET /api/support/webhooks", WEBHOOKS_BASE, query={"limit": "20"}),
    SampleEvent("webhooks/get.json", "GET /api/support/webhooks/{webhookId}", WEBHOOK_PATH),
    SampleEvent(
        "webhooks/update.json",
        "PATCH /api/support/webhooks/{webhookId}",
        WEBHOOK_PATH,
        body={"events": ["ticket.created", "feedback.received"], "enabled": True},
    ),
    SampleEvent("webhooks/delete.json", "DELETE /api/support/webhooks/{webhookId}", WEBHOOK_PATH),
    SampleEvent(
        "webhooks/rotate_secret.json",
        "POST /api/support/webhooks/{webhookId}/secret/rotate",
        f"{WEBHOOK_PATH}/secret/rotate",
    ),
    SampleEvent(
        "webhooks/deliveries.json",
        "GET /api/support/webhooks/{webhookId}/deliveries",
        f"{WEBHOOK_PATH}/deliveries",
        query={"limit": "20"},
    ),
)


def privacy_job_samples() -> dict[str, dict[str, Any]]:
    """The PrivacyJobFunction's event: the asynchronous invocation the privacy function (or the sweep) sends."""
    return {"privacy_job/run.json": {"tenantId": TENANT_ID, "privacyRequestId": PRIVACY_REQUEST_ID}}


def webhook_delivery_samples() -> dict[str, dict[str, Any]]:
    """The WebhookDeliveryFunction's events: an SQS batch of one message (the event source mapping's shape) and the
    asynchronous dispatch a function starts after its commit."""
    body = {
        "tenantId": TENANT_ID,
        "deliveryIds": ["eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee", "ffffffff-ffff-4fff-8fff-ffffffffffff"],
        "notBefore": "2025-01-15T10:00:00+00:00",
    }
    record = {
        "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
        "body": json.dumps(body, separators=(",", ":")),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1736935200000",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1736935200010",
        },
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:support-WebhookDeliveryQueue",
        "awsRegion": "us-east-1",
    }
    return {
        "webhook_delivery/sqs_batch.json": {"Records": [record]},
        "webhook_delivery/dispatch.json": {"dispatch": {"tenantId": TENANT_ID}},
    }


def rendered() -> dict[Path, str]:
    """Each sample file's path and its exact expected content."""
    files = {EVENTS_DIR / s.file: json.dumps(render(s), indent=2, sort_keys=False) + "\n" for s in SAMPLES}
    others = (
        websocket_samples,
        analytics_samples,
        pre_token_samples,
        email_samples,
        email_outbox_samples,
        contacts_backfill_samples,
        channel_samples,
        workflow_sweep_samples,
        privacy_job_samples,
        webhook_delivery_samples,
    )
    for samples in others:
        for name, event in samples().items():
            files[EVENTS_DIR / name] = json.dumps(event, indent=2, sort_keys=False) + "\n"
    for sample in (*AUTOMATION_SAMPLES, *PRIVACY_SAMPLES, *WEBHOOK_SAMPLES, *AUDIT_SAMPLES):
        files[EVENTS_DIR / sample.file] = json.dumps(render(sample), indent=2, sort_keys=False) + "\n"
    return files


def main() -> int:
    for path, content in rendered().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        sys.stdout.write(f"wrote {path.relative_to(REPO)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
