"""Lambda's Invoke API, the asynchronous kind only, beside the management API: what the functions call to start a
staff broadcast (support.invocations), served so that their production code runs unchanged locally.

- `POST /2015-03-31/functions/{FunctionName}/invocations` with `X-Amz-Invocation-Type: Event`: the body is the
  event; answers 202 at once (an empty body, as Lambda), then runs the function in its execution environments in
  the background. A failed invocation is retried twice, as Lambda retries asynchronous invocations (after a
  minute and two there; here after RETRY_DELAYS_SECONDS), then dropped with a log line.
- `{FunctionName}`: the function's logical id in template.yaml (`make run` sets BROADCAST_FUNCTION_NAME to it), or
  an ARN ending in it. An unknown function answers 404 `ResourceNotFoundException`; another invocation type 400
  `InvalidRequestContentException` (only `Event` is served); a body that is not a JSON object 400
  `InvalidRequestContentException`; over 256 KB 413 `RequestTooLargeException`.

Requests are not checked for a signature (tests/integration/test_broadcasts.py checks it against botocore).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from local.gateway.aws import request_id

logger = logging.getLogger("local.gateway")

MAX_ASYNC_EVENT_BYTES = 256 * 1024
RETRY_DELAYS_SECONDS = (0.2, 0.5)  # Lambda: about 1 and 2 minutes; locally a moment, so that tests see retries


def _error(status: int, error_type: str, message: str) -> Response:
    return Response(
        json.dumps({"Type": "User", "message": message}),
        status_code=status,
        media_type="application/json",
        headers={"x-amzn-errortype": error_type, "x-amzn-requestid": request_id()},
    )


def lambda_routes(functions: Mapping[str, Any], invoke: Callable[[str, dict[str, Any]], Any]) -> list[Route]:
    """The Invoke route for `functions` (logical id -> anything), each run with `invoke(logical_id, event)` (the
    execution environments'), in the background."""
    background: set[asyncio.Task[None]] = set()

    async def run(function_id: str, event: dict[str, Any], invocation: str) -> None:
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS_SECONDS)):
            await asyncio.sleep(delay)
            try:
                await run_in_threadpool(invoke, function_id, event)
                return
            except Exception as exc:
                logger.error("%s invocation %s failed (attempt %d of 3): %s", function_id, invocation, attempt + 1, exc)
        logger.error("%s invocation %s dropped after 2 retries", function_id, invocation)

    async def invocations(request: Request) -> Response:
        name = request.path_params["name"].rsplit(":function:", 1)[-1].split(":", 1)[0]
        if name not in functions:
            return _error(404, "ResourceNotFoundException", f"Function not found: {name}")
        if request.headers.get("x-amz-invocation-type", "RequestResponse") != "Event":
            return _error(400, "InvalidRequestContentException", "only InvocationType Event is served locally")
        body = await request.body()
        if len(body) > MAX_ASYNC_EVENT_BYTES:
            return _error(413, "RequestTooLargeException", "Request must be smaller than 262144 bytes")
        try:
            event = json.loads(body or b"{}")
        except ValueError:
            return _error(400, "InvalidRequestContentException", "Could not parse request body into json")
        if not isinstance(event, dict):
            return _error(400, "InvalidRequestContentException", "the event is a JSON object")
        invocation = request_id()
        task = asyncio.create_task(run(name, event, invocation))
        background.add(task)
        task.add_done_callback(background.discard)
        return Response(status_code=202, headers={"x-amzn-requestid": invocation})

    return [Route("/2015-03-31/functions/{name}/invocations", invocations, methods=["POST"])]
