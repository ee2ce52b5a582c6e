"""The template's own WebSocket API, with the production authorizer and WebSocket function, through the local
gateway as `make run` serves it (worker processes, the endpoints in the environment): the production code
runs unchanged against the local JWKS and the local management API."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from local.gateway import WebSocketEndpoints
from local.token import mint_token

pytestmark = pytest.mark.e2e


def test_a_staff_token_connects_and_ping_answers_pong(chat_gateway: WebSocketEndpoints) -> None:
    # The pong and the error come back as the routes' responses (the function's result), as API Gateway sends them
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
