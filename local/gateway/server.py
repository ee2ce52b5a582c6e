"""uvicorn serving the gateway's apps: the HTTP API on one port, the WebSocket API with its management
API on another, as API Gateway gives each API its own endpoint. Every listener answers its own host names
only (`hosts.LocalHostsOnly`, against DNS rebinding) and reads no proxy headers. uvicorn runs on uvloop and parses
HTTP with httptools (both pinned in requirements-dev.in; its `auto` picks them, and falls back to asyncio and h11
without them): about a quarter less of the gateway's CPU per chat message than h11 on asyncio (bench.live_chat).
The WebSocket frames are not HTTP's: `ApiGatewayWebSocketProtocol` (websockets' sans-I/O protocol) reads them.

Tokens never reach the logs: the WebSocket API takes them in the query string (`?token=`,
`?visitorToken=`), which uvicorn's access log would print, so every log line of uvicorn and of the
gateway passes `redact` first.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from local.gateway.hosts import LocalHostsOnly
from local.gateway.websocket_api import MAX_FRAME_BYTES, MAX_MESSAGE_BYTES, create_websocket_app
from local.template import REPO, TEMPLATE, invoked_functions, websocket_api

logger = logging.getLogger("local.gateway")

_SECRET_QUERY = re.compile(r"(?i)([?&](?:token|visitorToken|access_token|id_token)=)[^&\s\"']*")
_SECRET_HEADER = re.compile(r"(?i)(bearer\s+)[\w.~+/=-]+")


def redact(text: str) -> str:
    """`text` with query-string tokens and bearer tokens replaced by `[redacted]`."""
    return _SECRET_HEADER.sub(r"\1[redacted]", _SECRET_QUERY.sub(r"\1[redacted]", text))


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def _install_redaction() -> None:
    for name in ("uvicorn.error", "uvicorn.access", "local.gateway"):
        log = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in log.filters):
            log.addFilter(RedactTokens())


class ApiGatewayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol with API Gateway's frame limits: a frame over 32 KB or a (fragmented)
    message over 128 KB closes the connection with 1009 (message too big), as API Gateway does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn.max_message_size = MAX_MESSAGE_BYTES
        self.conn.max_fragment_size = MAX_FRAME_BYTES

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
            # A refused upgrade is a finished handshake: without this uvicorn logs "ASGI callable returned
            # without completing handshake" for every connection the authorizer refuses.
            self.handshake_complete = True


def serve(
    app: Starlette,
    host: str = "127.0.0.1",
    port: int | None = None,
    *,
    access_log: bool = True,
    log_level: str = "info",
    websocket: bool = False,
) -> uvicorn.Server:
    """A uvicorn server for `app` (`PORT`, default 3000): call `.run()` to serve until Ctrl-C or
    SIGTERM, or set `.should_exit = True` from another thread to stop it. With `websocket`, WebSocket
    connections get API Gateway's limits and no server pings (API Gateway sends none)."""
    config = uvicorn.Config(
        LocalHostsOnly(app),  # its own host names only, whatever the app (see `hosts`)
        host=host,
        port=int(os.environ.get("PORT", "3000")) if port is None else port,
        lifespan="off",
        access_log=access_log,
        log_level=log_level,
        server_header=False,
        # API Gateway's `sourceIp` is the TCP peer: uvicorn would otherwise take the client's address from an
        # X-Forwarded-For that anyone on 127.0.0.1 (every local client) may send.
        proxy_headers=False,
        timeout_graceful_shutdown=5,
        ws=ApiGatewayWebSocketProtocol if websocket else "auto",
        ws_max_size=MAX_MESSAGE_BYTES,
        ws_ping_interval=None if websocket else 20.0,
        ws_per_message_deflate=False,
    )
    _install_redaction()  # after uvicorn.Config, which configures its loggers
    return uvicorn.Server(config)


def _close_environments(app: Starlette) -> None:
    environments = getattr(app.state, "execution_environments", None)
    if environments is not None:
        environments.close()


@contextmanager
def _running(
    app: Starlette, port: int, host: str, *, access_log: bool, start_timeout: float, websocket: bool
) -> Iterator[int]:
    # uvicorn's log level also gates its access log: "info" shows each request, "warning" only problems. It is
    # process-wide (uvicorn's loggers), so the last server started sets it for all: `make run` logs every listener.
    server = serve(
        app, host, port, access_log=access_log, log_level="info" if access_log else "warning", websocket=websocket
    )
    thread = threading.Thread(target=server.run, name=f"gateway-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(timeout=start_timeout)
                raise RuntimeError(f"the local gateway did not start on {host}:{port}")
            time.sleep(0.01)
        bound_port = next(itertools.chain.from_iterable(s.sockets for s in server.servers)).getsockname()[1]
        try:
            yield int(bound_port)
        finally:
            server.should_exit = True
            thread.join(timeout=start_timeout)
            if thread.is_alive():
                server.force_exit = True
                thread.join(timeout=start_timeout)
    finally:
        _close_environments(app)


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
    stops the server, waiting for its thread, and the app's worker processes on exit."""
    with _running(app, port, host, access_log=access_log, start_timeout=start_timeout, websocket=False) as bound:
        yield f"http://{host}:{bound}"


@dataclass(frozen=True)
class WebSocketEndpoints:
    websocket_url: str  # ws://127.0.0.1:3001, what clients connect to
    management_endpoint: str  # http://127.0.0.1:3001, the fan-out's WEBSOCKET_MANAGEMENT_ENDPOINT
    # (and AWS_ENDPOINT_URL_LAMBDA: the same listener serves Lambda's Invoke API for the invoked functions)


@contextmanager
def running_websocket_gateway(
    app: Starlette,
    port: int | None = None,
    host: str = "127.0.0.1",
    *,
    access_log: bool = False,
    start_timeout: float = 10.0,
) -> Iterator[WebSocketEndpoints]:
    """Serve the WebSocket API and its management API (`websocket_api.create_websocket_app`) from a
    background thread on `port` (`WS_PORT`, default 3001; 0 for a free one), like `running_gateway`."""
    port = int(os.environ.get("WS_PORT", "3001")) if port is None else port
    with _running(app, port, host, access_log=access_log, start_timeout=start_timeout, websocket=True) as bound:
        yield WebSocketEndpoints(f"ws://{host}:{bound}", f"http://{host}:{bound}")


@contextmanager
def running_template_websocket_api(
    port: int | None = None, *, template: Path = TEMPLATE, access_log: bool = False
) -> Iterator[WebSocketEndpoints | None]:
    """The WebSocket API of `template` with its management API and the Invoke API of the functions the functions
    invoke (the staff broadcast's), served like `running_websocket_gateway` (`WS_PORT`, default 3001), its
    functions in worker pools. Yields None, with a warning, while the code folder of one of its functions does not
    exist yet; a module that is there but broken stops it."""
    api = websocket_api(template)
    invocable = invoked_functions(template)
    functions = {route.function for route in api.routes} | {r.authorizer for r in api.routes if r.authorizer}
    missing = sorted(f.code_uri for f in functions | set(invocable) if not (REPO / f.code_uri).is_dir())
    if missing:
        logger.warning("the WebSocket API is not served: no code at %s yet", ", ".join(missing))
        yield None
        return
    app = create_websocket_app(api, invocable=invocable)
    with running_websocket_gateway(app, port, access_log=access_log) as endpoints:
        yield endpoints
