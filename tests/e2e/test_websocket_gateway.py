"""The local WebSocket API and its management API, over real WebSockets (the `websockets` client), real
HTTP and boto3's real `apigatewaymanagementapi` client, with no database: stub authorizer and function
modules, written to a temporary folder with a template of their own, stand in for the chat's functions.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.credentials import Credentials
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from local.gateway import (
    MAX_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
    WS_API_ID,
    WebSocketEndpoints,
    create_websocket_app,
    running_template_websocket_api,
    running_websocket_gateway,
)
from local.gateway.authorizers import build_websocket_authorizer_event, run_request_authorizer
from local.template import TEMPLATE, TemplateError, WebSocketApi, websocket_api
from support.realtime import ConnectionGone, ManagementApi

pytestmark = pytest.mark.e2e

ACTIONS = [
    "startChat",
    "sendMessage",
    "typing",
    "markRead",
    "endChat",
    "rateChat",
    "sync",
    "setStatus",
    "claimChat",
    "transfer",
    "joinSession",
    "ping",
    "leaveEmail",
]

# The keys of AWS's documented example of a WebSocket $connect REQUEST authorizer's input
# (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-lambda-auth.html).
DOCUMENTED_AUTHORIZER_KEYS = {
    "type",
    "methodArn",
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "stageVariables",
    "requestContext",
}
DOCUMENTED_AUTHORIZER_CONTEXT_KEYS = {
    "routeKey",
    "eventType",
    "extendedRequestId",
    "requestTime",
    "messageDirection",
    "stage",
    "connectedAt",
    "requestTimeEpoch",
    "identity",
    "requestId",
    "domainName",
    "connectionId",
    "apiId",
}
# The keys of the Lambda proxy integration's events, as API Gateway sends them (its $connect, message
# and $disconnect examples in the WebSocket API developer guide and the aws-lambda-go/events fixtures).
CONNECT_EVENT_KEYS = {"headers", "multiValueHeaders", "requestContext", "isBase64Encoded"}
MESSAGE_EVENT_KEYS = {"requestContext", "body", "isBase64Encoded"}
MESSAGE_CONTEXT_KEYS = DOCUMENTED_AUTHORIZER_CONTEXT_KEYS | {"messageId", "authorizer"}
DISCONNECT_CONTEXT_KEYS = DOCUMENTED_AUTHORIZER_CONTEXT_KEYS | {
    "disconnectStatusCode",
    "disconnectReason",
    "authorizer",
}

# How each stub records the event it was given (in the stubs' sources below, as `{record}`).
RECORD_SOURCE = """
def record(entry):
    # One write of the whole line (O_APPEND), so stubs in several processes never interleave within a line.
    fd = os.open(EVENTS, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, (json.dumps(entry) + "\\n").encode())
    finally:
        os.close(fd)
"""

AUTHORIZER_SOURCE = """
import json
import os

EVENTS = {events!r}

{record}

def policy(effect, principal="user-1", context=None, resource=None):
    answer = {{
        "principalId": principal,
        "policyDocument": {{
            "Version": "2012-10-17",
            "Statement": [{{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}}],
        }},
    }}
    if context is not None:
        answer["context"] = context
    return answer


def lambda_handler(event, context):
    record({{"function": "authorizer", "event": event}})
    token = (event.get("queryStringParameters") or {{}}).get("token")
    arn = event["methodArn"]
    if token == "good":
        return policy("Allow", "agent-7", {{"tenantId": "t-1", "role": "agent", "level": 3, "vip": True}}, arn)
    if token == "wildcard":
        return policy("Allow", "agent-8", {{}}, arn.rsplit("/", 2)[0] + "/*")
    if token == "deny":
        return policy("Deny", resource=arn)
    if token == "other-resource":
        return policy("Allow", resource=arn.replace("$connect", "sendMessage"))
    if token == "not-a-policy":
        return {{"principalId": "x"}}
    if token == "nested-context":
        return policy("Allow", "x", {{"tenant": {{"id": 1}}}}, arn)
    if token == "bug":
        raise ValueError("a bug in the authorizer")
    raise Exception("Unauthorized")
"""

FUNCTION_SOURCE = """
import json
import os
import time

import boto3

EVENTS = {events!r}

{record}

def management():
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=os.environ["WEBSOCKET_MANAGEMENT_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def lambda_handler(event, context):
    record({{"function": "websocket", "pid": os.getpid(), "event": event}})
    request = event["requestContext"]
    route = request["routeKey"]
    if route == "$connect":
        answer = (event.get("queryStringParameters") or {{}}).get("connect")
        if answer == "refuse":
            return {{"statusCode": 403}}
        if answer == "boom":
            raise RuntimeError("a bug in $connect")
        return {{"statusCode": 200}}
    if route == "echo":
        for part in json.loads(event["body"])["parts"]:
            management().post_to_connection(ConnectionId=request["connectionId"], Data=json.dumps({{"echo": part}}))
    if route == "whoami":
        management().post_to_connection(
            ConnectionId=request["connectionId"],
            Data=json.dumps({{"authorizer": request.get("authorizer"), "function": context.function_name}}),
        )
    if route == "boom":
        raise ZeroDivisionError("a bug in the handler")
    if route.startswith("answer"):
        # An event to its own connection first, then the answer as the result's body (a route response sends it)
        management().post_to_connection(ConnectionId=request["connectionId"], Data=json.dumps({{"posted": route}}))
        return {{"statusCode": 200, "body": json.dumps({{"answered": route}})}}
    if route == "binary":
        return {{"statusCode": 200, "body": "aMOpbGxv", "isBase64Encoded": True}}
    return {{"statusCode": 200}}
"""


LAMBDA_PATH = "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions"


def _template(folder: Path, routes: list[str], two_way: frozenset[str] = frozenset()) -> str:
    """The stub API's template; the routes in `two_way` with a route response, as template.yaml declares one."""
    route_resources = "".join(
        textwrap.dedent(f"""
          Route{index}:
            Type: AWS::ApiGatewayV2::Route
            Properties:
              ApiId: !Ref ChatApi
              RouteKey: {key}
              {"AuthorizationType: CUSTOM" if key == "$connect" else "AuthorizationType: NONE"}
              {"AuthorizerId: !Ref ChatAuthorizer" if key == "$connect" else ""}
              Target: !Sub "integrations/${{ChatIntegration}}"
              {"RouteResponseSelectionExpression: $default" if key in two_way else ""}
        """).replace("\n", "\n  ")
        + (
            textwrap.dedent(f"""
              Route{index}Response:
                Type: AWS::ApiGatewayV2::RouteResponse
                Properties:
                  ApiId: !Ref ChatApi
                  RouteId: !Ref Route{index}
                  RouteResponseKey: $default
            """).replace("\n", "\n  ")
            if key in two_way
            else ""
        )
        for index, key in enumerate(routes)
    )
    return (
        textwrap.dedent(f"""
        Transform: AWS::Serverless-2016-10-31
        Parameters:
          Stage:
            Type: String
            Default: test
        Globals:
          Function:
            Timeout: 7
            MemorySize: 256
        Resources:
          ChatApi:
            Type: AWS::ApiGatewayV2::Api
            Properties:
              ProtocolType: WEBSOCKET
              RouteSelectionExpression: $request.body.action
          ChatStage:
            Type: AWS::ApiGatewayV2::Stage
            Properties:
              ApiId: !Ref ChatApi
              StageName: !Ref Stage
          ChatAuthorizer:
            Type: AWS::ApiGatewayV2::Authorizer
            Properties:
              ApiId: !Ref ChatApi
              AuthorizerType: REQUEST
              AuthorizerUri: !Sub "{LAMBDA_PATH}/${{AuthFunction.Arn}}/invocations"
          ChatIntegration:
            Type: AWS::ApiGatewayV2::Integration
            Properties:
              ApiId: !Ref ChatApi
              IntegrationType: AWS_PROXY
              IntegrationUri: !Sub "{LAMBDA_PATH}/${{ChatFunction.Arn}}/invocations"
          AuthFunction:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: {folder / "authorizer"}
              Handler: app.lambda_handler
          ChatFunction:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: {folder / "chat"}
              Handler: app.lambda_handler
              Timeout: 9
    """)
        + route_resources
    )


STUB_ROUTES = ["$connect", "$disconnect", "$default", "sendMessage", "echo", "whoami", "boom"]


def write_stub_api(
    folder: Path, routes: list[str] = STUB_ROUTES, two_way: frozenset[str] = frozenset()
) -> tuple[WebSocketApi, Path]:
    events = folder / "events.jsonl"
    events.write_text("")
    for name, source in (("authorizer", AUTHORIZER_SOURCE), ("chat", FUNCTION_SOURCE)):
        (folder / name).mkdir(exist_ok=True)
        (folder / name / "app.py").write_text(source.format(events=str(events), record=RECORD_SOURCE))
    template = folder / "template.yaml"
    template.write_text(_template(folder, routes, two_way))
    return websocket_api(template), events


class Recorder:
    """The events the stubs wrote, read back (the functions may run in other processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def all(self) -> list[dict[str, Any]]:
        # A line still being written (no newline yet) is read on the next call, not half now.
        lines = self.path.read_text().split("\n")[:-1]
        return [json.loads(line) for line in lines if line]

    def events(self, function: str = "websocket", route: str | None = None) -> list[dict[str, Any]]:
        return [
            entry["event"]
            for entry in self.all()
            if entry["function"] == function
            and (route is None or entry["event"].get("requestContext", {}).get("routeKey") == route)
        ]

    def wait_for(self, route: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(found := self.events(route=route)) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"{count} {route} event(s) expected, got {self.events(route=route)}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def stub_api(tmp_path_factory: pytest.TempPathFactory) -> tuple[WebSocketApi, Recorder]:
    api, events = write_stub_api(tmp_path_factory.mktemp("ws-stubs"))
    return api, Recorder(events)


@pytest.fixture(scope="module")
def gateway_app(stub_api: tuple[WebSocketApi, Recorder]) -> Starlette:
    return create_websocket_app(stub_api[0], in_process=True)


@pytest.fixture(scope="module")
def gateway(gateway_app: Starlette) -> Iterator[WebSocketEndpoints]:
    port = free_port()
    previous = os.environ.get("WEBSOCKET_MANAGEMENT_ENDPOINT")
    os.environ["WEBSOCKET_MANAGEMENT_ENDPOINT"] = f"http://127.0.0.1:{port}"
    try:
        with running_websocket_gateway(gateway_app, port=port) as endpoints:
            yield endpoints
    finally:
        if previous is None:
            os.environ.pop("WEBSOCKET_MANAGEMENT_ENDPOINT", None)
        else:
            os.environ["WEBSOCKET_MANAGEMENT_ENDPOINT"] = previous


@pytest.fixture(autouse=True)
def connections_finished(gateway_app: Starlette) -> Iterator[None]:
    """Each test's connections are over (their $disconnect returned) before the next test starts."""
    yield
    deadline = time.monotonic() + 5
    while gateway_app.state.live_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not gateway_app.state.live_connections


@pytest.fixture
def recorder(stub_api: tuple[WebSocketApi, Recorder]) -> Recorder:
    recorder = stub_api[1]
    recorder.path.write_text("")
    return recorder


def management(endpoints: WebSocketEndpoints) -> Any:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoints.management_endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def open_socket(endpoints: WebSocketEndpoints, query: str = "token=good", **kwargs: Any) -> ClientConnection:
    return connect(
        f"{endpoints.websocket_url}/?{query}",
        ping_interval=None,
        user_agent_header="ws-test/1.0",
        open_timeout=10,
        **kwargs,
    )


def connection_id_of(recorder: Recorder) -> str:
    return str(recorder.wait_for("$connect")[-1]["requestContext"]["connectionId"])


def refusal(endpoints: WebSocketEndpoints, query: str) -> tuple[int, Any]:
    with pytest.raises(InvalidStatus) as refused:
        open_socket(endpoints, query)
    response = refused.value.response
    return response.status_code, json.loads(response.body or b"null")


def wait_closed(ws: ClientConnection, timeout: float = 5.0) -> tuple[int | None, str | None]:
    """The close code and reason the client got, once the gateway closed the connection."""
    try:
        while True:
            ws.recv(timeout=timeout)
    except ConnectionClosed:
        return ws.close_code, ws.close_reason


# --- the template ---------------------------------------------------------------------------------------


def test_the_templates_websocket_routes_are_read_from_template_yaml() -> None:
    api = websocket_api(TEMPLATE)
    assert api.logical_id == "WebSocketApi"
    assert api.route_selection_expression == "$request.body.action"
    assert api.stage == "dev"
    assert [route.route_key for route in api.routes] == ["$connect", "$disconnect", "$default", *ACTIONS]
    for route in api.routes:
        assert route.function.logical_id == "WebSocketFunction"
        assert route.function.code_uri == "functions/websocket/"
        assert route.function.handler == "app.lambda_handler"
        assert route.function.timeout_seconds == 10  # from Globals
        assert route.two_way is (route.route_key not in {"$connect", "$disconnect", "typing"})  # typing answers nothing
        if route.route_key == "$connect":
            assert route.authorizer is not None
            assert route.authorizer.logical_id == "WebSocketAuthorizerFunction"
            assert route.authorizer.code_uri == "functions/ws_authorizer/"
        else:
            assert route.authorizer is None


def test_a_route_added_to_the_template_is_served_without_more_wiring(
    tmp_path: Path, gateway: WebSocketEndpoints
) -> None:
    # Given a template whose API gains a route ("echo" is not in the chat protocol)
    api, _ = write_stub_api(tmp_path, ["$connect", "$default", "echo"])
    assert [route.route_key for route in api.routes] == ["$connect", "$default", "echo"]
    assert api.route("echo") is not None and api.route("echo").function.timeout_seconds == 9  # type: ignore[union-attr]
    assert api.route("$connect").authorizer.logical_id == "AuthFunction"  # type: ignore[union-attr]
    assert api.stage == "test"
    # Then the gateway serves it (the module's gateway was made the same way): an echo comes back
    with open_socket(gateway) as ws:
        ws.send(json.dumps({"action": "echo", "parts": ["hello"]}))
        assert json.loads(ws.recv(timeout=5)) == {"echo": "hello"}


# --- $connect: the authorizer and the integration ----------------------------------------------------------


def test_connect_runs_the_authorizer_then_the_connect_route_with_api_gateways_events(
    gateway: WebSocketEndpoints, recorder: Recorder
) -> None:
    with open_socket(gateway, "token=good&tag=a&tag=b", additional_headers={"X-Custom": "yes"}) as ws:
        ws.send(json.dumps({"action": "whoami"}))
        reply = json.loads(ws.recv(timeout=5))

    # The authorizer's event: the documented REQUEST shape, keys for keys
    (auth_event,) = recorder.events("authorizer")
    assert set(auth_event) == DOCUMENTED_AUTHORIZER_KEYS
    assert set(auth_event["requestContext"]) == DOCUMENTED_AUTHORIZER_CONTEXT_KEYS
    assert auth_event["type"] == "REQUEST"
    assert auth_event["methodArn"] == f"arn:aws:execute-api:us-east-1:123456789012:{WS_API_ID}/test/$connect"
    assert auth_event["queryStringParameters"] == {"token": "good", "tag": "b"}
    assert auth_event["multiValueQueryStringParameters"] == {"token": ["good"], "tag": ["a", "b"]}
    assert auth_event["headers"]["x-custom"] == "yes"
    assert auth_event["multiValueHeaders"]["x-custom"] == ["yes"]
    assert auth_event["stageVariables"] == {}
    context = auth_event["requestContext"]
    assert context["routeKey"] == "$connect"
    assert context["eventType"] == "CONNECT"
    assert context["messageDirection"] == "IN"
    assert context["stage"] == "test"
    assert context["apiId"] == WS_API_ID
    assert context["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "ws-test/1.0"}
    assert abs(context["connectedAt"] / 1000 - time.time()) < 60
    assert context["requestTimeEpoch"] >= context["connectedAt"]
    assert context["requestId"] and context["extendedRequestId"] and context["requestTime"]
    assert re.fullmatch(r"[A-Za-z0-9]{15}=", context["connectionId"])  # shaped like API Gateway's

    # The $connect integration's event: same connection, the policy's context as the authorizer
    (connect_event,) = recorder.events(route="$connect")
    assert set(connect_event) >= CONNECT_EVENT_KEYS
    assert connect_event["queryStringParameters"] == {"token": "good", "tag": "b"}
    assert connect_event["multiValueQueryStringParameters"]["tag"] == ["a", "b"]
    assert connect_event["headers"]["x-custom"] == "yes"
    connect_context = connect_event["requestContext"]
    assert set(connect_context) == DOCUMENTED_AUTHORIZER_CONTEXT_KEYS | {"authorizer"}
    assert connect_context["connectionId"] == context["connectionId"]
    assert connect_context["eventType"] == "CONNECT"
    expected_authorizer = {"tenantId": "t-1", "role": "agent", "level": 3, "vip": True, "principalId": "agent-7"}
    assert connect_context["authorizer"] == expected_authorizer

    # And every later event of the connection carries it too
    assert reply == {"authorizer": expected_authorizer, "function": "ChatFunction"}


def test_the_source_ip_is_the_tcp_peer_whatever_x_forwarded_for_says(
    gateway: WebSocketEndpoints, recorder: Recorder
) -> None:
    """`identity.sourceIp` is the address of the TCP connection, in every event and in the management API, never a
    forged X-Forwarded-For (the header reaches `$connect` with the peer appended)."""
    with open_socket(gateway, additional_headers={"X-Forwarded-For": "203.0.113.66"}) as ws:
        ws.send(json.dumps({"action": "sendMessage"}))
        recorder.wait_for("sendMessage")
        conn_id = connection_id_of(recorder)
        seen = management(gateway).get_connection(ConnectionId=conn_id)["Identity"]["SourceIp"]
    recorder.wait_for("$disconnect")

    (auth_event,) = recorder.events("authorizer")
    events = [auth_event, *recorder.events()]
    assert [e["requestContext"]["identity"]["sourceIp"] for e in events] == ["127.0.0.1"] * 4
    assert seen == "127.0.0.1"
    (connect_event,) = recorder.events(route="$connect")
    for event in (auth_event, connect_event):
        assert event["headers"]["x-forwarded-for"] == "203.0.113.66, 127.0.0.1"
        assert event["multiValueHeaders"]["x-forwarded-for"] == ["203.0.113.66, 127.0.0.1"]


def test_an_allow_on_a_wildcard_resource_lets_the_connection_in(gateway: WebSocketEndpoints) -> None:
    with open_socket(gateway, "token=wildcard") as ws:
        ws.send(json.dumps({"action": "whoami"}))
        assert json.loads(ws.recv(timeout=5))["authorizer"] == {"principalId": "agent-8"}


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("token=deny", 403, "Forbidden"),
        ("token=other-resource", 403, "Forbidden"),  # an Allow that does not cover $connect
        ("token=nope", 401, "Unauthorized"),  # raise Exception("Unauthorized")
        ("", 401, "Unauthorized"),
        ("token=bug", 500, "Internal server error"),  # any other error: API Gateway's 500
        ("token=not-a-policy", 500, "Internal server error"),
        ("token=nested-context", 500, "Internal server error"),  # context values must be scalars
    ],
    ids=["deny", "allow-elsewhere", "unauthorized", "no-token", "authorizer-bug", "no-policy", "nested-context"],
)
def test_a_refused_authorizer_answer_refuses_the_upgrade_before_connect(
    gateway: WebSocketEndpoints,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
    query: str,
    status: int,
    message: str,
) -> None:
    assert refusal(gateway, query) == (status, {"message": message})
    assert len(recorder.events("authorizer")) == 1
    assert recorder.events(route="$connect") == []
    assert recorder.events(route="$disconnect") == []
    assert [r.getMessage() for r in caplog.records if r.name.startswith("uvicorn") and r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize(("answer", "status"), [("refuse", 403), ("boom", 500)])
def test_a_connect_route_that_refuses_or_fails_refuses_the_connection(
    gateway: WebSocketEndpoints, recorder: Recorder, answer: str, status: int
) -> None:
    assert refusal(gateway, f"token=good&connect={answer}")[0] == status
    (connect_event,) = recorder.events(route="$connect")
    # the connection never existed: the management API does not know it, $disconnect does not run
    with pytest.raises(management(gateway).exceptions.GoneException):
        management(gateway).get_connection(ConnectionId=connect_event["requestContext"]["connectionId"])
    assert recorder.events(route="$disconnect") == []


# --- messages ------------------------------------------------------------------------------------------------


def test_messages_are_routed_by_their_action_and_the_rest_go_to_default(
    gateway: WebSocketEndpoints, recorder: Recorder
) -> None:
    with open_socket(gateway) as ws:
        for body in (
            json.dumps({"action": "sendMessage", "text": "hi"}),
            json.dumps({"action": "noSuchAction"}),
            "not json at all",
            json.dumps(["action", "sendMessage"]),
            json.dumps({"text": "no action"}),
        ):
            ws.send(body)
        conn_id = connection_id_of(recorder)
        recorder.wait_for("$default", 4)

    messages = [e for e in recorder.events() if e["requestContext"]["eventType"] == "MESSAGE"]
    assert [e["requestContext"]["routeKey"] for e in messages] == [
        "sendMessage",
        "$default",
        "$default",
        "$default",
        "$default",
    ]
    assert messages[0]["body"] == json.dumps({"action": "sendMessage", "text": "hi"})
    assert messages[2]["body"] == "not json at all"
    for event in messages:
        assert set(event) == MESSAGE_EVENT_KEYS
        assert set(event["requestContext"]) == MESSAGE_CONTEXT_KEYS
        assert event["isBase64Encoded"] is False
        assert event["requestContext"]["connectionId"] == conn_id
        assert event["requestContext"]["authorizer"]["principalId"] == "agent-7"
    assert len({e["requestContext"]["messageId"] for e in messages}) == len(messages)


def test_a_failing_route_answers_the_client_as_api_gateway_does(
    gateway: WebSocketEndpoints, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="local.gateway"), open_socket(gateway) as ws:
        ws.send(json.dumps({"action": "boom"}))
        reply = json.loads(ws.recv(timeout=5))
        conn_id = connection_id_of(recorder)
        # and the connection stays usable
        ws.send(json.dumps({"action": "echo", "parts": ["still here"]}))
        assert json.loads(ws.recv(timeout=5)) == {"echo": "still here"}
    assert reply["message"] == "Internal server error"
    assert reply["connectionId"] == conn_id
    assert reply["requestId"]
    assert "ZeroDivisionError: a bug in the handler" in caplog.text


def test_the_client_closing_invokes_disconnect_once_with_its_code_and_reason(
    gateway: WebSocketEndpoints, recorder: Recorder
) -> None:
    with open_socket(gateway) as ws:
        ws.send(json.dumps({"action": "sendMessage"}))
        conn_id = connection_id_of(recorder)
        ws.close(code=4000, reason="bye now")
    (event,) = recorder.wait_for("$disconnect")
    context = event["requestContext"]
    assert set(context) == DISCONNECT_CONTEXT_KEYS
    assert context["eventType"] == "DISCONNECT"
    assert context["connectionId"] == conn_id
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (4000, "bye now")
    assert context["authorizer"]["principalId"] == "agent-7"
    # the message before the close was invoked before $disconnect, and $disconnect only once
    routes = [e["requestContext"]["routeKey"] for e in recorder.events()]
    assert routes == ["$connect", "sendMessage", "$disconnect"]
    time.sleep(0.2)
    assert len(recorder.events(route="$disconnect")) == 1


# --- API Gateway's limits ----------------------------------------------------------------------------------------


def test_a_frame_over_32_kb_closes_the_connection_with_1009(gateway: WebSocketEndpoints, recorder: Recorder) -> None:
    with open_socket(gateway) as ws:
        ws.send(json.dumps({"action": "sendMessage", "text": "x" * MAX_FRAME_BYTES}))  # one frame, just over
        assert wait_closed(ws)[0] == 1009
    (event,) = recorder.wait_for("$disconnect")
    assert event["requestContext"]["disconnectStatusCode"] == 1009
    assert recorder.events(route="sendMessage") == []


def test_a_fragmented_message_up_to_128_kb_is_one_message(gateway: WebSocketEndpoints, recorder: Recorder) -> None:
    # A non-browser client may fragment: frames of 30 KB, 120 KB in all, arrive as one message
    body = json.dumps({"action": "sendMessage", "text": "y" * (120 * 1024 - 40)})
    with open_socket(gateway) as ws:
        ws.send(body[i : i + 30 * 1024] for i in range(0, len(body), 30 * 1024))
        (event,) = recorder.wait_for("sendMessage")
    assert event["body"] == body


def test_a_fragmented_message_over_128_kb_closes_the_connection_with_1009(
    gateway: WebSocketEndpoints, recorder: Recorder
) -> None:
    body = "z" * (MAX_MESSAGE_BYTES + 1)
    with open_socket(gateway) as ws:
        ws.send(body[i : i + 30 * 1024] for i in range(0, len(body), 30 * 1024))
        assert wait_closed(ws)[0] == 1009
    recorder.wait_for("$disconnect")
    assert [e for e in recorder.events() if e["requestContext"]["eventType"] == "MESSAGE"] == []


def test_a_binary_frame_closes_the_connection_with_1003(gateway: WebSocketEndpoints, recorder: Recorder) -> None:
    with open_socket(gateway) as ws:
        ws.send(b"\x00\x01binary")
        assert wait_closed(ws)[0] == 1003
    (event,) = recorder.wait_for("$disconnect")
    assert event["requestContext"]["disconnectStatusCode"] == 1003


@pytest.fixture
def short_lived(stub_api: tuple[WebSocketApi, Recorder]) -> Iterator[WebSocketEndpoints]:
    app = create_websocket_app(stub_api[0], in_process=True, idle_timeout_seconds=0.4, max_connection_seconds=1.2)
    with running_websocket_gateway(app, port=0) as endpoints:
        yield endpoints


def test_an_idle_connection_is_closed_after_the_idle_timeout(
    short_lived: WebSocketEndpoints, recorder: Recorder
) -> None:
    with open_socket(short_lived) as ws:
        opened = time.monotonic()
        assert wait_closed(ws) == (1001, "Going away")
        assert 0.3 < time.monotonic() - opened < 1.0
    (event,) = recorder.wait_for("$disconnect")
    assert event["requestContext"]["disconnectStatusCode"] == 1001


def test_an_active_connection_is_closed_at_the_connection_limit(
    short_lived: WebSocketEndpoints, recorder: Recorder
) -> None:
    with open_socket(short_lived) as ws:
        opened = time.monotonic()
        closed = False
        while not closed and time.monotonic() - opened < 5:
            try:  # a message every 0.2 s keeps it from idling
                ws.send(json.dumps({"action": "sendMessage"}))
                time.sleep(0.2)
            except ConnectionClosed:
                closed = True
        assert closed
        assert ws.close_code == 1001
        assert 1.1 < time.monotonic() - opened < 2.0
    recorder.wait_for("$disconnect")
    assert len(recorder.events(route="sendMessage")) >= 4


def test_tokens_never_reach_the_logs(stub_api: tuple[WebSocketApi, Recorder], recorder: Recorder) -> None:
    # Given a gateway with uvicorn's access log on, as `make run` has it
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "uvicorn.access", "local.gateway")]
    app = create_websocket_app(stub_api[0], in_process=True)
    with running_websocket_gateway(app, port=0, access_log=True) as endpoints:
        for log in loggers:
            log.addHandler(keep)
        try:
            # When a connection is made, one refused, and the management API called, all with tokens
            with open_socket(endpoints, "token=good&visitorToken=s3cr3t-visitor") as ws:
                ws.send(json.dumps({"action": "boom"}))
                ws.recv(timeout=5)
            refusal(endpoints, "token=deny&visitorToken=s3cr3t-visitor")
            httpx.get(f"{endpoints.management_endpoint}/@connections/x?token=s3cr3t-mgmt", timeout=5)
            recorder.wait_for("$disconnect")
        finally:
            for log in loggers:
                log.removeHandler(keep)

    # Then the logs say what happened, and no token
    text = "\n".join(record.getMessage() for record in records)
    assert "WebSocket" in text and "[accepted]" in text
    assert "s3cr3t" not in text
    assert "token=good" not in text
    assert "token=[redacted]" in text


# --- the management API, through boto3 ----------------------------------------------------------------------------


def test_post_to_connection_reaches_the_client_one_message_per_post(
    gateway: WebSocketEndpoints, recorder: Recorder
) -> None:
    client = management(gateway)
    with open_socket(gateway) as ws:
        conn_id = connection_id_of(recorder)
        for number in range(5):
            client.post_to_connection(ConnectionId=conn_id, Data=json.dumps({"n": number}).encode())
        client.post_to_connection(ConnectionId=conn_id, Data="héllo")
        received = [ws.recv(timeout=5) for _ in range(6)]
    assert received == [json.dumps({"n": n}) for n in range(5)] + ["héllo"]


def test_a_function_fans_out_through_the_management_api(gateway: WebSocketEndpoints) -> None:
    # The production path: the function's own boto3 client, endpoint from WEBSOCKET_MANAGEMENT_ENDPOINT
    with open_socket(gateway) as ws:
        ws.send(json.dumps({"action": "echo", "parts": ["a", "b", "c"]}))
        assert [json.loads(ws.recv(timeout=5)) for _ in range(3)] == [{"echo": "a"}, {"echo": "b"}, {"echo": "c"}]


def test_get_connection_answers_when_and_who(gateway: WebSocketEndpoints, recorder: Recorder) -> None:
    with open_socket(gateway) as ws:
        conn_id = connection_id_of(recorder)
        first = management(gateway).get_connection(ConnectionId=conn_id)
        time.sleep(0.05)
        ws.send(json.dumps({"action": "sendMessage"}))
        recorder.wait_for("sendMessage")
        later = management(gateway).get_connection(ConnectionId=conn_id)
    assert first["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "ws-test/1.0"}
    assert abs(first["ConnectedAt"].timestamp() - time.time()) < 60
    assert first["LastActiveAt"] == first["ConnectedAt"]
    assert later["LastActiveAt"] > first["LastActiveAt"]
    raw = httpx.get(f"{gateway.management_endpoint}/@connections/{conn_id}", timeout=5)
    assert raw.status_code == 410  # closed by now


def test_delete_connection_closes_it_and_runs_disconnect(gateway: WebSocketEndpoints, recorder: Recorder) -> None:
    client = management(gateway)
    with open_socket(gateway) as ws:
        conn_id = connection_id_of(recorder)
        reply = client.delete_connection(ConnectionId=conn_id)
        assert reply["ResponseMetadata"]["HTTPStatusCode"] == 204
        assert wait_closed(ws)[0] == 1000
    (event,) = recorder.wait_for("$disconnect")
    assert event["requestContext"]["connectionId"] == conn_id
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=conn_id, Data=b"too late")


def test_an_unknown_connection_is_gone(gateway: WebSocketEndpoints) -> None:
    client = management(gateway)
    for call in (
        lambda: client.post_to_connection(ConnectionId="AAAAAAAAAAAAAA=", Data=b"x"),
        lambda: client.get_connection(ConnectionId="AAAAAAAAAAAAAA="),
        lambda: client.delete_connection(ConnectionId="AAAAAAAAAAAAAA="),
    ):
        with pytest.raises(client.exceptions.GoneException):
            call()
    raw = httpx.post(f"{gateway.management_endpoint}/@connections/nobody", content=b"x", timeout=5)
    assert raw.status_code == 410
    assert raw.headers["x-amzn-errortype"] == "GoneException"
    assert raw.json() == {"message": None}


def test_a_post_over_128_kb_is_refused(gateway: WebSocketEndpoints, recorder: Recorder) -> None:
    client = management(gateway)
    with open_socket(gateway):
        conn_id = connection_id_of(recorder)
        with pytest.raises(client.exceptions.PayloadTooLargeException):
            client.post_to_connection(ConnectionId=conn_id, Data=b"x" * (MAX_MESSAGE_BYTES + 1))


def test_the_management_api_is_also_served_under_a_stage(gateway: WebSocketEndpoints, recorder: Recorder) -> None:
    staged = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=f"{gateway.management_endpoint}/test",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    with open_socket(gateway) as ws:
        staged.post_to_connection(ConnectionId=connection_id_of(recorder), Data=b"staged")
        assert ws.recv(timeout=5) == "staged"


def test_the_fan_out_posts_and_closes_through_the_local_management_api(
    gateway: WebSocketEndpoints, recorder: Recorder
) -> None:
    # The functions' own client (support.realtime: SigV4 over a urllib3 pool), with a staged endpoint as in AWS
    api = ManagementApi(
        f"{gateway.management_endpoint}/test", region="us-east-1", credentials=Credentials("local", "local", "token")
    )
    with open_socket(gateway) as ws:
        conn_id = connection_id_of(recorder)
        api.post_to_connection(conn_id, "héllo".encode())
        assert ws.recv(timeout=5) == "héllo"
        api.delete_connection(conn_id)
        assert wait_closed(ws)[0] == 1000
    recorder.wait_for("$disconnect")
    with pytest.raises(ConnectionGone):
        api.post_to_connection(conn_id, b"too late")
    with pytest.raises(ConnectionGone):
        api.delete_connection(conn_id)


# --- route responses (two-way routes) ---------------------------------------------------------------------------------


def test_route_responses_are_read_from_the_template(tmp_path: Path) -> None:
    api, _ = write_stub_api(tmp_path, ["$connect", "$default", "answer"], frozenset({"$default", "answer"}))
    assert {route.route_key: route.two_way for route in api.routes} == {
        "$connect": False,
        "$default": True,
        "answer": True,
    }
    assert api.route("answer").route_response_keys == ("$default",)  # type: ignore[union-attr]
    assert api.route("answer").route_response_selection_expression == "$default"  # type: ignore[union-attr]


def test_a_route_response_needs_its_selection_expression_and_api_gateways_only_key(tmp_path: Path) -> None:
    write_stub_api(tmp_path, ["$connect", "answer"], frozenset({"answer"}))
    template = tmp_path / "template.yaml"
    declared = template.read_text()
    template.write_text(declared.replace("RouteResponseSelectionExpression: $default", ""))
    with pytest.raises(TemplateError, match="two-way route"):
        websocket_api(template)
    template.write_text(declared.replace("RouteResponseKey: $default", "RouteResponseKey: ok"))
    with pytest.raises(TemplateError, match="RouteResponseKey must be"):
        websocket_api(template)
    template.write_text(declared.replace("RouteId: !Ref Route1", "RouteId: !Ref Nowhere"))
    with pytest.raises(TemplateError, match="RouteId must be"):
        websocket_api(template)


def test_a_two_way_route_sends_the_results_body_after_the_invocation_and_a_one_way_route_nothing(
    tmp_path: Path,
) -> None:
    # Given routes with a route response (answer, binary, silent, $default) and one without (answerOneWay)
    routes = ["$connect", "$disconnect", "$default", "answer", "answerOneWay", "binary", "silent"]
    api, events = write_stub_api(tmp_path, routes, frozenset({"$default", "answer", "binary", "silent"}))
    recorder = Recorder(events)
    port = free_port()
    os.environ["WEBSOCKET_MANAGEMENT_ENDPOINT"] = f"http://127.0.0.1:{port}"
    try:
        with (
            running_websocket_gateway(create_websocket_app(api, in_process=True), port=port) as endpoints,
            open_socket(endpoints) as ws,
        ):
            # Then the body comes as one text message when the function returns: after what it posted meanwhile
            ws.send(json.dumps({"action": "answer"}))
            assert [json.loads(ws.recv(timeout=5)) for _ in range(2)] == [{"posted": "answer"}, {"answered": "answer"}]
            # A one-way route's result goes nowhere: only its post arrives
            ws.send(json.dumps({"action": "answerOneWay"}))
            assert json.loads(ws.recv(timeout=5)) == {"posted": "answerOneWay"}
            # A base64 body is decoded; a result without a body is an empty message, as API Gateway answers every
            # message of a two-way route
            ws.send(json.dumps({"action": "binary"}))
            assert ws.recv(timeout=5) == "héllo"
            ws.send(json.dumps({"action": "silent"}))
            assert ws.recv(timeout=5) == ""
            ws.send("not json")  # $default, two-way: the stub returns no body
            assert ws.recv(timeout=5) == ""
            with pytest.raises(TimeoutError):  # and nothing else came
                ws.recv(timeout=0.3)
        recorder.wait_for("$disconnect")
    finally:
        os.environ.pop("WEBSOCKET_MANAGEMENT_ENDPOINT", None)
    assert len(recorder.events(route="answerOneWay")) == 1


def test_a_two_way_routes_failure_is_api_gateways_error_not_a_route_response(tmp_path: Path) -> None:
    api, _ = write_stub_api(tmp_path, ["$connect", "boom"], frozenset({"boom"}))
    with (
        running_websocket_gateway(create_websocket_app(api, in_process=True), port=free_port()) as endpoints,
        open_socket(endpoints) as ws,
    ):
        ws.send(json.dumps({"action": "boom"}))
        assert json.loads(ws.recv(timeout=5))["message"] == "Internal server error"
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)


# --- worker processes ------------------------------------------------------------------------------------------------


def test_the_websocket_functions_run_in_worker_processes(tmp_path: Path) -> None:
    # Given the stub API served with the default execution environments (worker pools)
    api, events = write_stub_api(tmp_path)
    recorder = Recorder(events)
    port = free_port()
    os.environ["WEBSOCKET_MANAGEMENT_ENDPOINT"] = f"http://127.0.0.1:{port}"  # inherited by the workers
    try:
        with running_websocket_gateway(create_websocket_app(api), port=port) as endpoints:
            # When a client connects, fans out through its function, and closes
            with open_socket(endpoints) as ws:
                ws.send(json.dumps({"action": "echo", "parts": ["from a worker"]}))
                assert json.loads(ws.recv(timeout=10)) == {"echo": "from a worker"}
            recorder.wait_for("$disconnect", timeout=10)
    finally:
        os.environ.pop("WEBSOCKET_MANAGEMENT_ENDPOINT", None)
    # Then the function ran outside the test process
    pids = {entry["pid"] for entry in recorder.all() if entry["function"] == "websocket"}
    assert pids and os.getpid() not in pids


def test_the_template_websocket_api_is_served_once_its_code_is_there(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # As `make run` starts it: from a template, in worker pools, on a port of its own
    _, events = write_stub_api(tmp_path, ["$connect", "$default"])
    template = tmp_path / "template.yaml"
    with running_template_websocket_api(0, template=template) as endpoints:
        assert endpoints is not None
        with open_socket(endpoints) as ws:
            ws.send("hello")
            Recorder(events).wait_for("$default", timeout=10)
    # while a function's code folder does not exist yet, the WebSocket API is left out, with a warning
    (tmp_path / "chat" / "app.py").rename(tmp_path / "app.py")
    (tmp_path / "chat").rmdir()
    with (
        caplog.at_level(logging.WARNING, logger="local.gateway"),
        running_template_websocket_api(0, template=template) as none,
    ):
        assert none is None
    assert f"no code at {tmp_path / 'chat'} yet" in caplog.text


def test_a_missing_identity_source_is_401_without_invoking_the_authorizer() -> None:
    # API Gateway checks a REQUEST authorizer's declared identity sources before it invokes the function
    calls: list[dict[str, Any]] = []

    def invoke(event: dict[str, Any]) -> Any:
        calls.append(event)
        return {
            "principalId": "p",
            "policyDocument": {"Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"}]},
        }

    def event(query: str) -> dict[str, Any]:
        return build_websocket_authorizer_event(
            headers=[("host", "localhost")], raw_query_string=query, request_context={}, api_id="a", stage="s"
        )

    sources = ("route.request.querystring.token",)
    assert run_request_authorizer(invoke, event("other=1"), identity_sources=sources).status == 401
    assert calls == []
    assert run_request_authorizer(invoke, event("token=t"), identity_sources=sources).status == 200
    assert len(calls) == 1
