"""The input rules every endpoint group shares, checked through the real handlers against the real PostgreSQL:
cursors, whitespace, NUL characters, attachment URLs, categories, error field paths and unknown parameters."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import pytest

from local.database import DatabaseUrls
from tests.http_events import HandlerClient

TICKETS = "/api/support/tickets"
AGENTS = "/api/support/agents"
CANNED = "/api/support/canned-responses"
CHAT = "/api/support/chat/sessions"


def _client(module: str, tenant: UUID) -> HandlerClient:
    from importlib import import_module

    return HandlerClient(import_module(f"functions.{module}.app").lambda_handler, tenant=tenant)


@pytest.fixture
def api(db: DatabaseUrls, tenant: UUID) -> Callable[[str], HandlerClient]:
    """`api("tickets")`: a client of that function, as the test's tenant."""
    return lambda module: _client(module, tenant)


def new_ticket(api: HandlerClient, **fields: Any) -> dict[str, Any]:
    body = {"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "Hi", **fields}
    reply = api.post(TICKETS, body)
    assert reply.status == 201, reply.body
    return dict(reply.data)


def new_session(api: HandlerClient) -> dict[str, Any]:
    reply = api.post(CHAT, {"visitorId": f"visitor-{uuid4()}"})
    assert reply.status == 201, reply.body
    return dict(reply.data)


def b64(value: Any) -> str:
    """A cursor as this API encodes one (base64url of JSON, unpadded), of any JSON value."""
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# ---------------------------------------------------------------------------------------------------------
# 1. Cursors: whatever a client puts in `cursor` is a 422 on query.cursor unless this API issued it.

ID = str(uuid4())
AT = "2025-01-01T00:00:00+00:00"

CRAFTED_CURSORS = {
    "number as the id (the reported 500)": b64([AT, 5]),
    "null as the id": b64([AT, None]),
    "array as the id": b64([AT, [ID]]),
    "object as the id": b64([AT, {"id": ID}]),
    "not a uuid": b64([AT, "not-a-uuid"]),
    "naive datetime": b64(["2025-01-01T00:00:00", ID]),
    "year beyond 9999": b64(["99999-01-01T00:00:00+00:00", ID]),
    "not a datetime": b64(["yesterday", ID]),
    "float key": b64([5.5, ID]),
    "integral float key": b64([5.0, ID]),
    "bool key": b64([True, ID]),
    "null key": b64([None, ID]),
    "negative count": b64([-1, ID]),
    "count beyond int4": b64([2**31, ID]),
    "huge number": b64([10**400, ID]),
    "nested arrays": b64([[AT], [ID]]),
    "deeply nested": b64([[[[[[]]]]]]),
    "object": b64({"a": AT, "b": ID}),
    "object with two uuid keys": b64({ID: 1, str(uuid4()): 2}),
    "extra element": b64([AT, ID, 1]),
    "one element": b64([AT]),
    "empty array": b64([]),
    "string": b64("cursor"),
    "number": b64(5),
    "null": b64(None),
    "invalid JSON": b64(b"[1,"),
    "not UTF-8": b64(b"\xff\xfe[]"),
    "not base64": "!!!!",
    "non-ASCII": "é",
    "over 512 characters": b64([AT, ID]) + "A" * 512,
}


def paginated_routes(clients: Callable[[str], HandlerClient]) -> list[tuple[HandlerClient, str, dict[str, str]]]:
    """(client, path, extra query) for every paginated list of the API, canned responses in both sorts."""
    tickets, chat = clients("tickets"), clients("chat")
    ticket_id = new_ticket(tickets)["id"]
    session_id = new_session(chat)["id"]
    return [
        (tickets, TICKETS, {}),
        (tickets, f"{TICKETS}/{ticket_id}/conversations", {}),
        (clients("agents"), AGENTS, {}),
        (chat, CHAT, {}),
        (chat, f"{CHAT}/{session_id}/messages", {}),
        (clients("canned_responses"), CANNED, {"sort": "newest"}),
        (clients("canned_responses"), CANNED, {"sort": "usage"}),
    ]


@pytest.mark.parametrize("cursor", list(CRAFTED_CURSORS.values()), ids=list(CRAFTED_CURSORS))
def test_a_crafted_cursor_is_422_on_query_cursor_on_every_paginated_route(
    api: Callable[[str], HandlerClient], cursor: str
) -> None:
    for client, path, query in paginated_routes(api):
        reply = client.get(path, query={**query, "cursor": cursor})
        assert reply.status == 422, (path, query, reply.body)
        assert [d["field"] for d in reply.error["details"]] == ["query.cursor"], (path, reply.body)
        assert reply.error["code"] == "validation_error"


def test_a_cursor_of_the_other_sort_is_422(api: Callable[[str], HandlerClient]) -> None:
    """A newest-first cursor carries a datetime, a usage cursor a count: each is refused by the other sort."""
    canned = api("canned_responses")
    for key in range(3):
        reply = canned.post(CANNED, {"responseTitle": "T", "responseContent": "C", "shortcutKey": f"k{key}"})
        assert reply.status == 201, reply.body
    for sort, other in (("newest", "usage"), ("usage", "newest")):
        first = canned.get(CANNED, query={"sort": sort, "limit": 1})
        cursor = first.body["nextCursor"]
        assert cursor
        assert canned.get(CANNED, query={"sort": sort, "limit": 1, "cursor": cursor}).status == 200
        reply = canned.get(CANNED, query={"sort": other, "limit": 1, "cursor": cursor})
        assert reply.status == 422, reply.body
        assert reply.error["details"][0]["field"] == "query.cursor"


def test_issued_cursors_page_through_every_route(api: Callable[[str], HandlerClient]) -> None:
    """The decoder still takes what the encoder gives, on each kind of list."""
    tickets = api("tickets")
    ids = {new_ticket(tickets)["id"] for _ in range(3)}
    seen: list[str] = []
    cursor = None
    while True:
        reply = tickets.get(TICKETS, query={"limit": 1, **({"cursor": cursor} if cursor else {})})
        assert reply.status == 200, reply.body
        seen += [t["id"] for t in reply.data]
        cursor = reply.body["nextCursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids)


# ---------------------------------------------------------------------------------------------------------
# 2. Whitespace: bodies are kept byte for byte; short values are stripped.

BODY = "  Try this:\n\n```\ndef f():\n\treturn 1  \n```\n\n"  # leading indent, tab, trailing spaces and newlines


def test_ticket_description_and_conversation_message_are_kept_exactly(api: Callable[[str], HandlerClient]) -> None:
    tickets = api("tickets")
    ticket = new_ticket(tickets, description=BODY)
    assert ticket["description"] == BODY
    assert tickets.get(f"{TICKETS}/{ticket['id']}").data["description"] == BODY

    reply = tickets.post(
        f"{TICKETS}/{ticket['id']}/conversations", {"senderType": "agent", "senderName": "Grace", "message": BODY}
    )
    assert reply.status == 201, reply.body
    assert reply.data["message"] == BODY
    listed = tickets.get(f"{TICKETS}/{ticket['id']}/conversations").data
    assert [c["message"] for c in listed] == [BODY]


def test_chat_message_is_kept_exactly(api: Callable[[str], HandlerClient]) -> None:
    chat = api("chat")
    session = new_session(chat)
    reply = chat.post(f"{CHAT}/{session['id']}/messages", {"senderType": "agent", "message": BODY})
    assert reply.status == 201, reply.body
    assert reply.data["message"] == BODY
    listed = chat.get(f"{CHAT}/{session['id']}/messages").data
    assert [m["message"] for m in listed if m["senderType"] == "agent"] == [BODY]


def test_canned_response_content_is_kept_exactly_on_create_and_update(api: Callable[[str], HandlerClient]) -> None:
    canned = api("canned_responses")
    reply = canned.post(CANNED, {"responseTitle": "Code", "responseContent": BODY, "shortcutKey": "code"})
    assert reply.status == 201, reply.body
    assert reply.data["responseContent"] == BODY
    changed = "\n" + BODY + "    "
    reply = canned.patch(f"{CANNED}/{reply.data['id']}", {"responseContent": changed})
    assert reply.status == 200, reply.body
    assert reply.data["responseContent"] == changed
    assert canned.get(f"{CANNED}/by-shortcut/code").data["responseContent"] == changed


def test_feedback_texts_are_kept_exactly(api: Callable[[str], HandlerClient]) -> None:
    tickets, chat = api("tickets"), api("chat")
    ticket = new_ticket(tickets)
    assert tickets.post(f"{TICKETS}/{ticket['id']}/close").status == 200
    reply = tickets.post(f"{TICKETS}/{ticket['id']}/feedback", {"rating": 4, "feedback": BODY})
    assert reply.status == 201, reply.body
    assert tickets.get(f"{TICKETS}/{ticket['id']}/feedback").data["feedback"] == BODY

    # a chat's rating is the visitor's: as the WebSocket's rateChat takes it (its model, then the service)
    from support.auth import Principal, Role
    from support.models.chat import ChatRating
    from support.models.realtime import RateChat
    from support.services.chat import rate_chat_session

    session = new_session(chat)
    assert chat.post(f"{CHAT}/{session['id']}/end").status == 200
    request = RateChat.model_validate({"action": "rateChat", "sessionId": session["id"], "rating": 5, "feedback": BODY})
    visitor = Principal(
        tenant_id=chat.tenant,
        role=Role.VISITOR,
        subject=f"visitor:{session['visitorId']}",
        visitor_id=session["visitorId"],
        widget_key="wk",
    )
    rate_chat_session(visitor, request.session_id, ChatRating(rating=request.rating, feedback=request.feedback))
    assert chat.get(f"{CHAT}/{session['id']}").data["feedback"] == BODY


@pytest.mark.parametrize("blank", ["", " ", "\n\n", " \t\r\n "])
def test_a_blank_message_is_422(api: Callable[[str], HandlerClient], blank: str) -> None:
    tickets, chat, canned = api("tickets"), api("chat"), api("canned_responses")
    ticket, session = new_ticket(tickets), new_session(chat)
    replies = {
        "conversation": tickets.post(
            f"{TICKETS}/{ticket['id']}/conversations", {"senderType": "agent", "senderName": "G", "message": blank}
        ),
        "chat": chat.post(f"{CHAT}/{session['id']}/messages", {"senderType": "agent", "message": blank}),
        "canned": canned.post(CANNED, {"responseTitle": "T", "responseContent": blank, "shortcutKey": "blank"}),
    }
    for name, reply in replies.items():
        assert reply.status == 422, (name, reply.body)
        field = "body.responseContent" if name == "canned" else "body.message"
        assert [d["field"] for d in reply.error["details"]] == [field], (name, reply.body)


def test_short_values_are_stripped(api: Callable[[str], HandlerClient]) -> None:
    tickets, chat, canned, agents = api("tickets"), api("chat"), api("canned_responses"), api("agents")
    ticket = new_ticket(
        tickets,
        customerName="  Ada \n",
        customerEmail=" ada@example.com\t",
        subject="\tBox crushed  ",
        category=" ship ",
    )
    assert (ticket["customerName"], ticket["customerEmail"], ticket["subject"], ticket["category"]) == (
        "Ada",
        "ada@example.com",
        "Box crushed",
        "ship",
    )
    assert [t["id"] for t in tickets.get(TICKETS, query={"category": "  ship "}).data] == [ticket["id"]]

    reply = canned.post(
        CANNED, {"responseTitle": " Hello ", "responseContent": "Hi", "shortcutKey": " hi ", "category": " greet\n"}
    )
    assert reply.status == 201, reply.body
    assert (reply.data["responseTitle"], reply.data["shortcutKey"], reply.data["category"]) == ("Hello", "hi", "greet")

    reply = chat.post(CHAT, {"visitorId": "  visitor-1 ", "visitorName": " Ada "})
    assert reply.status == 201, reply.body
    assert (reply.data["visitorId"], reply.data["visitorName"]) == ("visitor-1", "Ada")

    reply = agents.post(AGENTS, {"agentName": " Grace ", "agentEmail": f" {uuid4()}@desk.example ", "skills": [" en "]})
    assert reply.status == 201, reply.body
    assert (reply.data["agentName"], reply.data["skills"]) == ("Grace", ["en"])
    assert not reply.data["agentEmail"].startswith(" ")


@pytest.mark.parametrize("blank", ["", "   ", "\n"])
def test_a_blank_name_is_422(api: Callable[[str], HandlerClient], blank: str) -> None:
    reply = api("tickets").post(TICKETS, {"customerName": blank, "customerEmail": "a@example.com", "subject": "Hi"})
    assert reply.status == 422, reply.body
    assert [d["field"] for d in reply.error["details"]] == ["body.customerName"]


# ---------------------------------------------------------------------------------------------------------
# 3. NUL in custom fields: the decoded keys and values are checked, not their JSON encoding.


@pytest.mark.parametrize(
    "custom_fields",
    [
        {"a\u0000b": 1},
        {"outer": {"inner": ["ok", {"deep": "x\u0000"}]}},
        {"outer": {"in\u0000ner": True}},
        {"list": [[["\u0000"]]]},
    ],
    ids=["key", "nested value", "nested key", "nested list"],
)
def test_a_real_nul_anywhere_in_custom_fields_is_422(
    api: Callable[[str], HandlerClient], custom_fields: dict[str, Any]
) -> None:
    tickets = api("tickets")
    reply = tickets.post(
        TICKETS,
        {"customerName": "Ada", "customerEmail": "a@example.com", "subject": "Hi", "customFields": custom_fields},
    )
    assert reply.status == 422, reply.body
    assert [(d["field"], d["type"]) for d in reply.error["details"]] == [("body.customFields", "string_nul")]

    ticket = new_ticket(tickets)
    reply = tickets.patch(f"{TICKETS}/{ticket['id']}", {"customFields": custom_fields})
    assert reply.status == 422, reply.body


def test_the_text_backslash_u0000_is_not_a_nul_and_is_stored_exactly(api: Callable[[str], HandlerClient]) -> None:
    literal = "\\u0000"  # a backslash and five characters, as a user might type in a note
    assert len(literal) == 6
    custom_fields = {literal: literal, "nested": {"path": f"C:\\temp\\{literal}", "list": [literal]}}
    tickets = api("tickets")
    ticket = new_ticket(tickets, customFields=custom_fields)
    assert ticket["customFields"] == custom_fields
    assert tickets.get(f"{TICKETS}/{ticket['id']}").data["customFields"] == custom_fields
    reply = tickets.patch(f"{TICKETS}/{ticket['id']}", {"customFields": {"note": literal}})
    assert reply.status == 200, reply.body
    assert reply.data["customFields"] == {"note": literal}


@pytest.mark.parametrize(
    "raw", ['{"\\ud800": 1}', '{"a": {"b": ["\\udfff"]}}'], ids=["lone surrogate key", "lone surrogate value"]
)
def test_a_lone_surrogate_in_custom_fields_is_422_not_500(api: Callable[[str], HandlerClient], raw: str) -> None:
    """JSON can spell a lone surrogate (\\ud800), which has no UTF-8 form: PostgreSQL could not store it."""
    body = '{"customerName": "Ada", "customerEmail": "a@example.com", "subject": "Hi", "customFields": ' + raw + "}"
    reply = api("tickets").request("POST", TICKETS, raw_body=body)
    assert reply.status == 422, reply.body
    assert [(d["field"], d["type"]) for d in reply.error["details"]] == [("body.customFields", "string_unicode")]


# ---------------------------------------------------------------------------------------------------------
# 4. Attachment URLs: only absolute https URLs with a host, stored as given.

BAD_URLS = {
    "javascript": "javascript:alert(document.cookie)",
    "mixed-case javascript": "JAVASCRIPT:alert(1)",
    "javascript behind whitespace": " javascript:alert(1)",
    "data": "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "http": "http://cdn.example.com/file.png",
    "relative": "/files/file.png",
    "bare name": "file.png",
    "protocol-relative": "//cdn.example.com/file.png",
    "no host": "https:///nohost",
    "no slashes": "https:cdn.example.com/file.png",
    "empty host": "https://",
    "user info": "https://cdn.example.com@evil.example/file.png",
    "tab inside": "https://cdn.exa\tmple.com/file.png",
    "newline inside": "https://cdn.example.com/fi\nle.png",
    "bad port": "https://cdn.example.com:99999/file.png",
    "over 2048 characters": "https://cdn.example.com/" + "a" * 2048,
}
GOOD_URL = "HTTPS://Cdn.Example.com/a%20b/File.png?sig=x/y+z&e=1#page=2"  # kept as given, not normalised


def _conversation(tickets: HandlerClient, ticket_id: str, url: str) -> Any:
    attachment = {"fileName": "file.png", "contentType": "image/png", "sizeBytes": 10, "url": url}
    body = {"senderType": "agent", "senderName": "Grace", "message": "see file", "attachments": [attachment]}
    return tickets.post(f"{TICKETS}/{ticket_id}/conversations", body)


@pytest.mark.parametrize("url", list(BAD_URLS.values()), ids=list(BAD_URLS))
def test_an_attachment_url_other_than_absolute_https_is_422(api: Callable[[str], HandlerClient], url: str) -> None:
    tickets, chat = api("tickets"), api("chat")
    reply = _conversation(tickets, new_ticket(tickets)["id"], url)
    assert reply.status == 422, reply.body
    assert [d["field"] for d in reply.error["details"]] == ["body.attachments.0.url"]

    session_id = new_session(chat)["id"]
    reply = chat.post(f"{CHAT}/{session_id}/messages", {"senderType": "agent", "message": "x", "attachmentUrl": url})
    assert reply.status == 422, reply.body
    assert [d["field"] for d in reply.error["details"]] == ["body.attachmentUrl"]
    assert chat.get(f"{CHAT}/{session_id}/messages").data == []


def test_an_https_attachment_url_is_stored_as_given(api: Callable[[str], HandlerClient]) -> None:
    tickets, chat = api("tickets"), api("chat")
    ticket_id = new_ticket(tickets)["id"]
    reply = _conversation(tickets, ticket_id, GOOD_URL)
    assert reply.status == 201, reply.body
    assert reply.data["attachments"][0]["url"] == GOOD_URL
    assert tickets.get(f"{TICKETS}/{ticket_id}/conversations").data[0]["attachments"][0]["url"] == GOOD_URL

    session_id = new_session(chat)["id"]
    body = {"senderType": "agent", "message": "x", "attachmentUrl": GOOD_URL, "attachmentType": "image/png"}
    reply = chat.post(f"{CHAT}/{session_id}/messages", body)
    assert reply.status == 201, reply.body
    assert reply.data["attachmentUrl"] == GOOD_URL
    assert chat.get(f"{CHAT}/{session_id}/messages").data[0]["attachmentUrl"] == GOOD_URL


# ---------------------------------------------------------------------------------------------------------
# 5. Categories: stripped, 1 to 64 characters, no control characters; everywhere a category is taken.

BAD_CATEGORIES = {
    "65 characters": "c" * 65,
    "blank": "   ",
    "empty": "",
    "newline inside": "billing\nrefunds",
    "tab inside": "billing\trefunds",
    "NUL": "billing\u0000",
    "escape": "\u001b[31mred",
    "DEL": "bill\u007fing",
    "C1 control": "bill\u0085ing",
    "line separator": "bill\u2028ing",
    "bidi override": "\u202egnillib",
}


@pytest.mark.parametrize("category", list(BAD_CATEGORIES.values()), ids=list(BAD_CATEGORIES))
def test_a_category_out_of_bounds_is_422_everywhere(api: Callable[[str], HandlerClient], category: str) -> None:
    tickets, canned = api("tickets"), api("canned_responses")
    ticket = new_ticket(tickets)
    canned_id = canned.post(CANNED, {"responseTitle": "T", "responseContent": "C", "shortcutKey": "k"}).data["id"]
    ticket_body = {"customerName": "Ada", "customerEmail": "a@example.com", "subject": "Hi", "category": category}
    canned_body = {"responseTitle": "T", "responseContent": "C", "shortcutKey": "k2", "category": category}
    replies = {
        "create ticket": (tickets.post(TICKETS, ticket_body), "body.category"),
        "update ticket": (tickets.patch(f"{TICKETS}/{ticket['id']}", {"category": category}), "body.category"),
        "filter tickets": (tickets.get(TICKETS, query={"category": category}), "query.category"),
        "create canned": (canned.post(CANNED, canned_body), "body.category"),
        "update canned": (canned.patch(f"{CANNED}/{canned_id}", {"category": category}), "body.category"),
        "filter canned": (canned.get(CANNED, query={"category": category}), "query.category"),
    }
    for name, (reply, field) in replies.items():
        assert reply.status == 422, (name, reply.body)
        assert [d["field"] for d in reply.error["details"]] == [field], (name, reply.body)


def test_a_category_of_64_characters_with_spaces_around_is_kept_stripped(api: Callable[[str], HandlerClient]) -> None:
    category = "Rückerstattung / 返金 " + "x" * 44  # 64 characters, not all ASCII
    assert len(category) == 64
    tickets = api("tickets")
    ticket = new_ticket(tickets, category=f"  {category}\n")
    assert ticket["category"] == category
    assert [t["id"] for t in tickets.get(TICKETS, query={"category": category}).data] == [ticket["id"]]


# ---------------------------------------------------------------------------------------------------------
# 6. Error field paths are the published camelCase names; a query parameter a route does not declare is 422.


def _template_routes() -> list[Any]:
    from local.template import http_routes

    return [route for route in http_routes() if route.path.startswith("/api/")]


def _route_client(route: Any, tenant: UUID) -> HandlerClient:
    from local.template import load_module

    return HandlerClient(load_module(route.code_uri, route.handler).lambda_handler, tenant=tenant)


ROUTES = _template_routes()
ROUTES_WITH_PATH_PARAMETERS = [route for route in ROUTES if "{" in route.path]
# routes a connector signs instead of a token (sql/0030): refused before their input is read
SIGNED_ROUTES = {"POST /api/support/channels/{channelId}/messages"}


@pytest.mark.parametrize("route", ROUTES_WITH_PATH_PARAMETERS, ids=[r.route_key for r in ROUTES_WITH_PATH_PARAMETERS])
def test_an_invalid_path_parameter_is_reported_by_the_templates_name(
    db: DatabaseUrls, tenant: UUID, route: Any
) -> None:
    import re

    names = re.findall(r"\{([^}]+)\}", route.path)
    path = re.sub(r"\{[^}]+\}", "not an id!", route.path)
    reply = _route_client(route, tenant).request(route.method, path)
    if route.route_key in SIGNED_ROUTES:
        # checked by its signature before anything else: a malformed channel id is the one refusal an unknown
        # channel gets (docs/api.md, "The signature"), so an unsigned caller learns nothing from the path either
        assert (reply.status, reply.error["code"]) == (401, "unauthorized"), reply.body
        return
    assert reply.status == 422, reply.body
    fields = [d["field"] for d in reply.error["details"]]
    assert [f for f in fields if f.startswith("path.")] == [f"path.{name}" for name in names]


def _valid_path(route: Any) -> str:
    import re

    return re.sub(r"\{([^}]+)\}", lambda m: "key" if m.group(1) == "shortcutKey" else str(uuid4()), route.path)


@pytest.mark.parametrize("route", ROUTES, ids=[r.route_key for r in ROUTES])
def test_an_undeclared_query_parameter_is_422_on_every_route(db: DatabaseUrls, tenant: UUID, route: Any) -> None:
    reply = _route_client(route, tenant).request(route.method, _valid_path(route), query={"stauts": "open"})
    assert reply.status == 422, reply.body
    unknown = [d for d in reply.error["details"] if d["field"] == "query.stauts"]
    assert [d["type"] for d in unknown] == ["extra_forbidden"], reply.body


def test_an_undeclared_query_parameter_is_reported_with_the_other_errors(api: Callable[[str], HandlerClient]) -> None:
    reply = api("tickets").get(TICKETS, query={"status": "bogus", "stauts": "open", "Limit": "5", "limit": "0"})
    assert reply.status == 422, reply.body
    assert sorted((d["field"], d["type"]) for d in reply.error["details"]) == [
        ("query.Limit", "extra_forbidden"),
        ("query.limit", "greater_than_equal"),
        ("query.status", "enum"),
        ("query.stauts", "extra_forbidden"),
    ]


def test_an_undeclared_query_parameter_alone_is_422_and_changes_nothing(api: Callable[[str], HandlerClient]) -> None:
    tickets = api("tickets")
    ticket = new_ticket(tickets)
    reply = tickets.request("PATCH", f"{TICKETS}/{ticket['id']}", json_body={"priority": "high"}, query={"x": ""})
    assert reply.status == 422, reply.body
    assert [(d["field"], d["type"]) for d in reply.error["details"]] == [("query.x", "extra_forbidden")]
    assert tickets.get(f"{TICKETS}/{ticket['id']}").data["priority"] == "medium"


def test_declared_query_parameters_are_taken(api: Callable[[str], HandlerClient], tenant: UUID) -> None:
    tickets = api("tickets")
    ticket = new_ticket(tickets, priority="high")
    query = {"userId": str(tenant), "status": "open", "priority": "high", "limit": "5", "search": "Hi"}
    reply = tickets.get(TICKETS, query=query)
    assert reply.status == 200, reply.body
    assert [t["id"] for t in reply.data] == [ticket["id"]]
    reply = api("canned_responses").post(
        CANNED, {"responseTitle": "T", "responseContent": "C", "shortcutKey": "k"}, query={"userId": str(tenant)}
    )
    assert reply.status == 201, reply.body


@pytest.mark.parametrize(
    ("module", "path", "query", "field"),
    [
        ("tickets", TICKETS, {"assignedAgentId": "x"}, "query.assignedAgentId"),
        ("tickets", TICKETS, {"userId": "x"}, "query.userId"),
        ("dashboard", "/api/support/analytics", {"from": "x", "to": "2025-01-01"}, "query.from"),
        ("dashboard", "/api/support/analytics", {"from": "2025-01-01", "to": "x"}, "query.to"),
    ],
)
def test_query_fields_are_reported_by_their_published_names(
    api: Callable[[str], HandlerClient], module: str, path: str, query: dict[str, str], field: str
) -> None:
    reply = api(module).get(path, query=query)
    assert reply.status == 422, reply.body
    assert [d["field"] for d in reply.error["details"]] == [field]


# ---------------------------------------------------------------------------------------------------------
# 7. The error envelope: every detail names field, message and type, as ErrorEnvelope documents.


def test_a_domain_errors_details_carry_a_type(api: Callable[[str], HandlerClient]) -> None:
    canned = api("canned_responses")
    body = {"responseTitle": "T", "responseContent": "C", "shortcutKey": "dup"}
    assert canned.post(CANNED, body).status == 201
    reply = canned.post(CANNED, {**body, "shortcutKey": "DUP"})
    assert reply.status == 409, reply.body
    assert reply.error["details"] == [
        {"field": "body.shortcutKey", "message": "already used by another canned response", "type": "conflict"}
    ]
