"""API Gateway's management API of a WebSocket API (the `@connections` API: the functions' `support.realtime`,
boto3's `apigatewaymanagementapi`), on the WebSocket API's own port, as `https://{api}.execute-api.../{stage}`:

- `POST /@connections/{connectionId}`: the body, sent to the connection as one message (200);
- `GET /@connections/{connectionId}`: `{"connectedAt", "identity": {"sourceIp", "userAgent"}, "lastActiveAt"}`;
- `DELETE /@connections/{connectionId}`: closes the connection (204); its `$disconnect` runs.

A connection that is unknown, not yet accepted (still in `$connect`) or closed answers 410 with the header
`x-amzn-errortype: GoneException` (boto3 raises `GoneException`, support.realtime `ConnectionGone`); a body over
128 KB answers 413 `PayloadTooLargeException`. The paths are also served under a stage
(`/{stage}/@connections/...`), for an endpoint URL written with one, as the template writes it. Requests are not
checked for a SigV4 signature: any credentials will do (tests/integration/test_fan_out.py checks the signature).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from local.gateway.aws import request_id

MAX_POST_BYTES = 128 * 1024  # a WebSocket message's limit


class ManagedConnection(Protocol):
    connected_at_ms: int
    last_active_ms: int
    source_ip: str
    user_agent: str
    open: bool

    async def post(self, data: bytes) -> bool: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


def _iso(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _error(status: int, error_type: str, message: str | None = None) -> Response:
    return Response(
        json.dumps({"message": message}),
        status_code=status,
        media_type="application/json",
        headers={"x-amzn-errortype": error_type, "x-amzn-requestid": request_id()},
    )


def management_routes(connections: Mapping[str, ManagedConnection]) -> list[Route]:
    async def at_connection(request: Request) -> Response:
        connection = connections.get(request.path_params["connectionId"])
        if connection is None or not connection.open:
            return _error(410, "GoneException")
        headers = {"x-amzn-requestid": request_id()}
        if request.method == "GET":
            body = {
                "connectedAt": _iso(connection.connected_at_ms),
                "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
                "lastActiveAt": _iso(connection.last_active_ms),
            }
            return Response(json.dumps(body), media_type="application/json", headers=headers)
        if request.method == "DELETE":
            await connection.close()
            return Response(status_code=204, headers=headers)
        data = await request.body()
        if len(data) > MAX_POST_BYTES:
            return _error(413, "PayloadTooLargeException", "Message too long")
        if not await connection.post(data):
            return _error(410, "GoneException")
        return Response(status_code=200, headers=headers)

    methods = ["GET", "POST", "DELETE"]
    return [
        Route("/@connections/{connectionId}", at_connection, methods=methods),
        Route("/{stage}/@connections/{connectionId}", at_connection, methods=methods),
    ]
