"""The tickets function, called in-process with payload 2.0 events, against the real PostgreSQL."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from uuid import uuid4

import pytest

from tests.http_events import HandlerClient

BASE = "/api/support/tickets"


def new_ticket(api: HandlerClient, **overrides: Any) -> dict[str, Any]:
    body = {
        "customerName": "Ada Lovelace",
        "customerEmail": "ada@example.com",
        "subject": "Order arrived damaged",
        "description": "The box was crushed.",
        **overrides,
    }
    reply = api.post(BASE, body)
    assert reply.status == 201, reply.body
    return dict(reply.data)


def new_agent(api: HandlerClient, email: str | None = None, **fields: Any) -> dict[str, Any]:
    """An agent of `api`'s tenant, created through the agents function."""
    from functions.agents import app as agents_app

    agents = HandlerClient(agents_app.lambda_handler, tenant=api.tenant)
    body = {"agentName": "Grace", "agentEmail": email or f"{uuid4()}@desk.example", **fields}
    reply = agents.post("/api/support/agents", body)
    assert reply.status == 201, reply.body
    return dict(reply.data)


def resolve(api: HandlerClient, ticket_id: str) -> dict[str, Any]:
    reply = api.patch(f"{BASE}/{ticket_id}", {"status": "resolved"})
    assert reply.status == 200, reply.body
    return dict(reply.data)


class TestCreateAndGet:
    def test_create_applies_defaults_and_returns_camel_case(self, tickets_api: HandlerClient) -> None:
        ticket = new_ticket(tickets_api, customerPhone="+1 555 0100", category="shipping")

        assert ticket["status"] == "open"
        assert ticket["priority"] == "medium"
        assert ticket["userId"] == str(tickets_api.tenant)
        assert ticket["customerPhone"] == "+1 555 0100"
        assert ticket["customFields"] == {}
        assert ticket["resolvedAt"] is None and ticket["firstResponseTime"] is None
        assert datetime.fromisoformat(ticket["createdAt"]).utcoffset() is not None

        fetched = tickets_api.get(f"{BASE}/{ticket['id']}")
        assert fetched.status == 200
        assert fetched.data == ticket

    def test_priority_can_be_given(self, tickets_api: HandlerClient) -> None:
        assert new_ticket(tickets_api, priority="urgent")["priority"] == "urgent"

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"customerEmail": "not-an-email"}, "body.customerEmail"),
            ({"priority": "whenever"}, "body.priority"),
            ({"customerName": 42}, "body.customerName"),
            ({"subject": ""}, "body.subject"),
            ({"unexpected": True}, "body.unexpected"),
        ],
    )
    def test_invalid_body_is_422_with_field_paths(
        self, tickets_api: HandlerClient, body: dict[str, Any], field: str
    ) -> None:
        valid = {"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "Hi"}
        reply = tickets_api.post(BASE, {**valid, **body})

        assert reply.status == 422
        assert reply.error["code"] == "validation_error"
        assert field in [d["field"] for d in reply.error["details"]]

    def test_missing_required_fields_are_all_reported(self, tickets_api: HandlerClient) -> None:
        reply = tickets_api.post(BASE, {})
        assert reply.status == 422
        fields = {d["field"] for d in reply.error["details"]}
        assert {"body.customerName", "body.customerEmail", "body.subject"} <= fields

    def test_malformed_json_is_400(self, tickets_api: HandlerClient) -> None:
        reply = tickets_api.request("POST", BASE, raw_body='{"customerName": "Ada",')
        assert reply.status == 400
        assert reply.error["code"] == "malformed_json"

    def test_json_nested_deeper_than_python_parses_is_400(self, tickets_api: HandlerClient) -> None:
        reply = tickets_api.request("POST", BASE, raw_body="[" * 100_000 + "]" * 100_000)
        assert reply.status == 400
        assert reply.error["code"] == "malformed_json"

    def test_a_body_that_is_not_json_is_415(self, tickets_api: HandlerClient) -> None:
        reply = tickets_api.request("POST", BASE, raw_body="customer: Ada", content_type="text/plain")
        assert reply.status == 415
        assert reply.error["code"] == "unsupported_media_type"

    @pytest.mark.parametrize(
        "content_type", ["multipart/form-data", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]
    )
    def test_form_bodies_are_415(self, tickets_api: HandlerClient, content_type: str) -> None:
        reply = tickets_api.request("POST", BASE, raw_body="customerName=Ada", content_type=content_type)
        assert reply.status == 415

    def test_a_body_that_is_not_utf8_is_400(self, tickets_api: HandlerClient) -> None:
        reply = tickets_api.request("POST", BASE, raw_body=b'{"customerName": "\xe5\xff"}')
        assert reply.status == 400
        assert reply.error["code"] == "malformed_json"

    @pytest.mark.parametrize("body", ["[]", '"ticket"', "null", "42"])
    def test_a_json_body_that_is_not_an_object_is_422(self, tickets_api: HandlerClient, body: str) -> None:
        reply = tickets_api.request("POST", BASE, raw_body=body)
        assert reply.status == 422
        assert reply.error["details"][0]["field"] == "body"

    def test_description_over_50kb_is_413(self, tickets_api: HandlerClient) -> None:
        body = {"customerName": "A", "customerEmail": "a@example.com", "subject": "s", "description": "x" * 51201}
        reply = tickets_api.post(BASE, body)
        assert reply.status == 413
        assert reply.error["code"] == "payload_too_large"

    def test_unknown_id_is_404_and_malformed_id_is_422(self, tickets_api: HandlerClient) -> None:
        assert tickets_api.get(f"{BASE}/{uuid4()}").status == 404
        reply = tickets_api.get(f"{BASE}/not-a-uuid")
        assert reply.status == 422
        assert reply.error["details"][0]["field"] == "path.ticketId"


class TestIdentity:
    def test_no_claims_is_401(self, tickets_api: HandlerClient) -> None:
        reply = tickets_api.get(BASE, claims={})
        assert reply.status == 401
        assert reply.error["code"] == "unauthorized"

    def test_claims_without_a_tenant_are_401(self, tickets_api: HandlerClient) -> None:
        reply = tickets_api.get(BASE, claims={"sub": "x", "role": "admin", "tenant_id": "nope"})
        assert reply.status == 401

    def test_user_id_must_be_the_callers_tenant(self, tickets_api: HandlerClient) -> None:
        assert tickets_api.get(BASE, query={"userId": str(tickets_api.tenant)}).status == 200
        reply = tickets_api.get(BASE, query={"userId": str(uuid4())})
        assert reply.status == 403
        assert reply.error["code"] == "forbidden"

    def test_a_tenant_never_seen_before_starts_empty(self, tickets_api: HandlerClient) -> None:
        reply = tickets_api.get(BASE)
        assert reply.status == 200
        assert reply.body == {"success": True, "data": [], "nextCursor": None}


class TestList:
    def test_newest_first_and_pages_cover_everything_once(self, tickets_api: HandlerClient) -> None:
        created = [new_ticket(tickets_api, subject=f"ticket {i}")["id"] for i in range(7)]

        seen: list[str] = []
        cursor = None
        while True:
            query: dict[str, Any] = {"limit": 3}
            if cursor:
                query["cursor"] = cursor
            reply = tickets_api.get(BASE, query=query)
            assert reply.status == 200
            assert len(reply.data) <= 3
            seen += [t["id"] for t in reply.data]
            cursor = reply.body["nextCursor"]
            if cursor is None:
                break

        assert seen == list(reversed(created))

    def test_filters(self, tickets_api: HandlerClient) -> None:
        agent = new_agent(tickets_api)
        urgent = new_ticket(tickets_api, priority="urgent", category="billing")
        low = new_ticket(tickets_api, priority="low", category="shipping")
        assigned = new_ticket(tickets_api, priority="urgent")
        tickets_api.post(f"{BASE}/{assigned['id']}/assign", {"agentId": agent["id"]})

        def ids(**query: str) -> set[str]:
            reply = tickets_api.get(BASE, query=query)
            assert reply.status == 200, reply.body
            return {t["id"] for t in reply.data}

        assert ids(priority="urgent") == {urgent["id"], assigned["id"]}
        assert ids(status="open", priority="urgent") == {urgent["id"]}
        assert ids(status="in_progress") == {assigned["id"]}
        assert ids(assignedAgentId=agent["id"]) == {assigned["id"]}
        assert ids(category="shipping") == {low["id"]}

    def test_search_is_case_insensitive_over_subject_description_name_and_email(
        self, tickets_api: HandlerClient
    ) -> None:
        by_subject = new_ticket(tickets_api, subject="Refund for order 1234")
        by_description = new_ticket(tickets_api, description="Where is my parcel?")
        by_name = new_ticket(tickets_api, customerName="Zebulon Quayle")
        by_email = new_ticket(tickets_api, customerEmail="marguerite@shop.example")
        new_ticket(tickets_api)  # matches none of the searches

        def found(term: str) -> set[str]:
            reply = tickets_api.get(BASE, query={"search": term})
            assert reply.status == 200, reply.body
            return {t["id"] for t in reply.data}

        assert found("REFUND") == {by_subject["id"]}
        assert found("parc") == {by_description["id"]}  # word prefixes match
        assert found("zebulon") == {by_name["id"]}
        assert found("Marguerite") == {by_email["id"]}
        assert found("marguerite@shop.example") == {by_email["id"]}
        assert found("refund 1234") == {by_subject["id"]}
        assert found("refund parcel") == set()  # every word must match
        assert found("'); DROP TABLE support_tickets; --") == set()

    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ({"limit": "101"}, "query.limit"),
            ({"limit": "0"}, "query.limit"),
            ({"limit": "ten"}, "query.limit"),
            ({"status": "pending"}, "query.status"),
            ({"assignedAgentId": "x"}, "query.assignedAgentId"),
        ],
    )
    def test_bad_query_is_422(self, tickets_api: HandlerClient, query: dict[str, str], field: str) -> None:
        reply = tickets_api.get(BASE, query=query)
        assert reply.status == 422
        assert field in [d["field"] for d in reply.error["details"]]

    def test_bad_cursor_is_422(self, tickets_api: HandlerClient) -> None:
        reply = tickets_api.get(BASE, query={"cursor": "garbage!"})
        assert reply.status == 422
        assert reply.error["details"][0]["field"] == "query.cursor"


class TestLifecycle:
    def test_resolving_records_time_and_reopening_clears_it(self, tickets_api: HandlerClient) -> None:
        ticket = new_ticket(tickets_api)
        resolved = resolve(tickets_api, ticket["id"])

        assert resolved["status"] == "resolved"
        assert resolved["resolvedAt"] is not None
        assert resolved["resolutionTime"] == 0  # whole seconds; resolved within the same second or so
        assert resolved["updatedAt"] > ticket["updatedAt"]

        reopened = tickets_api.patch(f"{BASE}/{ticket['id']}", {"status": "open"}).data
        assert reopened["resolvedAt"] is None and reopened["resolutionTime"] is None

    def test_update_changes_only_the_given_fields(self, tickets_api: HandlerClient) -> None:
        ticket = new_ticket(tickets_api, priority="low", category="billing")
        updated = tickets_api.patch(
            f"{BASE}/{ticket['id']}", {"priority": "high", "customFields": {"orderId": "A-1"}}
        ).data

        assert updated["priority"] == "high"
        assert updated["category"] == "billing"
        assert updated["customFields"] == {"orderId": "A-1"}
        assert tickets_api.patch(f"{BASE}/{ticket['id']}", {"category": None}).data["category"] is None

    def test_update_errors(self, tickets_api: HandlerClient) -> None:
        ticket = new_ticket(tickets_api)
        path = f"{BASE}/{ticket['id']}"

        assert tickets_api.patch(path, {"status": "done"}).status == 422
        assert tickets_api.patch(path, {"assignedAgentId": str(uuid4())}).status == 404
        assert tickets_api.patch(f"{BASE}/{uuid4()}", {"priority": "low"}).status == 404

    def test_close_keeps_an_earlier_resolution_and_refuses_changes_after(self, tickets_api: HandlerClient) -> None:
        ticket = new_ticket(tickets_api)
        resolved = resolve(tickets_api, ticket["id"])

        closed = tickets_api.post(f"{BASE}/{ticket['id']}/close")
        assert closed.status == 200
        assert closed.data["status"] == "closed"
        assert closed.data["resolvedAt"] == resolved["resolvedAt"]

        again = tickets_api.post(f"{BASE}/{ticket['id']}/close")
        assert again.status == 409 and again.error["code"] == "conflict"
        assert tickets_api.patch(f"{BASE}/{ticket['id']}", {"priority": "low"}).status == 409
        assert tickets_api.post(f"{BASE}/{uuid4()}/close").status == 404

    def test_close_of_an_open_ticket_records_resolution(self, tickets_api: HandlerClient) -> None:
        closed = tickets_api.post(f"{BASE}/{new_ticket(tickets_api)['id']}/close").data
        assert closed["resolvedAt"] is not None
        assert closed["resolutionTime"] is not None

    def test_assign(self, tickets_api: HandlerClient, other_tenant: Any) -> None:
        agent = new_agent(tickets_api)
        foreign_agent = new_agent(tickets_api.as_tenant(other_tenant))
        ticket = new_ticket(tickets_api)
        path = f"{BASE}/{ticket['id']}/assign"

        assigned = tickets_api.post(path, {"agentId": agent["id"]})
        assert assigned.status == 200
        assert assigned.data["status"] == "in_progress"
        assert assigned.data["assignedAgentId"] == agent["id"]

        assert tickets_api.post(path, {"agentId": foreign_agent["id"]}).status == 404
        assert tickets_api.post(path, {"agentId": "x"}).status == 422
        assert tickets_api.post(path, {}).status == 422
        assert tickets_api.post(f"{BASE}/{uuid4()}/assign", {"agentId": agent["id"]}).status == 404


class TestConversations:
    def message(self, **overrides: Any) -> dict[str, Any]:
        return {"senderType": "agent", "senderName": "Grace", "message": "Hello?", **overrides}

    @pytest.mark.parametrize("sender", ["customer", "system"])
    def test_staff_post_only_as_agent(self, tickets_api: HandlerClient, sender: str) -> None:
        # Given a ticket; When staff post in the customer's name or as the system, in public or as a note
        ticket = new_ticket(tickets_api)
        path = f"{BASE}/{ticket['id']}/conversations"
        for role in ("admin", "agent"):
            staff = tickets_api.as_tenant(tickets_api.tenant, role=role)
            for internal in (False, True):
                reply = staff.post(path, self.message(senderType=sender, isInternal=internal))
                # Then it is refused, and the thread stays empty
                assert reply.status == 403 and reply.error["code"] == "forbidden"
                assert "'agent'" in reply.error["message"]
        assert tickets_api.get(path).data == []
        # while an agent's reply and an internal note are taken
        assert tickets_api.post(path, self.message()).status == 201
        assert tickets_api.post(path, self.message(isInternal=True)).status == 201

    def test_thread_is_oldest_first_and_paginated(self, tickets_api: HandlerClient) -> None:
        ticket = new_ticket(tickets_api)
        path = f"{BASE}/{ticket['id']}/conversations"
        sent = [tickets_api.post(path, self.message(message=f"m{i}")).data["id"] for i in range(5)]

        first = tickets_api.get(path, query={"limit": 3})
        second = tickets_api.get(path, query={"limit": 3, "cursor": first.body["nextCursor"]})
        assert [m["id"] for m in first.data + second.data] == sent
        assert second.body["nextCursor"] is None

    def test_attachments_and_internal_notes_are_kept(self, tickets_api: HandlerClient) -> None:
        ticket = new_ticket(tickets_api)
        attachment = {"fileName": "photo.jpg", "contentType": "image/jpeg", "sizeBytes": 2048}
        note = tickets_api.post(
            f"{BASE}/{ticket['id']}/conversations",
            self.message(senderType="agent", isInternal=True, attachments=[attachment], senderEmail="g@desk.example"),
        )
        assert note.status == 201
        assert note.data["isInternal"] is True
        assert note.data["attachments"] == [{**attachment, "url": None}]

    def test_first_public_agent_reply_sets_first_response_time_once(self, tickets_api: HandlerClient) -> None:
        ticket = new_ticket(tickets_api)
        path = f"{BASE}/{ticket['id']}/conversations"

        tickets_api.post(path, self.message(senderType="agent", isInternal=True))
        assert tickets_api.get(f"{BASE}/{ticket['id']}").data["firstResponseTime"] is None

        time.sleep(1.1)
        tickets_api.post(path, self.message(senderType="agent"))
        first = tickets_api.get(f"{BASE}/{ticket['id']}").data["firstResponseTime"]
        assert first is not None and first >= 1

        time.sleep(1.1)
        tickets_api.post(path, self.message(senderType="agent"))
        assert tickets_api.get(f"{BASE}/{ticket['id']}").data["firstResponseTime"] == first

    def test_message_size_limit_is_50kb_in_bytes(self, tickets_api: HandlerClient) -> None:
        path = f"{BASE}/{new_ticket(tickets_api)['id']}/conversations"
        assert tickets_api.post(path, self.message(message="x" * 51200)).status == 201
        too_big = tickets_api.post(path, self.message(message="é" * 25601))  # 51,202 bytes in UTF-8
        assert too_big.status == 413
        assert too_big.error["details"][0]["field"] == "body.message"

    def test_conversation_errors(self, tickets_api: HandlerClient) -> None:
        ticket = new_ticket(tickets_api)
        path = f"{BASE}/{ticket['id']}/conversations"
        assert tickets_api.post(path, self.message(senderType="robot")).status == 422
        assert tickets_api.post(path, self.message(message="")).status == 422
        assert tickets_api.get(f"{BASE}/{uuid4()}/conversations").status == 404
        assert tickets_api.post(f"{BASE}/{uuid4()}/conversations", self.message()).status == 404
        tickets_api.post(f"{BASE}/{ticket['id']}/close")
        assert tickets_api.post(path, self.message()).status == 409


class TestFeedback:
    full = {
        "rating": 5,
        "recommendation": 9,
        "feedback": "Quick and kind",
        "resolvedIssue": True,
        "agentRating": 5,
        "responseTimeRating": 4,
        "communicationRating": 5,
    }

    def test_feedback_once_for_a_resolved_ticket(self, tickets_api: HandlerClient) -> None:
        ticket = new_ticket(tickets_api)
        path = f"{BASE}/{ticket['id']}/feedback"

        assert tickets_api.post(path, self.full).status == 409  # still open
        assert tickets_api.get(path).status == 404  # none yet
        resolve(tickets_api, ticket["id"])

        given = tickets_api.post(path, self.full)
        assert given.status == 201
        assert {k: given.data[k] for k in self.full} == self.full
        assert tickets_api.get(path).data == given.data
        assert tickets_api.post(path, {"rating": 1}).status == 409  # once per ticket

    def test_closed_tickets_take_feedback(self, tickets_api: HandlerClient) -> None:
        ticket = new_ticket(tickets_api)
        tickets_api.post(f"{BASE}/{ticket['id']}/close")
        assert tickets_api.post(f"{BASE}/{ticket['id']}/feedback", {"rating": 3}).status == 201

    @pytest.mark.parametrize(
        "body",
        [{"rating": 0}, {"rating": 6}, {"rating": 4, "agentRating": 9}, {"rating": 4, "recommendation": 11}, {}],
    )
    def test_ratings_out_of_range_are_422(self, tickets_api: HandlerClient, body: dict[str, Any]) -> None:
        ticket = new_ticket(tickets_api)
        resolve(tickets_api, ticket["id"])
        assert tickets_api.post(f"{BASE}/{ticket['id']}/feedback", body).status == 422

    def test_unknown_ticket_is_404(self, tickets_api: HandlerClient) -> None:
        assert tickets_api.post(f"{BASE}/{uuid4()}/feedback", {"rating": 3}).status == 404
        assert tickets_api.get(f"{BASE}/{uuid4()}/feedback").status == 404


class TestInputThePostgresTypesCannotHold:
    """Bad input is a 4xx, never a 500 from the database refusing it."""

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"subject": "a\u0000b"}, "body.subject"),
            ({"description": "a\u0000b"}, "body.description"),
            ({"customFields": {"note": "a\u0000b"}}, "body.customFields"),
        ],
    )
    def test_nul_characters_are_422(self, tickets_api: HandlerClient, overrides: dict[str, Any], field: str) -> None:
        body = {"customerName": "A", "customerEmail": "a@example.com", "subject": "s", **overrides}
        reply = tickets_api.post(BASE, body)
        assert reply.status == 422
        assert reply.error["details"][0]["field"] == field

    def test_nul_in_a_search_is_422(self, tickets_api: HandlerClient) -> None:
        reply = tickets_api.get(BASE, query={"search": "a\u0000b"})
        assert reply.status == 422
        assert reply.error["details"][0]["field"] == "query.search"

    def test_custom_fields_over_16kb_are_413(self, tickets_api: HandlerClient) -> None:
        body = {
            "customerName": "A",
            "customerEmail": "a@example.com",
            "subject": "s",
            "customFields": {"x": "y" * 17000},
        }
        assert tickets_api.post(BASE, body).status == 413
