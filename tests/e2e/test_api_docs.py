"""The local gateway serves the HTTP API's documentation over real HTTP: the committed OpenAPI document at
`/openapi.json` and Swagger UI at `/docs`, its scripts and styles from the gateway itself (no CDN)."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from local.gateway import create_app, running_gateway
from local.gateway.static import api_docs_routes
from local.openapi import DOCUMENT

pytestmark = pytest.mark.e2e


def test_the_gateway_serves_the_openapi_document_and_swagger_ui() -> None:
    with running_gateway(create_app([], extra_routes=api_docs_routes())) as base_url:
        document = httpx.get(f"{base_url}/openapi.json")
        page = httpx.get(f"{base_url}/docs")
        assets = {src: httpx.get(base_url + src) for src in re.findall(r'(?:src|href)="(/[^"]+)"', page.text)}

    assert document.status_code == 200
    assert document.headers["content-type"].startswith("application/json")
    assert document.json() == json.loads(DOCUMENT.read_text(encoding="utf-8"))
    assert "/api/support/tickets" in document.json()["paths"]

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "//" not in "".join(assets), "every asset from the gateway itself"
    assert set(assets) == {"/docs/swagger-ui.min.css", "/docs/swagger-ui-bundle.min.js", "/docs/start.js"}
    for src, answer in assets.items():
        assert answer.status_code == 200, src
        assert answer.content, src
    assert "SwaggerUIBundle" in assets["/docs/swagger-ui-bundle.min.js"].text
    assert '"/openapi.json"' in assets["/docs/start.js"].text
    assert assets["/docs/swagger-ui.min.css"].headers["content-type"].startswith("text/css")
