"""The chat function, called in-process with payload 2.0 events, against the real PostgreSQL.

Counters are checked against figures the test computes itself: the sender types it posted, and the sessions
it finds assigned in the table (read as the owner, apart from the service).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from support.auth import Principal, Role
from support.errors import Conflict, NotFound
from support.models.agents import AgentCreate
from support.models.chat import ChatMessageCreate, ChatRating
from support.models.tickets import SenderType
from support.services import agents, chat
from tests.http_events import HandlerClient

BASE = "/api/support/chat/sessions"


@pytest.fixture
def chat_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.chat import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


def new_agent(tenant: UUID, max_chats: int = 5) -> str:
    """An agent made through the agents service (not its HTTP routes)."""
    admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="test-admin")
    data = AgentCreate(agent_name="Grace", agent_email=f"{uuid4()}@desk.example", max_concurrent_chats=max_chats)
    return str(agents.create_agent(admin, data).id)


def new_session(api: HandlerClient, **overrides: Any) -> dict[str, Any]:
    reply = api.post(BASE, {"visitorId": f"visitor-{uuid4()}", "visitorName": "Ada", **overrides})
    assert reply.status == 201, reply.body
    return dict(reply.data)


def transfer(api: HandlerClient, session_id: str, agent_id: str) -> dict[str, Any]:
    reply = api.post(f"{BASE}/{session_id}/transfer", {"toAgentId": agent_id})
    assert reply.status == 200, reply.body
    return dict(reply.data)


def end(api: HandlerClient, session_id: str) -> dict[str, Any]:
    reply = api.post(f"{BASE}/{session_id}/end")
    assert reply.status == 200, reply.body
    return dict(reply.data)


def post_message(api: HandlerClient, session_id: str, sender_type: str, text: str = "Hello") -> dict[str, Any]:
    """An agent's message over HTTP (staff post only as `agent`), or the visitor's (`customer`) as the WebSocket's
    sendMessage stores it: through the chat service, as the session's visitor."""
    if sender_type == "customer":
        return visitor_message(api, session_id, text)
    reply = api.post(
        f"{BASE}/{session_id}/messages", {"senderType": sender_type, "senderName": sender_type, "message": text}
    )
    assert reply.status == 201, reply.body
    return dict(reply.data)


def as_visitor(api: HandlerClient, session_id: str) -> Principal:
    """The session's visitor, as the WebSocket authorizer names one."""
    visitor_id = api.get(f"{BASE}/{session_id}").data["visitorId"]
    return Principal(
        tenant_id=api.tenant, role=Role.VISITOR, subject=f"visitor:{visitor_id}", visitor_id=visitor_id, widget_key="wk"
    )


def visitor_message(api: HandlerClient, session_id: str, text: str = "Hello") -> dict[str, Any]:
    data = ChatMessageCreate(sender_type=SenderType.CUSTOMER, message=text)
    message = chat.add_chat_message(as_visitor(api, session_id), UUID(session_id), data)
    return dict(message.model_dump(mode="json", by_alias=True))


def owner_query(db: DatabaseUrls, statement: str, params: tuple[Any, ...]) -> Any:
    with psycopg.connect(db.admin) as conn:  # apart from the service: the figures it should have kept
        row = conn.execute(statement.encode(), params).fetchone()
    assert row is not None
    return row[0]


def current_chats(db: DatabaseUrls, agent_id: str) -> int:
    value = owner_query(db, "SELECT current_chats FROM support_agents WHERE id = %s", (agent_id,))
    return int(value)


def open_sessions_of(db: DatabaseUrls, agent_id: str) -> int:
    value = owner_query(
        db,
        "SELECT count(*) FROM live_chat_sessions WHERE assigned_agent_id = %s AND status <> 'closed'",
        (agent_id,),
    )
    return int(value)


def assert_chats(db: DatabaseUrls, agent_id: str, expected: int) -> None:
    """The agent's counter is what the test expects and what the sessions table says."""
    assert (current_chats(db, agent_id), open_sessions_of(db, agent_id)) == (expected, expected)


class TestStart:
    def test_a_new_session_waits_with_the_visitor_seen_by_the_server(self, chat_api: HandlerClient) -> None:
        reply = chat_api.post(
            BASE,
            {"visitorId": "v-1", "visitorName": "Ada Lovelace", "visitorEmail": "Ada@Example.com"},
            headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", "x-forwarded-for": "6.6.6.6"},
            source_ip="198.51.100.7",
        )

        assert reply.status == 201, reply.body
        session = reply.data
        assert session["status"] == "waiting"
        assert session["userId"] == str(chat_api.tenant)
        assert session["visitorId"] == "v-1"
        assert session["visitorEmail"] == "Ada@example.com"  # the domain normalised, as email-validator does
        assert session["visitorIp"] == "198.51.100.7"  # requestContext.http.sourceIp, not X-Forwarded-For
        assert session["visitorBrowser"] == "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
        assert session["assignedAgentId"] is None and session["transferredFromAgentId"] is None
        assert (session["totalMessages"], session["messageCount"]) == (0, 0)
        assert session["sessionEndTime"] is None and session["duration"] is None and session["rating"] is None
        assert datetime.fromisoformat(session["sessionStartTime"]).utcoffset() is not None

        assert chat_api.get(f"{BASE}/{session['id']}").data == session

    def test_an_ipv6_source_is_kept(self, chat_api: HandlerClient) -> None:
        reply = chat_api.post(BASE, {"visitorId": "v"}, source_ip="2001:db8::7")
        assert reply.data["visitorIp"] == "2001:db8::7"

    def test_without_a_user_agent_the_browser_is_unknown(self, chat_api: HandlerClient) -> None:
        assert new_session(chat_api)["visitorBrowser"] is None

    def test_a_user_agent_over_1000_characters_is_cut_not_refused(self, chat_api: HandlerClient) -> None:
        agent_string = "Mozilla/5.0 " + "x" * 2000
        reply = chat_api.post(BASE, {"visitorId": "v"}, headers={"user-agent": agent_string})
        assert reply.status == 201
        assert reply.data["visitorBrowser"] == agent_string[:1000]

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"visitorIp": "10.0.0.1"}, "body.visitorIp"),
            ({"visitorBrowser": "Netscape"}, "body.visitorBrowser"),
            ({"visitorEmail": "not-an-email"}, "body.visitorEmail"),
            ({"visitorId": ""}, "body.visitorId"),
            ({"visitorId": "x" * 201}, "body.visitorId"),
            ({"visitorId": "a\u0000b"}, "body.visitorId"),
            ({"visitorName": "a\u0000b"}, "body.visitorName"),
            ({"status": "active"}, "body.status"),
        ],
    )
    def test_invalid_body_is_422_with_field_paths(
        self, chat_api: HandlerClient, body: dict[str, Any], field: str
    ) -> None:
        reply = chat_api.post(BASE, {"visitorId": "v", **body})
        assert reply.status == 422
        assert reply.error["code"] == "validation_error"
        assert field in [d["field"] for d in reply.error["details"]]

    def test_visitor_id_is_required(self, chat_api: HandlerClient) -> None:
        reply = chat_api.post(BASE, {"visitorName": "Ada"})
        assert reply.status == 422
        assert "body.visitorId" in [d["field"] for d in reply.error["details"]]

    def test_malformed_json_is_400(self, chat_api: HandlerClient) -> None:
        reply = chat_api.request("POST", BASE, raw_body='{"visitorId": "v",')
        assert reply.status == 400
        assert reply.error["code"] == "malformed_json"

    def test_a_body_that_is_not_json_is_415(self, chat_api: HandlerClient) -> None:
        reply = chat_api.request("POST", BASE, raw_body="visitorId=v", content_type="application/x-www-form-urlencoded")
        assert reply.status == 415


class TestIdentity:
    # Each with a valid body: the body is validated before the handler reads the caller's claims.
    ROUTES = [
        ("POST", "", {"visitorId": "v"}),
        ("GET", "", None),
        ("GET", "/{id}", None),
        ("POST", "/{id}/end", None),
        ("POST", "/{id}/transfer", {"toAgentId": str(uuid4())}),
        ("POST", "/{id}/rating", {"rating": 5}),
        ("GET", "/{id}/messages", None),
        ("POST", "/{id}/messages", {"senderType": "customer", "message": "hi"}),
        ("POST", "/{id}/read", {"upToMessageId": str(uuid4())}),
    ]

    @pytest.mark.parametrize(("method", "suffix", "body"), ROUTES)
    def test_no_claims_is_401_on_every_route(
        self, chat_api: HandlerClient, method: str, suffix: str, body: dict[str, Any] | None
    ) -> None:
        reply = chat_api.request(method, BASE + suffix.format(id=uuid4()), json_body=body, claims={})
        assert reply.status == 401
        assert reply.error["code"] == "unauthorized"

    def test_user_id_must_be_the_callers_tenant(self, chat_api: HandlerClient) -> None:
        mine = {"userId": str(chat_api.tenant)}
        assert chat_api.get(BASE, query=mine).status == 200
        assert chat_api.post(BASE, {"visitorId": "v"}, query=mine).status == 201
        other = {"userId": str(uuid4())}
        assert chat_api.get(BASE, query=other).status == 403
        refused = chat_api.post(BASE, {"visitorId": "v"}, query=other)
        assert refused.status == 403 and refused.error["code"] == "forbidden"

    def test_unknown_session_is_404_and_malformed_id_is_422(self, chat_api: HandlerClient) -> None:
        assert chat_api.get(f"{BASE}/{uuid4()}").status == 404
        reply = chat_api.get(f"{BASE}/not-a-uuid")
        assert reply.status == 422
        assert reply.error["details"][0]["field"] == "path.sessionId"


class TestList:
    def test_status_filter_gives_each_state_its_sessions(self, chat_api: HandlerClient) -> None:
        first, second = new_agent(chat_api.tenant), new_agent(chat_api.tenant)
        waiting = new_session(chat_api)
        active = new_session(chat_api)
        transfer(chat_api, active["id"], first)
        handed_over = new_session(chat_api)
        transfer(chat_api, handed_over["id"], first)
        transfer(chat_api, handed_over["id"], second)
        closed = new_session(chat_api)
        transfer(chat_api, closed["id"], first)
        end(chat_api, closed["id"])

        def ids(**query: str) -> list[str]:
            reply = chat_api.get(BASE, query=query)
            assert reply.status == 200, reply.body
            return [s["id"] for s in reply.data]

        assert ids(status="active") == [handed_over["id"], active["id"]]  # what agents are handling, newest first
        assert ids(status="waiting") == [waiting["id"]]
        assert ids(status="closed") == [closed["id"]]
        assert ids(status="transferred") == []  # the API never sets it (see ChatStatus)
        assert ids() == [closed["id"], handed_over["id"], active["id"], waiting["id"]]

    def test_pages_are_newest_first_and_cover_everything_once(self, chat_api: HandlerClient) -> None:
        created = [new_session(chat_api)["id"] for _ in range(5)]
        first = chat_api.get(BASE, query={"limit": 2})
        second = chat_api.get(BASE, query={"limit": 2, "cursor": first.body["nextCursor"]})
        third = chat_api.get(BASE, query={"limit": 2, "cursor": second.body["nextCursor"]})

        assert [s["id"] for s in first.data + second.data + third.data] == list(reversed(created))
        assert third.body["nextCursor"] is None

    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ({"status": "open"}, "query.status"),
            ({"limit": "0"}, "query.limit"),
            ({"limit": "101"}, "query.limit"),
            ({"cursor": "garbage!"}, "query.cursor"),
        ],
    )
    def test_bad_query_is_422(self, chat_api: HandlerClient, query: dict[str, str], field: str) -> None:
        reply = chat_api.get(BASE, query=query)
        assert reply.status == 422
        assert reply.error["details"][0]["field"] == field


class TestTransfer:
    def test_a_transfer_from_nobody_assigns_a_waiting_session(self, chat_api: HandlerClient, db: DatabaseUrls) -> None:
        agent = new_agent(chat_api.tenant)
        session = new_session(chat_api)

        assigned = transfer(chat_api, session["id"], agent)

        assert assigned["status"] == "active"
        assert assigned["assignedAgentId"] == agent
        assert assigned["transferredFromAgentId"] is None
        assert_chats(db, agent, 1)

    def test_a_transfer_between_agents_moves_one_chat_and_records_where_from(
        self, chat_api: HandlerClient, db: DatabaseUrls
    ) -> None:
        first, second = new_agent(chat_api.tenant), new_agent(chat_api.tenant)
        session = new_session(chat_api)
        other = new_session(chat_api)
        transfer(chat_api, session["id"], first)
        transfer(chat_api, other["id"], first)
        assert_chats(db, first, 2)

        moved = transfer(chat_api, session["id"], second)

        assert moved["status"] == "active"
        assert moved["assignedAgentId"] == second
        assert moved["transferredFromAgentId"] == first
        assert_chats(db, first, 1)
        assert_chats(db, second, 1)

        back = transfer(chat_api, session["id"], first)
        assert back["transferredFromAgentId"] == second
        assert_chats(db, first, 2)
        assert_chats(db, second, 0)

    def test_messages_do_not_change_the_status(self, chat_api: HandlerClient) -> None:
        session = new_session(chat_api)
        path = f"{BASE}/{session['id']}"
        for sender in ("customer", "agent"):
            post_message(chat_api, session["id"], sender)
        assert chat_api.get(path).data["status"] == "waiting"  # only an assignment makes it active

        transfer(chat_api, session["id"], new_agent(chat_api.tenant))
        post_message(chat_api, session["id"], "customer")
        assert chat_api.get(path).data["status"] == "active"

    def test_a_full_agent_is_409_and_nothing_changes(self, chat_api: HandlerClient, db: DatabaseUrls) -> None:
        busy, full = new_agent(chat_api.tenant), new_agent(chat_api.tenant, max_chats=1)
        transfer(chat_api, new_session(chat_api)["id"], full)
        session = new_session(chat_api)
        before = transfer(chat_api, session["id"], busy)

        reply = chat_api.post(f"{BASE}/{session['id']}/transfer", {"toAgentId": full})

        assert reply.status == 409
        assert reply.error["code"] == "conflict"
        assert "capacity" in reply.error["message"]
        assert chat_api.get(f"{BASE}/{session['id']}").data == before
        assert_chats(db, full, 1)
        assert_chats(db, busy, 1)

    def test_an_agent_freed_by_an_end_can_take_a_chat_again(self, chat_api: HandlerClient, db: DatabaseUrls) -> None:
        agent = new_agent(chat_api.tenant, max_chats=1)
        held = new_session(chat_api)
        transfer(chat_api, held["id"], agent)
        waiting = new_session(chat_api)
        assert chat_api.post(f"{BASE}/{waiting['id']}/transfer", {"toAgentId": agent}).status == 409

        end(chat_api, held["id"])
        assert transfer(chat_api, waiting["id"], agent)["assignedAgentId"] == agent
        assert_chats(db, agent, 1)

    def test_transfer_errors(self, chat_api: HandlerClient, other_tenant: UUID, db: DatabaseUrls) -> None:
        agent = new_agent(chat_api.tenant)
        foreign_agent = new_agent(other_tenant)
        session = new_session(chat_api)
        path = f"{BASE}/{session['id']}/transfer"

        assert chat_api.post(path, {"toAgentId": str(uuid4())}).status == 404
        assert chat_api.post(path, {"toAgentId": foreign_agent}).status == 404  # another tenant's agent
        assert chat_api.post(path, {"toAgentId": "x"}).status == 422
        assert chat_api.post(path, {}).status == 422
        assert chat_api.post(f"{BASE}/{uuid4()}/transfer", {"toAgentId": agent}).status == 404

        transfer(chat_api, session["id"], agent)
        same = chat_api.post(path, {"toAgentId": agent})
        assert same.status == 409  # already that agent's
        end(chat_api, session["id"])
        assert chat_api.post(path, {"toAgentId": new_agent(chat_api.tenant)}).status == 409  # ended
        assert_chats(db, agent, 0)
        assert current_chats(db, foreign_agent) == 0


class TestEnd:
    def test_end_closes_with_a_duration_the_server_computes(self, chat_api: HandlerClient, db: DatabaseUrls) -> None:
        agent = new_agent(chat_api.tenant)
        session = new_session(chat_api)
        transfer(chat_api, session["id"], agent)
        with psycopg.connect(db.admin) as conn:  # as if the chat had started 90 seconds ago
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(chat_api.tenant),))
            conn.execute(
                "UPDATE live_chat_sessions SET session_start_time = session_start_time - interval '90 seconds' "
                "WHERE id = %s",
                (session["id"],),
            )

        ended = end(chat_api, session["id"])

        assert ended["status"] == "closed"
        started = datetime.fromisoformat(ended["sessionStartTime"])
        finished = datetime.fromisoformat(ended["sessionEndTime"])
        assert ended["duration"] == round((finished - started).total_seconds())
        assert 90 <= ended["duration"] <= 95
        assert ended["assignedAgentId"] == agent  # who had it stays on record
        assert_chats(db, agent, 0)

    def test_a_client_duration_is_refused(self, chat_api: HandlerClient) -> None:
        session = new_session(chat_api)
        reply = chat_api.post(f"{BASE}/{session['id']}/end", {"duration": 3600})

        assert reply.status == 422
        detail = reply.error["details"][0]
        assert (detail["field"], detail["type"]) == ("body.duration", "server_computed")
        assert chat_api.get(f"{BASE}/{session['id']}").data["status"] == "waiting"  # not ended

    @pytest.mark.parametrize("body", [{}, None])
    def test_an_empty_body_or_none_is_fine(self, chat_api: HandlerClient, body: dict[str, Any] | None) -> None:
        session = new_session(chat_api)
        assert chat_api.post(f"{BASE}/{session['id']}/end", body).status == 200

    def test_other_fields_in_the_body_are_422(self, chat_api: HandlerClient) -> None:
        session = new_session(chat_api)
        reply = chat_api.post(f"{BASE}/{session['id']}/end", {"status": "closed"})
        assert reply.status == 422
        assert reply.error["details"][0]["field"] == "body.status"

    def test_ending_a_waiting_session_touches_no_agent(self, chat_api: HandlerClient, db: DatabaseUrls) -> None:
        bystander = new_agent(chat_api.tenant)
        transfer(chat_api, new_session(chat_api)["id"], bystander)
        ended = end(chat_api, new_session(chat_api)["id"])
        assert ended["status"] == "closed" and ended["assignedAgentId"] is None
        assert ended["duration"] is not None and ended["duration"] >= 0
        assert_chats(db, bystander, 1)

    def test_ending_twice_is_409_and_counts_once(self, chat_api: HandlerClient, db: DatabaseUrls) -> None:
        agent = new_agent(chat_api.tenant)
        kept, session = new_session(chat_api), new_session(chat_api)
        transfer(chat_api, kept["id"], agent)
        transfer(chat_api, session["id"], agent)
        first = end(chat_api, session["id"])

        again = chat_api.post(f"{BASE}/{session['id']}/end")

        assert again.status == 409 and again.error["code"] == "conflict"
        assert chat_api.get(f"{BASE}/{session['id']}").data == first
        assert_chats(db, agent, 1)

    def test_unknown_session_is_404(self, chat_api: HandlerClient) -> None:
        assert chat_api.post(f"{BASE}/{uuid4()}/end").status == 404


class TestRating:
    """A chat's rating is the visitor's (the WebSocket's rateChat): staff, the HTTP API's callers, get a 403."""

    def test_staff_cannot_rate_a_chat(self, chat_api: HandlerClient) -> None:
        session = new_session(chat_api)
        end(chat_api, session["id"])
        for role in ("admin", "agent"):
            reply = chat_api.as_tenant(chat_api.tenant, role=role).post(f"{BASE}/{session['id']}/rating", {"rating": 5})
            assert reply.status == 403 and reply.error["code"] == "forbidden"
            assert "visitor" in reply.error["message"]
        assert chat_api.get(f"{BASE}/{session['id']}").data["rating"] is None

    def test_the_visitor_rates_once_after_the_end(self, chat_api: HandlerClient) -> None:
        session = new_session(chat_api)
        visitor, session_id = as_visitor(chat_api, session["id"]), UUID(session["id"])

        with pytest.raises(Conflict):
            chat.rate_chat_session(visitor, session_id, ChatRating(rating=5))
        end(chat_api, session["id"])

        rated = chat.rate_chat_session(visitor, session_id, ChatRating(rating=4, feedback="Helpful, a little slow"))
        assert (rated.rating, rated.feedback) == (4, "Helpful, a little slow")
        assert chat_api.get(f"{BASE}/{session['id']}").data == rated.model_dump(mode="json", by_alias=True)

        with pytest.raises(Conflict):
            chat.rate_chat_session(visitor, session_id, ChatRating(rating=1))
        assert chat_api.get(f"{BASE}/{session['id']}").data["rating"] == 4

    def test_feedback_is_optional(self, chat_api: HandlerClient) -> None:
        session = new_session(chat_api)
        end(chat_api, session["id"])
        rated = chat.rate_chat_session(as_visitor(chat_api, session["id"]), UUID(session["id"]), ChatRating(rating=1))
        assert (rated.rating, rated.feedback) == (1, None)

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"rating": 0}, "body.rating"),
            ({"rating": 6}, "body.rating"),
            ({"rating": "five"}, "body.rating"),
            ({}, "body.rating"),
            ({"rating": 3, "feedback": "x" * 5001}, "body.feedback"),
            ({"rating": 3, "feedback": "a\u0000b"}, "body.feedback"),
        ],
    )
    def test_invalid_rating_is_422(self, chat_api: HandlerClient, body: dict[str, Any], field: str) -> None:
        session = new_session(chat_api)
        end(chat_api, session["id"])
        reply = chat_api.post(f"{BASE}/{session['id']}/rating", body)
        assert reply.status == 422
        assert reply.error["details"][0]["field"] == field

    def test_another_visitors_or_an_unknown_session_is_404(self, chat_api: HandlerClient) -> None:
        mine, theirs = new_session(chat_api), new_session(chat_api)
        end(chat_api, theirs["id"])
        for session_id in (UUID(theirs["id"]), uuid4()):
            with pytest.raises(NotFound):
                chat.rate_chat_session(as_visitor(chat_api, mine["id"]), session_id, ChatRating(rating=3))


class TestMessages:
    def test_counters_count_every_message(self, chat_api: HandlerClient) -> None:
        session = new_session(chat_api)
        senders = ["customer", "agent", "customer", "agent", "customer"]

        for sender in senders:
            post_message(chat_api, session["id"], sender)

        counted = chat_api.get(f"{BASE}/{session['id']}").data
        # System messages (the desk's own, none of which the API writes) would count only in totalMessages.
        assert (counted["totalMessages"], counted["messageCount"]) == (5, 5)

    @pytest.mark.parametrize("sender", ["customer", "system"])
    def test_staff_post_only_as_agent(self, chat_api: HandlerClient, sender: str) -> None:
        session = new_session(chat_api)
        for role in ("admin", "agent"):
            staff = chat_api.as_tenant(chat_api.tenant, role=role)
            reply = staff.post(
                f"{BASE}/{session['id']}/messages", {"senderType": sender, "message": "I'm the customer"}
            )
            assert reply.status == 403 and reply.error["code"] == "forbidden"
            assert "'agent'" in reply.error["message"]
        assert chat_api.get(f"{BASE}/{session['id']}/messages").data == []
        assert chat_api.get(f"{BASE}/{session['id']}").data["totalMessages"] == 0

    def test_a_message_keeps_its_fields(self, chat_api: HandlerClient) -> None:
        session = new_session(chat_api)
        body = {
            "senderType": "agent",
            "senderName": "Ada",
            "message": "Here is a photo of the box",
            "attachmentUrl": "https://files.example.com/box.jpg",
            "attachmentType": "image/jpeg",
        }
        reply = chat_api.post(f"{BASE}/{session['id']}/messages", body)

        assert reply.status == 201
        message = reply.data
        assert {k: message[k] for k in body} == body
        assert message["sessionId"] == session["id"] and message["userId"] == str(chat_api.tenant)
        assert message["isRead"] is False and message["readAt"] is None

    def test_sender_name_is_optional(self, chat_api: HandlerClient) -> None:
        session = new_session(chat_api)
        reply = chat_api.post(f"{BASE}/{session['id']}/messages", {"senderType": "agent", "message": "Joined"})
        assert reply.status == 201 and reply.data["senderName"] is None

    def test_messages_are_oldest_first_and_paginated(self, chat_api: HandlerClient) -> None:
        session = new_session(chat_api)
        sent = [post_message(chat_api, session["id"], ("customer", "agent")[i % 2], f"m{i}")["id"] for i in range(5)]
        path = f"{BASE}/{session['id']}/messages"

        first = chat_api.get(path, query={"limit": 2})
        second = chat_api.get(path, query={"limit": 2, "cursor": first.body["nextCursor"]})
        third = chat_api.get(path, query={"limit": 2, "cursor": second.body["nextCursor"]})

        assert [m["id"] for m in first.data + second.data + third.data] == sent
        assert third.body["nextCursor"] is None
        assert chat_api.get(path).data[0]["message"] == "m0"

    def test_message_size_limit_is_50kb_in_bytes(self, chat_api: HandlerClient) -> None:
        session = new_session(chat_api)
        path = f"{BASE}/{session['id']}/messages"
        assert chat_api.post(path, {"senderType": "agent", "message": "x" * 51200}).status == 201

        too_big = chat_api.post(path, {"senderType": "agent", "message": "é" * 25601})  # 51,202 bytes
        assert too_big.status == 413
        assert too_big.error["code"] == "payload_too_large"
        assert too_big.error["details"][0]["field"] == "body.message"
        assert chat_api.get(f"{BASE}/{session['id']}").data["totalMessages"] == 1

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"senderType": "robot"}, "body.senderType"),
            ({"message": ""}, "body.message"),
            ({"message": "a\u0000b"}, "body.message"),
            ({"senderName": "x" * 201}, "body.senderName"),
            ({"attachmentUrl": "x" * 2049}, "body.attachmentUrl"),
            ({"attachmentType": "x" * 256}, "body.attachmentType"),
            ({"isInternal": True}, "body.isInternal"),
        ],
    )
    def test_invalid_message_is_422(self, chat_api: HandlerClient, overrides: dict[str, Any], field: str) -> None:
        session = new_session(chat_api)
        reply = chat_api.post(f"{BASE}/{session['id']}/messages", {"senderType": "agent", "message": "hi", **overrides})
        assert reply.status == 422
        assert field in [d["field"] for d in reply.error["details"]]

    def test_an_ended_session_takes_no_messages(self, chat_api: HandlerClient) -> None:
        session = new_session(chat_api)
        post_message(chat_api, session["id"], "customer")
        end(chat_api, session["id"])

        reply = chat_api.post(f"{BASE}/{session['id']}/messages", {"senderType": "agent", "message": "late"})

        assert reply.status == 409 and reply.error["code"] == "conflict"
        counted = chat_api.get(f"{BASE}/{session['id']}").data
        assert (counted["totalMessages"], counted["messageCount"]) == (1, 1)
        assert len(chat_api.get(f"{BASE}/{session['id']}/messages").data) == 1

    def test_unknown_session_is_404(self, chat_api: HandlerClient) -> None:
        assert chat_api.get(f"{BASE}/{uuid4()}/messages").status == 404
        assert chat_api.post(f"{BASE}/{uuid4()}/messages", {"senderType": "agent", "message": "x"}).status == 404

    def test_bad_paging_is_422(self, chat_api: HandlerClient) -> None:
        path = f"{BASE}/{new_session(chat_api)['id']}/messages"
        assert chat_api.get(path, query={"limit": "101"}).status == 422
        assert chat_api.get(path, query={"cursor": "@@"}).status == 422


class TestRead:
    def test_staff_read_the_visitors_messages_up_to_the_one_named(self, chat_api: HandlerClient) -> None:
        session = new_session(chat_api)
        sid = session["id"]
        sent = {
            name: post_message(chat_api, sid, name.rstrip("0123456789"), name)["id"]
            for name in ["customer1", "agent1", "customer2", "customer3", "agent2"]
        }
        agent_reader = chat_api.as_tenant(chat_api.tenant, role="agent")

        reply = agent_reader.post(f"{BASE}/{sid}/read", {"upToMessageId": sent["customer2"]})

        assert reply.status == 200
        assert reply.data == {"markedCount": 2}
        by_name = {m["message"]: m for m in chat_api.get(f"{BASE}/{sid}/messages").data}
        assert {n for n, m in by_name.items() if m["isRead"]} == {"customer1", "customer2"}
        assert all((m["readAt"] is not None) == m["isRead"] for m in by_name.values())

        # Up to the agent's last message: the one unread customer message before it.
        later = chat_api.post(f"{BASE}/{sid}/read", {"upToMessageId": sent["agent2"]})
        assert later.data == {"markedCount": 1}
        again = chat_api.post(f"{BASE}/{sid}/read", {"upToMessageId": sent["agent2"]})
        assert again.data == {"markedCount": 0}

        after = {m["message"]: m for m in chat_api.get(f"{BASE}/{sid}/messages").data}
        assert {n for n, m in after.items() if m["isRead"]} == {"customer1", "customer2", "customer3"}
        assert after["customer1"]["readAt"] == by_name["customer1"]["readAt"]  # a receipt is not moved

    def test_reading_an_ended_session_is_allowed(self, chat_api: HandlerClient) -> None:
        session = new_session(chat_api)
        message = post_message(chat_api, session["id"], "customer")
        end(chat_api, session["id"])
        reply = chat_api.post(f"{BASE}/{session['id']}/read", {"upToMessageId": message["id"]})
        assert reply.data == {"markedCount": 1}

    def test_read_errors(self, chat_api: HandlerClient) -> None:
        session, elsewhere = new_session(chat_api), new_session(chat_api)
        post_message(chat_api, session["id"], "customer")
        foreign_message = post_message(chat_api, elsewhere["id"], "customer")
        path = f"{BASE}/{session['id']}/read"

        assert chat_api.post(path, {"upToMessageId": str(uuid4())}).status == 404
        assert chat_api.post(path, {"upToMessageId": foreign_message["id"]}).status == 404  # another session's
        assert chat_api.post(f"{BASE}/{uuid4()}/read", {"upToMessageId": foreign_message["id"]}).status == 404
        malformed = chat_api.post(path, {"upToMessageId": "x"})
        assert malformed.status == 422 and malformed.error["details"][0]["field"] == "body.upToMessageId"
        assert chat_api.post(path, {}).status == 422
        assert chat_api.get(f"{BASE}/{elsewhere['id']}/messages").data[0]["isRead"] is False


class TestTenancy:
    @pytest.fixture
    def tenant_a(self, chat_api: HandlerClient) -> dict[str, Any]:
        """Tenant A: an agent, an open session with a message, and an ended one."""
        agent = new_agent(chat_api.tenant)
        session = new_session(chat_api, visitorName="A's visitor")
        transfer(chat_api, session["id"], agent)
        message = post_message(chat_api, session["id"], "customer", "A's secret")
        ended = new_session(chat_api)
        end(chat_api, ended["id"])
        return {"agent": agent, "session": session["id"], "message": message["id"], "ended": ended["id"]}

    def test_another_tenants_ids_answer_404_on_every_route(
        self, chat_api: HandlerClient, other_tenant: UUID, tenant_a: dict[str, Any], db: DatabaseUrls
    ) -> None:
        b = chat_api.as_tenant(other_tenant)
        b_agent = new_agent(other_tenant)
        b_session = new_session(b)
        b_message = post_message(b, b_session["id"], "customer")
        a_path = f"{BASE}/{tenant_a['session']}"

        replies = {
            "get": b.get(a_path),
            "end": b.post(f"{a_path}/end"),
            "transfer": b.post(f"{a_path}/transfer", {"toAgentId": b_agent}),
            "list messages": b.get(f"{a_path}/messages"),
            "add message": b.post(f"{a_path}/messages", {"senderType": "agent", "message": "x"}),
            "read": b.post(f"{a_path}/read", {"upToMessageId": tenant_a["message"]}),
            # B's own session with A's agent or A's message: they do not exist for B.
            "transfer to A's agent": b.post(f"{BASE}/{b_session['id']}/transfer", {"toAgentId": tenant_a["agent"]}),
            "read A's message": b.post(f"{BASE}/{b_session['id']}/read", {"upToMessageId": tenant_a["message"]}),
        }

        assert {name: r.status for name, r in replies.items()} == dict.fromkeys(replies, 404)
        assert all(r.error["code"] == "not_found" for r in replies.values())
        # and nothing of A's changed
        a_session = chat_api.get(a_path).data
        assert (a_session["status"], a_session["totalMessages"], a_session["assignedAgentId"]) == (
            "active",
            1,
            tenant_a["agent"],
        )
        assert chat_api.get(f"{a_path}/messages").data[0]["isRead"] is False
        assert chat_api.get(f"{BASE}/{tenant_a['ended']}").data["rating"] is None
        assert_chats(db, tenant_a["agent"], 1)
        assert_chats(db, b_agent, 0)
        assert b.get(f"{BASE}/{b_session['id']}/messages").data[0]["id"] == b_message["id"]

    def test_lists_never_show_another_tenants_sessions(
        self, chat_api: HandlerClient, other_tenant: UUID, tenant_a: dict[str, Any]
    ) -> None:
        b = chat_api.as_tenant(other_tenant)
        b_session = new_session(b)

        for query in ({}, {"status": "active"}, {"status": "closed"}, {"status": "waiting"}):
            reply = b.get(BASE, query=query)
            assert reply.status == 200
            assert {s["userId"] for s in reply.data} <= {str(other_tenant)}
        assert [s["id"] for s in b.get(BASE).data] == [b_session["id"]]
        assert {s["id"] for s in chat_api.get(BASE).data} == {tenant_a["session"], tenant_a["ended"]}
