"""A chat message's webhook deliveries leave right after its commit, as every other change's do, without a database
round trip more on the live chat's hot path: the statement that sends the message also answers whether its
transaction wrote a delivery (webhooks.WRITTEN), and only then is a dispatch started, with no probe. And a ticket
made from a chat (the chat function's "Make a ticket") is kicked as the tickets function's writes are.

As deployed: the real WebSocket function in-process with the events API Gateway builds, the chat function's HTTP
route, the dispatch an asynchronous invocation of the real delivery function through Lambda's Invoke API (the local
gateway's), the deliveries through the real moto SQS to a receiver on 127.0.0.1. The workflow sweep never runs.
(The round trips themselves: bench.round_trips, its `sendMessage (desk with a webhook endpoint)` row, checked by
tests/contract/test_round_trips_bench_smoke.py.)"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import pytest
from starlette.applications import Starlette

from local import sqs as local_sqs
from local.database import DatabaseUrls
from local.gateway import LambdaContext, running_gateway
from local.gateway.lambda_api import lambda_routes
from local.pg_proxy import RoundTripProxy
from local.ses import LocalSes
from support import invocations
from support.auth import Principal, Role, authorizer_context
from support.config import get_settings
from support.models.chat import ChatMessageCreate
from support.models.widgets import WidgetCreate
from support.services import chat, widgets
from support.services.connections import Caller
from tests.http_events import HandlerClient
from tests.integration.test_chat_api import new_session, post_message
from tests.integration.test_chat_broken_connection import _session, proxy
from tests.integration.test_webhooks import (
    Receiver,
    deliveries,
    hooks_api,
    local_http,
    new_webhook,
    poller,
    queue,
    receiver,
)
from tests.integration.test_websocket_route_response import Connection, _answer
from tests.management_api import Posts, posts

__all__ = ["hooks_api", "local_http", "posts", "proxy", "queue", "receiver"]  # fixtures, imported by name

DELIVERY_FUNCTION = "WebhookDeliveryFunction"


@dataclass
class Dispatches:
    """Lambda's Invoke API in front of the delivery function (run in process): each event it was invoked with."""

    events: list[dict[str, Any]] = field(default_factory=list)
    done: list[dict[str, Any]] = field(default_factory=list)

    def invoke(self, function_id: str, event: dict[str, Any]) -> Any:
        from functions.webhook_delivery import app

        self.events.append(event)
        answer = app.lambda_handler(event, LambdaContext(function_id, 512, 30))
        self.done.append(answer)
        return answer


@pytest.fixture
def dispatches(queue: local_sqs.Queue, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dispatches]:
    """WEBHOOK_FUNCTION_NAME set, as in AWS: a dispatch is an asynchronous invocation, never run in the caller."""
    recorder = Dispatches()
    app = Starlette(routes=lambda_routes({DELIVERY_FUNCTION: object()}, recorder.invoke))
    with running_gateway(app) as base:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", base)
        monkeypatch.setenv("WEBHOOK_FUNCTION_NAME", DELIVERY_FUNCTION)
        get_settings.cache_clear()
        invocations.reset()
        try:
            yield recorder
        finally:
            invocations.reset()
            get_settings.cache_clear()


def wait_for(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def visitor_connection(tenant: UUID) -> Connection:
    admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="admin")
    key = widgets.create_widget(admin, WidgetCreate(name="Shop", allowed_origins=["https://shop.example"])).widget_key
    visitor_id = f"v-{uuid4().hex[:8]}"
    visitor = Principal(
        tenant_id=tenant, role=Role.VISITOR, subject=f"visitor:{visitor_id}", visitor_id=visitor_id, widget_key=key
    )
    return Connection(authorizer_context(visitor))


def start_chat(visitor: Connection) -> str:
    request_id, result = visitor.send("startChat", visitorName="Lin")
    return str(_answer(result, request_id)["data"]["id"])


def send_message(visitor: Connection, session_id: str, text: str) -> dict[str, Any]:
    request_id, result = visitor.send("sendMessage", sessionId=session_id, message=text, clientMessageId=uuid4().hex)
    answer = _answer(result, request_id)
    assert answer["type"] == "message.new", answer
    return dict(answer["data"])


def test_a_websocket_message_reaches_the_endpoint_right_after_its_commit(
    db: DatabaseUrls,
    tenant: UUID,
    moto: LocalSes,
    queue: local_sqs.Queue,
    hooks_api: HandlerClient,
    receiver: Receiver,
    local_http: None,
    posts: Posts,
    dispatches: Dispatches,
) -> None:
    # Given an endpoint subscribed to chat messages only, and a visitor's chat (its start wrote no delivery)
    hook = new_webhook(hooks_api, f"http://127.0.0.1:{receiver.port}/hook", ["chat.message_created"])
    visitor = visitor_connection(tenant)
    session_id = start_chat(visitor)
    time.sleep(0.2)
    assert dispatches.events == []

    # When the visitor sends a message over the WebSocket
    message = send_message(visitor, session_id, "Where is my parcel?")

    # Then the message's function started the dispatch after its commit: the delivery is in SQS, then delivered
    wait_for(lambda: len(dispatches.done) == 1)
    assert dispatches.events == [{"dispatch": {"tenantId": str(tenant)}}]
    assert dispatches.done == [{"queued": 1}]
    [row] = deliveries(db, hook["id"])
    assert (row["event"], row["state"]) == ("chat.message_created", "queued")
    assert poller(moto, queue).drain() == 1
    [request] = receiver.requests
    assert request["headers"]["X-Support-Event"] == "chat.message_created"
    assert b"Where is my parcel?" in request["body"] and message["id"].encode() in request["body"]
    assert deliveries(db, hook["id"])[0]["state"] == "delivered"


def test_a_message_over_http_is_dispatched_after_its_commit(
    db: DatabaseUrls,
    tenant: UUID,
    dispatches: Dispatches,
    hooks_api: HandlerClient,
    local_http: None,
) -> None:
    from functions.chat import app as chat_app

    hook = new_webhook(hooks_api, "http://127.0.0.1:9/hook", ["chat.message_created"])
    chats = HandlerClient(chat_app.lambda_handler, tenant=tenant)
    session = new_session(chats)
    post_message(chats, session["id"], "agent", "On its way")
    wait_for(lambda: len(dispatches.done) == 1)
    assert dispatches.events == [{"dispatch": {"tenantId": str(tenant)}}]
    assert [(r["event"], r["state"]) for r in deliveries(db, hook["id"])] == [("chat.message_created", "queued")]


def test_a_ticket_made_from_a_chat_is_dispatched_after_its_commit(
    db: DatabaseUrls,
    tenant: UUID,
    dispatches: Dispatches,
    hooks_api: HandlerClient,
    local_http: None,
) -> None:
    from functions.chat import app as chat_app
    from tests.integration.test_chat_tickets import make_ticket

    # The console's "Make a ticket", a route of the chat function (which kicks none of its other writes)
    hook = new_webhook(hooks_api, "http://127.0.0.1:9/hook", ["ticket.created"])
    chats = HandlerClient(chat_app.lambda_handler, tenant=tenant)
    session = new_session(chats, visitorEmail="ada@shop.example")
    ticket = make_ticket(chats, session["id"])
    wait_for(lambda: len(dispatches.done) == 1)
    [row] = deliveries(db, hook["id"])
    assert (row["event"], row["state"], row["payload"]["data"]["id"]) == ("ticket.created", "queued", ticket["id"])
    make_ticket(chats, session["id"], status=200)  # the ticket it already has: nothing written, nothing started
    time.sleep(0.3)
    assert len(dispatches.events) == 1


def test_no_dispatch_is_started_for_a_message_that_wrote_no_delivery(
    db: DatabaseUrls,
    tenant: UUID,
    other_tenant: UUID,
    dispatches: Dispatches,  # (the queue's fixture first: it undoes the environment when it ends)
    hooks_api: HandlerClient,
    local_http: None,
    posts: Posts,
) -> None:
    from functions.chat import app as chat_app

    # Another desk's message wrote a delivery (its transaction said so), on the connection this desk uses next
    new_webhook(hooks_api.as_tenant(other_tenant), "http://127.0.0.1:9/other", ["chat.message_created"])
    others = HandlerClient(chat_app.lambda_handler, tenant=other_tenant)
    post_message(others, new_session(others)["id"], "agent", "Hello from the other desk")
    wait_for(lambda: len(dispatches.done) == 1)
    assert dispatches.events == [{"dispatch": {"tenantId": str(other_tenant)}}]
    # A desk without endpoints: its messages start nothing (the other transaction's setting ended with it)
    visitor = visitor_connection(tenant)
    session_id = start_chat(visitor)
    send_message(visitor, session_id, "Hello?")
    # A desk whose endpoint wants other events: nothing either
    hook = new_webhook(hooks_api, "http://127.0.0.1:9/ends", ["chat.ended"])
    send_message(visitor, session_id, "Anyone there?")
    time.sleep(0.3)  # the Invoke API runs an invocation within milliseconds of its 202
    assert dispatches.events == [{"dispatch": {"tenantId": str(other_tenant)}}]
    assert deliveries(db, hook["id"]) == []


def test_a_send_run_again_after_an_unheard_commit_still_dispatches(
    db: DatabaseUrls,
    tenant: UUID,
    dispatches: Dispatches,
    hooks_api: HandlerClient,
    local_http: None,
    posts: Posts,
    proxy: RoundTripProxy,
) -> None:
    # Given an endpoint for chat messages, and a connection that breaks right after the server commits the next write
    hook = new_webhook(hooks_api, "http://127.0.0.1:9/hook", ["chat.message_created"])
    visitor, session_id = _session(tenant)
    proxy.cut_after_commit()

    # When the visitor's send is run again and finds the message its first run stored (and wrote the delivery of)
    data = ChatMessageCreate(sender_type="customer", message="Where is my parcel?")
    chat.add_chat_message(visitor, session_id, data, caller=Caller("conn-1"), client_message_id="c-1")
    assert proxy.cuts == 1

    # Then the second run, which wrote nothing, still had the first run's delivery dispatched (probed, as a kick)
    wait_for(lambda: len(dispatches.done) == 1)
    assert [(r["event"], r["state"]) for r in deliveries(db, hook["id"])] == [("chat.message_created", "queued")]
