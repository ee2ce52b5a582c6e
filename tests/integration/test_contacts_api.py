"""Contacts (issue 17): linking on ticket and chat creation, the contacts function's routes in-process with payload
2.0 events, merges, concurrency and the batched backfill, all against the real PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from local.gateway import LambdaContext
from support.auth import Principal, Role
from support.db.connection import SET_TENANT
from support.services import contacts
from tests.http_events import HandlerClient
from tests.integration.test_tickets_api import new_ticket

CONTACTS = "/api/support/contacts"
TICKETS = "/api/support/tickets"
CHATS = "/api/support/chat/sessions"


@pytest.fixture
def contacts_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.contacts import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


@pytest.fixture
def chat_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.chat import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


def contact_of(api: HandlerClient, contact_id: str, **query: Any) -> dict[str, Any]:
    reply = api.get(f"{CONTACTS}/{contact_id}", query=query or None)
    assert reply.status == 200, reply.body
    return dict(reply.data)


def new_session(chat_api: HandlerClient, **fields: Any) -> dict[str, Any]:
    reply = chat_api.post(CHATS, {"visitorId": f"visitor-{uuid4()}", **fields})
    assert reply.status == 201, reply.body
    return dict(reply.data)


def session_contact(db: DatabaseUrls, tenant: UUID, session_id: str) -> str:
    with psycopg.connect(db.admin) as conn:
        row = conn.execute(
            "SELECT contact_id FROM live_chat_sessions WHERE user_id = %s AND id = %s", (tenant, session_id)
        ).fetchone()
    assert row is not None and row[0] is not None
    return str(row[0])


class TestLinking:
    def test_a_new_ticket_finds_or_makes_its_contact_by_email(
        self, tickets_api: HandlerClient, contacts_api: HandlerClient
    ) -> None:
        # Given a ticket from a new customer, with a phone number
        first = new_ticket(tickets_api, customerEmail="Ada@Example.com", customerPhone="+44 (20) 7946-0018")
        assert first["contactId"] is not None
        # When the same customer writes again, spelling the address in another case
        second = new_ticket(tickets_api, customerEmail="ada@EXAMPLE.com", customerName="Someone Else")
        # Then both tickets are on one contact, made with the first ticket's name, email and phone, normalised
        assert second["contactId"] == first["contactId"]
        contact = contact_of(contacts_api, first["contactId"])
        assert contact["name"] == "Ada Lovelace"
        assert contact["emails"] == ["ada@example.com"]
        assert contact["phones"] == ["+442079460018"]
        assert {(i["kind"], i["value"]) for i in contact["identities"]} == {
            ("email", "ada@example.com"),
            ("phone", "+442079460018"),
        }
        assert [c["id"] for c in contact["conversations"]] == [second["id"], first["id"]]
        assert contact["conversations"][0]["kind"] == "ticket"
        assert contact["conversations"][0]["subject"] == "Order arrived damaged"
        # and another customer gets a contact of their own
        other = new_ticket(tickets_api, customerEmail="grace@example.com")
        assert other["contactId"] not in (None, first["contactId"])

    def test_a_phone_another_contact_owns_stays_with_it(self, tickets_api: HandlerClient) -> None:
        first = new_ticket(tickets_api, customerEmail="one@example.com", customerPhone="555 0100")
        second = new_ticket(tickets_api, customerEmail="two@example.com", customerPhone="5550100")
        assert second["contactId"] != first["contactId"]  # found by email, not merged by a shared phone

    def test_a_chat_links_by_visitor_id_and_by_the_email_the_visitor_gave(
        self,
        db: DatabaseUrls,
        tenant: UUID,
        tickets_api: HandlerClient,
        chat_api: HandlerClient,
        contacts_api: HandlerClient,
    ) -> None:
        # Given a customer known by a ticket
        ticket = new_ticket(tickets_api, customerEmail="lin@example.com", customerName="Lin")
        # When they open a chat giving that email
        visitor = f"visitor-{uuid4()}"
        first = new_session(chat_api, visitorId=visitor, visitorEmail="LIN@example.com")
        assert chat_api.post(f"{CHATS}/{first['id']}/end").status == 200
        # and later a chat from the same browser without an email
        second = new_session(chat_api, visitorId=visitor)
        # Then both chats are on the ticket's contact, which now has the visitor id too
        contact_id = ticket["contactId"]
        assert first["contactId"] == second["contactId"] == contact_id
        assert session_contact(db, tenant, first["id"]) == contact_id
        assert session_contact(db, tenant, second["id"]) == contact_id
        contact = contact_of(contacts_api, contact_id)
        assert ("visitor", visitor) in {(i["kind"], i["value"]) for i in contact["identities"]}
        # newest first across channels: the two chats, then the ticket
        assert [(c["kind"], c["id"]) for c in contact["conversations"]] == [
            ("chat", second["id"]),
            ("chat", first["id"]),
            ("ticket", ticket["id"]),
        ]

    def test_an_anonymous_visitor_gets_a_contact_of_their_own(
        self, db: DatabaseUrls, tenant: UUID, chat_api: HandlerClient, contacts_api: HandlerClient
    ) -> None:
        session = new_session(chat_api, visitorName="Anon")
        contact = contact_of(contacts_api, session_contact(db, tenant, session["id"]))
        assert contact["name"] == "Anon" and contact["emails"] == []
        assert [i["kind"] for i in contact["identities"]] == ["visitor"]


class TestListAndRead:
    def test_the_list_pages_newest_first_and_searches_name_email_and_phone(
        self, tickets_api: HandlerClient, contacts_api: HandlerClient
    ) -> None:
        made = [
            new_ticket(tickets_api, customerName=f"Customer {n}", customerEmail=f"c{n}@shop.example")["contactId"]
            for n in range(5)
        ]
        new_ticket(
            tickets_api,
            customerName="Zoë Quartermain",
            customerEmail="zq@mail.example",
            customerPhone="+1 (415) 555-2671",
        )

        seen: list[str] = []
        cursor = None
        while True:
            reply = contacts_api.get(CONTACTS, query={"limit": 2, **({"cursor": cursor} if cursor else {})})
            assert reply.status == 200, reply.body
            seen += [c["id"] for c in reply.data]
            cursor = reply.body["nextCursor"]
            if cursor is None:
                break
        assert len(seen) == 6 and len(set(seen)) == 6
        assert seen[1:] == list(reversed(made))

        def search(text: str) -> list[str | None]:
            reply = contacts_api.get(CONTACTS, query={"search": text})
            assert reply.status == 200, reply.body
            return [c["name"] for c in reply.data]

        assert search("quarter") == ["Zoë Quartermain"]
        assert search("ZQ@MAIL") == ["Zoë Quartermain"]
        assert search("+1 (415) 555") == ["Zoë Quartermain"]
        assert search("1415") == ["Zoë Quartermain"]  # with or without the +
        assert search("555-2671") == []  # the beginning of a number, not any part
        assert search("customer 3") == ["Customer 3"]
        assert search("100%_") == []  # wildcards are literal

    def test_the_contact_page_pages_its_conversations(
        self, tickets_api: HandlerClient, contacts_api: HandlerClient
    ) -> None:
        tickets = [new_ticket(tickets_api, customerEmail="pages@example.com", subject=f"T{n}") for n in range(5)]
        contact_id = tickets[0]["contactId"]
        seen: list[str] = []
        cursor = None
        while True:
            page = contact_of(contacts_api, contact_id, limit=2, **({"cursor": cursor} if cursor else {}))
            assert len(page["conversations"]) <= 2
            seen += [c["id"] for c in page["conversations"]]
            cursor = page["conversationsNextCursor"]
            if cursor is None:
                break
        assert seen == [t["id"] for t in reversed(tickets)]

    def test_bad_ids_and_cursors_are_422_and_another_tenants_contact_is_404(
        self, tickets_api: HandlerClient, contacts_api: HandlerClient, other_tenant: UUID
    ) -> None:
        contact_id = new_ticket(tickets_api)["contactId"]
        assert contacts_api.get(f"{CONTACTS}/not-a-uuid").status == 422
        assert contacts_api.get(CONTACTS, query={"cursor": "garbage"}).status == 422
        assert contacts_api.get(f"{CONTACTS}/{contact_id}", query={"cursor": "garbage"}).status == 422
        assert contacts_api.get(f"{CONTACTS}/{uuid4()}").status == 404
        other = contacts_api.as_tenant(other_tenant)
        assert other.get(f"{CONTACTS}/{contact_id}").status == 404
        assert other.patch(f"{CONTACTS}/{contact_id}", {"name": "Mallory"}).status == 404
        assert other.get(CONTACTS).data == []
        # and an agent of the tenant may read it
        assert contacts_api.as_tenant(contacts_api.tenant, role="agent").get(f"{CONTACTS}/{contact_id}").status == 200


class TestEdit:
    def test_rename_add_and_remove_identities(self, tickets_api: HandlerClient, contacts_api: HandlerClient) -> None:
        contact_id = new_ticket(tickets_api, customerEmail="old@example.com")["contactId"]
        reply = contacts_api.patch(
            f"{CONTACTS}/{contact_id}",
            {
                "name": "Ada King",
                "addEmails": ["New@Example.com"],
                "removeEmails": ["OLD@example.com"],
                "addPhones": ["+1 555 0199"],
            },
        )
        assert reply.status == 200, reply.body
        assert reply.data["name"] == "Ada King"
        assert reply.data["emails"] == ["new@example.com"]
        assert reply.data["phones"] == ["+15550199"]
        # the new address now finds the contact; the removed one makes a new contact
        assert new_ticket(tickets_api, customerEmail="new@example.com")["contactId"] == contact_id
        assert new_ticket(tickets_api, customerEmail="old@example.com")["contactId"] != contact_id

    def test_an_identity_another_contact_owns_is_409_and_nothing_changes(
        self, tickets_api: HandlerClient, contacts_api: HandlerClient
    ) -> None:
        mine = new_ticket(tickets_api, customerEmail="mine@example.com")["contactId"]
        new_ticket(tickets_api, customerEmail="theirs@example.com")
        reply = contacts_api.patch(
            f"{CONTACTS}/{mine}", {"name": "Changed", "addEmails": ["extra@example.com", "THEIRS@example.com"]}
        )
        assert reply.status == 409, reply.body
        assert reply.body["error"]["details"][0]["field"] == "body.addEmails"
        contact = contact_of(contacts_api, mine)
        assert contact["name"] == "Ada Lovelace" and contact["emails"] == ["mine@example.com"]

    def test_bad_input_is_422(self, tickets_api: HandlerClient, contacts_api: HandlerClient) -> None:
        contact_id = new_ticket(tickets_api)["contactId"]
        for body in ({"addEmails": ["not an email"]}, {"addPhones": ["+()"]}, {"name": ""}, {"nope": 1}):
            assert contacts_api.patch(f"{CONTACTS}/{contact_id}", body).status == 422, body


class TestMerge:
    def test_merge_moves_identities_tickets_and_chats_and_the_old_id_answers_the_survivor(
        self,
        db: DatabaseUrls,
        tenant: UUID,
        tickets_api: HandlerClient,
        chat_api: HandlerClient,
        contacts_api: HandlerClient,
    ) -> None:
        # Given one customer known as two contacts: a ticket by work email, a chat by private email
        ticket = new_ticket(tickets_api, customerEmail="ada@work.example")
        session = new_session(chat_api, visitorEmail="ada@home.example", visitorName="Ada")
        survivor, other = ticket["contactId"], session_contact(db, tenant, session["id"])
        assert survivor != other
        # When an agent merges them
        reply = contacts_api.post(f"{CONTACTS}/{survivor}/merge", {"otherContactId": other})
        assert reply.status == 200, reply.body
        # Then the survivor has both addresses, the ticket and the chat
        assert reply.data["id"] == survivor
        assert sorted(reply.data["emails"]) == ["ada@home.example", "ada@work.example"]
        assert {c["id"] for c in reply.data["conversations"]} == {ticket["id"], session["id"]}
        assert session_contact(db, tenant, session["id"]) == survivor
        # the old id answers the survivor, and is no longer listed
        assert contact_of(contacts_api, other)["id"] == survivor
        assert other not in [c["id"] for c in contacts_api.get(CONTACTS).data]
        # a new ticket from the other address lands on the survivor
        assert new_ticket(tickets_api, customerEmail="ada@home.example")["contactId"] == survivor
        # merging again, either way round, is a conflict
        assert contacts_api.post(f"{CONTACTS}/{survivor}/merge", {"otherContactId": other}).status == 409
        assert contacts_api.post(f"{CONTACTS}/{other}/merge", {"otherContactId": survivor}).status == 409

    def test_a_chain_of_merges_stays_one_hop(self, tickets_api: HandlerClient, contacts_api: HandlerClient) -> None:
        a, b, c = (new_ticket(tickets_api, customerEmail=f"{n}@chain.example")["contactId"] for n in "abc")
        assert contacts_api.post(f"{CONTACTS}/{b}/merge", {"otherContactId": a}).status == 200
        assert contacts_api.post(f"{CONTACTS}/{c}/merge", {"otherContactId": b}).status == 200
        for old in (a, b):
            assert contact_of(contacts_api, old)["id"] == c
        assert len(contact_of(contacts_api, c)["conversations"]) == 3

    def test_merge_refuses_bad_and_foreign_ids(
        self, tickets_api: HandlerClient, contacts_api: HandlerClient, other_tenant: UUID
    ) -> None:
        mine = new_ticket(tickets_api)["contactId"]
        theirs = new_ticket(tickets_api.as_tenant(other_tenant), customerEmail="x@other.example")["contactId"]
        assert contacts_api.post(f"{CONTACTS}/{mine}/merge", {"otherContactId": theirs}).status == 404
        assert contacts_api.post(f"{CONTACTS}/{mine}/merge", {"otherContactId": "nope"}).status == 422
        assert contacts_api.post(f"{CONTACTS}/{mine}/merge", {"otherContactId": mine}).status == 409


class TestConcurrency:
    def test_concurrent_creates_for_the_same_new_email_make_one_contact(self, db: DatabaseUrls, tenant: UUID) -> None:
        """Eight transactions of the runtime role insert a ticket for the same new address at once, each holding
        its transaction open a moment after the insert, so that the others' claims meet its uncommitted one."""
        threads = 8
        start = threading.Barrier(threads)
        results: list[UUID] = []
        errors: list[BaseException] = []

        def create(n: int) -> None:
            try:
                with psycopg.connect(db.app) as conn:
                    conn.execute(SET_TENANT, (str(tenant),))
                    start.wait(timeout=10)
                    row = conn.execute(
                        "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, contact_id)"
                        " VALUES (%s, %s, %s, 'Hi', contact_for(%s, %s, %s, NULL, NULL)) RETURNING contact_id",
                        (tenant, f"Racer {n}", "Race@Example.com", tenant, f"Racer {n}", "Race@Example.com"),
                    ).fetchone()
                    conn.execute("SELECT pg_sleep(0.2)")
                    assert row is not None
                    results.append(row[0])
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=create, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
        assert errors == []
        assert len(results) == threads and len(set(results)) == 1
        with psycopg.connect(db.admin) as conn:
            contacts_made = conn.execute(
                "SELECT count(*) FROM support_contacts WHERE user_id = %s", (tenant,)
            ).fetchone()
        assert contacts_made == (1,)

    def test_a_link_racing_a_merge_lands_on_the_survivor(
        self, db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient
    ) -> None:
        """A new ticket for the other contact's email arrives while a merge holds the other contact: it waits, then
        follows merged_into to the survivor (never a ticket left on a merged contact)."""
        ids = sorted(
            (UUID(new_ticket(tickets_api, customerEmail=f"{n}@race.example")["contactId"]), f"{n}@race.example")
            for n in ("p", "q")
        )
        (other, other_email), (survivor, _) = ids  # the merge locks in id order: the other first
        admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="test-admin")
        outcome: dict[str, Any] = {}

        def waiting(count: int) -> None:
            deadline = time.monotonic() + 10
            with psycopg.connect(db.admin, autocommit=True) as watch:
                while time.monotonic() < deadline:
                    row = watch.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock'"
                    ).fetchone()
                    if row is not None and row[0] >= count:
                        return
                    time.sleep(0.02)
            raise AssertionError(f"{count} transactions never waited")

        def merge() -> None:
            outcome["merge"] = contacts.merge_contacts(admin, survivor, other)

        def link() -> None:
            with psycopg.connect(db.app) as conn:
                conn.execute(SET_TENANT, (str(tenant),))
                row = conn.execute(
                    "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, contact_id)"
                    " VALUES (%s, 'Racer', %s, 'Hi', contact_for(%s, 'Racer', %s, NULL, NULL)) RETURNING contact_id",
                    (tenant, other_email, tenant, other_email),
                ).fetchone()
                outcome["link"] = row[0] if row else None

        with psycopg.connect(db.app) as holder:
            # Given the survivor held by another transaction, so that the merge stops holding the other contact
            holder.execute(SET_TENANT, (str(tenant),))
            holder.execute(
                "SELECT 1 FROM support_contacts WHERE user_id = %s AND id = %s FOR UPDATE", (tenant, survivor)
            )
            merging = threading.Thread(target=merge)
            merging.start()
            waiting(1)
            # When a ticket for the other's email links its contact meanwhile
            linking = threading.Thread(target=link)
            linking.start()
            waiting(2)
        merging.join(timeout=10)
        linking.join(timeout=10)
        # Then the merge went through and the ticket is on the survivor
        assert outcome["merge"].id == survivor
        assert outcome["link"] == survivor


# --- the backfill ---------------------------------------------------------------------------------------------------


def unlinked_rows(db: DatabaseUrls, tenant: UUID, tickets: list[str], sessions: list[tuple[str, str | None]]) -> None:
    """Tickets and chat sessions as they were before contacts: contact_id NULL (the owner, tenant set)."""
    with psycopg.connect(db.owner) as conn:
        conn.execute(SET_TENANT, (str(tenant),))
        for n, email in enumerate(tickets):
            conn.execute(
                "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, status, created_at)"
                " VALUES (%s, %s, %s, 'Old', 'resolved', now() - make_interval(days => %s))",
                (tenant, f"Customer {email}", email, n + 1),
            )
        for visitor, email in sessions:
            conn.execute(
                "INSERT INTO live_chat_sessions (user_id, visitor_id, visitor_email) VALUES (%s, %s, %s)",
                (tenant, visitor, email),
            )


def figures(db: DatabaseUrls, tenant: UUID) -> tuple[Any, ...]:
    with psycopg.connect(db.admin) as conn:
        return (
            conn.execute("SELECT * FROM ticket_totals WHERE user_id = %s ORDER BY 2, 3, 4", (tenant,)).fetchall(),
            conn.execute("SELECT * FROM chat_totals WHERE user_id = %s ORDER BY 2", (tenant,)).fetchall(),
            conn.execute("SELECT * FROM ticket_day_totals WHERE user_id = %s ORDER BY 2", (tenant,)).fetchall(),
            conn.execute(
                "SELECT id, updated_at FROM support_tickets WHERE user_id = %s ORDER BY id", (tenant,)
            ).fetchall(),
            conn.execute(
                "SELECT id, updated_at FROM live_chat_sessions WHERE user_id = %s ORDER BY id", (tenant,)
            ).fetchall(),
        )


def links(db: DatabaseUrls, tenant: UUID) -> tuple[dict[str, UUID | None], dict[str, UUID | None]]:
    """Each email's and visitor's contact (every row of one customer on the same one: asserted)."""
    with psycopg.connect(db.admin) as conn:
        spread = conn.execute(
            "SELECT count(*) FROM (SELECT customer_email FROM support_tickets WHERE user_id = %s"
            " GROUP BY customer_email HAVING count(DISTINCT contact_id) > 1"
            " OR (count(contact_id) > 0 AND count(contact_id) < count(*))) x",
            (tenant,),
        ).fetchone()
        assert spread == (0,)
        tickets = dict(
            conn.execute(
                "SELECT customer_email, contact_id FROM support_tickets WHERE user_id = %s", (tenant,)
            ).fetchall()
        )
        sessions = dict(
            conn.execute(
                "SELECT visitor_id, contact_id FROM live_chat_sessions WHERE user_id = %s", (tenant,)
            ).fetchall()
        )
    return tickets, sessions


class TestBackfill:
    EMAILS = [f"old{n % 7}@example.com" for n in range(20)]  # 20 tickets of 7 customers
    SESSIONS = [("v-1", "old1@example.com"), ("v-2", None), ("v-2", None), ("v-3", "new@example.com")]

    def test_backfill_links_in_batches_and_resumes_after_an_interruption(self, db: DatabaseUrls, tenant: UUID) -> None:
        # Given tickets and chats from before contacts
        unlinked_rows(db, tenant, self.EMAILS, self.SESSIONS)
        before = figures(db, tenant)
        # When a run is cut short after two batches of three (a failure; the batches done are committed)
        told: list[tuple[str, int]] = []

        def interrupt(tenant_id: UUID, what: str, rows: int) -> None:
            told.append((what, rows))
            if len(told) == 2:
                raise RuntimeError("the function timed out")

        with contacts.reporting_progress(interrupt):
            first = contacts.backfill(tenant_id=tenant, batch_size=3)
        assert first.failed == [tenant] and told == [("tickets", 3), ("tickets", 3)]
        with psycopg.connect(db.admin) as conn:
            linked = conn.execute(
                "SELECT count(contact_id) FROM support_tickets WHERE user_id = %s", (tenant,)
            ).fetchone()
        assert linked == (6,)
        # and a second run continues
        second = contacts.backfill(tenant_id=tenant, batch_size=3)
        assert (second.failed, second.done, second.tickets, second.sessions) == ([], True, 14, 4)
        assert second.batches == 5 + 2  # ceil(14 / 3) + ceil(4 / 3)
        # Then every row is linked: one contact per customer, sessions by email or visitor id
        tickets, sessions = links(db, tenant)
        by_email = {email: tickets[email] for email in set(self.EMAILS)}
        assert None not in by_email.values() and len(set(by_email.values())) == 7
        assert sessions["v-1"] == by_email["old1@example.com"]
        assert sessions["v-2"] is not None and sessions["v-3"] not in (None, *by_email.values())
        # and nothing else moved: running totals, day totals, updated_at
        assert figures(db, tenant) == before
        # A third run finds nothing to do
        third = contacts.backfill(tenant_id=tenant)
        assert (third.tickets, third.sessions, third.done) == (0, 0, True)

    def test_the_function_runs_every_tenant_and_refuses_a_bad_event(
        self, db: DatabaseUrls, tenant: UUID, other_tenant: UUID
    ) -> None:
        from functions.contacts_backfill import app

        unlinked_rows(db, tenant, ["a@one.example"], [])
        unlinked_rows(db, other_tenant, ["b@two.example"], [("v-9", None)])
        listed = list(contacts.backfill_tenants())
        assert tenant in listed and other_tenant in listed and listed == sorted(listed)
        context = LambdaContext("ContactsBackfillFunction", 512, 900)
        result = app.lambda_handler({"batchSize": 50}, context)
        assert result["ok"] is True and result["done"] is True and result["failed"] == []
        assert result["tickets"] >= 2 and result["sessions"] >= 1
        for who in (tenant, other_tenant):
            tickets, sessions = links(db, who)
            assert None not in tickets.values() and None not in sessions.values()
        refused = app.lambda_handler({"batchSize": 0, "extra": 1}, context)
        assert refused["ok"] is False and "batchSize" in refused["error"]


# --- the sample events ----------------------------------------------------------------------------------------------

SAMPLE_TENANT = "11111111-1111-4111-8111-111111111111"
SAMPLE_CONTACT = "99999999-9999-4999-8999-999999999999"
SAMPLE_OTHER = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"


def test_every_sample_event_succeeds_against_the_handlers(db: DatabaseUrls) -> None:
    from functions.contacts import app
    from functions.contacts_backfill import app as backfill_app
    from tests.http_events import invoke_sample_event

    events = Path(__file__).resolve().parents[2] / "events"
    with psycopg.connect(db.admin) as conn:  # the contacts the events name, from scratch
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (SAMPLE_TENANT,))
        conn.execute("UPDATE support_contacts SET merged_into = NULL WHERE user_id = %s", (SAMPLE_TENANT,))
        conn.execute("DELETE FROM support_contacts WHERE user_id = %s", (SAMPLE_TENANT,))
        for contact, email in ((SAMPLE_CONTACT, "ada@work.example"), (SAMPLE_OTHER, "lovelace@mail.example")):
            conn.execute(
                "INSERT INTO support_contacts (id, user_id, name) VALUES (%s, %s, 'Ada')", (contact, SAMPLE_TENANT)
            )
            conn.execute(
                "INSERT INTO contact_identities (user_id, kind, value, contact_id) VALUES (%s, 'email', %s, %s)",
                (SAMPLE_TENANT, email, contact),
            )
    journey = [("list", 200), ("get", 200), ("update", 200), ("merge", 200)]
    assert sorted(name for name, _ in journey) == sorted(p.stem for p in (events / "contacts").glob("*.json"))
    for name, status in journey:
        result = invoke_sample_event(app.lambda_handler, events / "contacts" / f"{name}.json", "ContactsFunction")
        assert (result["statusCode"], json.loads(result["body"])["success"]) == (status, True), result["body"]

    context = LambdaContext("ContactsBackfillFunction", 512, 900)
    for path in sorted((events / "contacts_backfill").glob("*.json")):
        result = backfill_app.lambda_handler(json.loads(path.read_text()), context)
        assert result["ok"] is True and result["done"] is True, (path.name, result)
