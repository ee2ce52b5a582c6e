"""`make run`: the local API on an embedded PostgreSQL, with demo data.

Starts PostgreSQL 16 (or uses DATABASE_URL), applies the migrations, loads the demo data, and serves every
route of template.yaml on http://127.0.0.1:3000 (PORT to change), and its WebSocket API with the management
API on ws://127.0.0.1:3001 (WS_PORT to change). Ctrl-C or SIGTERM stops everything.
"""

from __future__ import annotations

import os
import shlex
import signal
import threading
import warnings
from uuid import UUID

from local.template import cors_configuration, function_environment, http_routes


def _apply_function_environment() -> None:
    """The handlers see what template.yaml gives them in Lambda (the database settings are ours)."""
    for variables in function_environment().values():
        for name, value in variables.items():
            if name not in ("DATABASE_URL", "DB_SECRET_ARN"):
                os.environ.setdefault(name, value)


def _apply_local_endpoints(http_port: int, ws_port: int) -> None:
    """The AWS endpoints the handlers call, pointed at this machine's stand-ins (before any handler starts),
    so the production code (boto3 with endpoint_url, the JWKS verifier) runs unchanged."""
    from local.jwt_keys import AUDIENCE, ISSUER

    os.environ["WEBSOCKET_MANAGEMENT_ENDPOINT"] = f"http://127.0.0.1:{ws_port}"
    os.environ["JWT_JWKS_URL"] = f"http://127.0.0.1:{http_port}/.well-known/jwks.json"
    os.environ["JWT_ISSUER"] = ISSUER
    os.environ["JWT_AUDIENCE"] = AUDIENCE
    for name, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
        os.environ.setdefault(name, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def main() -> None:
    # Powertools warns on every request that publishes no metric; locally that is only noise.
    warnings.filterwarnings("ignore", "No application metrics to publish")
    _apply_function_environment()
    _apply_local_endpoints(int(os.environ.get("PORT", "3000")), int(os.environ.get("WS_PORT", "3001")))
    # Only now anything that imports the layer: Powertools reads its settings (the metrics namespace among
    # them) when the layer's logger and metrics are created, as at a Lambda cold start.
    from local.database import database

    with database("support", purpose="run") as urls:
        os.environ["DATABASE_URL"] = urls.app  # handlers connect as the runtime role, under RLS
        # Imported once DATABASE_URL is set: the layer reads its configuration once, like a cold start.
        from local.demo_data import seed_demo_data
        from local.gateway import create_app, running_gateway, running_template_websocket_api

        tenants = seed_demo_data()
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        port = int(os.environ.get("PORT", "3000"))
        with (
            running_gateway(create_app(http_routes(), cors=cors_configuration()), port=port, access_log=True) as base,
            running_template_websocket_api(access_log=True) as websocket,
        ):
            if websocket is not None:
                print(f"\nWebSocket API on {websocket.websocket_url}/?token=<token>", flush=True)
                print(f"Management API on {websocket.management_endpoint}/@connections/<connectionId>", flush=True)
            _print_welcome(base, tenants)
            stop.wait()
        print("stopping", flush=True)


def _print_welcome(base: str, tenants: dict[str, UUID]) -> None:
    from local.token import mint_token

    (first_name, first_tenant), *_ = tenants.items()
    token = mint_token(str(first_tenant), "admin")
    print(f"\nSupport API ready on {base}  (Ctrl-C to stop)")
    print("Demo tenants: " + ", ".join(f"{name} {tenant}" for name, tenant in tenants.items()))
    print(f"\nList {first_name}'s tickets:\n")
    print(f"  curl -s -H {shlex.quote('Authorization: Bearer ' + token)} {base}/api/support/tickets\n")
    print("Another token: make token TENANT=<uuid> ROLE=admin|agent [AGENT=<uuid>]\n", flush=True)


if __name__ == "__main__":
    main()
