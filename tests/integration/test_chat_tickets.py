"""A ticket made from a chat (POST /api/support/chat/sessions/{sessionId}/ticket): the real handler in-process
against the real PostgreSQL, as the runtime role under row-level security."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from support.auth import Principal, Role
from support.errors import Forbidden
from support.models.tickets import ChatTicketCreate
from support.services import tickets
from tests.http_events import HandlerClient
from tests.integration.test_chat_api import BASE, chat_api, new_agent, new_session, post_message, transfer
from tests.integration.test_chat_concurrency import connection_per_thread, run_together

__all__ = ["chat_api", "connection_per_thread"]  # fixtures used by name

TICKETS = "/api/support/tickets"


def make_ticket(api: HandlerClient, session_id: str, body: dict[str, Any] | None = None, status: int = 201) -> Any:
    reply = api.post(f"{BASE}/{session_id}/ticket", body)
    assert reply.status == status, reply.body
    return reply.data if status < 400 else reply.body


def thread(tickets_api: HandlerClient, ticket_id: str) -> list[dict[str, Any]]:
    reply = tickets_api.get(f"{TICKETS}/{ticket_id}/conversations", query={"limit": 100})
    assert reply.status == 200, reply.body
    return list(reply.data)


def test_a_chat_becomes_a_chat_ticket_with_its_messages_contact_and_agent(
    tenant: UUID, chat_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    # Given a chat with an agent, the visitor's words and the agent's answer
    agent = new_agent(tenant)
    session = new_session(chat_api, visitorName="Ada", visitorEmail="ada@example.com")
    transfer(chat_api, session["id"], agent)
    post_message(chat_api, session["id"], "customer", "  My mug   arrived broken and the handle is off  ")
    post_message(chat_api, session["id"], "agent", "Sorry to hear that, a new one is on its way.")
    post_message(chat_api, session["id"], "customer", "Thanks!")

    # When staff make a ticket of it
    ticket = make_ticket(chat_api, session["id"])

    # Then it is a chat ticket of the visitor, their contact, the chat's agent, with the first words as subject
    assert ticket["channel"] == "chat"
    assert ticket["reference"].startswith("#")
    assert (ticket["customerName"], ticket["customerEmail"]) == ("Ada", "ada@example.com")
    assert ticket["subject"] == "My mug arrived broken and the handle is off"
    assert session["contactId"] is not None
    assert ticket["contactId"] == session["contactId"]
    assert ticket["assignedAgentId"] == agent
    # and its thread is the chat, in order, with the senders' types
    entries = thread(tickets_api, ticket["id"])
    texts = [(e["senderType"], e["message"]) for e in entries if e["senderType"] != "system"]
    assert texts == [
        ("customer", "  My mug   arrived broken and the handle is off  "),
        ("agent", "Sorry to hear that, a new one is on its way."),
        ("customer", "Thanks!"),
    ]
    assert all(not e["isInternal"] for e in entries)
    # and the session names its ticket; the ticket list finds it by channel and reference
    assert chat_api.get(f"{BASE}/{session['id']}").data["ticketId"] == ticket["id"]
    listed = tickets_api.get(TICKETS, query={"channel": "chat"}).data
    assert [t["id"] for t in listed] == [ticket["id"]]
    assert [t["id"] for t in tickets_api.get(TICKETS, query={"search": ticket["reference"]}).data] == [ticket["id"]]


def test_a_second_call_answers_the_same_ticket_with_200(chat_api: HandlerClient, tickets_api: HandlerClient) -> None:
    session = new_session(chat_api, visitorEmail="lin@example.com")
    post_message(chat_api, session["id"], "customer", "Where is my parcel?")
    first = make_ticket(chat_api, session["id"], {"subject": "Parcel late"})
    again = make_ticket(chat_api, session["id"], {"subject": "Something else"}, status=200)
    assert again["id"] == first["id"]
    assert again["subject"] == "Parcel late"
    assert len(thread(tickets_api, first["id"])) == 1


def test_concurrent_calls_make_one_ticket(
    db: DatabaseUrls, tenant: UUID, chat_api: HandlerClient, connection_per_thread: None
) -> None:
    session = new_session(chat_api, visitorEmail="kim@example.com")
    post_message(chat_api, session["id"], "customer", "Two agents click at once")
    staff = Principal(tenant_id=tenant, role=Role.ADMIN, subject="test-admin")
    calls = [lambda: tickets.ticket_from_chat(staff, UUID(session["id"]), ChatTicketCreate()) for _ in range(4)]
    results = run_together(calls)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({ticket.id for ticket, _ in results}) == 1
    assert sorted(made for _, made in results) == [False, False, False, True]
    with psycopg.connect(db.admin) as conn:
        count = conn.execute(
            "SELECT count(*) FROM support_tickets WHERE user_id = %s AND channel = 'chat'", (tenant,)
        ).fetchone()
    assert count == (1,)


def test_a_visitor_without_email_needs_customer_email(
    chat_api: HandlerClient, tickets_api: HandlerClient, tenant: UUID
) -> None:
    session = new_session(chat_api, visitorName=None)
    refused = make_ticket(chat_api, session["id"], None, status=422)
    assert refused["error"]["code"] == "validation_error"
    assert refused["error"]["details"][0]["field"] == "body.customerEmail"
    assert chat_api.get(f"{BASE}/{session['id']}").data["ticketId"] is None
    # a bad address is the model's 422; a good one makes the ticket, subject from the visitor's name
    assert chat_api.post(f"{BASE}/{session['id']}/ticket", {"customerEmail": "not-an-address"}).status == 422
    ticket = make_ticket(chat_api, session["id"], {"customerEmail": "Sam@Example.com"})
    assert (ticket["customerName"], ticket["customerEmail"]) == ("Visitor", "Sam@example.com")
    # the visitor's contact now has the email too: the customer's next ticket by email finds the same contact
    assert ticket["contactId"] == session["contactId"] is not None
    later = tickets_api.post(TICKETS, {"customerName": "Sam", "customerEmail": "sam@example.com", "subject": "Again"})
    assert later.status == 201, later.body
    assert later.data["contactId"] == session["contactId"]
    assert ticket["subject"] == "Chat with a visitor"
    assert thread(tickets_api, ticket["id"]) == []


def test_a_long_first_message_is_cut_at_a_word() -> None:
    subject = tickets._subject_from("word " * 40, None)
    assert subject.endswith("…") and len(subject) <= tickets.CHAT_SUBJECT_CHARS
    assert not subject[:-1].endswith(" ")


def test_another_tenants_or_unknown_session_is_404_and_a_visitor_403(
    chat_api: HandlerClient, other_tenant: UUID, tenant: UUID
) -> None:
    session = new_session(chat_api, visitorEmail="ada@example.com")
    assert chat_api.as_tenant(other_tenant).post(f"{BASE}/{session['id']}/ticket").status == 404
    assert chat_api.post(f"{BASE}/{uuid4()}/ticket").status == 404
    assert chat_api.post(f"{BASE}/not-a-uuid/ticket").status == 422
    assert chat_api.as_tenant(tenant, role="agent").post(f"{BASE}/{session['id']}/ticket").status == 201
    visitor = Principal(tenant_id=tenant, role=Role.VISITOR, subject="visitor", visitor_id=session["visitorId"])
    with pytest.raises(Forbidden):
        tickets.ticket_from_chat(visitor, UUID(session["id"]), ChatTicketCreate())
