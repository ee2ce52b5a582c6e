"""The local gateway's Lambda Invoke API (local/gateway/lambda_api.py): asynchronous invocations, as the staff
broadcast's trigger (support.invocations) sends them."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from starlette.applications import Starlette

from local.gateway import running_gateway
from local.gateway.lambda_api import lambda_routes
from local.template import invoked_functions

PATH = "/2015-03-31/functions/{}/invocations"
EVENT = {"X-Amz-Invocation-Type": "Event"}


class Flaky:
    """Fails its first `failures` invocations, then succeeds; records each event."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.done = threading.Event()

    def invoke(self, function_id: str, event: dict[str, Any]) -> Any:
        self.calls.append((function_id, event))
        if len(self.calls) <= self.failures:
            raise RuntimeError("boom")
        self.done.set()
        return None


def test_an_event_invocation_answers_202_at_once_and_runs_in_the_background_with_retries() -> None:
    flaky = Flaky(failures=2)
    app = Starlette(routes=lambda_routes({"BroadcastFunction": object()}, flaky.invoke))
    with running_gateway(app) as base:
        started = time.monotonic()
        reply = httpx.post(base + PATH.format("BroadcastFunction"), json={"tenantId": "t"}, headers=EVENT)
        assert reply.status_code == 202 and reply.content == b"" and reply.headers["x-amzn-requestid"]
        assert flaky.done.wait(5)
    # two failures retried, as Lambda retries an asynchronous invocation twice
    assert flaky.calls == [("BroadcastFunction", {"tenantId": "t"})] * 3
    assert time.monotonic() - started < 5


def test_after_two_retries_the_event_is_dropped() -> None:
    flaky = Flaky(failures=5)
    app = Starlette(routes=lambda_routes({"BroadcastFunction": object()}, flaky.invoke))
    with running_gateway(app) as base:
        assert httpx.post(base + PATH.format("BroadcastFunction"), json={}, headers=EVENT).status_code == 202
        time.sleep(1.5)
    assert len(flaky.calls) == 3 and not flaky.done.is_set()


def test_unknown_functions_other_invocation_types_and_bad_bodies_are_refused() -> None:
    flaky = Flaky(failures=0)
    app = Starlette(routes=lambda_routes({"BroadcastFunction": object()}, flaky.invoke))
    with running_gateway(app) as base:
        missing = httpx.post(base + PATH.format("Nope"), json={}, headers=EVENT)
        assert missing.status_code == 404 and missing.headers["x-amzn-errortype"] == "ResourceNotFoundException"
        sync = httpx.post(base + PATH.format("BroadcastFunction"), json={})
        assert sync.status_code == 400
        assert httpx.post(base + PATH.format("BroadcastFunction"), content=b"[1]", headers=EVENT).status_code == 400
        arn = "arn:aws:lambda:us-east-1:123456789012:function:BroadcastFunction"
        assert httpx.post(base + PATH.format(arn), json={"a": 1}, headers=EVENT).status_code == 202
        assert flaky.done.wait(5)
    assert flaky.calls == [("BroadcastFunction", {"a": 1})]


def test_the_template_s_invoked_functions_are_the_ones_started_off_the_request_path() -> None:
    assert sorted(f.logical_id for f in invoked_functions()) == [
        "AutomationsFunction",
        "BroadcastFunction",
        "PrivacyJobFunction",
        "WebhookDeliveryFunction",
    ]
    (broadcast,) = [f for f in invoked_functions() if f.logical_id == "BroadcastFunction"]
    assert broadcast.code_uri.rstrip("/") == "functions/broadcast" and broadcast.timeout_seconds == 30
