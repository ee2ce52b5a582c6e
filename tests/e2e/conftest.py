"""The local gateway, started by the tests, serving every template route over real HTTP."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from uuid import UUID

import httpx
import pytest

from local.database import DatabaseUrls
from local.gateway import WebSocketEndpoints, create_app, running_gateway, running_template_websocket_api
from local.template import http_routes
from local.token import mint_token
from tests.e2e.local_run import stack_environment


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def stack_ports(db: DatabaseUrls) -> Iterator[tuple[int, int]]:
    """The HTTP and WebSocket ports of the local stack, and what `make run` sets in the environment before any
    handler starts (the worker processes of both APIs inherit it): the management endpoint the fan-out posts
    to, the JWKS the WebSocket authorizer verifies staff tokens with, and AWS credentials to sign with."""
    http_port, ws_port = _free_port(), _free_port()
    with stack_environment(http_port, ws_port):
        yield http_port, ws_port


@pytest.fixture(scope="session")
def gateway_url(stack_ports: tuple[int, int]) -> Iterator[str]:
    with running_gateway(create_app(http_routes()), port=stack_ports[0]) as base:
        yield base


@pytest.fixture
def client_for(gateway_url: str) -> Iterator[Callable[..., httpx.Client]]:
    clients: list[httpx.Client] = []

    def make(tenant: UUID, role: str = "admin") -> httpx.Client:
        token = mint_token(str(tenant), role)
        client = httpx.Client(base_url=gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture(scope="session")
def chat_gateway(gateway_url: str, stack_ports: tuple[int, int]) -> Iterator[WebSocketEndpoints]:
    """The template's WebSocket API and its management API, as `make run` serves them."""
    with running_template_websocket_api(stack_ports[1]) as endpoints:
        assert endpoints is not None, "functions/websocket/ and functions/ws_authorizer/ are in the repository"
        yield endpoints
