"""support.realtime against a management API over real HTTP that throttles, fails and forgets connections the
way API Gateway's does: throttled posts are retried with backoff, a gone connection is reported, and one
failing connection never stops delivery to the others."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from support import realtime
from support.config import get_settings
from support.realtime import Delivery, event
from tests.management_api import management_api_serving


class ManagementApi:
    """`POST /@connections/{id}`: `throttled-*` answer 429 twice, then 200; `gone-*` 410; `broken-*` 500."""

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()
        self.delivered: dict[str, bytes] = {}
        self._lock = threading.Lock()

    async def post(self, request: Request) -> Response:
        connection_id = request.path_params["connection_id"]
        body = await request.body()
        with self._lock:
            self.attempts[connection_id] += 1
            attempt = self.attempts[connection_id]
        if connection_id.startswith("gone-"):
            return JSONResponse({"message": None}, status_code=410, headers={"x-amzn-errortype": "GoneException"})
        if connection_id.startswith("broken-"):
            return JSONResponse({"message": "Internal server error"}, status_code=500)
        if connection_id.startswith("throttled-") and attempt <= 2:
            return JSONResponse(
                {"message": "Rate exceeded"}, status_code=429, headers={"x-amzn-errortype": "LimitExceededException"}
            )
        self.delivered[connection_id] = body
        return Response(status_code=200)


@pytest.fixture
def management_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ManagementApi]:
    api = ManagementApi()
    with management_api_serving(api.post, monkeypatch):
        yield api


def test_throttled_posts_are_retried_gone_ones_reported_and_failures_isolated(management_api: ManagementApi) -> None:
    hello = event("message.new", {"message": "hello"})
    deliveries = [
        Delivery("ok-1", hello),
        Delivery("throttled-1", hello),
        Delivery("gone-1", hello),
        Delivery("broken-1", hello),
        Delivery("ok-2", event("typing", {"isTyping": True})),
    ]

    gone = realtime.deliver(deliveries)

    assert gone == {"gone-1"}
    assert set(management_api.delivered) == {"ok-1", "throttled-1", "ok-2"}
    assert management_api.attempts["throttled-1"] == 3  # two 429s, then delivered
    assert management_api.attempts["gone-1"] == 1  # a 410 is final, never retried
    assert management_api.attempts["broken-1"] == 4  # retried as a transient error, then given up
    assert management_api.delivered["ok-2"] == b'{"type":"typing","data":{"isTyping":true}}'


def test_without_an_endpoint_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBSOCKET_MANAGEMENT_ENDPOINT", raising=False)
    get_settings.cache_clear()
    realtime.reset()
    try:
        assert realtime.deliver([Delivery("anyone", event("ping", {}))]) == set()
    finally:
        get_settings.cache_clear()
