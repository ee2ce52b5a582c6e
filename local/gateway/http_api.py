"""API Gateway's HTTP API: the `HttpApi` routes of `template.yaml`.

For each request it does what API Gateway does in AWS: route selection by route key (404 otherwise), the
JWT authorizer's checks (401 otherwise, `authorizers.JwtAuthorizer`), the 10 MB payload limit (413), the
HTTP API payload format 2.0 event, a Lambda invocation (`execution_environments`), and the mapping of the
handler's result back to HTTP (500 when the handler fails).
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
import secrets
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

import jwt
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from local.gateway.authorizers import JwtAuthorizer
from local.gateway.aws import ACCOUNT_ID, forwarded_for
from local.gateway.aws import request_id as new_request_id
from local.gateway.execution_environments import execution_environments, in_process_default
from local.template import CorsConfig, HttpRoute, LambdaFunction, LambdaHandler, load_route_handler

logger = logging.getLogger("local.gateway")

API_ID = "localhttp0"  # API Gateway ids are ten lower-case letters and digits
STAGE = "$default"
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's HTTP API payload limit
MAX_INVOCATION_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit (the event)
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# Content types API Gateway passes to Lambda as text; any other body arrives base64-encoded.
_TEXT_CONTENT_TYPE = re.compile(r"^(text/|application/([\w.+-]+\+)?(json|xml|javascript)\b)", re.IGNORECASE)


@dataclass
class _CompiledRoute:
    route: HttpRoute
    pattern: re.Pattern[str] | None  # None for $default
    specificity: tuple[int, ...]  # per segment: 0 literal, 1 {param}, 2 {proxy+}; smaller wins


def _compile(path: str) -> tuple[re.Pattern[str] | None, tuple[int, ...]]:
    if path == "$default":
        return None, (3,)
    regex, specificity = [], []
    for segment in path.strip("/").split("/"):
        if greedy := re.fullmatch(r"\{(\w+)\+\}", segment):
            regex.append(rf"(?P<{greedy.group(1)}>.+)")
            specificity.append(2)
        elif param := re.fullmatch(r"\{(\w+)\}", segment):
            regex.append(rf"(?P<{param.group(1)}>[^/]+)")
            specificity.append(1)
        else:
            regex.append(re.escape(segment))
            specificity.append(0)
    return re.compile("/" + "/".join(regex)), tuple(specificity)


def _stringify_claim(value: Any) -> str:
    """Claims as API Gateway hands them to the integration: every value a string, lists as `[a b]`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_stringify_claim(item) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_stringify_claim(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def build_http_event(
    *,
    route_key: str,
    method: str,
    raw_path: str,
    raw_query_string: str = "",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    path_parameters: Mapping[str, str] | None = None,
    claims: Mapping[str, Any] | None = None,
    source_ip: str = "127.0.0.1",
    domain_name: str = "localhost",
    api_id: str = API_ID,
    protocol: str = "HTTP/1.1",
    forwarded_proto: str = "https",
    forwarded_port: int = 443,
    request_id: str | None = None,
    received_at: datetime | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload format 2.0 event, as API Gateway builds it for a Lambda proxy
    integration behind a JWT authorizer. Keys API Gateway leaves out when empty are left out."""
    received_at = received_at or datetime.now(UTC)
    request_id = request_id or new_request_id()
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    joined["x-forwarded-for"] = forwarded_for(joined.get("x-forwarded-for"), source_ip)
    joined.setdefault("x-forwarded-port", str(forwarded_port))
    joined.setdefault("x-forwarded-proto", forwarded_proto)
    joined.setdefault("x-amzn-trace-id", f"Root=1-{int(received_at.timestamp()):08x}-{secrets.token_hex(12)}")

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query_string,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = joined
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query_string, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    if query:
        event["queryStringParameters"] = query
    epoch_ms = int(received_at.timestamp() * 1000)
    request_context: dict[str, Any] = {
        "accountId": ACCOUNT_ID,
        "apiId": api_id,
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0],
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": protocol,
            "sourceIp": source_ip,
            "userAgent": joined.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": STAGE,
        "time": received_at.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": epoch_ms,
    }
    if claims is not None:
        scopes = str(claims.get("scope") or claims.get("scp") or "").split()
        request_context["authorizer"] = {
            "jwt": {
                "claims": {name: _stringify_claim(value) for name, value in claims.items()},
                "scopes": scopes or None,
            }
        }
    event["requestContext"] = request_context
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body:
        content_type = joined.get("content-type", "")
        text = _decode_text(body) if _TEXT_CONTENT_TYPE.match(content_type) else None
        event["body"] = text if text is not None else base64.b64encode(body).decode()
        event["isBase64Encoded"] = text is None
    else:
        event["isBase64Encoded"] = False
    return event


def _decode_text(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _json_message(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps({"message": message}, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _lambda_response(result: Any, request_id: str) -> Response:
    """A payload format 2.0 result as API Gateway turns it into HTTP. A result without `statusCode`
    is taken as the JSON body of a 200, as API Gateway does."""
    if not isinstance(result, dict) or "statusCode" not in result:
        body = result if isinstance(result, str) else json.dumps(result)
        result = {"statusCode": 200, "body": body, "headers": {"content-type": "application/json"}}
    status = result["statusCode"]
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"statusCode {status!r} is not an HTTP status")
    body_value = result.get("body") or ""
    if not isinstance(body_value, str):
        raise ValueError("body must be a string")
    content = base64.b64decode(body_value, validate=True) if result.get("isBase64Encoded") else body_value
    raw: list[tuple[bytes, bytes]] = []
    for name, value in (result.get("headers") or {}).items():
        raw.append((str(name).lower().encode("latin-1"), str(value).encode("latin-1")))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        for value in values:
            raw.append((str(name).lower().encode("latin-1"), str(value).encode("latin-1")))
    for cookie in result.get("cookies") or []:
        raw.append((b"set-cookie", str(cookie).encode("latin-1")))
    response = Response(content, status_code=status)
    body_bytes = response.body
    response.raw_headers = [
        (name, value) for name, value in raw if name not in (b"content-length", b"transfer-encoding")
    ]
    response.raw_headers.append((b"content-length", str(len(body_bytes)).encode()))
    response.raw_headers.append((b"apigw-requestid", request_id.encode()))
    return response


def create_app(
    routes: list[HttpRoute],
    *,
    authorizer: JwtAuthorizer | None = None,
    load_handler: Callable[[HttpRoute], LambdaHandler] = load_route_handler,
    cors: CorsConfig | None = None,
    in_process: bool | None = None,
    concurrency: int | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """An ASGI app serving `routes` (from `local.template.http_routes()`) as API Gateway would.
    Handlers are imported now, so a broken handler module stops the gateway at start, not at first use.
    With `cors` (`local.template.cors_configuration()`), CORS preflight requests are answered before the
    authorizer and CORS headers added to responses, as API Gateway does for an API with a CORS config.

    Handlers run in worker processes, a pool of `concurrency` (`LOCAL_LAMBDA_CONCURRENCY`, 4) per function
    (`execution_environments`); with `in_process=True` (or `LOCAL_LAMBDA_IN_PROCESS=1`, or a `load_handler`
    of the caller's, which can only run here) in this process, one invocation at a time per function.
    `GET /.well-known/jwks.json` publishes the authorizer's public key, as an identity provider does.
    `extra_routes` (the local pages, `local.gateway.static`) are matched before the API's routes.
    The app's `state.execution_environments` is closed by `running_gateway` (or by the caller)."""
    authorizer = authorizer or JwtAuthorizer.local()
    custom_loader = load_handler is not load_route_handler
    if in_process is None:
        in_process = custom_loader or in_process_default()
    elif not in_process and custom_loader:
        raise ValueError("a load_handler of the caller's runs in process only")
    functions: dict[str, tuple[LambdaFunction, Callable[[], LambdaHandler]]] = {}
    compiled: list[_CompiledRoute] = []
    for route in routes:
        functions.setdefault(route.function_logical_id, (route.function, functools.partial(load_handler, route)))
        pattern, specificity = _compile(route.path)
        compiled.append(_CompiledRoute(route=route, pattern=pattern, specificity=specificity))
    environments = execution_environments(list(functions.values()), in_process=in_process, concurrency=concurrency)

    def match(method: str, raw_path: str) -> tuple[_CompiledRoute, dict[str, str]] | None:
        candidates: list[tuple[tuple[int, ...], int, _CompiledRoute, dict[str, str]]] = []
        for entry in compiled:
            if entry.route.method not in (method, "ANY"):
                continue
            if entry.pattern is None:
                params: dict[str, str] = {}
            elif found := entry.pattern.fullmatch(raw_path):
                params = {name: unquote(value) for name, value in found.groupdict().items()}
            else:
                continue
            candidates.append((entry.specificity, entry.route.method == "ANY", entry, params))
        if not candidates:
            return None
        _, _, best, params = min(candidates, key=lambda item: (item[0], item[1]))
        return best, params

    async def http_api(request: Request) -> Response:
        request_id = new_request_id()
        received_at = datetime.now(UTC)
        raw_path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        method = request.method

        # As in API Gateway: route selection first (404), then the JWT authorizer (401), then the body.
        found = match(method, raw_path)
        if found is None:
            return _json_message(404, "Not Found")
        entry, path_parameters = found
        claims: dict[str, Any] | None = None
        if not entry.route.public:
            try:
                claims = authorizer.claims(request.headers.get("authorization"))
            except jwt.PyJWTError as exc:
                logger.info("401 %s %s: %s", method, raw_path, exc)
                error = "the token has expired" if isinstance(exc, jwt.ExpiredSignatureError) else "invalid token"
                challenge = f'Bearer scope="" error="invalid_token" error_description="{error}"'
                return _json_message(401, "Unauthorized", {"www-authenticate": challenge})

        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
            return _json_message(413, "Request Entity Too Large")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_REQUEST_BYTES:
                    return _json_message(413, "Request Entity Too Large")
                chunks.append(chunk)
        except ClientDisconnect:
            return Response(status_code=400)

        client = request.client  # the TCP peer (uvicorn reads no proxy headers: `server.serve`)
        host = (request.headers.get("host") or "localhost").rsplit(":", 1)[0]
        event = build_http_event(
            route_key=entry.route.route_key,
            method=method,
            raw_path=raw_path,
            raw_query_string=request.scope.get("query_string", b"").decode("latin-1"),
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
            body=b"".join(chunks),
            path_parameters=path_parameters,
            claims=claims,
            source_ip=client.host if client else "127.0.0.1",
            domain_name=host,
            protocol=f"HTTP/{request.scope.get('http_version', '1.1')}",
            forwarded_proto=request.url.scheme,
            forwarded_port=request.url.port or 80,
            request_id=request_id,
            received_at=received_at,
        )
        if len(json.dumps(event)) > MAX_INVOCATION_BYTES:
            logger.warning("413 %s %s: the event exceeds Lambda's 6 MB invocation limit", method, raw_path)
            return _json_message(413, "Request Entity Too Large")

        try:
            result = await run_in_threadpool(environments.invoke, entry.route.function_logical_id, event)
            return _lambda_response(result, request_id)
        except Exception:
            logger.error(
                "500 %s %s (%s): the handler failed\n%s",
                method,
                raw_path,
                entry.route.function_logical_id,
                traceback.format_exc(),
            )
            return _json_message(500, "Internal Server Error")

    middleware = []
    if cors is not None:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=cors.allow_origins,
                allow_methods=cors.allow_methods,
                allow_headers=cors.allow_headers,
                expose_headers=cors.expose_headers,
                allow_credentials=cors.allow_credentials,
                max_age=cors.max_age,
            )
        )
    jwks = authorizer.jwks()

    async def jwks_json(request: Request) -> Response:
        return JSONResponse(jwks, headers={"cache-control": "max-age=300"})

    app = Starlette(
        routes=[
            Route("/.well-known/jwks.json", jwks_json, methods=["GET", "HEAD"]),
            *extra_routes,
            Route("/{path:path}", http_api, methods=list(HTTP_METHODS)),
        ],
        middleware=middleware,
    )
    app.state.execution_environments = environments
    return app
