"""support.cloudformation against a real local HTTP server standing in for the pre-signed response URL: the
answer always arrives, and never later than the function's time-out."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from support.cloudformation import CustomResourceRequest, Outcome, answer_custom_resource
from tests.cloudformation_endpoint import ResponseEndpoint, response_endpoint


@dataclass
class Context:
    remaining_ms: int
    log_stream_name: str = "stream-1"

    def __post_init__(self) -> None:
        self._started = time.monotonic()

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining_ms - (time.monotonic() - self._started) * 1000)


@pytest.fixture
def endpoint() -> Iterator[ResponseEndpoint]:
    with response_endpoint() as found:
        yield found


def _event(url: str, request_type: str = "Create", **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1",
        "RequestId": "r-1",
        "LogicalResourceId": "Migrate",
        **extra,
    }


def test_success_carries_the_outcome(endpoint: ResponseEndpoint) -> None:
    status = answer_custom_resource(
        _event(endpoint.url("a")),
        Context(30_000),
        lambda request: Outcome("schema-1", reason="done", data={"Applied": "3"}),
    )

    assert status == "SUCCESS"
    [put] = endpoint.puts
    assert put.body == {
        "Status": "SUCCESS",
        "Reason": "done",
        "PhysicalResourceId": "schema-1",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1",
        "RequestId": "r-1",
        "LogicalResourceId": "Migrate",
        "NoEcho": False,
        "Data": {"Applied": "3"},
    }


def test_an_error_answers_failed_with_its_message_under_the_existing_id(endpoint: ResponseEndpoint) -> None:
    def broken(request: CustomResourceRequest) -> Outcome:
        raise RuntimeError("0013_x.sql failed: " + "x" * 5000)

    status = answer_custom_resource(
        _event(endpoint.url("b"), "Update", PhysicalResourceId="schema-1"), Context(30_000), broken
    )

    assert status == "FAILED"
    [put] = endpoint.puts
    assert put.body["Status"] == "FAILED"
    assert put.body["Reason"].startswith("RuntimeError: 0013_x.sql failed: xxx")
    assert len(put.body["Reason"]) == 1500  # the response document stays under CloudFormation's 4 KB
    assert put.body["PhysicalResourceId"] == "schema-1"


def test_work_that_outlives_the_function_is_answered_failed_before_the_time_out(endpoint: ResponseEndpoint) -> None:
    finished = threading.Event()

    def slow(request: CustomResourceRequest) -> Outcome:
        time.sleep(3)
        finished.set()
        return Outcome("late")

    started = time.monotonic()
    status = answer_custom_resource(_event(endpoint.url("c")), Context(2_500), slow, safety_margin_ms=1_000)

    assert status == "FAILED"
    [put] = endpoint.puts  # one answer only: the late success is not sent
    assert put.body["Status"] == "FAILED"
    assert "did not finish within the function's time-out" in put.body["Reason"]
    assert put.body["PhysicalResourceId"] == "stream-1"  # a Create that never got an id of its own
    assert finished.is_set()
    assert time.monotonic() - started < 3.5


def test_an_unreachable_response_url_gives_up_before_the_deadline() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    started = time.monotonic()
    status = answer_custom_resource(
        _event(f"http://127.0.0.1:{port}/x"), Context(3_000), lambda request: Outcome("id"), safety_margin_ms=1_000
    )

    assert status == "SUCCESS"  # what was decided; the PUT itself could not be delivered
    assert time.monotonic() - started < 3.0


def test_an_event_that_is_not_from_cloudformation_is_refused() -> None:
    with pytest.raises(ValueError, match="ResponseURL"):
        answer_custom_resource({"RequestType": "Create"}, Context(3_000), lambda request: Outcome("id"))
