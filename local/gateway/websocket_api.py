"""API Gateway's WebSocket API: the `AWS::ApiGatewayV2::Api` (ProtocolType WEBSOCKET) of `template.yaml`.

A connection's life, as API Gateway leads it:

- `$connect`: the route's Lambda REQUEST authorizer runs first (`authorizers`); Deny refuses the upgrade
  with 403, `Unauthorized` with 401, before anything is accepted. Then the `$connect` integration is
  invoked; a non-2xx `statusCode` (or an error: 500) refuses the connection too. Only then is the
  WebSocket accepted, and the connection known to the management API.
- each message: the route selection expression (`$request.body.action`: the `action` field of the JSON
  body) picks the route; a body that is not JSON (or nested too deeply to parse), or an action without a
  route, goes to `$default`. The route's function gets the MESSAGE event, with the authorizer's context in
  `requestContext.authorizer`. When it fails, the client gets `{"message": "Internal server error", ...}` as
  from API Gateway, and the connection keeps serving. A two-way route (one with a route response in the
  template: `RouteResponseSelectionExpression: $default` and an `AWS::ApiGatewayV2::RouteResponse` keyed
  `$default`) sends what the function returns to the caller once the invocation ends, as API Gateway passes a
  Lambda proxy integration's output through: the result's `body` as one text message (base64-decoded first when
  `isBase64Encoded`). A result without a body sends an empty message: a route response makes API Gateway answer
  every message, and AWS documents nothing else for that case (it has been seen to send an empty message), so
  clients must ignore an empty one. A route without a route response (one-way) sends nothing back: what its
  function returns goes nowhere.
- the close, by either side (or an error of the gateway's own): the `$disconnect` event, with
  `disconnectStatusCode` and `disconnectReason`, invoked once, after the connection's earlier messages.

API Gateway's limits hold: a frame over 32 KB, or a message over 128 KB (its frames together), closes the
connection with 1009. A browser's WebSocket sends every message as one frame (the WebSocket API of
browsers has no way to fragment), so from a browser a message over 32 KB closes the connection: clients
must keep each message under 32 KB. Binary frames are refused with 1003, as API Gateway does. A connection
is closed (1001, "Going away") after 10 minutes without a message from the client (`idle_timeout_seconds`,
`WS_IDLE_TIMEOUT_SECONDS`) and after 2 hours in all (`max_connection_seconds`, `WS_MAX_CONNECTION_SECONDS`).

Not as in AWS: events of one connection are invoked one after the other (API Gateway promises no order);
header names arrive in lower case (ASGI's); a connection's headers are those of the upgrade request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from local.gateway.authorizers import (
    AuthorizerResult,
    build_websocket_authorizer_event,
    query_parameters,
    request_time,
    run_request_authorizer,
)
from local.gateway.aws import connection_id as new_connection_id
from local.gateway.aws import forwarded_for
from local.gateway.aws import request_id as new_request_id
from local.gateway.execution_environments import (
    ExecutionEnvironments,
    FunctionError,
    execution_environments,
    in_process_default,
)
from local.gateway.lambda_api import lambda_routes
from local.gateway.management_api import management_routes
from local.template import LambdaFunction, LambdaHandler, WebSocketApi
from local.template import WebSocketRoute as TemplateRoute
from local.template import load_handler as load_code_handler

logger = logging.getLogger("local.gateway")

WS_API_ID = "localwsap0"  # API Gateway ids are ten lower-case letters and digits
MAX_FRAME_BYTES = 32 * 1024  # API Gateway: WebSocket frame size
MAX_MESSAGE_BYTES = 128 * 1024  # API Gateway: WebSocket message payload size
IDLE_TIMEOUT_SECONDS = 10 * 60.0
MAX_CONNECTION_SECONDS = 2 * 60 * 60.0
GOING_AWAY = 1001


def _now_ms() -> int:
    return int(time.time() * 1000)


def _load_route_handler(route: TemplateRoute | LambdaFunction) -> LambdaHandler:
    function = route.function if isinstance(route, TemplateRoute) else route
    return load_code_handler(function.code_uri, function.handler)


@dataclass
class Connection:
    """One accepted WebSocket connection, as the management API sees it."""

    connection_id: str
    websocket: WebSocket
    connected_at_ms: int
    source_ip: str
    user_agent: str
    authorizer: dict[str, Any] | None
    headers: list[tuple[str, str]]
    last_active_ms: int = 0
    open: bool = True
    closed_by_gateway: tuple[int, str] | None = None
    _send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def post(self, data: bytes) -> bool:
        """Send `data` as one message (text when it is UTF-8, as API Gateway sends it). False when gone."""
        async with self._send_lock:
            if not self.open or self.websocket.application_state != WebSocketState.CONNECTED:
                return False
            try:
                try:
                    await self.websocket.send_text(data.decode("utf-8"))
                except UnicodeDecodeError:
                    await self.websocket.send_bytes(data)
            except (RuntimeError, OSError, WebSocketDisconnect):
                return False
            self.last_active_ms = _now_ms()
            return True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        async with self._send_lock:
            if self.closed_by_gateway is None:
                self.closed_by_gateway = (code, reason)
            if self.open and self.websocket.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(RuntimeError, OSError):
                    await self.websocket.close(code, reason)
            self.open = False


def websocket_request_context(
    *,
    route_key: str,
    event_type: str,
    connection_id: str,
    connected_at: int,
    source_ip: str,
    user_agent: str,
    host: str,
    stage: str,
    api_id: str = WS_API_ID,
    received_at: datetime | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The `requestContext` API Gateway gives every WebSocket event (and the `$connect` authorizer)."""
    now = received_at or datetime.now(UTC)
    rid = request_id or new_request_id()
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": rid,
        "requestTime": request_time(now),
        "messageDirection": "IN",
        "stage": stage,
        "connectedAt": connected_at,
        "requestTimeEpoch": int(now.timestamp() * 1000),
        "identity": {"sourceIp": source_ip, "userAgent": user_agent},
        "requestId": rid,
        "domainName": host,
        "connectionId": connection_id,
        "apiId": api_id,
    }


def build_websocket_event(
    request_context: Mapping[str, Any],
    *,
    authorizer: Mapping[str, Any] | None = None,
    headers: Sequence[tuple[str, str]] = (),
    raw_query_string: str = "",
    body: str | None = None,
    message_id: str | None = None,
    disconnect: tuple[int, str] | None = None,
) -> dict[str, Any]:
    """A WebSocket proxy integration event, as API Gateway builds it: `$connect` (with the headers and the query
    string), a message (`body`, `messageId`), or `$disconnect` (its status code and reason)."""
    context = dict(request_context)
    if authorizer is not None:
        context["authorizer"] = dict(authorizer)
    if message_id is not None:
        context["messageId"] = message_id
    if disconnect is not None:
        context["disconnectStatusCode"], context["disconnectReason"] = disconnect
    event: dict[str, Any] = {}
    if context["eventType"] == "CONNECT":
        single_query, multi_query = query_parameters(raw_query_string)
        single_headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for name, value in headers:
            single_headers[name] = value
            multi_headers.setdefault(name, []).append(value)
        event = {
            "headers": single_headers,
            "multiValueHeaders": multi_headers,
            **({"queryStringParameters": single_query} if single_query else {}),
            **({"multiValueQueryStringParameters": multi_query} if multi_query else {}),
        }
    elif context["eventType"] == "DISCONNECT":
        host, source_ip = context["domainName"], context["identity"]["sourceIp"]
        event = {
            "headers": {"host": host, "x-forwarded-for": source_ip},
            "multiValueHeaders": {"host": [host], "x-forwarded-for": [source_ip]},
        }
    event["requestContext"] = context
    if body is not None:
        event["body"] = body
    event["isBase64Encoded"] = False
    return event


def direct_websocket_event(
    route: str,
    connection_id: str,
    authorizer: Mapping[str, Any],
    *,
    body: str | None = None,
    source_ip: str = "203.0.113.9",
    user_agent: str = "local",
    message_id: str | None = None,
) -> dict[str, Any]:
    """The event of `route` (`$connect`, `$disconnect` or a message's route) on the connection, with the
    authorizer's context (its `principalId` defaulted), as API Gateway would give it the WebSocket function: for
    calling the handler in process, without a gateway (the tests, the benches)."""
    event_type = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE")
    context = websocket_request_context(
        route_key=route,
        event_type=event_type,
        connection_id=connection_id,
        connected_at=int(time.time() * 1000),
        source_ip=source_ip,
        user_agent=user_agent,
        host="localhost",
        stage="local",
    )
    return build_websocket_event(
        context, authorizer={"principalId": "p", **authorizer}, body=body, message_id=message_id
    )


def create_websocket_app(
    api: WebSocketApi,
    *,
    load_handler: Callable[[TemplateRoute | LambdaFunction], LambdaHandler] | None = None,
    in_process: bool | None = None,
    concurrency: int | None = None,
    idle_timeout_seconds: float | None = None,
    max_connection_seconds: float | None = None,
    environments: ExecutionEnvironments | None = None,
    invocable: Sequence[LambdaFunction] = (),
) -> Starlette:
    """An ASGI app serving `api` (`local.template.websocket_api()`) at `/`, and the management API
    (`/@connections/{connectionId}`) beside it, as API Gateway does; and, for the `invocable` functions (those the
    functions invoke: `local.template.invoked_functions()`), Lambda's asynchronous Invoke API (`lambda_api`).

    `load_handler` imports a route's (or the authorizer's) function in process; by default handlers run in
    worker pools like the HTTP API's (`in_process`, `concurrency`). The timeouts default to API Gateway's
    (or `WS_IDLE_TIMEOUT_SECONDS`, `WS_MAX_CONNECTION_SECONDS`)."""
    idle_timeout = idle_timeout_seconds or float(os.environ.get("WS_IDLE_TIMEOUT_SECONDS") or IDLE_TIMEOUT_SECONDS)
    lifetime = max_connection_seconds or float(os.environ.get("WS_MAX_CONNECTION_SECONDS") or MAX_CONNECTION_SECONDS)
    loader = load_handler or _load_route_handler
    if in_process is None:
        in_process = load_handler is not None or in_process_default()
    elif not in_process and load_handler is not None:
        raise ValueError("a load_handler of the caller's runs in process only")
    if environments is None:
        functions: dict[str, tuple[LambdaFunction, Callable[[], LambdaHandler]]] = {}
        for route in api.routes:
            functions.setdefault(route.function.logical_id, (route.function, functools.partial(loader, route)))
            if route.authorizer is not None:
                authorizer = route.authorizer
                functions.setdefault(authorizer.logical_id, (authorizer, functools.partial(loader, authorizer)))
        for function in invocable:
            functions.setdefault(function.logical_id, (function, functools.partial(loader, function)))
        environments = execution_environments(list(functions.values()), in_process=in_process, concurrency=concurrency)
    invoke = environments.invoke
    connections: dict[str, Connection] = {}
    live: set[str] = set()  # accepted connections whose $disconnect has not returned yet
    selection_path = _selection_path(api.route_selection_expression)

    async def endpoint(websocket: WebSocket) -> None:
        conn_id = new_connection_id()
        connected_at = _now_ms()
        raw_query = websocket.scope.get("query_string", b"").decode("latin-1")
        source_ip = websocket.client.host if websocket.client else "127.0.0.1"  # the TCP peer, never a header
        user_agent = websocket.headers.get("user-agent", "")
        host = websocket.headers.get("host", "localhost")
        given = ",".join(websocket.headers.getlist("x-forwarded-for")) or None
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in websocket.scope.get("headers", [])
            if k.lower() != b"x-forwarded-for"
        ]
        headers.append(("x-forwarded-for", forwarded_for(given, source_ip)))
        path = websocket.scope.get("path", "/")  # never the query: it holds tokens

        def context(route_key: str, event_type: str) -> dict[str, Any]:
            return websocket_request_context(
                route_key=route_key,
                event_type=event_type,
                connection_id=conn_id,
                connected_at=connected_at,
                source_ip=source_ip,
                user_agent=user_agent,
                host=host,
                stage=api.stage,
            )

        # $connect: the authorizer, then the integration, and only then the upgrade.
        connect_route = api.route("$connect")
        authorizer_context: dict[str, Any] | None = None
        if connect_route is not None and connect_route.authorizer is not None:
            authorizer_fn = connect_route.authorizer
            event = build_websocket_authorizer_event(
                headers=headers,
                raw_query_string=raw_query,
                request_context=context("$connect", "CONNECT"),
                api_id=WS_API_ID,
                stage=api.stage,
            )
            result: AuthorizerResult = await run_in_threadpool(
                run_request_authorizer,
                functools.partial(invoke, authorizer_fn.logical_id),
                event,
                identity_sources=connect_route.identity_sources,
            )
            if not result.allowed:
                logger.info("WebSocket %s refused by the authorizer: %d", path, result.status)
                await _refuse(websocket, result.status)
                return
            authorizer_context = result.request_context_authorizer()

        if connect_route is not None:
            event = build_websocket_event(
                context("$connect", "CONNECT"),
                authorizer=authorizer_context,
                headers=headers,
                raw_query_string=raw_query,
            )
            status = await _invoke_status(invoke, connect_route, event)
            if not 200 <= status < 300:
                logger.info("WebSocket %s refused by $connect: %d", path, status)
                await _refuse(websocket, status)
                return

        await websocket.accept()
        connection = Connection(
            connection_id=conn_id,
            websocket=websocket,
            connected_at_ms=connected_at,
            source_ip=source_ip,
            user_agent=user_agent,
            authorizer=authorizer_context,
            headers=headers,
            last_active_ms=connected_at,
        )
        connections[conn_id] = connection
        live.add(conn_id)
        logger.info("WebSocket %s connected: %s", path, conn_id)

        inbox: asyncio.Queue[str | None] = asyncio.Queue()

        async def deliver() -> None:
            while (body := await inbox.get()) is not None:
                route_key = _select_route(body, selection_path)
                route = api.route(route_key) if route_key is not None else None
                route = route or api.route("$default")
                message_id = new_request_id()
                if route is None:
                    await _error_to_client(connection, "Forbidden", message_id)
                    continue
                event = build_websocket_event(
                    context(route.route_key, "MESSAGE"), authorizer=authorizer_context, body=body, message_id=message_id
                )
                try:
                    result = await run_in_threadpool(invoke, route.function.logical_id, event)
                except Exception as exc:  # a FunctionError, or the gateway's own bug: the connection keeps serving
                    detail = exc if isinstance(exc, FunctionError) else traceback.format_exc()
                    logger.error(
                        "WebSocket route %s (%s) failed\n%s", route.route_key, route.function.logical_id, detail
                    )
                    await _error_to_client(connection, "Internal server error", event["requestContext"]["requestId"])
                    continue
                if route.two_way:
                    await connection.post(route_response_payload(result))

        delivery = asyncio.create_task(deliver())
        code, reason = 1005, ""
        hard_deadline = time.monotonic() + lifetime
        idle_deadline = time.monotonic() + idle_timeout
        try:
            while True:
                wait = min(idle_deadline, hard_deadline) - time.monotonic()
                try:
                    message = await asyncio.wait_for(websocket.receive(), timeout=max(wait, 0.0))
                except TimeoutError:
                    which = "idle timeout" if idle_deadline <= hard_deadline else "connection duration limit"
                    logger.info("WebSocket %s closed by the gateway: %s", conn_id, which)
                    await connection.close(GOING_AWAY, "Going away")
                    code, reason = GOING_AWAY, "Going away"
                    break
                if message["type"] == "websocket.disconnect":
                    code, reason = int(message.get("code") or 1005), str(message.get("reason") or "")
                    break
                if message.get("bytes") is not None:
                    await connection.close(1003, "Binary frames are not supported")
                    code, reason = 1003, "Binary frames are not supported"
                    break
                text = message.get("text")
                if text is None:
                    continue
                connection.last_active_ms = _now_ms()
                idle_deadline = time.monotonic() + idle_timeout
                inbox.put_nowait(text)
        except (WebSocketDisconnect, OSError, RuntimeError) as exc:
            code = getattr(exc, "code", 1006)
        finally:
            # Whatever ended the connection (the client, the gateway, an error of the gateway's own), `$disconnect`
            # runs, after the connection's earlier messages: its function forgets the connection.
            connection.open = False
            connections.pop(conn_id, None)
            if connection.closed_by_gateway is not None:
                code, reason = connection.closed_by_gateway
            inbox.put_nowait(None)
            try:
                await asyncio.shield(delivery)
            except Exception:
                logger.error("WebSocket %s: the delivery of its messages failed\n%s", conn_id, traceback.format_exc())
            finally:
                await _disconnect(invoke, api.route("$disconnect"), context, authorizer_context, (code, reason))
                live.discard(conn_id)
                logger.info("WebSocket %s disconnected: %d %s", conn_id, code, reason)

    routes: list[BaseRoute] = [
        *management_routes(connections),
        *lambda_routes({function.logical_id: function for function in invocable}, invoke),
        WebSocketRoute("/", endpoint),
        WebSocketRoute("/{path:path}", endpoint),
    ]
    app = Starlette(routes=routes)
    app.state.execution_environments = environments
    app.state.connections = connections
    app.state.live_connections = live
    return app


async def _disconnect(
    invoke: Callable[[str, dict[str, Any]], Any],
    route: TemplateRoute | None,
    context: Callable[[str, str], dict[str, Any]],
    authorizer: Mapping[str, Any] | None,
    status: tuple[int, str],
) -> None:
    """The `$disconnect` event of a connection, when the API has the route; its failure is logged."""
    if route is None:
        return
    event = build_websocket_event(context("$disconnect", "DISCONNECT"), authorizer=authorizer, disconnect=status)
    try:
        await run_in_threadpool(invoke, route.function.logical_id, event)
    except FunctionError as exc:
        logger.error("WebSocket $disconnect (%s) failed\n%s", route.function.logical_id, exc)


async def _refuse(websocket: WebSocket, status: int) -> None:
    """Refuse the upgrade with an HTTP response, as API Gateway answers a refused `$connect`."""
    messages = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 500: "Internal server error"}
    body = {"message": messages.get(status, "Forbidden" if status < 500 else "Internal server error")}
    await websocket.send_denial_response(JSONResponse(body, status_code=status))


async def _invoke_status(
    invoke: Callable[[str, dict[str, Any]], Any], route: TemplateRoute, event: dict[str, Any]
) -> int:
    """The `statusCode` the `$connect` integration answered (200 when it answered none), 500 on error."""
    try:
        result = await run_in_threadpool(invoke, route.function.logical_id, event)
    except FunctionError as exc:
        logger.error("WebSocket $connect (%s) failed\n%s", route.function.logical_id, exc)
        return 500
    if isinstance(result, dict) and "statusCode" in result:
        status = result["statusCode"]
        return status if isinstance(status, int) and 100 <= status <= 599 else 500
    return 200


def route_response_payload(result: Any) -> bytes:
    """What a two-way route sends its caller of a Lambda proxy integration's result: the `body` (decoded from
    base64 when `isBase64Encoded`), or an empty message when the result has none."""
    body = result.get("body") if isinstance(result, dict) else None
    if body is None:
        return b""
    text = body if isinstance(body, str) else json.dumps(body)
    if isinstance(result, dict) and result.get("isBase64Encoded") is True:
        return base64.b64decode(text)
    return text.encode("utf-8")


async def _error_to_client(connection: Connection, message: str, request_id: str) -> None:
    payload = {"message": message, "connectionId": connection.connection_id, "requestId": request_id}
    await connection.post(json.dumps(payload).encode())


def _selection_path(expression: str) -> Sequence[str] | None:
    """`$request.body.action` -> ("action",); other kinds of expression select `$default` only."""
    prefix = "$request.body."
    if not expression.startswith(prefix):
        logger.warning("route selection expression %r is not served locally: all messages go to $default", expression)
        return None
    return tuple(expression[len(prefix) :].split("."))


def _select_route(body: str, path: Sequence[str] | None) -> str | None:
    """The route key the expression selects from `body`: None (so `$default`) if it selects nothing."""
    if path is None:
        return None
    try:
        value: Any = json.loads(body)
    except (ValueError, RecursionError):  # nested too deeply for the decoder: a body API Gateway cannot route
        return None
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return None
