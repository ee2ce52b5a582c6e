"""Live chat in real time, end to end: real WebSocket clients through the local gateway's WebSocket API (the
template's routes, the production authorizer and WebSocket function in worker processes, the local
management API), real HTTP for the widget session and the HTTP chat routes, the real database."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any
from uuid import uuid4

import httpx
import psycopg
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from local.database import DatabaseUrls
from local.gateway import WebSocketEndpoints
from local.token import mint_token

pytestmark = pytest.mark.e2e

SHOP = "https://shop.example"
WAIT = 20.0  # seconds: the first invocation of a worker imports its handler
# What a visitor learns of the agents on its session: who (ids) and the assigned one's display name; nothing else.
AGENT_FIELDS_A_VISITOR_SEES = {"assignedAgentId", "assignedAgentName", "transferredFromAgentId"}


class ChatClient:
    """A WebSocket client of the chat protocol: sends actions, and reads events (keeping those it skips)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []
        self.empty = 0  # empty messages received (and skipped)
        self._count = 0

    def send(self, action: str, **fields: Any) -> str:
        self._count += 1
        request_id = f"r{self._count}"
        self.ws.send(json.dumps({"action": action, "requestId": request_id, **fields}))
        return request_id

    def receive(self, timeout: float) -> dict[str, Any]:
        """The next event, skipping (and counting) empty messages: what a two-way route's result without a body
        brings (none of the template's routes should send one)."""
        deadline = time.monotonic() + timeout
        while not (raw := self.ws.recv(timeout=max(0.0, deadline - time.monotonic()))):
            self.empty += 1
        return dict(json.loads(raw))

    def expect(self, kind: str, *, where: Callable[[dict[str, Any]], bool] = lambda e: True) -> dict[str, Any]:
        for index, seen in enumerate(self.seen):
            if seen["type"] == kind and where(seen):
                return self.seen.pop(index)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            message = self.receive(timeout=max(0.1, deadline - time.monotonic()))
            if message["type"] == kind and where(message):
                return dict(message)
            self.seen.append(message)
        raise AssertionError(f"no {kind} event; saw {[e['type'] for e in self.seen]}")

    def ask(self, action: str, kind: str, **fields: Any) -> dict[str, Any]:
        """Send an action and return the answer to it (the event with its requestId)."""
        request_id = self.send(action, **fields)
        return self.expect(kind, where=lambda e: e.get("requestId") == request_id)

    def quiet(self, seconds: float = 0.5) -> list[dict[str, Any]]:
        """Everything that arrives within `seconds` (to show that nothing more does)."""
        got = list(self.seen)
        self.seen.clear()
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(self.receive(timeout=left))
            except TimeoutError:
                break
        return got


@pytest.fixture
def clients() -> Iterator[Callable[..., ChatClient]]:
    with ExitStack() as stack:

        def open_client(url: str, origin: str | None = None) -> ChatClient:
            headers = {"Origin": origin} if origin else None
            ws = stack.enter_context(connect(url, additional_headers=headers, ping_interval=None, open_timeout=WAIT))
            return ChatClient(ws)

        yield open_client


class Desk:
    """A tenant with a widget key and helpers to connect its staff and visitors."""

    def __init__(self, gateway_url: str, chat: WebSocketEndpoints, open_client: Callable[..., ChatClient]) -> None:
        self.tenant = uuid4()
        self.gateway_url = gateway_url
        self.chat = chat
        self.open_client = open_client
        self.admin = httpx.Client(
            base_url=gateway_url,
            headers={"Authorization": f"Bearer {mint_token(str(self.tenant), 'admin')}"},
            timeout=WAIT,
        )
        reply = self.admin.post("/api/support/widgets", json={"name": "Shop", "allowedOrigins": [SHOP]})
        assert reply.status_code == 201, reply.text
        self.widget_key = reply.json()["data"]["widgetKey"]
        self.agents: dict[str, dict[str, Any]] = {}  # id -> the agent as created (every field of theirs)

    def agent(self, name: str, capacity: int = 2, status: str = "available") -> tuple[str, ChatClient]:
        body = {"agentName": name, "agentEmail": f"{uuid4()}@desk.example", "maxConcurrentChats": capacity}
        reply = self.admin.post("/api/support/agents", json={**body, "status": status})
        assert reply.status_code == 201, reply.text
        agent_id = reply.json()["data"]["id"]
        self.agents[agent_id] = reply.json()["data"]
        token = mint_token(str(self.tenant), "agent", agent_id=agent_id)
        return agent_id, self.open_client(f"{self.chat.websocket_url}/?token={token}")

    def staff(self, role: str = "admin") -> ChatClient:
        return self.open_client(f"{self.chat.websocket_url}/?token={mint_token(str(self.tenant), role)}")

    def visitor_session(self, resume_token: str | None = None, widget_key: str | None = None) -> dict[str, Any]:
        body = {"widgetKey": widget_key or self.widget_key}
        if resume_token:
            body["resumeToken"] = resume_token
        reply = httpx.post(f"{self.gateway_url}/api/support/widget/session", json=body, headers={"Origin": SHOP})
        assert reply.status_code == 201, reply.text
        return dict(reply.json()["data"])

    def visitor(self, session: dict[str, Any] | None = None, origin: str = SHOP) -> tuple[dict[str, Any], ChatClient]:
        session = session or self.visitor_session()
        url = f"{self.chat.websocket_url}/?visitorToken={session['connectToken']}"
        return session, self.open_client(url, origin=origin)

    def assert_visitor_sees_only_the_name(self, session: dict[str, Any]) -> None:
        """A session as a visitor received it names its agent and shows no other field of any agent: no key
        about agents beyond the allowed ones, and no agent's email, department or skills anywhere in it."""
        assert {key for key in session if "agent" in key.lower()} == AGENT_FIELDS_A_VISITOR_SEES
        wire = json.dumps(session)
        other_fields = {"agentName", "agentEmail", "department", "skills", "currentChats", "maxConcurrentChats"}
        assert not other_fields & set(session)
        for agent in self.agents.values():
            assert agent["agentEmail"] not in wire
        expected = self.agents[session["assignedAgentId"]]["agentName"] if session["assignedAgentId"] else None
        assert session["assignedAgentName"] == expected


@pytest.fixture
def desk(gateway_url: str, chat_gateway: WebSocketEndpoints, clients: Callable[..., ChatClient]) -> Iterator[Desk]:
    made = Desk(gateway_url, chat_gateway, clients)
    yield made
    made.admin.close()


def test_a_visitor_and_an_agent_hold_a_conversation(desk: Desk, db: DatabaseUrls) -> None:
    agent_id, agent = desk.agent("Grace")
    _, visitor = desk.visitor()

    # The visitor starts a chat; the free agent gets it at once
    started = visitor.ask("startChat", "chat.started", visitorName="Lin")["data"]
    assert (started["status"], started["assignedAgentId"]) == ("active", agent_id)
    assert started["assignedAgentName"] == "Grace"  # named at once, before the agent writes anything
    desk.assert_visitor_sees_only_the_name(started)
    assigned = agent.expect("chat.assigned")["data"]
    session_id = started["id"]
    assert (assigned["id"], assigned["assignedAgentName"]) == (session_id, "Grace")

    # They talk: each side gets the other's messages, and typing; the sender gets its own message back
    mine = visitor.ask("sendMessage", "message.new", sessionId=session_id, message="Hi!\n", clientMessageId="v-1")
    assert mine["data"]["message"] == "Hi!\n" and mine["data"]["senderType"] == "customer"
    assert mine["data"]["senderName"] == "Lin"  # the name the visitor started with
    assert agent.expect("message.new")["data"]["id"] == mine["data"]["id"]
    typing = agent.send("typing", sessionId=session_id, isTyping=True)
    assert visitor.expect("typing")["data"] == {"sessionId": session_id, "senderType": "agent", "isTyping": True}
    agent.seen = agent.quiet(0.5)  # typing answers nothing: a one-way route, so not even an empty message
    assert agent.empty == 0 and not [e for e in agent.seen if e.get("requestId") == typing]
    reply = agent.ask("sendMessage", "message.new", sessionId=session_id, message="Hello Lin", clientMessageId="a-1")
    assert reply["data"]["senderName"] == "Grace"  # the agent's name, for the widget to show
    assert visitor.expect("message.new")["data"]["id"] == reply["data"]["id"]

    # Read receipts both ways
    read = visitor.ask("markRead", "message.read", sessionId=session_id, upToMessageId=reply["data"]["id"])
    assert read["data"]["markedCount"] == 1
    assert agent.expect("message.read")["data"]["upToMessageId"] == reply["data"]["id"]

    # The visitor ends it and rates it; the agent hears both
    ended = visitor.ask("endChat", "chat.ended", sessionId=session_id)["data"]
    assert ended["status"] == "closed" and ended["duration"] is not None
    assert agent.expect("chat.ended")["data"]["id"] == session_id
    rated = visitor.ask("rateChat", "chat.rated", sessionId=session_id, rating=5, feedback="Thanks")["data"]
    assert rated["rating"] == 5
    assert agent.expect("chat.rated")["data"]["rating"] == 5

    # and it is all stored: what was announced is what the database holds
    with psycopg.connect(db.admin) as conn:
        stored = conn.execute(
            "SELECT sender_type, message, is_read FROM chat_messages WHERE session_id = %s ORDER BY created_at",
            (session_id,),
        ).fetchall()
    assert stored == [("customer", "Hi!\n", False), ("agent", "Hello Lin", True)]


def test_with_every_agent_full_a_chat_queues_and_is_assigned_when_room_frees(desk: Desk) -> None:
    agent_id, agent = desk.agent("Grace", capacity=1)
    _, first = desk.visitor()
    first_session = first.ask("startChat", "chat.started")["data"]
    agent.expect("chat.assigned")
    _, second = desk.visitor()
    staff = desk.staff()

    waiting = second.ask("startChat", "chat.started")["data"]
    assert (waiting["status"], waiting["assignedAgentName"]) == ("waiting", None)
    desk.assert_visitor_sees_only_the_name(waiting)
    assert second.expect("chat.queued")["data"]["position"] == 1
    queue = staff.expect("queue.updated", where=lambda e: e["data"]["waiting"] == 1)["data"]
    assert [s["id"] for s in queue["sessions"]] == [waiting["id"]]

    # When the agent's first chat ends, the waiting visitor and the agent are told of the assignment
    agent.ask("endChat", "chat.ended", sessionId=first_session["id"])
    assigned = second.expect("chat.assigned")["data"]
    assert (assigned["assignedAgentId"], assigned["assignedAgentName"]) == (agent_id, "Grace")
    desk.assert_visitor_sees_only_the_name(assigned)
    assert agent.expect("chat.assigned", where=lambda e: e["data"]["id"] == waiting["id"])


def test_twenty_concurrent_starts_against_three_agents_of_two(desk: Desk) -> None:
    team = [desk.agent(name, capacity=2) for name in ("Ann", "Bob", "Cid")]
    visitors = [desk.visitor()[1] for _ in range(20)]

    with ThreadPoolExecutor(max_workers=20) as pool:
        started = list(pool.map(lambda v: v.ask("startChat", "chat.started")["data"], visitors))

    assigned = [s for s in started if s["status"] == "active"]
    assert len(assigned) == 6
    assert sorted(s["assignedAgentId"] for s in assigned) == sorted(a for a, _ in team for _ in range(2))
    # each waiting visitor's newest position: 1 to 14, each once
    final = []
    for visitor, session in zip(visitors, started, strict=True):
        if session["status"] != "waiting":
            continue
        notices = [e["data"] for e in visitor.quiet(1.0) if e["type"] == "chat.queued"]
        notices += [visitor.expect("chat.queued")["data"]] if not notices else []
        final.append(max(notices, key=lambda n: n["asOf"])["position"])
    assert sorted(final) == list(range(1, 15))


def test_an_agent_claims_a_waiting_chat_and_transfers_it(desk: Desk) -> None:
    ann_id, ann = desk.agent("Ann", status="away")
    bob_id, bob = desk.agent("Bob", status="away")
    _, visitor = desk.visitor()
    waiting = visitor.ask("startChat", "chat.started")["data"]
    assert waiting["status"] == "waiting"

    claimed = ann.ask("claimChat", "chat.assigned", sessionId=waiting["id"])["data"]
    assert (claimed["assignedAgentId"], claimed["assignedAgentName"]) == (ann_id, "Ann")
    told = visitor.expect("chat.assigned")["data"]
    assert (told["assignedAgentId"], told["assignedAgentName"]) == (ann_id, "Ann")
    desk.assert_visitor_sees_only_the_name(told)
    again = bob.ask("claimChat", "error", sessionId=waiting["id"])
    assert again["data"]["code"] == "conflict"

    moved = ann.ask("transfer", "chat.transferred", sessionId=waiting["id"], toAgentId=bob_id)["data"]
    assert (moved["assignedAgentId"], moved["transferredFromAgentId"]) == (bob_id, ann_id)
    assert moved["assignedAgentName"] == "Bob"
    told = visitor.expect("chat.transferred")["data"]
    assert (told["assignedAgentId"], told["assignedAgentName"]) == (bob_id, "Bob")  # the new agent's name
    desk.assert_visitor_sees_only_the_name(told)
    resumed = visitor.ask("sync", "sync", sessionId=waiting["id"])["data"]["session"]
    assert resumed["assignedAgentName"] == "Bob"
    desk.assert_visitor_sees_only_the_name(resumed)
    assert bob.expect("chat.transferred")["data"]["id"] == waiting["id"]
    # Bob now has it: his messages reach the visitor; Ann's are refused
    bob.ask("sendMessage", "message.new", sessionId=waiting["id"], message="Bob here", clientMessageId="b-1")
    assert visitor.expect("message.new")["data"]["message"] == "Bob here"
    refused = ann.ask("sendMessage", "error", sessionId=waiting["id"], message="still me?", clientMessageId="a-1")
    assert refused["data"]["code"] == "forbidden"


def test_a_start_retried_with_its_client_start_id_answers_the_session_it_started(desk: Desk, db: DatabaseUrls) -> None:
    _, agent = desk.agent("Grace", capacity=1)
    staff = desk.staff()
    session, visitor = desk.visitor()
    first = visitor.ask("startChat", "chat.started", visitorName="Lin", clientStartId="start-1")["data"]
    assert agent.expect("chat.assigned")["data"]["id"] == first["id"]

    # The answer is lost (the connection drops): the visitor comes back and asks again with the same id
    visitor.ws.close()
    _, back = desk.visitor(desk.visitor_session(resume_token=session["resumeToken"]))
    again = back.ask("startChat", "chat.started", visitorName="Lin", clientStartId="start-1")["data"]
    assert (again["id"], again["status"], again["assignedAgentName"]) == (first["id"], "active", "Grace")
    assert not [e for e in agent.quiet(0.5) if e["type"] == "chat.assigned"]  # no one else is told again

    # While it is open, another attempt (another id, or none) answers it too: a visitor holds one open chat
    for fields in ({"clientStartId": "start-2"}, {}):
        same = back.ask("startChat", "chat.started", **fields)["data"]
        assert (same["id"], same["status"]) == (first["id"], "active")
    assert not [e for e in agent.quiet(0.5) if e["type"] == "chat.assigned"]

    # Another visitor's attempt waits (Grace is full; the same id is theirs); its retry is told its place again
    _, stranger = desk.visitor()
    other = stranger.ask("startChat", "chat.started", clientStartId="start-1")["data"]
    assert other["id"] != first["id"] and other["status"] == "waiting"
    on_other = lambda e: e["data"]["sessionId"] == other["id"]  # noqa: E731
    assert stranger.expect("chat.queued", where=on_other)["data"]["position"] == 1
    queued = staff.expect("queue.updated", where=lambda e: e["data"]["waiting"] == 1)["data"]
    assert [s["id"] for s in queued["sessions"]] == [other["id"]]
    retried = stranger.ask("startChat", "chat.started", clientStartId="start-1")["data"]
    assert (retried["id"], retried["status"]) == (other["id"], "waiting")
    assert stranger.expect("chat.queued", where=on_other)["data"]["position"] == 1
    assert not [e for e in staff.quiet(0.5) if e["type"] == "queue.updated"]  # a retry changes no queue

    # Once the first chat has ended, the visitor may start another (Grace takes the stranger's meanwhile: it waits)
    back.ask("endChat", "chat.ended", sessionId=first["id"])
    again_later = back.ask("startChat", "chat.started", clientStartId="start-2")["data"]
    assert again_later["id"] not in (first["id"], other["id"]) and again_later["status"] == "waiting"
    with psycopg.connect(db.admin) as conn:
        row = conn.execute(
            "SELECT count(*) FROM live_chat_sessions WHERE user_id = %s AND visitor_id = %s",
            (desk.tenant, session["visitorId"]),
        ).fetchone()
    assert row is not None and row[0] == 2  # start-1, and start-2 after start-1 ended

    # An id that is empty or too long is refused, and the connection goes on
    for bad in ("", "x" * 65):
        refused = back.ask("startChat", "error", clientStartId=bad)["data"]
        assert refused["code"] == "validation_error"
        assert {d["field"] for d in refused["details"]} == {"clientStartId"}
    assert back.ask("ping", "pong")["data"]["serverTime"]


def test_a_reconnect_and_sync_lose_nothing_and_a_resent_message_is_stored_once(desk: Desk) -> None:
    _, agent = desk.agent("Grace")
    session, visitor = desk.visitor()
    chat = visitor.ask("startChat", "chat.started")["data"]
    agent.expect("chat.assigned")
    last = visitor.ask("sendMessage", "message.new", sessionId=chat["id"], message="one", clientMessageId="c-1")
    visitor.ws.close()

    # While the visitor is away the agent writes three messages
    sent = [
        agent.ask("sendMessage", "message.new", sessionId=chat["id"], message=f"m{n}", clientMessageId=f"a-{n}")
        for n in range(3)
    ]

    # The visitor comes back (a fresh connect token, the same visitor) and syncs from its last message
    again = desk.visitor_session(resume_token=session["resumeToken"])
    assert again["visitorId"] == session["visitorId"]
    _, back = desk.visitor(again)
    synced = back.ask("sync", "sync", sessionId=chat["id"], afterMessageId=last["data"]["id"])["data"]
    assert [m["id"] for m in synced["messages"]] == [m["data"]["id"] for m in sent]
    assert synced["hasMore"] is False
    assert synced["session"]["assignedAgentName"] == "Grace"  # a resumed widget names the agent at once
    desk.assert_visitor_sees_only_the_name(synced["session"])

    # A resend of the first message after the drop stores nothing new and answers the stored one
    resent = back.ask("sendMessage", "message.new", sessionId=chat["id"], message="one", clientMessageId="c-1")
    assert resent["data"]["id"] == last["data"]["id"]
    everything = back.ask("sync", "sync", sessionId=chat["id"])["data"]["messages"]
    assert [m["message"] for m in everything] == ["one", "m0", "m1", "m2"]


def test_a_connection_that_vanished_is_forgotten_and_the_others_still_get_the_message(
    desk: Desk, db: DatabaseUrls
) -> None:
    _, agent = desk.agent("Grace")
    session, visitor = desk.visitor()
    chat = visitor.ask("startChat", "chat.started")["data"]
    agent.expect("chat.assigned")
    # A second connection of the same visitor that dropped without a goodbye: its row is there, the
    # connection is not (API Gateway answers 410 for it)
    with psycopg.connect(db.owner) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(desk.tenant),))
        conn.execute(
            "INSERT INTO ws_connections (connection_id, user_id, role, visitor_id, widget_key)"
            " VALUES ('vanished0000000=', %s, 'visitor', %s, %s)",
            (desk.tenant, session["visitorId"], desk.widget_key),
        )

    agent.ask("sendMessage", "message.new", sessionId=chat["id"], message="still there?", clientMessageId="a-1")

    assert visitor.expect("message.new")["data"]["message"] == "still there?"
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        with psycopg.connect(db.admin) as conn:
            left = conn.execute(
                "SELECT count(*) FROM ws_connections WHERE connection_id = 'vanished0000000='"
            ).fetchone()
        if left == (0,):
            break
        time.sleep(0.1)
    assert left == (0,)


def test_other_tenants_and_other_visitors_can_neither_see_nor_act(
    desk: Desk, gateway_url: str, chat_gateway: WebSocketEndpoints, clients: Callable[..., ChatClient]
) -> None:
    _, agent = desk.agent("Grace")
    _, visitor = desk.visitor()
    chat = visitor.ask("startChat", "chat.started")["data"]
    agent.expect("chat.assigned")
    other_desk = Desk(gateway_url, chat_gateway, clients)
    stranger = other_desk.staff()
    _, other_visitor = desk.visitor()  # another visitor of the same shop

    for outsider in (stranger, other_visitor):
        for action, fields in (
            ("joinSession", {}),
            ("sendMessage", {"message": "let me in", "clientMessageId": "x-1"}),
            ("sync", {}),
            ("endChat", {}),
        ):
            answer = outsider.ask(action, "error", sessionId=chat["id"], **fields)
            expected = "forbidden" if (outsider is other_visitor and action == "joinSession") else "not_found"
            assert answer["data"]["code"] == expected, (action, answer)
    visitor.ask("sendMessage", "message.new", sessionId=chat["id"], message="private", clientMessageId="v-1")
    assert [e for e in stranger.quiet() + other_visitor.quiet() if e["type"] == "message.new"] == []
    other_desk.admin.close()


@pytest.mark.parametrize("case", ["expired", "other key", "revoked", "origin not listed"])
def test_visitor_tokens_that_must_not_connect_are_refused(desk: Desk, case: str) -> None:
    import jwt

    from support.visitors import CONNECT_AUDIENCE, ISSUER

    session = desk.visitor_session()
    origin = SHOP
    token = session["connectToken"]
    if case == "expired":
        claims = jwt.decode(token, options={"verify_signature": False})
        claims["exp"] = int(time.time()) - 10
        token = jwt.encode(claims, _visitor_key(), algorithm="HS256")
        assert claims["aud"] == CONNECT_AUDIENCE and claims["iss"] == ISSUER
    elif case == "other key":
        token = jwt.encode(jwt.decode(token, options={"verify_signature": False}), "x" * 40, algorithm="HS256")
    elif case == "revoked":
        assert desk.admin.delete(f"/api/support/widgets/{desk.widget_key}").status_code == 200
    else:
        origin = "https://evil.example"

    with pytest.raises(InvalidStatus) as refused:
        connect(
            f"{desk.chat.websocket_url}/?visitorToken={token}",
            additional_headers={"Origin": origin},
            ping_interval=None,
            open_timeout=WAIT,
        )
    assert refused.value.response.status_code == (401 if case in ("expired", "other key") else 403)


def _visitor_key() -> str:
    import os

    return os.environ["VISITOR_TOKEN_SECRET"]


def test_bad_input_answers_error_events_and_the_connection_keeps_working(desk: Desk) -> None:
    staff = desk.staff()
    _, visitor = desk.visitor()
    chat = visitor.ask("startChat", "chat.started")["data"]

    staff.ws.send("{not json")
    assert staff.expect("error")["data"]["code"] == "bad_request"
    assert staff.ask("noSuchAction", "error")["data"]["code"] == "unknown_action"
    invalid = visitor.ask("sendMessage", "error", sessionId="not-a-uuid", message="x", clientMessageId="v-1")
    assert invalid["data"]["code"] == "validation_error"
    assert {d["field"] for d in invalid["data"]["details"]} == {"sessionId"}
    missing = visitor.ask("sendMessage", "error", sessionId=chat["id"], message="no client id")
    assert missing["data"]["details"][0]["field"] == "clientMessageId"
    # 52,000 bytes of text (the limit is 50 KB, 51,200 bytes), sent as two frames: each within API Gateway's
    # 32 KB per frame
    big = json.dumps(
        {
            "action": "sendMessage",
            "requestId": "big",
            "sessionId": chat["id"],
            "message": "x" * 52_000,
            "clientMessageId": "v-2",
        }
    )
    visitor.ws.send([big[:30_000], big[30_000:]])
    assert visitor.expect("error", where=lambda e: e.get("requestId") == "big")["data"]["code"] == "too_large"
    assert visitor.ask("rateChat", "error", sessionId=chat["id"], rating=9)["data"]["code"] == "validation_error"
    assert staff.ask("startChat", "error")["data"]["code"] == "forbidden"  # staff do not start chats
    # and after all that, both connections still work
    assert staff.ask("ping", "pong")["type"] == "pong"
    assert visitor.ask("ping", "pong")["type"] == "pong"


def test_a_message_posted_over_http_reaches_the_websocket_participants(desk: Desk) -> None:
    _, agent = desk.agent("Grace")
    _, visitor = desk.visitor()
    chat = visitor.ask("startChat", "chat.started")["data"]
    agent.expect("chat.assigned")

    reply = desk.admin.post(
        f"/api/support/chat/sessions/{chat['id']}/messages",
        json={"senderType": "agent", "senderName": "Grace", "message": "from the console over HTTP"},
    )
    assert reply.status_code == 201, reply.text

    assert visitor.expect("message.new")["data"]["id"] == reply.json()["data"]["id"]
    assert agent.expect("message.new")["data"]["id"] == reply.json()["data"]["id"]
    ended = desk.admin.post(f"/api/support/chat/sessions/{chat['id']}/end")
    assert ended.status_code == 200
    assert visitor.expect("chat.ended")["data"]["status"] == "closed"


def test_a_closed_connection_gets_nothing_and_its_row_goes(desk: Desk, db: DatabaseUrls) -> None:
    staff = desk.staff()
    connection = staff.ask("ping", "pong")
    assert connection["type"] == "pong"
    staff.ws.close()
    deadline = time.monotonic() + WAIT
    left: Any = None
    while time.monotonic() < deadline:
        with psycopg.connect(db.admin) as conn:
            left = conn.execute("SELECT count(*) FROM ws_connections WHERE user_id = %s", (desk.tenant,)).fetchone()
        if left == (0,):
            break
        time.sleep(0.1)
    assert left == (0,)
    with pytest.raises(ConnectionClosed):
        staff.ws.recv(timeout=1)


def _connection_rows(db: DatabaseUrls, tenant: object) -> int:
    with psycopg.connect(db.admin) as conn:
        row = conn.execute("SELECT count(*) FROM ws_connections WHERE user_id = %s", (tenant,)).fetchone()
    assert row is not None
    return int(row[0])


def test_a_deeply_nested_frame_is_refused_and_the_connection_keeps_serving_until_its_disconnect(
    desk: Desk, db: DatabaseUrls
) -> None:
    """A frame too deeply nested to parse (Python's JSON decoder runs out of recursion) is a body the gateway
    cannot route, as API Gateway treats one: it goes to `$default`, whose function answers `bad_request`; the
    connection keeps serving, and its close still runs `$disconnect`, which removes its row."""
    staff = desk.staff()
    assert staff.ask("ping", "pong")["type"] == "pong"
    assert _connection_rows(db, desk.tenant) == 1

    staff.ws.send("[" * 15_000 + "]" * 15_000)  # 30,000 bytes: one frame, under API Gateway's 32 KB

    assert staff.expect("error")["data"]["code"] == "bad_request"
    assert staff.ask("ping", "pong")["type"] == "pong"
    staff.ws.close()
    deadline = time.monotonic() + WAIT
    while _connection_rows(db, desk.tenant) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _connection_rows(db, desk.tenant) == 0


def _answer_to(client: ChatClient, request_id: str) -> dict[str, Any]:
    """The event that answers `request_id`, whatever its type (kept events first)."""
    for index, seen in enumerate(client.seen):
        if seen.get("requestId") == request_id:
            return client.seen.pop(index)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        message = client.receive(timeout=max(0.1, deadline - time.monotonic()))
        if message.get("requestId") == request_id:
            return dict(message)
        client.seen.append(message)
    raise AssertionError(f"no answer to {request_id}")


def test_the_review_flood_through_one_widget_leaves_other_tenants_working(
    desk: Desk, gateway_url: str, chat_gateway: WebSocketEndpoints, clients: Callable[..., ChatClient], db: DatabaseUrls
) -> None:
    """A script with a live key and a forged Origin (the check binds browsers only) opens many visitors from one
    source, and each starts chat after chat."""
    capped = desk.admin.put("/api/support/settings/chat", json={"queueCap": 3, "webFormUrl": f"{SHOP}/contact"})
    assert capped.status_code == 200, capped.text
    staff = desk.staff()

    flood = [desk.visitor()[1] for _ in range(6)]
    answers = [[_answer_to(v, v.send("startChat", visitorName="flood")) for _ in range(3)] for v in flood]

    # The queue holds three; each of those visitors has one chat, the others are told the desk is busy
    started = [a for per_visitor in answers for a in per_visitor if a["type"] == "chat.started"]
    busy = [a for per_visitor in answers for a in per_visitor if a["type"] == "error"]
    assert len({a["data"]["id"] for a in started}) == 3 and len(started) == 9
    assert len(busy) == 9 and {(a["data"]["code"], a["data"]["webFormUrl"]) for a in busy} == {
        ("desk_busy", f"{SHOP}/contact")
    }
    with psycopg.connect(db.admin) as conn:
        rows = conn.execute("SELECT status FROM live_chat_sessions WHERE user_id = %s", (desk.tenant,)).fetchall()
    assert [row[0] for row in rows] == ["waiting"] * 3
    # Staff hear the queue in broadcasts, a burst coalesced: at most one per start, the newest with all three
    updates = [e["data"] for e in staff.quiet(1.0) if e["type"] == "queue.updated"]
    assert 1 <= len(updates) <= 3
    assert max(updates, key=lambda u: u["asOf"])["waiting"] == 3

    # From the one source, the widget session route soon answers 429 with Retry-After
    for _ in range(40):
        reply = httpx.post(
            f"{gateway_url}/api/support/widget/session", json={"widgetKey": desk.widget_key}, headers={"Origin": SHOP}
        )
        if reply.status_code != 201:
            break
    assert reply.status_code == 429, reply.text
    assert reply.json()["error"]["code"] == "rate_limited" and int(reply.headers["Retry-After"]) >= 1

    # A connection over its rate gets rate_limited events, stays open, and is served once its bucket refills
    noisy = flood[0]
    pings = [noisy.send("ping") for _ in range(90)]
    replies = [_answer_to(noisy, request_id) for request_id in pings]
    limited = [r for r in replies if r["type"] == "error"]
    assert limited and {r["data"]["code"] for r in limited} == {"rate_limited"}
    assert len([r for r in replies if r["type"] == "pong"]) >= 60
    time.sleep(max(r["data"]["retryAfter"] for r in limited))
    assert noisy.ask("ping", "pong")["data"]["serverTime"]

    # Meanwhile another tenant's widget works end to end from the same source: session, connect, start, message
    other = Desk(gateway_url, chat_gateway, clients)
    try:
        _, grace = other.agent("Grace")
        _, customer = other.visitor()
        chat = customer.ask("startChat", "chat.started", visitorName="Ada")["data"]
        assert chat["status"] == "active"
        customer.ask("sendMessage", "message.new", sessionId=chat["id"], message="hello", clientMessageId="m-1")
        assert grace.expect("message.new")["data"]["message"] == "hello"
    finally:
        other.admin.close()
