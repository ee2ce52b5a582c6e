"""CloudFormation custom resources: do the work, and always answer the request's pre-signed ResponseURL.

CloudFormation waits for the answer (an HTTP PUT of a JSON document to `ResponseURL`) for up to an hour, so a
function that dies without answering hangs the deploy. `answer_custom_resource` answers in every case:
SUCCESS when the work returns, FAILED with the error's message when it raises, and FAILED with a time-out
reason from a watchdog thread shortly before the function's own time-out (the work goes on, but its answer is
then ignored). It never retries forever: a few bounded attempts, all before the deadline.

Plain urllib rather than crhelper (the usual library): crhelper creates three boto3 clients at import, sets up
the root logger, sleeps two minutes on every Delete by default, and retries the PUT in an endless loop when
the URL cannot be reached, which is the hang this module exists to prevent.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from support.observability import logger

SUCCESS = "SUCCESS"
FAILED = "FAILED"
# The response document may be at most 4 KB; the reason is what a person reads in the stack's events.
_MAX_REASON = 1500
_PUT_TIMEOUT_SECONDS = 10.0
_PUT_ATTEMPTS = 3


class LambdaContextLike(Protocol):
    @property
    def log_stream_name(self) -> str: ...

    def get_remaining_time_in_millis(self) -> int: ...


class CustomResourceRequest(BaseModel):
    """The fields of CloudFormation's request that the answer needs (the rest is kept in `resource_properties`)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    request_type: Literal["Create", "Update", "Delete"] = Field(alias="RequestType")
    response_url: str = Field(alias="ResponseURL", pattern=r"^https?://")
    stack_id: str = Field(alias="StackId")
    request_id: str = Field(alias="RequestId")
    logical_resource_id: str = Field(alias="LogicalResourceId")
    physical_resource_id: str | None = Field(default=None, alias="PhysicalResourceId")
    resource_properties: dict[str, Any] = Field(default_factory=dict, alias="ResourceProperties")


@dataclass(frozen=True)
class Outcome:
    """What the work tells CloudFormation on success: the resource's id, a reason, and attributes for !GetAtt."""

    physical_resource_id: str
    reason: str = ""
    data: Mapping[str, str] = field(default_factory=dict)


class _Answer:
    """The one answer a request gets: the first of the work and the watchdog to call `send` wins."""

    def __init__(self, request: CustomResourceRequest, deadline: float) -> None:
        self._request = request
        self._deadline = deadline  # time.monotonic() by which the PUT must be done
        self._lock = threading.Lock()
        self.sent: str | None = None

    def send(self, status: str, reason: str, physical_resource_id: str, data: Mapping[str, str] | None = None) -> None:
        with self._lock:
            if self.sent is not None:
                return
            self.sent = status
        body = json.dumps(
            {
                "Status": status,
                "Reason": reason[:_MAX_REASON],
                "PhysicalResourceId": physical_resource_id,
                "StackId": self._request.stack_id,
                "RequestId": self._request.request_id,
                "LogicalResourceId": self._request.logical_resource_id,
                "NoEcho": False,
                "Data": dict(data or {}),
            }
        ).encode()
        for attempt in range(1, _PUT_ATTEMPTS + 1):
            left = self._deadline - time.monotonic()
            if left <= 0.1:
                break
            # The URL is signed for a PUT without a content type: an empty one stops urllib adding its own.
            put = urllib.request.Request(  # noqa: S310 - CloudFormation's https URL (http only in tests)
                self._request.response_url, data=body, method="PUT", headers={"Content-Type": ""}
            )
            try:
                with urllib.request.urlopen(put, timeout=min(_PUT_TIMEOUT_SECONDS, left)) as response:  # noqa: S310
                    logger.info("answered CloudFormation", status=status, http_status=response.status)
                    return
            except (urllib.error.URLError, OSError) as exc:
                logger.warning("answering CloudFormation failed", attempt=attempt, error=str(exc))
                time.sleep(min(1.0 * attempt, max(0.0, self._deadline - time.monotonic() - 0.1)))
        logger.error("could not answer CloudFormation; the stack waits for its own time-out", status=status)


def answer_custom_resource(
    event: Mapping[str, Any],
    context: LambdaContextLike,
    work: Callable[[CustomResourceRequest], Outcome],
    *,
    safety_margin_ms: int = 5000,
) -> str:
    """Run `work` for a custom-resource request and answer CloudFormation; returns the status sent.

    The watchdog answers FAILED `safety_margin_ms` before the function would be stopped, leaving it that
    long for the PUT."""
    try:
        request = CustomResourceRequest.model_validate(event)
    except ValidationError as exc:
        # Without a valid ResponseURL there is nobody to answer: not a CloudFormation request.
        raise ValueError(f"not a CloudFormation custom resource request: {exc}") from exc
    remaining_s = context.get_remaining_time_in_millis() / 1000
    deadline = time.monotonic() + remaining_s - 0.25  # the PUT must be over before the runtime stops the function
    answer = _Answer(request, deadline)
    fallback_id = request.physical_resource_id or context.log_stream_name
    watchdog = threading.Timer(
        max(0.0, remaining_s - safety_margin_ms / 1000),
        lambda: answer.send(
            FAILED,
            f"{request.request_type} did not finish within the function's time-out; see its logs "
            f"({context.log_stream_name})",
            fallback_id,
        ),
    )
    watchdog.daemon = True
    watchdog.start()
    try:
        outcome = work(request)
    except Exception as exc:
        logger.exception("custom resource failed", request_type=request.request_type)
        answer.send(FAILED, f"{type(exc).__name__}: {exc}", fallback_id)
    else:
        answer.send(SUCCESS, outcome.reason, outcome.physical_resource_id, outcome.data)
    finally:
        watchdog.cancel()
    return answer.sent or FAILED
