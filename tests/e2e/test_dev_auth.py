"""The local sign-in of the agent console (local/gateway/dev_auth.py) over real HTTP: the people it offers, the
tokens it signs (accepted by the HTTP API and the WebSocket API like `make token`'s), its refusals, and that the
gateway of the template alone does not serve it."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from local.demo_data import DEMO_TENANTS
from local.gateway import WebSocketEndpoints, create_app, running_gateway
from local.gateway.authorizers import JwtAuthorizer
from local.gateway.dev_auth import dev_auth_routes
from local.jwt_keys import AUDIENCE, ISSUER
from local.template import http_routes
from local.token import mint_token

REBIND = "rebind.evil.example"  # a site whose name the attacker points at 127.0.0.1 (DNS rebinding)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def sign_in_url(stack_ports: tuple[int, int]) -> Iterator[str]:
    """The gateway as `make run` builds it: the template's routes and, before them, the local sign-in."""
    port = _free_port()
    with running_gateway(create_app(http_routes(), extra_routes=dev_auth_routes(port)), port=port) as base:
        yield base


@pytest.fixture
def local(sign_in_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sign_in_url, timeout=10) as client:
        yield client


def _desk(client_for: Callable[..., httpx.Client], tenant: UUID) -> dict[str, str]:
    admin = client_for(tenant)
    made = {}
    for name in ("Zoe Zimmer", "Ada Abbott"):
        handle = name.split()[0].lower()
        answer = admin.post("/api/support/agents", json={"agentName": name, "agentEmail": f"{handle}@desk.example"})
        assert answer.status_code == 201, answer.text
        made[name] = answer.json()["data"]["id"]
    return made


def _sign_in(local: httpx.Client, **body: Any) -> httpx.Response:
    return local.post("/_local/token", json=body)


def test_it_lists_a_tenants_agents_by_name_and_the_demo_tenants_by_default(
    local: httpx.Client, client_for: Callable[..., httpx.Client], tenant: UUID
) -> None:
    made = _desk(client_for, tenant)

    answer = local.get("/_local/agents", params={"tenantId": str(tenant)})

    assert answer.status_code == 200
    (listed,) = answer.json()["data"]["tenants"]
    assert listed["tenantId"] == str(tenant)
    assert [(a["agentName"], a["id"], a["status"]) for a in listed["agents"]] == [
        ("Ada Abbott", made["Ada Abbott"], "offline"),
        ("Zoe Zimmer", made["Zoe Zimmer"], "offline"),
    ]
    demo = local.get("/_local/agents").json()["data"]["tenants"]
    assert {(t["name"], t["tenantId"]) for t in demo} == {(name, str(tid)) for name, tid in DEMO_TENANTS.items()}


def test_an_agent_token_it_signs_is_accepted_by_the_http_api_and_names_the_agent(
    local: httpx.Client, client_for: Callable[..., httpx.Client], tenant: UUID, gateway_url: str
) -> None:
    agent_id = _desk(client_for, tenant)["Ada Abbott"]

    answer = _sign_in(local, tenantId=str(tenant), role="agent", agentId=agent_id)

    assert answer.status_code == 201, answer.text
    data = answer.json()["data"]
    assert (data["tenantId"], data["role"], data["agentId"], data["agentName"]) == (
        str(tenant),
        "agent",
        agent_id,
        "Ada Abbott",
    )
    claims = JwtAuthorizer.local().claims(f"Bearer {data['token']}")
    assert (claims["iss"], claims["aud"], claims["tenant_id"], claims["role"], claims["agent_id"]) == (
        ISSUER,
        AUDIENCE,
        str(tenant),
        "agent",
        agent_id,
    )
    assert claims["exp"] - claims["iat"] == 3600
    as_agent = {"Authorization": f"Bearer {data['token']}"}
    with httpx.Client(base_url=gateway_url, headers=as_agent, timeout=10) as api:
        own = api.patch(f"/api/support/agents/{agent_id}/status", json={"status": "available"})
        assert own.status_code == 200, own.text
        assert own.json()["data"]["status"] == "available"
        colleague = _desk_colleague(client_for, tenant)
        assert api.patch(f"/api/support/agents/{colleague}/status", json={"status": "away"}).status_code == 403


def _desk_colleague(client_for: Callable[..., httpx.Client], tenant: UUID) -> str:
    agents = client_for(tenant).get("/api/support/agents").json()["data"]
    return str(next(a["id"] for a in agents if a["agentName"] == "Zoe Zimmer"))


def test_an_admin_token_it_signs_may_do_an_admins_work(local: httpx.Client, tenant: UUID, gateway_url: str) -> None:
    token = _sign_in(local, tenantId=str(tenant), role="admin", expiresIn=120).json()["data"]["token"]

    with httpx.Client(base_url=gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as api:
        added = api.post("/api/support/agents", json={"agentName": "New", "agentEmail": "new@desk.example"})

    assert added.status_code == 201, added.text
    claims = JwtAuthorizer.local().claims(f"Bearer {token}")
    assert (claims["role"], "agent_id" in claims, claims["exp"] - claims["iat"]) == ("admin", False, 120)


def test_its_token_opens_the_websocket_api_and_the_config_names_it(
    local: httpx.Client, client_for: Callable[..., httpx.Client], tenant: UUID, chat_gateway: WebSocketEndpoints
) -> None:
    agent_id = _desk(client_for, tenant)["Zoe Zimmer"]
    config = local.get("/_local/config").json()["data"]
    assert config["websocketUrl"] == chat_gateway.websocket_url
    assert config["apiBaseUrl"] == str(local.base_url).rstrip("/")
    token = _sign_in(local, tenantId=str(tenant), role="agent", agentId=agent_id).json()["data"]["token"]

    with connect(f"{config['websocketUrl']}/?token={token}") as ws:
        ws.send(json.dumps({"action": "setStatus", "status": "busy", "requestId": "r1"}))
        event = json.loads(ws.recv(timeout=10))

    assert (event["type"], event["requestId"], event["data"]) == (
        "agent.status",
        "r1",
        {"agentId": agent_id, "status": "busy"},
    )


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"role": "agent"}, 422, "body.agentId"),
        ({"role": "agent", "agentId": "not-a-uuid"}, 422, "body.agentId"),
        ({"role": "owner"}, 422, "body.role"),
        ({"role": "admin", "tenantId": "acme"}, 422, "body.tenantId"),
        ({"role": "admin", "expiresIn": 0}, 422, "body.expiresIn"),
        ({"role": "admin", "expiresIn": 86_401}, 422, "body.expiresIn"),
        ({"role": "admin", "claims": {"role": "admin"}}, 422, "body.claims"),
        ({"role": "agent", "agentId": str(uuid4())}, 404, None),
    ],
)
def test_a_bad_sign_in_is_a_clear_4xx(
    local: httpx.Client, tenant: UUID, body: dict[str, Any], status: int, field: str | None
) -> None:
    answer = _sign_in(local, **{"tenantId": str(tenant), **body})

    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert answer.json()["success"] is False
    if field is not None:
        assert field in [d["field"] for d in error["details"]], error


def test_a_body_that_is_not_json_and_foreign_pages_are_refused(local: httpx.Client, tenant: UUID) -> None:
    assert local.post("/_local/token", content=b"tenantId=1", headers={"content-type": "text/plain"}).status_code == 415
    broken = local.post("/_local/token", content=b"{", headers={"content-type": "application/json"})
    assert (broken.status_code, broken.json()["error"]["code"]) == (400, "malformed_json")
    assert local.get("/_local/agents", params={"tenantId": "x"}).status_code == 422
    assert local.get("/_local/agents", params={"tenant": str(tenant)}).status_code == 422

    # A page of another origin (any site open in the developer's browser) gets no token and no list.
    elsewhere = {"Origin": "https://evil.example"}
    refused = local.post("/_local/token", json={"tenantId": str(tenant), "role": "admin"}, headers=elsewhere)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
    assert local.get("/_local/agents", headers=elsewhere).status_code == 403
    own = {"Origin": str(local.base_url).rstrip("/")}
    assert local.post("/_local/token", json={"tenantId": str(tenant), "role": "admin"}, headers=own).status_code == 201


def test_the_local_origins_are_a_fixed_list_of_this_port_not_the_requests_host(
    local: httpx.Client, tenant: UUID
) -> None:
    """The sign-in compares `Origin` with 127.0.0.1, localhost and [::1] on its own port, whatever `Host` says: a
    page of another port (another local server's page) is another origin, and the console opened as localhost
    signs in on 127.0.0.1."""
    port = urlsplit(str(local.base_url)).port
    body = {"tenantId": str(tenant), "role": "admin"}
    for name in ("127.0.0.1", "localhost", "[::1]"):
        answer = local.post("/_local/token", json=body, headers={"Origin": f"http://{name}:{port}"})
        assert answer.status_code == 201, (name, answer.text)
    other_port = local.post("/_local/token", json=body, headers={"Origin": f"http://127.0.0.1:{_free_port()}"})
    assert (other_port.status_code, other_port.json()["error"]["code"]) == (403, "forbidden")


def _rebound(port: int) -> dict[str, str]:
    return {"Host": f"{REBIND}:{port}", "Origin": f"http://{REBIND}:{port}"}


def test_a_page_rebound_to_this_machine_gets_no_token_no_people_and_no_api(
    local: httpx.Client, tenant: UUID, client_for: Callable[..., httpx.Client]
) -> None:
    """DNS rebinding: a site points its own name at 127.0.0.1, so the browser sends the site's requests, same-origin
    in its eyes, with `Host` and `Origin` both the site's. The listener answers only its own host names."""
    _desk(client_for, tenant)
    port = urlsplit(str(local.base_url)).port
    assert port is not None
    evil = _rebound(port)
    admin = {"Authorization": f"Bearer {mint_token(str(tenant), 'admin')}"}

    answers = [
        local.post("/_local/token", json={"tenantId": str(tenant), "role": "admin"}, headers=evil),
        local.get("/_local/agents", headers={"Host": evil["Host"]}),  # a same-origin GET carries no Origin
        local.get("/_local/agents", params={"tenantId": str(tenant)}, headers=evil),
        local.get("/_local/config", headers=evil),
        local.get("/api/support/tickets", headers={**evil, **admin}),
        local.get("/.well-known/jwks.json", headers=evil),
    ]

    for answer in answers:
        assert answer.status_code == 421, (answer.request.url, answer.text)
        assert answer.headers["content-type"].startswith("text/plain")
        assert "token" not in answer.text and "Ada" not in answer.text and "success" not in answer.text
    # while the listener's own names still work
    for name in ("127.0.0.1", "localhost", "[::1]"):
        good = {"Host": f"{name}:{port}", "Origin": f"http://{name}:{port}"}
        signed = local.post("/_local/token", json={"tenantId": str(tenant), "role": "admin"}, headers=good)
        assert signed.status_code == 201, (name, signed.text)
        assert local.get("/api/support/tickets", headers={"Host": good["Host"], **admin}).status_code == 200


def test_a_rebound_page_cannot_open_the_websocket_api(tenant: UUID, chat_gateway: WebSocketEndpoints) -> None:
    """The WebSocket API's listener answers only its own host names too: the upgrade is refused before the
    authorizer, even with a valid token; and so is its management API."""
    port = urlsplit(chat_gateway.websocket_url).port
    assert port is not None
    token = mint_token(str(tenant), "admin")

    with socket.create_connection(("127.0.0.1", port)) as sock, pytest.raises(InvalidStatus) as refused:
        connect(f"ws://{REBIND}:{port}/?token={token}", sock=sock, open_timeout=10)

    assert refused.value.response.status_code == 421
    managed = httpx.get(
        f"{chat_gateway.management_endpoint}/@connections/x", headers={"Host": f"{REBIND}:{port}"}, timeout=10
    )
    assert managed.status_code == 421
    with connect(f"ws://localhost:{port}/?token={token}", open_timeout=10) as ws:  # its own name still works
        ws.send(json.dumps({"action": "ping", "requestId": "p"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "pong"


def test_the_template_gateway_alone_does_not_serve_it(gateway_url: str, tenant: UUID) -> None:
    """What API Gateway serves is the template's routes: without the local routes, /_local is API Gateway's 404."""
    with httpx.Client(base_url=gateway_url, timeout=10) as api:
        for method, path in (("POST", "/_local/token"), ("GET", "/_local/agents"), ("GET", "/_local/config")):
            answer = api.request(method, path, json={"tenantId": str(tenant), "role": "admin"})
            assert (answer.status_code, answer.json()) == (404, {"message": "Not Found"}), path


def test_concurrent_sign_ins_all_answer(
    sign_in_url: str, client_for: Callable[..., httpx.Client], tenant: UUID
) -> None:
    """A page asks for two lists at once (the demo desk's and a tenant's): the routes share the process's one
    database connection, and take turns with it."""
    agent_id = _desk(client_for, tenant)["Ada Abbott"]

    def ask(i: int) -> int:
        with httpx.Client(base_url=sign_in_url, timeout=20) as client:
            if i % 2:
                return client.get("/_local/agents", params={"tenantId": str(tenant)}).status_code
            body = {"tenantId": str(tenant), "role": "agent", "agentId": agent_id}
            return client.post("/_local/token", json=body).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(ask, range(48)))

    assert statuses == [201 if i % 2 == 0 else 200 for i in range(48)]
