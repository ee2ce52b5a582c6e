"""Contacts over real HTTP through the local gateway, as an agent console would use them: a customer who wrote a
ticket and opened a chat under two addresses, found, read with their history, edited and merged into one."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID, uuid4

import httpx

CONTACTS = "/api/support/contacts"


def test_a_customer_across_a_ticket_and_a_chat_merged_into_one_contact(
    client_for: Callable[..., httpx.Client], tenant: UUID, other_tenant: UUID
) -> None:
    admin = client_for(tenant)
    agent = client_for(tenant, role="agent")
    # Given a ticket by work email and a chat by private email
    ticket = admin.post(
        "/api/support/tickets",
        json={"customerName": "Ada", "customerEmail": "ada@work.example", "subject": "Broken mug"},
    ).json()["data"]
    visitor = f"visitor-{uuid4()}"
    chat = admin.post(
        "/api/support/chat/sessions", json={"visitorId": visitor, "visitorEmail": "ada@home.example"}
    ).json()["data"]
    work = ticket["contactId"]
    assert work is not None

    # When an agent searches for the private address and finds a second contact
    found = agent.get(CONTACTS, params={"search": "ada@home"})
    assert found.status_code == 200, found.text
    assert found.json()["nextCursor"] is None
    (home,) = [c["id"] for c in found.json()["data"]]
    assert home != work
    # and merges it into the ticket's contact
    merged = agent.post(f"{CONTACTS}/{work}/merge", json={"otherContactId": home})
    assert merged.status_code == 200, merged.text

    # Then one contact answers for both ids, with both addresses and the ticket and the chat, newest first
    for contact_id in (work, home):
        page = agent.get(f"{CONTACTS}/{contact_id}")
        assert page.status_code == 200
        data = page.json()["data"]
        assert data["id"] == work
        assert sorted(data["emails"]) == ["ada@home.example", "ada@work.example"]
        assert [(c["kind"], c["id"]) for c in data["conversations"]] == [("chat", chat["id"]), ("ticket", ticket["id"])]
        assert ("visitor", visitor) in {(i["kind"], i["value"]) for i in data["identities"]}

    # An edit that takes another contact's address is a conflict; a rename goes through
    other = admin.post(
        "/api/support/tickets", json={"customerName": "Bo", "customerEmail": "bo@example.com", "subject": "Hi"}
    ).json()["data"]
    taken = agent.patch(f"{CONTACTS}/{work}", json={"addEmails": ["bo@example.com"]})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "conflict"
    renamed = agent.patch(f"{CONTACTS}/{work}", json={"name": "Ada Lovelace", "addPhones": ["+1 415 555 2671"]})
    assert renamed.status_code == 200 and renamed.json()["data"]["phones"] == ["+14155552671"]
    assert other["contactId"] not in (work, home)

    # Another tenant's caller learns nothing; bad ids and cursors are 422
    stranger = client_for(other_tenant)
    assert stranger.get(f"{CONTACTS}/{work}").status_code == 404
    assert stranger.post(f"{CONTACTS}/{work}/merge", json={"otherContactId": home}).status_code == 404
    assert agent.get(f"{CONTACTS}/not-an-id").status_code == 422
    assert agent.get(CONTACTS, params={"cursor": "!!"}).status_code == 422
    assert agent.get(CONTACTS, params={"limit": 101}).status_code == 422
