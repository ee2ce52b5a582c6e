"""A stand-in for API Gateway's Management API (`POST` and `DELETE /@connections/{id}`) over real HTTP, pointed
at by WEBSOCKET_MANAGEMENT_ENDPOINT for the duration, so that support.realtime sends to it as it would to AWS."""

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

Handler = Callable[[Request], Awaitable[Response]]


@contextmanager
def management_api_serving(
    post: Handler,
    monkeypatch: pytest.MonkeyPatch,
    *,
    delete: Handler | None = None,
    stage: str = "",
    region: str = "us-east-1",
    session_token: str | None = None,
) -> Iterator[str]:
    """`post` answers every `POST {stage}/@connections/{connection_id}`, `delete` every DELETE; yields the
    endpoint (the base URL and the stage, as the template writes WEBSOCKET_MANAGEMENT_ENDPOINT)."""
    path = f"{stage}/@connections/{{connection_id:path}}"  # an id may hold a '/', sent as %2F
    routes = [Route(path, post, methods=["POST"])]
    if delete is not None:
        routes.append(Route(path, delete, methods=["DELETE"]))
    with running_gateway(Starlette(routes=routes)) as base:
        endpoint = base + stage
        monkeypatch.setenv("WEBSOCKET_MANAGEMENT_ENDPOINT", endpoint)
        # Staff broadcasts run inline, so this API sees them too: not through a broadcast function of a local stack
        # another test may have left running (its environment names one); a test that wants one sets it after this.
        monkeypatch.delenv("BROADCAST_FUNCTION_NAME", raising=False)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
        if session_token is None:
            monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        else:
            monkeypatch.setenv("AWS_SESSION_TOKEN", session_token)
        monkeypatch.setenv("AWS_DEFAULT_REGION", region)
        get_settings.cache_clear()
        realtime.reset()
        try:
            yield endpoint
        finally:
            realtime.reset()
            get_settings.cache_clear()
