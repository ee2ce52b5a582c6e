"""The template's own WebSocket API, with the production authorizer and WebSocket function, through the local
gateway as `make run` serves it (worker processes, the endpoints in the environment): the production code
runs unchanged against the local JWKS and the local management API."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from uuid import uuid4

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from local.gateway import WebSocketEndpoints, running_template_websocket_api
from local.jwt_keys import AUDIENCE, ISSUER
from local.token import mint_token

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def chat_gateway(gateway_url: str) -> Iterator[WebSocketEndpoints]:
    port = _free_port()
    # What make run sets before the handlers start; the workers inherit it.
    settings = {
        "WEBSOCKET_MANAGEMENT_ENDPOINT": f"http://127.0.0.1:{port}",
        "JWT_JWKS_URL": f"{gateway_url}/.well-known/jwks.json",
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        with running_template_websocket_api(port) as endpoints:
            assert endpoints is not None, "functions/websocket/ and functions/ws_authorizer/ are in the repository"
            yield endpoints
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_a_staff_token_connects_and_ping_answers_pong(chat_gateway: WebSocketEndpoints) -> None:
    # The pong comes back through the function's own boto3 client and the local management API
    token = mint_token(str(uuid4()), "admin")
    with connect(f"{chat_gateway.websocket_url}/?token={token}", ping_interval=None, open_timeout=20) as ws:
        ws.send(json.dumps({"action": "ping", "requestId": "r-1"}))
        pong = json.loads(ws.recv(timeout=20))
        ws.send(json.dumps({"action": "noSuchAction"}))
        unknown = json.loads(ws.recv(timeout=20))
    assert pong["type"] == "pong"
    assert pong["requestId"] == "r-1"
    assert unknown["type"] == "error"
    assert unknown["data"]["code"] == "unknown_action"


@pytest.mark.parametrize("query", ["token=not-a-jwt", "", "visitorToken=forged"], ids=["bad-jwt", "none", "visitor"])
def test_a_connection_without_a_valid_token_is_refused(chat_gateway: WebSocketEndpoints, query: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{chat_gateway.websocket_url}/?{query}", ping_interval=None, open_timeout=20)
    assert refused.value.response.status_code == 401  # the authorizer raised "Unauthorized"


def test_a_token_of_another_issuer_key_is_refused(
    chat_gateway: WebSocketEndpoints, tmp_path_factory: pytest.TempPathFactory
) -> None:
    token = mint_token(str(uuid4()), "admin", key_dir=tmp_path_factory.mktemp("foreign-key"))
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{chat_gateway.websocket_url}/?token={token}", ping_interval=None, open_timeout=20)
    assert refused.value.response.status_code == 401  # the authorizer raised "Unauthorized"
