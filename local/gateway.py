"""The local API Gateway: the HTTP API of `template.yaml`, served by uvicorn, handlers run in-process.

For each request it does what API Gateway does in AWS: the JWT authorizer's checks (401 otherwise),
route selection by route key (404 otherwise), the 10 MB payload limit (413), the HTTP API payload
format 2.0 event, a Lambda invocation (one at a time per function, like one execution environment),
and the mapping of the handler's result back to HTTP (500 when the handler fails).

`sam local start-api` needs Docker and has no WebSocket support (aws-sam-cli issues 896 and 7975);
the WebSocket API and the `@connections` management API join this app in a later issue, as more
Starlette routes beside the HTTP API's catch-all one.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import os
import re
import secrets
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from local.jwt_keys import ALGORITHM, AUDIENCE, ISSUER, signing_key
from local.template import CorsConfig, HttpRoute, LambdaHandler, load_route_handler

logger = logging.getLogger("local.gateway")

ACCOUNT_ID = "123456789012"
API_ID = "localhttp0"  # API Gateway ids are ten lower-case letters and digits
REGION = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
STAGE = "$default"
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's HTTP API payload limit
MAX_INVOCATION_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit (the event)
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# Content types API Gateway passes to Lambda as text; any other body arrives base64-encoded.
_TEXT_CONTENT_TYPE = re.compile(r"^(text/|application/([\w.+-]+\+)?(json|xml|javascript)\b)", re.IGNORECASE)


class JwtAuthorizer:
    """API Gateway's JWT authorizer: the token from `Authorization` (with or without `Bearer `),
    RS256 with a known `kid`, issuer, audience, `exp` required and not past, `nbf`/`iat` not future."""

    def __init__(
        self,
        public_key: rsa.RSAPublicKey,
        key_id: str,
        *,
        issuer: str = ISSUER,
        audience: str | Sequence[str] = AUDIENCE,
    ) -> None:
        self._public_key = public_key
        self._key_id = key_id
        self._issuer = issuer
        self._audience = [audience] if isinstance(audience, str) else list(audience)

    @classmethod
    def local(cls) -> JwtAuthorizer:
        key = signing_key()
        return cls(key.public_key, key.key_id)

    def claims(self, authorization: str | None) -> dict[str, Any]:
        """The verified claims, or `InvalidTokenError` naming what is wrong (never shown to the client)."""
        if not authorization or not authorization.strip():
            raise jwt.InvalidTokenError("no token")
        token = authorization.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if jwt.get_unverified_header(token).get("kid") != self._key_id:
            raise jwt.InvalidTokenError("unknown kid")
        return jwt.decode(
            token,
            self._public_key,
            algorithms=[ALGORITHM],
            issuer=self._issuer,
            audience=self._audience,
            options={"require": ["exp", "iss", "aud"], "verify_iat": True},
        )


@dataclass
class _CompiledRoute:
    route: HttpRoute
    handler: LambdaHandler
    lock: threading.Lock  # shared by all routes of one function: one execution environment
    pattern: re.Pattern[str] | None  # None for $default
    specificity: tuple[int, ...]  # per segment: 0 literal, 1 {param}, 2 {proxy+}; smaller wins


@dataclass
class LambdaContext:
    """The attributes and method of the Lambda context object that Powertools and handlers read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: Any = None
    client_context: Any = None
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


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


def _request_id() -> str:
    return base64.b64encode(secrets.token_bytes(11)).decode()  # 16 characters, as API Gateway's


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
    request_id = request_id or _request_id()
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    joined.setdefault("x-forwarded-for", source_ip)
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
) -> Starlette:
    """An ASGI app serving `routes` (from `local.template.http_routes()`) as API Gateway would.
    Handlers are imported now, so a broken handler module stops the gateway at start, not at first use.
    With `cors` (`local.template.cors_configuration()`), CORS preflight requests are answered before the
    authorizer and CORS headers added to responses, as API Gateway does for an API with a CORS config."""
    authorizer = authorizer or JwtAuthorizer.local()
    locks: dict[str, threading.Lock] = {}
    handlers: dict[tuple[str, str], LambdaHandler] = {}
    compiled: list[_CompiledRoute] = []
    for route in routes:
        key = (route.code_uri, route.handler)
        if key not in handlers:
            handlers[key] = load_handler(route)
        pattern, specificity = _compile(route.path)
        compiled.append(
            _CompiledRoute(
                route=route,
                handler=handlers[key],
                lock=locks.setdefault(route.function_logical_id, threading.Lock()),
                pattern=pattern,
                specificity=specificity,
            )
        )

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
        request_id = _request_id()
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

        client = request.client
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
            result = await run_in_threadpool(_invoke, entry, event)
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
    return Starlette(routes=[Route("/{path:path}", http_api, methods=list(HTTP_METHODS))], middleware=middleware)


def _invoke(entry: _CompiledRoute, event: dict[str, Any]) -> Any:
    route = entry.route
    with entry.lock:  # one invocation at a time per function, as in one execution environment
        context = LambdaContext(
            function_name=route.function_logical_id,
            memory_limit_in_mb=route.memory_size_mb,
            timeout_seconds=route.timeout_seconds,
        )
        started = time.monotonic()
        result = entry.handler(event, context)
        elapsed = time.monotonic() - started
    if elapsed > route.timeout_seconds:
        logger.warning(
            "%s took %.1f s, over its %d s timeout: in AWS this invocation would have failed",
            route.function_logical_id,
            elapsed,
            route.timeout_seconds,
        )
    return result


def serve(
    app: Starlette,
    host: str = "127.0.0.1",
    port: int | None = None,
    *,
    access_log: bool = True,
    log_level: str = "info",
) -> uvicorn.Server:
    """A uvicorn server for `app` (`PORT`, default 3000): call `.run()` to serve until Ctrl-C or
    SIGTERM, or set `.should_exit = True` from another thread to stop it."""
    config = uvicorn.Config(
        app,
        host=host,
        port=int(os.environ.get("PORT", "3000")) if port is None else port,
        lifespan="off",
        access_log=access_log,
        log_level=log_level,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


@contextmanager
def running_gateway(
    app: Starlette,
    port: int = 0,
    host: str = "127.0.0.1",
    *,
    access_log: bool = False,
    start_timeout: float = 10.0,
) -> Iterator[str]:
    """Serve `app` from a background thread; yields the base URL (a free port when `port` is 0) and
    stops the server, waiting for its thread, on exit."""
    # uvicorn's log level also gates its access log: "info" shows each request, "warning" only problems.
    server = serve(app, host, port, access_log=access_log, log_level="info" if access_log else "warning")
    thread = threading.Thread(target=server.run, name=f"gateway-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout=start_timeout)
            raise RuntimeError(f"the local gateway did not start on {host}:{port}")
        time.sleep(0.01)
    bound_port = next(itertools.chain.from_iterable(s.sockets for s in server.servers)).getsockname()[1]
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=start_timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=start_timeout)
