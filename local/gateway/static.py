"""Development only: the browser pages of the product, served by the local gateway and by `make run`.

- `static_routes()`: `web/widget/` at `/widget/` (the chat widget a merchant's page loads with one script tag)
  and `web/console/` at `/console/` (the agent console), mounted on the local HTTP API before its routes.
- `api_docs_routes()`: the HTTP API's OpenAPI document (the committed docs/openapi.json, `local.openapi`) at
  `/openapi.json` and Swagger UI at `/docs`, from the copy of Swagger UI that Powertools bundles (no network).
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
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from local.openapi import DOCUMENT as OPENAPI_DOCUMENT
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


def _swagger_ui_dir() -> Path:
    from aws_lambda_powertools.event_handler.openapi import swagger_ui

    return Path(swagger_ui.__file__).parent


SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Support desk HTTP API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.min.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.min.js"></script>
  <script src="/docs/start.js"></script>
</body>
</html>
"""
# Its own file rather than inline, so a page with a strict Content-Security-Policy (script-src 'self') runs it too.
SWAGGER_START = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
"""


def api_docs_routes(document: Path = OPENAPI_DOCUMENT) -> list[BaseRoute]:
    """`/openapi.json` (the committed document, as the stack's `ApiDocsUrl` serves it) and `/docs` (Swagger UI)."""
    assets = _swagger_ui_dir()
    headers = {"cache-control": NO_CACHE, "x-content-type-options": "nosniff"}

    async def openapi_json(request: Request) -> Response:
        return Response(document.read_bytes(), media_type="application/json", headers=headers)

    async def docs_page(request: Request) -> Response:
        return HTMLResponse(SWAGGER_PAGE, headers=headers)

    async def start_js(request: Request) -> Response:
        return Response(SWAGGER_START, media_type="text/javascript", headers=headers)

    def asset(name: str, media_type: str) -> Route:
        async def serve(request: Request) -> Response:
            return FileResponse(assets / name, media_type=media_type, headers=headers)

        return Route(f"/docs/{name}", serve, methods=["GET", "HEAD"])

    return [
        Route("/openapi.json", openapi_json, methods=["GET", "HEAD"]),
        Route("/docs", docs_page, methods=["GET", "HEAD"]),
        Route("/docs/", docs_page, methods=["GET", "HEAD"]),
        Route("/docs/start.js", start_js, methods=["GET", "HEAD"]),
        asset("swagger-ui-bundle.min.js", "text/javascript"),
        asset("swagger-ui.min.css", "text/css"),
    ]


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
