"""The local gateway itself, over real HTTP, with no database: a stub handler stands in for the functions
because the thing under test is what the gateway does around them (authorizer, routing, event, response).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest

from local.gateway import MAX_REQUEST_BYTES, JwtAuthorizer, create_app, running_gateway
from local.gateway.static import merchant_app
from local.jwt_keys import AUDIENCE, ISSUER, signing_key
from local.template import REPO, HttpRoute, cors_configuration
from local.token import mint_token

pytestmark = pytest.mark.e2e

TENANT = "11111111-1111-4111-8111-111111111111"
AGENT = "33333333-3333-4333-8333-333333333333"


class StubFunction:
    """Records each event and context; answers by route key."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.active = 0
        self.most_active = 0
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        with self._lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            return self._answer(event, context)
        finally:
            with self._lock:
                self.active -= 1

    def _answer(self, event: dict[str, Any], context: Any) -> Any:
        route = event["routeKey"]
        if route == "GET /stub/boom":
            raise ZeroDivisionError("a bug in the handler")
        if route == "GET /stub/slow":
            time.sleep(0.2)
        if route == "GET /stub/file":
            return {
                "statusCode": 201,
                "headers": {"Content-Type": "application/octet-stream", "X-Stub": "yes"},
                "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
                "body": base64.b64encode(b"\x00\xffbinary").decode(),
                "isBase64Encoded": True,
            }
        if route == "GET /stub/plain":
            return {"hello": "world"}  # no statusCode: API Gateway takes it as a JSON 200
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/json"},
            "body": json.dumps({"route": route, "remaining": context.get_remaining_time_in_millis()}),
        }


ROUTES = [
    HttpRoute("GET", "/stub/items/{itemId}", "StubFunction", "functions/stub/", "app.lambda_handler", 10, 512),
    HttpRoute("GET", "/stub/items/special", "StubFunction", "functions/stub/", "app.lambda_handler", 10, 512),
    HttpRoute("POST", "/stub/upload", "StubFunction", "functions/stub/", "app.lambda_handler", 10, 512),
    HttpRoute("GET", "/stub/boom", "StubFunction", "functions/stub/", "app.lambda_handler", 10, 512),
    HttpRoute("GET", "/stub/slow", "StubFunction", "functions/stub/", "app.lambda_handler", 10, 512),
    HttpRoute("GET", "/stub/file", "StubFunction", "functions/stub/", "app.lambda_handler", 10, 512),
    HttpRoute("GET", "/stub/plain", "StubFunction", "functions/stub/", "app.lambda_handler", 10, 512),
]


@pytest.fixture(scope="module")
def stub() -> StubFunction:
    return StubFunction()


@pytest.fixture(scope="module")
def gateway(stub: StubFunction) -> Iterator[str]:
    app = create_app(ROUTES, load_handler=lambda route: stub)
    with running_gateway(app) as base_url:
        yield base_url


@pytest.fixture
def client(gateway: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway, timeout=10) as http:
        yield http


def bearer(**overrides: Any) -> dict[str, str]:
    return {"authorization": f"Bearer {mint_token(TENANT, 'admin', **overrides)}"}


# --- the JWT authorizer ---------------------------------------------------------------------------


def test_no_token_is_401_and_the_handler_is_not_called(client: httpx.Client, stub: StubFunction) -> None:
    calls = len(stub.events)
    reply = client.get("/stub/items/1")
    assert reply.status_code == 401
    assert reply.json() == {"message": "Unauthorized"}
    assert len(stub.events) == calls


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-jwt", "Bearer", "Basic dXNlcjpwYXNz", "Bearer a.b.c"],
    ids=["garbage", "bearer-only", "basic", "three-dots"],
)
def test_a_malformed_token_is_401(client: httpx.Client, authorization: str) -> None:
    reply = client.get("/stub/items/1", headers={"authorization": authorization})
    assert reply.status_code == 401
    assert reply.json() == {"message": "Unauthorized"}


def test_an_expired_token_is_401(client: httpx.Client) -> None:
    reply = client.get("/stub/items/1", headers=bearer(expires_in=-30))
    assert reply.status_code == 401
    assert reply.json() == {"message": "Unauthorized"}
    assert "expired" in reply.headers["www-authenticate"]


@pytest.mark.parametrize(
    "overrides",
    [{"audience": "another-api"}, {"issuer": "https://evil.example.com/"}],
    ids=["wrong-audience", "wrong-issuer"],
)
def test_a_token_for_another_audience_or_issuer_is_401(client: httpx.Client, overrides: dict[str, Any]) -> None:
    reply = client.get("/stub/items/1", headers=bearer(**overrides))
    assert reply.status_code == 401


def test_a_token_signed_with_another_key_is_401(client: httpx.Client, tmp_path: Path) -> None:
    reply = client.get("/stub/items/1", headers=bearer(key_dir=tmp_path))
    assert reply.status_code == 401


def test_a_token_without_exp_is_401(client: httpx.Client) -> None:
    key = signing_key()
    token = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "tenant_id": TENANT, "role": "admin"},
        key.private_key,
        algorithm="RS256",
        headers={"kid": key.key_id},
    )
    reply = client.get("/stub/items/1", headers={"authorization": f"Bearer {token}"})
    assert reply.status_code == 401


def test_a_token_without_the_bearer_prefix_is_accepted(client: httpx.Client) -> None:
    # API Gateway's JWT authorizer takes the identity source's value with or without "Bearer ".
    reply = client.get("/stub/items/1", headers={"authorization": mint_token(TENANT, "admin")})
    assert reply.status_code == 200


# --- routing ----------------------------------------------------------------------------------------


def test_an_unknown_route_is_404_even_without_a_token(client: httpx.Client) -> None:
    assert client.get("/nowhere").status_code == 404
    reply = client.get("/nowhere", headers=bearer())
    assert reply.status_code == 404
    assert reply.json() == {"message": "Not Found"}


def test_a_known_path_with_another_method_is_404(client: httpx.Client) -> None:
    reply = client.delete("/stub/items/1", headers=bearer())
    assert reply.status_code == 404
    assert reply.json() == {"message": "Not Found"}


def test_a_literal_route_wins_over_a_parameter(client: httpx.Client) -> None:
    assert client.get("/stub/items/special", headers=bearer()).json()["route"] == "GET /stub/items/special"
    assert client.get("/stub/items/other", headers=bearer()).json()["route"] == "GET /stub/items/{itemId}"


# --- the event --------------------------------------------------------------------------------------


def test_the_event_is_a_payload_2_event_with_the_verified_claims(client: httpx.Client, stub: StubFunction) -> None:
    # Given a token for an agent and a request with a query, repeated headers and cookies
    headers = bearer(agent_id=AGENT, extra_claims={"scope": "tickets:read tickets:write"})
    headers["user-agent"] = "gateway-test/1.0"

    # When it is sent through the gateway
    reply = client.get(
        "/stub/items/abc%20def",
        params=[("status", "open"), ("tag", "a"), ("tag", "b"), ("empty", "")],
        headers=[*headers.items(), ("X-Trace", "one"), ("X-Trace", "two"), ("Cookie", "s=1; theme=dark")],
    )

    # Then the handler got the event API Gateway would have built
    assert reply.status_code == 200
    event, context = stub.events[-1], stub.contexts[-1]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /stub/items/{itemId}"
    assert event["rawPath"] == "/stub/items/abc%20def"
    assert event["rawQueryString"] == "status=open&tag=a&tag=b&empty="
    assert event["queryStringParameters"] == {"status": "open", "tag": "a,b", "empty": ""}
    assert event["pathParameters"] == {"itemId": "abc def"}
    assert event["headers"]["x-trace"] == "one,two"
    assert event["headers"]["user-agent"] == "gateway-test/1.0"
    assert all(name == name.lower() for name in event["headers"])
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["s=1", "theme=dark"]
    assert event["isBase64Encoded"] is False
    assert "body" not in event

    request_context = event["requestContext"]
    assert request_context["routeKey"] == event["routeKey"]
    assert request_context["stage"] == "$default"
    assert request_context["http"] == {
        "method": "GET",
        "path": "/stub/items/abc%20def",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "gateway-test/1.0",
    }
    assert request_context["domainName"] == "127.0.0.1"
    assert request_context["accountId"] and request_context["apiId"] and request_context["time"]
    assert abs(request_context["timeEpoch"] / 1000 - time.time()) < 60
    assert request_context["requestId"] == reply.headers["apigw-requestid"]

    claims = request_context["authorizer"]["jwt"]["claims"]
    assert claims["tenant_id"] == TENANT
    assert claims["role"] == "admin"
    assert claims["agent_id"] == AGENT
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert claims["exp"].isdigit() and claims["iat"].isdigit()  # numbers arrive as strings
    assert request_context["authorizer"]["jwt"]["scopes"] == ["tickets:read", "tickets:write"]

    # And a Lambda context of the function
    assert context.function_name == "StubFunction"
    assert context.memory_limit_in_mb == 512
    assert context.invoked_function_arn.endswith(":function:StubFunction")
    assert context.aws_request_id
    assert 0 < reply.json()["remaining"] <= 10_000


def test_the_source_ip_is_the_tcp_peer_whatever_x_forwarded_for_says(client: httpx.Client, stub: StubFunction) -> None:
    """API Gateway's `sourceIp` is the address of the TCP connection: a client's own X-Forwarded-For cannot choose
    it (the visitor IP a chat records, and any per-IP limit, read it). The header reaches the function with the
    peer appended, as a proxy appends the address it was called from."""
    reply = client.get("/stub/items/1", headers={**bearer(), "X-Forwarded-For": "203.0.113.66"})

    assert reply.status_code == 200
    event = stub.events[-1]
    assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"
    assert event["headers"]["x-forwarded-for"] == "203.0.113.66, 127.0.0.1"


# --- the listener --------------------------------------------------------------------------------


def test_the_listener_answers_its_own_host_names_only(gateway: str) -> None:
    """No other name reaches a local listener (DNS rebinding: a site pointing its name at 127.0.0.1), nor another
    port's; its own names do, in any case."""
    port = urlsplit(gateway).port
    other_port = port + 1 if port and port < 65535 else 1

    def status(host: str) -> int:
        return httpx.get(f"{gateway}/stub/items/1", headers={**bearer(), "Host": host}, timeout=10).status_code

    assert [status(f"{name}:{port}") for name in ("127.0.0.1", "localhost", "[::1]", "LocalHost")] == [200] * 4
    for host in ("rebind.evil.example:" + str(port), f"localhost:{other_port}", "localhost", f"127.0.0.2:{port}"):
        refused = httpx.get(f"{gateway}/stub/items/1", headers={**bearer(), "Host": host}, timeout=10)
        assert refused.status_code == 421, host
        assert refused.headers["content-type"].startswith("text/plain")
        assert f"localhost:{port}" in refused.text


def test_the_demo_shop_page_answers_its_own_host_names_only() -> None:
    app = merchant_app(widget_key="wk_x", api_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:2")
    with running_gateway(app) as shop:
        port = urlsplit(shop).port
        assert httpx.get(f"{shop}/", headers={"Host": f"localhost:{port}"}, timeout=10).status_code == 200
        rebound = httpx.get(f"{shop}/", headers={"Host": f"rebind.evil.example:{port}"}, timeout=10)
    assert rebound.status_code == 421 and "wk_x" not in rebound.text


def test_a_json_body_arrives_as_text(client: httpx.Client, stub: StubFunction) -> None:
    reply = client.post("/stub/upload", json={"subject": "héllo"}, headers=bearer())
    assert reply.status_code == 200
    event = stub.events[-1]
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == {"subject": "héllo"}


def test_a_binary_body_arrives_base64_encoded(client: httpx.Client, stub: StubFunction) -> None:
    payload = bytes(range(256))
    headers = {**bearer(), "content-type": "application/octet-stream"}
    reply = client.post("/stub/upload", content=payload, headers=headers)
    assert reply.status_code == 200
    event = stub.events[-1]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def chunks(total: int, size: int = 1024 * 1024) -> Iterator[bytes]:
    while total > 0:
        yield b"x" * min(size, total)
        total -= size


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_over_10_mb_is_413_and_never_reaches_the_handler(
    client: httpx.Client, stub: StubFunction, framing: str
) -> None:
    calls = len(stub.events)
    too_big = MAX_REQUEST_BYTES + 1
    content = b"x" * too_big if framing == "content-length" else chunks(too_big)
    try:
        reply = client.post("/stub/upload", content=content, headers=bearer())
    except httpx.TransportError:  # the server may close the connection before the client finishes
        pytest.fail("the gateway did not answer 413 to an oversized body")
    assert reply.status_code == 413
    assert reply.json() == {"message": "Request Entity Too Large"}
    assert len(stub.events) == calls


# --- the response ----------------------------------------------------------------------------------


def test_the_handler_result_becomes_the_http_response(client: httpx.Client) -> None:
    reply = client.get("/stub/file", headers=bearer())
    assert reply.status_code == 201
    assert reply.content == b"\x00\xffbinary"
    assert reply.headers["content-type"] == "application/octet-stream"
    assert reply.headers["x-stub"] == "yes"
    assert reply.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]


def test_a_result_without_status_code_is_a_json_200(client: httpx.Client) -> None:
    reply = client.get("/stub/plain", headers=bearer())
    assert reply.status_code == 200
    assert reply.json() == {"hello": "world"}


def test_a_handler_that_raises_is_500_and_logged(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("ERROR", logger="local.gateway"):
        reply = client.get("/stub/boom", headers=bearer())
    assert reply.status_code == 500
    assert reply.json() == {"message": "Internal Server Error"}
    assert "ZeroDivisionError: a bug in the handler" in caplog.text


def test_a_function_runs_one_invocation_at_a_time(gateway: str, stub: StubFunction) -> None:
    # Like one Lambda execution environment: the handler's module state (its one database connection,
    # the resolver's current event) is never shared by two requests at once.
    stub.most_active = 0
    headers = bearer()

    def call() -> None:
        with httpx.Client(base_url=gateway, timeout=10) as http:
            assert http.get("/stub/slow", headers=headers).status_code == 200

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stub.most_active == 1


def test_handlers_are_loaded_from_their_code_folder(tmp_path: Path) -> None:
    # Given a function whose code folder holds app.py
    (tmp_path / "app.py").write_text(
        "def lambda_handler(event, context):\n"
        "    return {'statusCode': 200, 'body': event['requestContext']['authorizer']['jwt']['claims']['role']}\n"
    )
    route = HttpRoute("GET", "/who", "WhoFunction", str(tmp_path), "app.lambda_handler")

    # When the gateway serves it with the default loader
    with running_gateway(create_app([route])) as base_url:
        reply = httpx.get(f"{base_url}/who", headers=bearer(), timeout=10)

    # Then the module was imported from that file
    assert reply.status_code == 200
    assert reply.text == "admin"


def test_cors_preflight_is_answered_before_the_authorizer(stub: StubFunction) -> None:
    # Given the gateway configured with the template's CORS settings
    app = create_app(ROUTES, load_handler=lambda route: stub, cors=cors_configuration())
    with running_gateway(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        # When a browser sends a preflight request, without a token
        preflight = http.options(
            "/stub/upload",
            headers={
                "origin": "https://desk.example.com",
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization,content-type",
            },
        )
        # Then it is allowed, and the real request carries CORS headers too
        assert preflight.status_code == 200
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert preflight.headers["access-control-allow-origin"] in ("*", "https://desk.example.com")
        actual = http.post("/stub/upload", json={}, headers={**bearer(), "origin": "https://desk.example.com"})
        assert actual.status_code == 200
        assert actual.headers["access-control-allow-origin"] in ("*", "https://desk.example.com")


# --- make token ------------------------------------------------------------------------------------


def run_token_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local.token", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_the_token_command_prints_a_token_the_gateway_accepts(client: httpx.Client) -> None:
    result = run_token_cli("--tenant", TENANT.upper(), "--role", "agent", "--agent", AGENT)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n", "the token alone on stdout"
    claims = jwt.decode(token, signing_key().public_key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)
    assert claims["tenant_id"] == TENANT
    assert claims["role"] == "agent"
    assert claims["agent_id"] == AGENT
    assert claims["exp"] - claims["iat"] == 3600
    assert client.get("/stub/items/1", headers={"authorization": f"Bearer {token}"}).status_code == 200


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--tenant", "not-a-uuid", "--role", "admin"], "not a UUID"),
        (["--tenant", "", "--role", "admin"], "not a UUID"),
        (["--tenant", TENANT, "--role", "owner"], "invalid choice"),
        (["--tenant", TENANT, "--role", "agent", "--agent", "42"], "not a UUID"),
        (["--role", "admin"], "--tenant"),
    ],
    ids=["bad-tenant", "empty-tenant", "bad-role", "bad-agent", "no-tenant"],
)
def test_the_token_command_refuses_bad_input(args: list[str], complaint: str) -> None:
    result = run_token_cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert complaint in result.stderr


def test_make_token_prints_only_a_token_the_gateway_accepts() -> None:
    tenant, agent = "a0000000-0000-4000-8000-00000000000a", "c0000000-0000-4000-8000-00000000000c"
    out = subprocess.run(
        ["make", "--no-print-directory", "token", f"TENANT={tenant}", "ROLE=agent", f"AGENT={agent}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert out.count("\n") == 1
    claims = JwtAuthorizer.local().claims(f"Bearer {out.strip()}")
    assert (claims["tenant_id"], claims["role"], claims["agent_id"]) == (tenant, "agent", agent)
