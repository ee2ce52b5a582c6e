"""Call a handler in-process with the event API Gateway's HTTP API (payload 2.0) would send it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from uuid import UUID, uuid4

from local.gateway import LambdaContext, build_http_event
from local.template import http_routes


@cache
def _route_patterns() -> list[tuple[str, str, re.Pattern[str]]]:
    return [
        (r.method, r.route_key, re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(r.path)) + "$"))
        for r in http_routes()
    ]


def route_key(method: str, path: str) -> str:
    """The template's route key for a request, as API Gateway puts it in the event."""
    for route_method, key, pattern in _route_patterns():
        if route_method == method and pattern.match(path):
            return key
    raise AssertionError(f"no template route for {method} {path}")


def invoke_sample_event(
    handler: Callable[[dict[str, Any], Any], dict[str, Any]], path: Path, function_name: str
) -> dict[str, Any]:
    """A sample event from events/ through a handler, as `sam local invoke -e` would send it."""
    return handler(json.loads(path.read_text()), LambdaContext(function_name, 512, 10))


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def data(self) -> Any:
        assert self.body.get("success") is True, self.body
        return self.body["data"]

    @property
    def error(self) -> dict[str, Any]:
        assert self.body.get("success") is False, self.body
        return dict(self.body["error"])


@dataclass
class HandlerClient:
    handler: Callable[[dict[str, Any], Any], dict[str, Any]]
    tenant: UUID
    role: str = "admin"
    agent_id: UUID | None = None
    claims: dict[str, Any] | None = field(default=None)

    def as_tenant(self, tenant: UUID, role: str = "admin") -> HandlerClient:
        return HandlerClient(self.handler, tenant=tenant, role=role)

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        raw_body: str | bytes | None = None,
        query: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        source_ip: str = "127.0.0.1",
    ) -> Reply:
        if claims is None:
            claims = self.claims or {"sub": f"user-{uuid4()}", "tenant_id": str(self.tenant), "role": self.role}
            if self.agent_id:
                claims["agent_id"] = str(self.agent_id)
        body = raw_body if raw_body is not None else (json.dumps(json_body) if json_body is not None else None)
        event = build_http_event(
            route_key=route_key(method, path),
            method=method,
            raw_path=path,
            raw_query_string=urlencode(query or {}, doseq=True),
            headers=([("content-type", content_type)] if body is not None else []) + list((headers or {}).items()),
            body=body.encode() if isinstance(body, str) else (body or b""),
            claims=claims,
            source_ip=source_ip,
        )
        context = LambdaContext(function_name="TicketsFunction", memory_limit_in_mb=512, timeout_seconds=10)
        result = self.handler(event, context)
        return Reply(
            status=result["statusCode"],
            body=json.loads(result["body"]) if result.get("body") else {},
            headers=result.get("headers") or {},
        )

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("POST", path, json_body=body, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("PATCH", path, json_body=body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("PUT", path, json_body=body, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.request("DELETE", path, **kw)
