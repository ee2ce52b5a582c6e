"""Development only: the browser pages of the product, served by the local gateway and by `make run`.

- `static_routes()`: `web/widget/` at `/widget/` (the chat widget a merchant's page loads with one script tag)
  and `web/console/` at `/console/` (the agent console), mounted on the local HTTP API before its routes.
- `merchant_app()`: the demo merchant's shop page (`web/demo-merchant/index.html`), templated at serve time with
  a widget key and the gateway's URLs, for a server of its own on another origin (`MERCHANT_PORT`, `PORT`+2), as a
  real shop's page is.

Nothing deployed imports `local/`: in AWS the same files are hosted anywhere (see docs/browser.md).
Responses carry `cache-control: no-cache` (a browser revalidates with the ETag each time), so an edit shows on
the next reload.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from local.template import REPO

WEB = REPO / "web"
WIDGET_DIR = WEB / "widget"
CONSOLE_DIR = WEB / "console"
MERCHANT_DIR = WEB / "demo-merchant"
NO_CACHE = "no-cache"
# Placeholders of web/demo-merchant/index.html, replaced (HTML-escaped) when the page is served.
MERCHANT_PLACEHOLDERS = ("{{WIDGET_SCRIPT_URL}}", "{{WIDGET_KEY}}", "{{API_URL}}", "{{WS_URL}}")
EXTRA_ATTRIBUTES = "{{EXTRA_ATTRIBUTES}}"  # more data-* attributes of the script tag (tests tune its timings)


class RevalidatedStaticFiles(StaticFiles):
    """StaticFiles whose answers (200 and 304) tell the browser to revalidate before each use."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["cache-control"] = NO_CACHE
        response.headers["x-content-type-options"] = "nosniff"
        return response


def static_routes(widget_dir: Path = WIDGET_DIR, console_dir: Path = CONSOLE_DIR) -> list[BaseRoute]:
    """`/widget/` and `/console/` (with its `index.html`), for each folder that exists."""
    routes: list[BaseRoute] = []
    for prefix, directory in (("/widget", widget_dir), ("/console", console_dir)):
        if directory.is_dir():
            routes.append(Mount(prefix, app=RevalidatedStaticFiles(directory=directory, html=True), name=prefix[1:]))
    return routes


def render_merchant_page(
    template: str,
    *,
    widget_script_url: str,
    widget_key: str,
    api_url: str,
    ws_url: str,
    attributes: Mapping[str, str] | None = None,
) -> str:
    values = (widget_script_url, widget_key, api_url, ws_url)
    page = template
    for placeholder, value in zip(MERCHANT_PLACEHOLDERS, values, strict=True):
        page = page.replace(placeholder, html.escape(value, quote=True))
    extra = "".join(
        f' data-{name}="{html.escape(value, quote=True)}"'
        for name, value in (attributes or {}).items()
        if name.replace("-", "").isalnum()
    )
    return page.replace(EXTRA_ATTRIBUTES, extra)


def merchant_app(
    *,
    widget_key: str,
    api_url: str,
    ws_url: str,
    attributes: Mapping[str, str] | None = None,
    page: Path = MERCHANT_DIR / "index.html",
) -> Starlette:
    """The demo shop: `/` is the page with the widget's script tag; the rest of its folder is served as is.
    `api_url` is the HTTP gateway (it serves /widget/widget.js), `ws_url` the WebSocket API; `attributes` adds
    `data-<name>` attributes to the script tag (say `{"ping-seconds": "1"}`)."""
    widget_script_url = api_url.rstrip("/") + "/widget/widget.js"

    async def index(request: Request) -> Response:
        body = render_merchant_page(
            page.read_text(encoding="utf-8"),
            widget_script_url=widget_script_url,
            widget_key=widget_key,
            api_url=api_url,
            ws_url=ws_url,
            attributes=attributes,
        )
        return HTMLResponse(body, headers={"cache-control": NO_CACHE})

    routes: Sequence[BaseRoute] = [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/index.html", index, methods=["GET", "HEAD"]),
        Mount("/", app=RevalidatedStaticFiles(directory=page.parent)),
    ]
    return Starlette(routes=list(routes))
