"""Development only: every local listener answers its own host names, so that no site can reach it by DNS rebinding.

Any web page the developer opens can point a name of its own site at 127.0.0.1 (DNS rebinding): the browser then
sends that page's requests, same-origin in its eyes, to a listener of this machine, with `Host` (and `Origin`, when
there is one) naming the site. A listener that answers only `127.0.0.1`, `localhost` and `[::1]` on its own port
refuses those before any routing, so no such page reads the local sign-in, the API, the WebSocket API or the pages:
`LocalHostsOnly` answers anything else `421 Misdirected Request` (a WebSocket upgrade is refused with it too).
`server.serve` puts it in front of every app it serves. The port is the listening socket's own (the ASGI scope's
`server`), never a header's.
"""

from __future__ import annotations

import logging

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger("local.gateway")

LOCAL_HOST_NAMES = ("127.0.0.1", "localhost", "[::1]")


def local_hosts(port: int) -> frozenset[str]:
    """The `Host` values a local listener on `port` answers (on port 80, also without the port, as browsers send it)."""
    hosts = {f"{name}:{port}" for name in LOCAL_HOST_NAMES}
    if port == 80:
        hosts.update(LOCAL_HOST_NAMES)
    return frozenset(hosts)


def local_origins(port: int) -> frozenset[str]:
    """The origins of the pages a local listener on `port` serves: `http://` and one of its `local_hosts`."""
    return frozenset(f"http://{host}" for host in local_hosts(port))


class LocalHostsOnly:
    """ASGI middleware: a request or WebSocket upgrade whose `Host` is not one of the listener's `local_hosts`
    gets a short plain 421 and never reaches `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        server = scope.get("server")
        port = int(server[1]) if server and server[1] is not None else 0
        host = Headers(scope=scope).get("host", "").lower()
        if port and host in local_hosts(port):
            await self.app(scope, receive, send)
            return
        logger.warning("421 for Host %r: not a host name of this local server", host)
        await misdirected(port)(scope, receive, send)


def misdirected(port: int) -> Response:
    """The short plain answer to a request for a host name a local listener on `port` does not answer."""
    names = ", ".join(sorted(local_hosts(port))) if port else "its own address"
    return PlainTextResponse(
        f"Misdirected request: this local server answers {names} only.\n",
        status_code=421,
        headers={"cache-control": "no-store", "x-content-type-options": "nosniff"},
    )
