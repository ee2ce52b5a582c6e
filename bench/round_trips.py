"""Database round trips of the live chat, counted on the wire: per WebSocket action and per HTTP chat route.

    .venv/bin/python -m bench.round_trips [--markdown]

A round trip is the client waiting for the server: a small TCP proxy in front of the bench's PostgreSQL
(local/pg_proxy.py) counts the server's answers, each burst of data from the server that follows data from the
client, per invocation. Nothing in the code
under test is patched: the handlers connect to the proxy as the runtime role (`support_app`, row-level security
on), as they would to Aurora or RDS Proxy.

What runs, on a fresh database (`round_trips` in `.local/pg-bench`, or on DATABASE_URL's server), in-process:

* the WebSocket function (functions/websocket/app.py `lambda_handler`) with the events API Gateway builds
  (`local.gateway.websocket_api.build_websocket_event`), for every action of the protocol and $connect /
  $disconnect, on the connections of two visitors (each through the real $connect authorizer, its connect token
  from the widget key), two agents and an admin;
* the chat function (functions/chat/app.py `lambda_handler`) with HTTP API payload 2.0 events, for every chat
  route, as the tenant's admin.

The fan-out goes to a management API stand-in over real HTTP (WEBSOCKET_MANAGEMENT_ENDPOINT), which counts the
posts per invocation (the `posts` column) and checks that no measured WebSocket action answered an error: its
posts are not database round trips, and show that the participants were read and told. Beside it, Lambda's Invoke
API, which records the staff broadcasts and the webhook dispatches the invocations start. Every invocation is
made with the database connection already open (the set-up opens it); an action that can be repeated as it is
(sendMessage, typing, markRead, sync, ping, the reads) is invoked twice and the second is counted.

The desk has no webhook endpoint, except for one row, `sendMessage (desk with a webhook endpoint)`: a message whose
transaction wrote a webhook delivery starts its dispatch (an asynchronous invocation of WebhookDeliveryFunction)
with the same round trips as any other. Every other invocation must start no dispatch: a desk without endpoints
pays nothing for webhooks on the chat's path.

Prints one table of round trips per action or route (`--markdown` for RESULTS.md). Exit 2 when the scenario
broke (an action answered an error, a route a status it should not, an invocation started a webhook dispatch it
should not or none it should): then the figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

from local.pg_proxy import RoundTripProxy

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
SHOP = "https://shop.example"
WEBHOOK_FUNCTION = "WebhookDeliveryFunction"
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:bench/local/$connect"


# --- The management API stand-in ---------------------------------------------------------------------------------


@dataclass
class Posts:
    """What the fan-out posted since the last reset: (connection id, event) pairs."""

    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # the staff broadcasts the actions asked for (asynchronous invocations of BroadcastFunction), not yet run
    invoked: list[dict[str, Any]] = field(default_factory=list)
    # the webhook dispatches the actions started (asynchronous invocations of WebhookDeliveryFunction), never run
    dispatched: list[dict[str, Any]] = field(default_factory=list)
    # the answers, each its route's response (not a post): what the caller's connection receives besides
    answered: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.sent = []
            self.dispatched = []
        self.answered = []

    def errors(self) -> list[dict[str, Any]]:
        return [e for _, e in [*self.sent, *self.answered] if e.get("type") == "error"]


@contextmanager
def management_api(posts: Posts) -> Iterator[str]:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from local.gateway import running_gateway
    from local.gateway.lambda_api import lambda_routes

    async def post(request: Request) -> Response:
        body = json.loads(await request.body())
        with posts.lock:
            posts.sent.append((request.path_params["connection_id"], body))
        return Response(status_code=200)

    async def delete(request: Request) -> Response:
        return Response(status_code=204)

    def invoke(function_id: str, event: dict[str, Any]) -> None:  # held, to be run and counted on its own
        with posts.lock:
            posts.invoked.append(event)

    async def dispatch(request: Request) -> Response:  # recorded before the 202, so it counts with its invocation
        body = json.loads(await request.body())
        with posts.lock:
            posts.dispatched.append(body)
        return Response(status_code=202)

    path = "/@connections/{connection_id:path}"
    routes = [Route(path, post, methods=["POST"]), Route(path, delete, methods=["DELETE"])]
    routes.append(Route(f"/2015-03-31/functions/{WEBHOOK_FUNCTION}/invocations", dispatch, methods=["POST"]))
    # Lambda's Invoke API beside it, for the staff broadcast (what the local gateway serves)
    app = Starlette(routes=[*routes, *lambda_routes({"BroadcastFunction": None}, invoke)])
    with running_gateway(app) as base:
        yield base


# --- The scenario --------------------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    round_trips: int
    posts: int


@dataclass
class Scenario:
    proxy: RoundTripProxy
    posts: Posts
    rows: list[Row] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)

    def measure(
        self, name: str, call: Callable[[], Any], *, twice: bool = False, error: bool = False, dispatches: int = 0
    ) -> Any:
        """Invoke `call` (twice with `twice`, counting the second) and record its round trips and posts.
        `error`: the invocation is expected to answer an error event (else one is a broken scenario); `dispatches`:
        the webhook dispatches it must start (else a broken scenario). Then each staff broadcast it started, run as
        the broadcast function and counted in a row of its own."""
        if twice:
            call()
        self._broadcasts(None)  # what an earlier call started, run uncounted: the measured call starts its own
        self.proxy.reset()
        self.posts.reset()
        result = call()
        trips = self.proxy.count
        if bool(self.posts.errors()) != error:
            self.broken.append(f"{name}: errors {self.posts.errors()}")
        if len(self.posts.dispatched) != dispatches:
            self.broken.append(f"{name}: {len(self.posts.dispatched)} webhook dispatches started, not {dispatches}")
        self.rows.append(Row(name, trips, len(self.posts.sent)))
        self._broadcasts(name)
        return result

    def _broadcasts(self, after: str | None) -> None:
        """Run the staff broadcasts invoked so far (the local Invoke API hands them over in the background, within
        milliseconds of its 202), counting each in a row `staff broadcast run (after ...)` when `after` names one."""
        from functions.broadcast import app as broadcast_app
        from local.gateway.execution_environments import LambdaContext

        deadline = time.monotonic() + 0.2
        while not self.posts.invoked and time.monotonic() < deadline:
            time.sleep(0.01)
        while self.posts.invoked:
            with self.posts.lock:
                event, *self.posts.invoked = self.posts.invoked
            self.proxy.reset()
            posted = len(self.posts.sent)
            broadcast_app.lambda_handler(event, LambdaContext("BroadcastFunction", 512, 30))
            if after is not None:
                row = f"  staff broadcast run (after {after})"
                self.rows.append(Row(row, self.proxy.count, len(self.posts.sent) - posted))


def _ws_event(route: str, context: dict[str, str], connection_id: str, body: dict[str, Any] | None) -> dict[str, Any]:
    from local.gateway.websocket_api import direct_websocket_event

    raw = json.dumps(body) if body is not None else None
    authorizer = {**context, "principalId": context.get("subject", "p")}
    return direct_websocket_event(route, connection_id, authorizer, body=raw, user_agent="bench")


def _http_event(method: str, path: str, body: Any, claims: dict[str, Any]) -> dict[str, Any]:
    """The HTTP API's payload 2.0 event for a request to the template's route that matches `path`."""
    from local.gateway import build_http_event
    from local.template import http_routes

    bare, _, query = path.partition("?")
    for route in http_routes():
        pattern = "^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(route.path)) + "$"
        if route.method == method and re.match(pattern, bare):
            raw = json.dumps(body).encode() if body is not None else b""
            return build_http_event(
                route_key=route.route_key,
                method=method,
                raw_path=bare,
                raw_query_string=query,
                headers=[("content-type", "application/json")] if body is not None else [],
                body=raw,
                claims=claims,
            )
    raise AssertionError(f"no template route for {method} {path}")


@dataclass
class Connection:
    """One WebSocket connection: its id and the authorizer's context API Gateway passes with each event."""

    context: dict[str, str]
    connection_id: str = field(default_factory=lambda: f"bench-{uuid4().hex[:12]}")
    requests: int = 0

    def event(self, route: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if body is not None:
            self.requests += 1
            body = {"action": route, "requestId": f"r-{self.requests}", **body}
        return _ws_event(route, self.context, self.connection_id, body)


def run(proxy: RoundTripProxy) -> Scenario:
    from functions.chat import app as chat_app
    from functions.websocket import app as ws_app
    from functions.ws_authorizer import app as authorizer_app
    from local.gateway import LambdaContext
    from support.auth import Principal, Role, authorizer_context
    from support.models.agents import AgentCreate
    from support.models.webhooks import WebhookCreate, WebhookEvent
    from support.models.widgets import WidgetCreate
    from support.services import agents, webhooks, widgets
    from support.visitors import issue_connect_token

    posts = Posts()
    with management_api(posts) as endpoint:
        os.environ["WEBSOCKET_MANAGEMENT_ENDPOINT"] = endpoint
        # The staff broadcast runs in its own function, as in AWS: an action's row counts its request path only,
        # and each broadcast it started is counted in a row of its own ("staff broadcast run after ...")
        os.environ["AWS_ENDPOINT_URL_LAMBDA"] = endpoint
        os.environ["BROADCAST_FUNCTION_NAME"] = "BroadcastFunction"
        # and a webhook dispatch is an asynchronous invocation of the delivery function, as in AWS (only counted)
        os.environ["WEBHOOK_FUNCTION_NAME"] = WEBHOOK_FUNCTION
        os.environ["WEBHOOKS_ALLOW_LOCAL_HTTP"] = "true"  # the bench's endpoint is never called
        from support import realtime
        from support.config import get_settings

        get_settings.cache_clear()
        realtime.reset()
        scenario = Scenario(proxy, posts)
        tenant = uuid4()
        admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="bench-admin")
        key = widgets.create_widget(admin, WidgetCreate(name="Bench", allowed_origins=[SHOP])).widget_key
        agent_a = agents.create_agent(admin, AgentCreate(agent_name="Ada", agent_email="ada@bench.example")).id
        agent_b = agents.create_agent(admin, AgentCreate(agent_name="Bo", agent_email="bo@bench.example")).id
        expires = int(time.time()) + 3600

        def staff(role: Role, agent_id: UUID | None, subject: str) -> Connection:
            principal = Principal(tenant_id=tenant, role=role, subject=subject, agent_id=agent_id)
            return Connection({**authorizer_context(principal), "tokenExpiresAt": str(expires)})

        ws_handler: Handler = ws_app.lambda_handler
        authorizer: Handler = authorizer_app.lambda_handler
        chat_handler: Handler = chat_app.lambda_handler

        def ws(connection: Connection, route: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
            result = ws_handler(connection.event(route, body), LambdaContext("WebSocketFunction", 512, 10))
            if result.get("statusCode") != 200:
                scenario.broken.append(f"{route}: status {result}")
            if result.get("body"):  # the answer, the route's response (not a post): the caller receives it
                posts.answered.append((connection.connection_id, json.loads(result["body"])))
            return result

        def authorize(visitor_id: str) -> Connection:
            token, _ = issue_connect_token(tenant, key, visitor_id)
            event = {
                "type": "REQUEST",
                "methodArn": METHOD_ARN,
                "headers": {"origin": SHOP},
                "queryStringParameters": {"visitorToken": token},
                "requestContext": {"identity": {"sourceIp": "203.0.113.9"}},
            }
            policy = authorizer(event, LambdaContext("WebSocketAuthorizerFunction", 512, 10))
            if policy["policyDocument"]["Statement"][0]["Effect"] != "Allow":
                scenario.broken.append(f"authorizer refused {visitor_id}")
            return Connection(dict(policy["context"]))

        def last_message(connection_id: str) -> str:
            received = [*posts.sent, *posts.answered]
            new = [e for c, e in received if c == connection_id and e.get("type") == "message.new"]
            return str(new[-1]["data"]["id"])

        m = scenario.measure
        # Connections: two visitors (each through the authorizer), agents A and B, an admin.
        v1 = m("authorizer: $connect (visitor)", lambda: authorize("visitor-1"))
        m("$connect (visitor)", lambda: ws(v1, "$connect"))
        v2 = authorize("visitor-2")
        ws(v2, "$connect")
        a = staff(Role.AGENT, agent_a, "agent-a")
        m("$connect (agent)", lambda: ws(a, "$connect"))
        b = staff(Role.AGENT, agent_b, "agent-b")
        ws(b, "$connect")
        boss = staff(Role.ADMIN, None, "admin")
        ws(boss, "$connect")

        m("ping", lambda: ws(v1, "ping", {}), twice=True)
        # V1 starts while no agent is available: it waits, and agent A claims it.
        m("startChat (queued)", lambda: ws(v1, "startChat", {"visitorName": "Vi"}))
        first = next(e for _, e in posts.answered if e.get("type") == "chat.started")["data"]["id"]
        m("claimChat", lambda: ws(a, "claimChat", {"sessionId": first}))
        m("setStatus (available)", lambda: ws(a, "setStatus", {"status": "available"}))
        m("startChat (assigned)", lambda: ws(v2, "startChat", {"visitorName": "Wu"}))

        def send(connection: Connection, client_id: str | None = None) -> dict[str, Any]:
            body = {"sessionId": first, "message": "Where is my parcel?", "clientMessageId": client_id or uuid4().hex}
            return ws(connection, "sendMessage", body)

        m("sendMessage (visitor)", lambda: send(v1), twice=True)
        visitor_message = last_message(v1.connection_id)
        m("sendMessage (assigned agent)", lambda: send(a), twice=True)
        m("sendMessage (resent clientMessageId)", lambda: send(v1, "same-id"), twice=True)
        m("typing (visitor)", lambda: ws(v1, "typing", {"sessionId": first, "isTyping": True}), twice=True)
        m("typing (agent)", lambda: ws(a, "typing", {"sessionId": first, "isTyping": False}), twice=True)
        m(
            "markRead (agent)",
            lambda: ws(a, "markRead", {"sessionId": first, "upToMessageId": visitor_message}),
            twice=True,
        )
        m("sync (visitor, all)", lambda: ws(v1, "sync", {"sessionId": first}), twice=True)
        after = {"sessionId": first, "afterMessageId": visitor_message}
        m("sync (agent, after a message)", lambda: ws(a, "sync", after), twice=True)
        m("joinSession (agent B)", lambda: ws(b, "joinSession", {"sessionId": first}), twice=True)
        m("sendMessage (joined staff)", lambda: send(b), twice=True)
        m("sendMessage (admin)", lambda: send(boss), twice=True)
        # A desk with a webhook endpoint for chat messages: each message's delivery is dispatched after its commit
        # (one asynchronous invocation, no probe), in the same round trips. Deleted after, with its deliveries.
        hook = webhooks.create_endpoint(
            admin, WebhookCreate(url="http://127.0.0.1:9/bench", events=[WebhookEvent.CHAT_MESSAGE_CREATED])
        ).id
        m("sendMessage (desk with a webhook endpoint)", lambda: send(v1), twice=True, dispatches=1)
        webhooks.delete_endpoint(admin, hook)
        m("transfer (A to B)", lambda: ws(a, "transfer", {"sessionId": first, "toAgentId": str(agent_b)}))
        m("endChat (visitor)", lambda: ws(v1, "endChat", {"sessionId": first}))
        m("rateChat", lambda: ws(v1, "rateChat", {"sessionId": first, "rating": 5, "feedback": "Quick, thanks"}))
        m("sendMessage (ended session: 409)", lambda: send(v1), twice=True, error=True)
        leave = {"sessionId": first, "email": "vi@shop.example"}
        m("leaveEmail (a chat that is no ticket: 404)", lambda: ws(v1, "leaveEmail", leave), twice=True, error=True)
        m("$default (unknown action)", lambda: ws(v1, "$default", {"action": "dance"}), twice=True, error=True)
        m("$disconnect", lambda: ws(v2, "$disconnect"))

        # HTTP: every chat route, as the tenant's admin.
        claims = {"sub": "bench-admin", "tenant_id": str(tenant), "role": "admin"}

        def http(want: int, method: str, path: str, body: Any = None) -> dict[str, Any]:
            event = _http_event(method, path, body, claims)
            result = chat_handler(event, LambdaContext("ChatFunction", 512, 10))
            reply: dict[str, Any] = json.loads(result.get("body") or "{}")
            if result["statusCode"] != want:
                scenario.broken.append(f"{method} {path}: {result['statusCode']} {reply}")
            return reply

        base = "/api/support/chat/sessions"
        started = m("POST /sessions", lambda: http(201, "POST", base, {"visitorId": "visitor-3", "visitorName": "Xi"}))
        session = started["data"]["id"]
        m("GET /sessions?status=active", lambda: http(200, "GET", f"{base}?status=active"), twice=True)
        m("GET /sessions/{id}", lambda: http(200, "GET", f"{base}/{session}"), twice=True)
        message = {"senderType": "agent", "message": "Hello from the desk"}
        added = m(
            "POST /sessions/{id}/messages", lambda: http(201, "POST", f"{base}/{session}/messages", message), twice=True
        )
        m("GET /sessions/{id}/messages", lambda: http(200, "GET", f"{base}/{session}/messages"), twice=True)
        read = {"upToMessageId": added["data"]["id"]}
        m("POST /sessions/{id}/read", lambda: http(200, "POST", f"{base}/{session}/read", read), twice=True)
        transfer = {"toAgentId": str(agent_b)}
        m("POST /sessions/{id}/transfer", lambda: http(200, "POST", f"{base}/{session}/transfer", transfer))
        m("POST /sessions/{id}/end", lambda: http(200, "POST", f"{base}/{session}/end"))
        m(
            "POST /sessions/{id}/rating (staff: 403)",
            lambda: http(403, "POST", f"{base}/{session}/rating", {"rating": 5}),
        )
    return scenario


def table(rows: list[Row]) -> str:
    width = max(len(r.name) for r in rows)
    lines = [f"| {'action / route':<{width}} | round trips | posts |", f"|{'-' * (width + 2)}|------------:|------:|"]
    lines += [f"| {r.name:<{width}} | {r.round_trips:>11} | {r.posts:>5} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.round_trips", description=__doc__.split("\n\n")[0])
    parser.parse_args()
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "support")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SupportDesk")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # the handlers' EMF lines would cut the table
    warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    if not os.environ.get("VISITOR_TOKEN_SECRET"):
        from local.visitor_key import visitor_token_secret

        os.environ["VISITOR_TOKEN_SECRET"] = visitor_token_secret()
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from local.database import connected_as, database

    with database("round_trips", purpose="bench", recreate=True, quiet=True) as urls:
        params = conninfo_to_dict(urls.app)
        proxy = RoundTripProxy(str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))
        through_proxy = make_conninfo(urls.app, host="127.0.0.1", hostaddr="127.0.0.1", port=str(proxy.port))
        os.environ["DATABASE_URL"] = through_proxy  # the handlers validate their settings at import
        with connected_as(through_proxy):
            scenario = run(proxy)
        proxy.close()
    print(
        f"database round trips per invocation, connection warm ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})"
    )
    print(table(scenario.rows))
    if scenario.broken:
        print("scenario broken:", *scenario.broken, sep="\n  ", file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
