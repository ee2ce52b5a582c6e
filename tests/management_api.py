"""A stand-in for API Gateway's Management API (`POST` and `DELETE /@connections/{id}`) over real HTTP, pointed
at by WEBSOCKET_MANAGEMENT_ENDPOINT for the duration, so that support.realtime sends to it as it would to AWS; and
the `posts` fixture, one that records every event each connection is sent (import it by name, with `Posts`)."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from local.database import DatabaseUrls
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


class Posts:
    """`POST /@connections/{id}`: every event each connection was sent, in order."""

    def __init__(self) -> None:
        self.sent: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._lock = threading.Lock()

    async def post(self, request: Request) -> Response:
        body = json.loads(await request.body())
        with self._lock:
            self.sent[request.path_params["connection_id"]].append(body)
        return Response(status_code=200)

    def of(self, connection_id: str, kind: str) -> list[dict[str, Any]]:
        """The data of the events of type `kind` the connection was sent (they stay recorded)."""
        with self._lock:
            return [e["data"] for e in self.sent.get(connection_id, []) if e["type"] == kind]

    def take(self, connection_id: str) -> list[dict[str, Any]]:
        """The events the connection was sent since the last take, forgotten here."""
        with self._lock:
            return self.sent.pop(connection_id, [])

    def clear(self) -> None:
        with self._lock:
            self.sent.clear()


@pytest.fixture
def posts(db: DatabaseUrls, monkeypatch: pytest.MonkeyPatch) -> Iterator[Posts]:
    """The management API for the test, recording what each connection is sent (staff broadcasts run inline)."""
    api = Posts()
    with management_api_serving(api.post, monkeypatch):
        yield api
