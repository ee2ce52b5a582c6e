"""The local gateway, started by the tests, serving every template route over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from uuid import UUID

import httpx
import pytest

from local.database import DatabaseUrls
from local.gateway import create_app, running_gateway
from local.template import http_routes
from local.token import mint_token


@pytest.fixture(scope="session")
def gateway_url(db: DatabaseUrls) -> Iterator[str]:
    with running_gateway(create_app(http_routes())) as base:
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
