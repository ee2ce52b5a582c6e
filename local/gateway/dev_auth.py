"""The local identity provider's sign-in, for the agent console: development only, never deployed.

In AWS the console's user signs in with the identity provider (Cognito's hosted sign-in, or a pasted token);
locally there is no provider, so the gateway offers the people of the desk to pick from and signs a token for
the one picked, with the same key and claims as `make token` (`local.token.mint_token`):

- `GET /_local/agents`: the demo tenants (or `?tenantId=<uuid>`, any tenant) with their agents and an admin;
- `POST /_local/token` `{"tenantId", "role": "admin" | "agent", "agentId"?, "expiresIn"?}`: a JWT the HTTP API's
  JWT authorizer and the WebSocket API's `$connect` authorizer accept, as `make token` would print it;
- `GET /_local/config`: the URLs the console talks to (this gateway, and the WebSocket API beside it).

Nothing in template.yaml routes `/_local` (a contract test checks it), so no deployed API can answer these.
They would hand anyone an admin token of any tenant, so besides listening on 127.0.0.1 only, they refuse what
a page of another site sends: the `Host` must be one of this listener's own names (`hosts.local_hosts`, as the
listener itself checks: a site rebound to 127.0.0.1 by DNS gets nothing), and the `Origin`, when there is one,
one of a fixed list built from the configured port (`hosts.local_origins`: 127.0.0.1, localhost and [::1] on
it), never from the request's own `Host`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from local.gateway.hosts import local_hosts, local_origins, misdirected
from local.token import DEFAULT_TTL, mint_token

PREFIX = "/_local"
MAX_TTL = 86_400  # a day, the longest lifetime the sign-in hands out
# The layer keeps one database connection per process (as per Lambda execution environment, which runs one
# invocation at a time); these routes run in the gateway's threads, so they take turns with it.
_ONE_AT_A_TIME = threading.Lock()


def _ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse({"success": True, "data": data}, status_code=status, headers={"cache-control": "no-store"})


def _refused(status: int, code: str, message: str, details: list[dict[str, str]] | None = None) -> JSONResponse:
    error = {"code": code, "message": message, "details": details or []}
    return JSONResponse({"success": False, "error": error}, status_code=status, headers={"cache-control": "no-store"})


def _foreign(request: Request, port: int) -> Response | None:
    """421 for another host name (a site rebound to 127.0.0.1), 403 when a page of another origin sends the
    request (browsers always send `Origin` cross-origin, and on every POST)."""
    if request.headers.get("host", "").lower() not in local_hosts(port):
        return misdirected(port)
    origin = request.headers.get("origin")
    if origin is None:
        return None  # not from a page's script (curl, a test's HTTP client), or a same-origin GET
    if origin.rstrip("/").lower() not in local_origins(port):
        own = f"http://127.0.0.1:{port}"
        return _refused(403, "forbidden", f"the local sign-in answers pages of {own} (or localhost) only")
    return None


def _to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _details(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {
            "field": ".".join(["body", *(_to_camel(str(p)) for p in err["loc"])]),
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors()
    ]


def _token_request_model() -> Any:
    # Built on first use: the layer (which ApiModel belongs to) is imported only once the function environment
    # is in place, as local.run arranges.
    from support.models.base import ApiModel

    class TokenRequest(ApiModel):
        tenant_id: UUID
        role: Literal["admin", "agent"]
        agent_id: UUID | None = None
        expires_in: Annotated[int, Field(ge=1, le=MAX_TTL)] = DEFAULT_TTL

    return TokenRequest


def _people(tenant_id: UUID, name: str | None) -> dict[str, Any]:
    """A tenant's admin and its agents (at most 100, the API's largest page), as the picker shows them."""
    from support.auth import Principal, Role
    from support.services import agents

    admin = Principal(tenant_id=tenant_id, role=Role.ADMIN, subject="local-sign-in")
    with _ONE_AT_A_TIME:
        staff = agents.list_agents(admin, limit=100).data
    return {
        "tenantId": str(tenant_id),
        "name": name,
        "agents": [
            {
                "id": str(a.id),
                "agentName": a.agent_name,
                "agentEmail": a.agent_email,
                "department": a.department,
                "status": a.status.value,
            }
            for a in sorted(staff, key=lambda a: a.agent_name)
        ],
    }


async def list_people(request: Request) -> JSONResponse:
    unknown = sorted(set(request.query_params) - {"tenantId"})
    if unknown:
        details = [
            {"field": f"query.{n}", "message": "Extra inputs are not permitted", "type": "extra_forbidden"}
            for n in unknown
        ]
        return _refused(422, "validation_error", "unknown query parameters", details)
    given = request.query_params.get("tenantId")
    if given is not None:
        try:
            tenants: dict[UUID, str | None] = {UUID(given): None}
        except ValueError:
            detail = {"field": "query.tenantId", "message": "Input should be a valid UUID", "type": "uuid_parsing"}
            return _refused(422, "validation_error", "tenantId is not a UUID", [detail])
    else:
        from local.demo_data import DEMO_TENANTS

        tenants = {tenant: name for name, tenant in DEMO_TENANTS.items()}
    found = [await run_in_threadpool(_people, tenant, name) for tenant, name in tenants.items()]
    return _ok({"tenants": found})


async def sign_token(request: Request) -> JSONResponse:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return _refused(415, "unsupported_media_type", "send the sign-in as application/json")
    model = _token_request_model()
    try:
        wanted = model.model_validate_json(await request.body())
    except ValidationError as exc:
        if any(err["type"] == "json_invalid" for err in exc.errors()):
            return _refused(400, "malformed_json", "the body is not valid JSON")
        return _refused(422, "validation_error", "invalid sign-in", _details(exc))
    if wanted.role == "agent" and wanted.agent_id is None:
        detail = {"field": "body.agentId", "message": "an agent token needs the agent's id", "type": "missing"}
        return _refused(422, "validation_error", "an agent signs in as one of the desk's agents", [detail])
    agent_name: str | None = None
    if wanted.agent_id is not None:
        agent_name = await run_in_threadpool(_agent_name, wanted.tenant_id, wanted.agent_id)
        if agent_name is None:
            return _refused(404, "not_found", "agent not found")
    token = mint_token(
        str(wanted.tenant_id),
        wanted.role,
        agent_id=str(wanted.agent_id) if wanted.agent_id else None,
        expires_in=wanted.expires_in,
    )
    expires_at = datetime.now(UTC) + timedelta(seconds=wanted.expires_in)
    return _ok(
        {
            "token": token,
            "expiresAt": expires_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "tenantId": str(wanted.tenant_id),
            "role": wanted.role,
            "agentId": str(wanted.agent_id) if wanted.agent_id else None,
            "agentName": agent_name,
        },
        201,
    )


def _agent_name(tenant_id: UUID, agent_id: UUID) -> str | None:
    from support.auth import Principal, Role
    from support.errors import NotFound
    from support.services import agents

    try:
        with _ONE_AT_A_TIME:
            return agents.get_agent(
                Principal(tenant_id=tenant_id, role=Role.ADMIN, subject="local-sign-in"), agent_id
            ).agent_name
    except NotFound:
        return None


def websocket_url() -> str | None:
    """The WebSocket API beside this gateway: the management API's endpoint (which `make run` and the tests set
    for the handlers) is the WebSocket API's own host, as in AWS (`https://{api}.execute-api...` and `wss://`)."""
    endpoint = os.environ.get("WEBSOCKET_MANAGEMENT_ENDPOINT")
    if not endpoint:
        return None
    parts = urlsplit(endpoint)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _local_pages_only(port: int, endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[..., Any]:
    async def guarded(request: Request) -> Response:
        if refusal := _foreign(request, port):
            return refusal
        return await endpoint(request)

    return guarded


def dev_auth_routes(port: int, api_base_url: str | None = None) -> list[BaseRoute]:
    """The routes to put before the gateway's catch-all (`http_api.create_app(extra_routes=...)`) of the gateway
    listening on `port`. The config names this gateway as the HTTP API (by the host name the console was opened
    with), or `api_base_url` when the console is served apart from the API."""

    async def console_config(request: Request) -> JSONResponse:
        api = api_base_url or f"http://{request.headers['host']}"  # one of local_hosts(port): `_foreign` checked
        return _ok({"apiBaseUrl": api.rstrip("/"), "websocketUrl": websocket_url(), "localSignIn": True})

    return [
        Route(f"{PREFIX}/agents", _local_pages_only(port, list_people), methods=["GET"]),
        Route(f"{PREFIX}/token", _local_pages_only(port, sign_token), methods=["POST"]),
        Route(f"{PREFIX}/config", _local_pages_only(port, console_config), methods=["GET"]),
    ]
