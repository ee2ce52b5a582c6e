"""A stand-in for API Gateway's Management API (`POST /@connections/{id}`) over real HTTP, pointed at by
WEBSOCKET_MANAGEMENT_ENDPOINT for the duration, so that support.realtime posts to it as it would to AWS."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from local.gateway import running_gateway
from support import realtime
from support.config import get_settings


@contextmanager
def management_api_serving(
    post: Callable[[Request], Awaitable[Response]], monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """`post` answers every `POST /@connections/{connection_id}`; yields the endpoint's base URL."""
    app = Starlette(routes=[Route("/@connections/{connection_id}", post, methods=["POST"])])
    with running_gateway(app) as base:  # type: ignore[arg-type]
        monkeypatch.setenv("WEBSOCKET_MANAGEMENT_ENDPOINT", base)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        get_settings.cache_clear()
        realtime.reset()
        try:
            yield base
        finally:
            realtime.reset()
            get_settings.cache_clear()
