"""Canned response suggestions for a ticket's and a chat's reply box: the handlers in-process against the real
PostgreSQL, as the runtime role under row-level security."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from tests.http_events import HandlerClient
from tests.integration.test_canned_responses_api import new_response
from tests.integration.test_chat_api import new_session, post_message, visitor_message
from tests.integration.test_tickets_api import new_ticket

TICKETS = "/api/support/tickets"
SESSIONS = "/api/support/chat/sessions"


@pytest.fixture
def chat_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.chat import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


def customer_entry(
    db: DatabaseUrls, tenant: UUID, ticket_id: str, text: str, *, sender: str = "customer", internal: bool = False
) -> None:
    """A conversation entry as the email channel will store a customer's mail (staff cannot post as the customer)."""
    with psycopg.connect(db.admin) as conn:
        conn.execute(
            """INSERT INTO ticket_conversations (ticket_id, user_id, sender_type, sender_name, message, is_internal)
            VALUES (%s, %s, %s, 'Ada', %s, %s)""",
            (ticket_id, tenant, sender, text, internal),
        )


def library(canned_api: HandlerClient) -> dict[str, str]:
    """A small library; its ids by a short name."""
    made = {
        "refund": new_response(
            canned_api,
            responseTitle="Refund policy",
            responseContent="Refunds reach your card within 5 to 7 business days.",
        ),
        "shipping": new_response(
            canned_api,
            responseTitle="Shipping times",
            responseContent="Orders ship within 2 days; tracking follows by email.",
        ),
        "password": new_response(
            canned_api,
            responseTitle="Password reset",
            responseContent="Use the link on the sign-in page to choose a new password.",
        ),
        "mentions": new_response(
            canned_api,
            responseTitle="Store credit",
            responseContent="Instead of a refund we can offer store credit right away.",
        ),
    }
    return {name: row["id"] for name, row in made.items()}


def suggested(api: HandlerClient, path: str) -> list[dict[str, Any]]:
    reply = api.get(path)
    assert reply.status == 200, reply.body
    return list(reply.data)


def test_a_tickets_customer_words_rank_the_library_title_first_with_the_words_that_matched(
    db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient, canned_api: HandlerClient
) -> None:
    ids = library(canned_api)
    ticket = new_ticket(tickets_api, subject="Where is my refund?", description="I sent the parcel back.")
    customer_entry(db, tenant, ticket["id"], "Still no refunds on my card after two weeks")

    found = suggested(canned_api, f"{TICKETS}/{ticket['id']}/suggested-responses")

    # The response with "refund" in its title first, then the one with it in its content only; shipping and
    # password share no word with the customer
    assert [r["id"] for r in found] == [ids["refund"], ids["mentions"]]
    assert found[0]["score"] > found[1]["score"] > 0
    assert found[0]["matchedWords"] == ["refund", "card"]  # as the customer wrote them (stems of "refunds" too)
    assert found[1]["matchedWords"] == ["refund"]
    assert found[0]["responseTitle"] == "Refund policy" and found[0]["shortcutKey"]


def test_only_the_customers_words_count_not_notes_or_agents_replies(
    db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient, canned_api: HandlerClient
) -> None:
    ids = library(canned_api)
    ticket = new_ticket(tickets_api, subject="Hello", description="Something is wrong.")
    customer_entry(db, tenant, ticket["id"], "Please reset my password", sender="agent")
    customer_entry(db, tenant, ticket["id"], "password reset?", internal=True)
    assert suggested(canned_api, f"{TICKETS}/{ticket['id']}/suggested-responses") == []

    customer_entry(db, tenant, ticket["id"], "I forgot my password")
    assert [r["id"] for r in suggested(canned_api, f"{TICKETS}/{ticket['id']}/suggested-responses")] == [
        ids["password"]
    ]


def test_equal_matches_go_by_usage_and_at_most_five_come_back(
    tickets_api: HandlerClient, canned_api: HandlerClient
) -> None:
    made = [
        new_response(canned_api, responseTitle=f"Warranty {n}", responseContent="Warranty terms.") for n in range(7)
    ]
    favourite = made[4]["id"]
    for _ in range(3):
        assert canned_api.post(f"/api/support/canned-responses/{favourite}/use").status == 200
    ticket = new_ticket(tickets_api, subject="Warranty question", description="Is it covered?")

    found = suggested(canned_api, f"{TICKETS}/{ticket['id']}/suggested-responses")

    assert len(found) == 5
    assert found[0]["id"] == favourite and found[0]["usageCount"] == 3
    assert len({r["score"] for r in found}) == 1


def test_an_edit_or_a_delete_is_seen_by_the_next_suggestion(
    tickets_api: HandlerClient, canned_api: HandlerClient
) -> None:
    ids = library(canned_api)
    ticket = new_ticket(tickets_api, subject="Invoice copy", description="I need my invoice again.")
    path = f"{TICKETS}/{ticket['id']}/suggested-responses"
    assert suggested(canned_api, path) == []

    assert (
        canned_api.patch(
            f"/api/support/canned-responses/{ids['shipping']}", {"responseTitle": "Invoices and shipping"}
        ).status
        == 200
    )
    assert [r["id"] for r in suggested(canned_api, path)] == [ids["shipping"]]
    assert canned_api.delete(f"/api/support/canned-responses/{ids['shipping']}").status == 200
    assert suggested(canned_api, path) == []


def test_a_chats_visitor_messages_rank_the_library(chat_api: HandlerClient, canned_api: HandlerClient) -> None:
    ids = library(canned_api)
    session = new_session(chat_api)
    visitor_message(chat_api, session["id"], "how long does shipping take?")
    post_message(chat_api, session["id"], "agent", "Let me check your password")  # the agent's words do not count

    found = suggested(canned_api, f"{SESSIONS}/{session['id']}/suggested-responses")

    assert [r["id"] for r in found] == [ids["shipping"]]
    assert found[0]["matchedWords"] == ["shipping"]


def test_another_tenants_conversation_is_not_found_and_a_bad_id_is_422(
    tickets_api: HandlerClient, chat_api: HandlerClient, canned_api: HandlerClient, other_tenant: UUID
) -> None:
    library(canned_api)
    ticket = new_ticket(tickets_api, subject="Refund", description="refund please")
    session = new_session(chat_api)
    stranger = canned_api.as_tenant(other_tenant)
    library(stranger)  # the other tenant has a refund response too: it must not see this ticket through it

    for path in (
        f"{TICKETS}/{ticket['id']}/suggested-responses",
        f"{SESSIONS}/{session['id']}/suggested-responses",
        f"{TICKETS}/{uuid4()}/suggested-responses",
    ):
        reply = stranger.get(path)
        assert reply.status == 404 and reply.error["code"] == "not_found", path
    assert canned_api.get(f"{TICKETS}/not-a-uuid/suggested-responses").status == 422
    # and the tenant's own suggestions are its own library's, never the other tenant's
    own = suggested(canned_api, f"{TICKETS}/{ticket['id']}/suggested-responses")
    theirs = {r["id"] for r in stranger.get("/api/support/canned-responses").data}
    assert own and not {r["id"] for r in own} & theirs


def test_the_word_counts_follow_every_create_edit_use_and_delete(
    db: DatabaseUrls, tenant: UUID, canned_api: HandlerClient
) -> None:
    ids = library(canned_api)
    canned_api.patch(f"/api/support/canned-responses/{ids['refund']}", {"responseContent": "Money back in a week."})
    canned_api.post(f"/api/support/canned-responses/{ids['shipping']}/use")
    canned_api.delete(f"/api/support/canned-responses/{ids['password']}")

    with psycopg.connect(db.admin) as conn:
        kept = conn.execute(
            "SELECT lexeme, documents FROM canned_response_terms WHERE user_id = %s AND documents > 0 ORDER BY 1",
            (tenant,),
        ).fetchall()
        recounted = conn.execute(
            """SELECT l, count(*) FROM canned_responses c,
                unnest(tsvector_to_array(canned_response_document(c.response_title, c.response_content))) AS l
            WHERE c.user_id = %s GROUP BY 1 ORDER BY 1""",
            (tenant,),
        ).fetchall()
    assert kept == recounted and ("money", 1) in kept and not any(word == "password" for word, _ in kept)
