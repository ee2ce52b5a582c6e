"""Display names (a visitor's, a customer's, a sender's, an agent's, a widget key's) lose their control and
bidirectional formatting characters wherever they enter, over HTTP and over the WebSocket: an agent's console
and the dashboards show them beside other text, which a right-to-left override or an escape sequence would
reorder or repaint. Stripped, not refused: a visitor whose browser pasted a stray mark still gets to chat."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from local.database import DatabaseUrls
from support.models.realtime import StartChat
from tests.http_events import HandlerClient

# What a name may arrive with, and what is kept of it.
DIRTY = "\u202eAda\u2066 Love\u0007lace\u200f\u001b[0m\u0085"
CLEAN = "Ada Lovelace[0m"
# Line breaks and tabs inside a name become one space each (a name is one line).
BROKEN = "Ada\nLove\tlace\u2028"
MENDED = "Ada Love lace"


@pytest.fixture
def api(db: DatabaseUrls, tenant: UUID) -> Callable[[str], HandlerClient]:
    return lambda module: HandlerClient(import_module(f"functions.{module}.app").lambda_handler, tenant=tenant)


@pytest.mark.parametrize(("sent", "kept"), [(DIRTY, CLEAN), (BROKEN, MENDED)])
def test_names_are_stripped_of_control_and_bidi_characters_everywhere(
    api: Callable[[str], HandlerClient], sent: str, kept: str
) -> None:
    chat, tickets, agents, widgets = api("chat"), api("tickets"), api("agents"), api("widgets")

    session = chat.post("/api/support/chat/sessions", {"visitorId": f"v-{uuid4()}", "visitorName": sent}).data
    message = chat.post(
        f"/api/support/chat/sessions/{session['id']}/messages",
        {"senderType": "agent", "senderName": sent, "message": "hi"},
    ).data
    ticket = tickets.post(
        "/api/support/tickets", {"customerName": sent, "customerEmail": "a@example.com", "subject": "Hi"}
    ).data
    reply = tickets.post(
        f"/api/support/tickets/{ticket['id']}/conversations",
        {"senderType": "agent", "senderName": sent, "message": "hi"},
    ).data
    agent = agents.post("/api/support/agents", {"agentName": sent, "agentEmail": f"{uuid4()}@desk.example"}).data
    renamed = agents.patch(f"/api/support/agents/{agent['id']}", {"agentName": "x" + sent}).data
    widget = widgets.post("/api/support/widgets", {"name": sent, "allowedOrigins": ["https://shop.example"]}).data

    assert renamed["agentName"] == "x" + kept
    assert session["visitorName"] == kept
    assert message["senderName"] == kept
    assert ticket["customerName"] == kept
    assert reply["senderName"] == kept
    assert agent["agentName"] == kept
    assert widget["name"] == kept
    # and as stored: read back, not only echoed
    assert chat.get(f"/api/support/chat/sessions/{session['id']}").data["visitorName"] == kept


def test_a_visitor_name_over_the_websocket_is_stripped_the_same_way() -> None:
    start = StartChat.model_validate({"action": "startChat", "visitorName": DIRTY})
    assert start.visitor_name == CLEAN


@pytest.mark.parametrize("only", ["\u202e\u202c", "\u0007 \u200f", "\n\t"])
def test_a_name_of_nothing_but_such_characters_is_refused(api: Callable[[str], HandlerClient], only: str) -> None:
    reply = api("chat").post("/api/support/chat/sessions", {"visitorId": "v-1", "visitorName": only})
    assert reply.status == 422
    assert [d["field"] for d in reply.error["details"]] == ["body.visitorName"]
    with pytest.raises(ValidationError):
        StartChat.model_validate({"action": "startChat", "visitorName": only})


def test_a_nul_in_a_name_is_still_refused_not_stripped(api: Callable[[str], HandlerClient]) -> None:
    reply = api("chat").post("/api/support/chat/sessions", {"visitorId": "v-1", "visitorName": "a\u0000b"})
    assert reply.status == 422
    assert [d["type"] for d in reply.error["details"]] == ["string_nul"]
