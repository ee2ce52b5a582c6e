"""Smoke-test a deployed stack: a few HTTP API calls with a token, and a WebSocket round trip.

    make smoke URL=https://abc123.execute-api.us-east-1.amazonaws.com TOKEN=<access token> [WS_URL=wss://.../prod]
    .venv/bin/python -m local.smoke --url ... --token ... [--ws-url ...]

Reads the tickets list and the dashboard, creates one ticket (subject "Smoke test <UTC time>", customer
smoke@example.com: it stays in the tenant, as any ticket) and reads it back; with a WebSocket URL, connects as
staff (`?token=`) and expects `pong` for `ping`. Prints one line per step; exit status 1 at the first step that
fails, with what came back. The token is an admin's or an agent's access token for the API's issuer (in AWS from
Cognito, see docs/deploying.md; against `make run`, `make -s token TENANT=...`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from websockets.sync.client import connect


class SmokeFailure(Exception):
    pass


def _check(response: httpx.Response, expected: int) -> Any:
    if response.status_code != expected:
        raise SmokeFailure(f"HTTP {response.status_code} (expected {expected}): {response.text[:500]}")
    body = response.json()
    if body.get("success") is not True:
        raise SmokeFailure(f"not a success envelope: {response.text[:500]}")
    return body["data"]


def http_steps(client: httpx.Client) -> list[tuple[str, Callable[[], str]]]:
    created: dict[str, str] = {}

    def list_tickets() -> str:
        reply = client.get("/api/support/tickets")  # the first page at the API's default size
        data = _check(reply, 200)
        more = ", more on the next pages" if reply.json().get("nextCursor") else ""
        return f"{len(data)} ticket(s) on the first page{more}"

    def dashboard() -> str:
        data = _check(client.get("/api/support/dashboard"), 200)
        return f"totalTickets={data['totalTickets']}"

    def create_ticket() -> str:
        subject = f"Smoke test {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
        body = {"customerName": "Smoke Test", "customerEmail": "smoke@example.com", "subject": subject}
        data = _check(client.post("/api/support/tickets", json=body), 201)
        created["id"] = data["id"]
        return f"id={data['id']}"

    def read_it_back() -> str:
        data = _check(client.get(f"/api/support/tickets/{created['id']}"), 200)
        if data["id"] != created["id"] or data["status"] != "open":
            raise SmokeFailure(f"read back something else: {data}")
        return "status=open"

    return [
        ("GET /api/support/tickets", list_tickets),
        ("GET /api/support/dashboard", dashboard),
        ("POST /api/support/tickets", create_ticket),
        ("GET /api/support/tickets/{id}", read_it_back),
    ]


def websocket_ping(ws_url: str, token: str, timeout: float) -> str:
    url = f"{ws_url}{'&' if '?' in ws_url else '?'}{urlencode({'token': token})}"
    with connect(url, open_timeout=timeout, close_timeout=timeout) as ws:
        ws.send(json.dumps({"action": "ping", "requestId": "smoke-ping"}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if event.get("requestId") == "smoke-ping":
                if event.get("type") != "pong":
                    raise SmokeFailure(f"answered {event}")
                return f"pong at {event['data']['serverTime']}"
    raise SmokeFailure(f"no pong within {timeout:.0f} s")


def run(url: str, token: str, ws_url: str | None, *, timeout: float = 15, out: Any = sys.stdout) -> bool:
    steps = []
    with httpx.Client(
        base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=timeout
    ) as client:
        steps.extend(http_steps(client))
        if ws_url:
            steps.append(("WebSocket ping", lambda: websocket_ping(ws_url, token, timeout)))
        for name, step in steps:
            started = time.perf_counter()
            try:
                detail = step()
            except (SmokeFailure, httpx.HTTPError, OSError, ValueError, KeyError) as exc:
                print(f"FAIL {name}: {type(exc).__name__}: {exc}", file=out)
                return False
            print(f"ok   {name} ({(time.perf_counter() - started) * 1000:.0f} ms): {detail}", file=out)
    print("smoke test passed", file=out)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the HTTP API's URL (the stack's HttpApiUrl output)")
    parser.add_argument("--token", required=True, help="an access token the API's JWT authorizer accepts")
    parser.add_argument("--ws-url", help="the WebSocket URL (the stack's WebSocketUrl output); optional")
    parser.add_argument("--timeout", type=float, default=15, help="seconds per step")
    args = parser.parse_args(argv)
    return 0 if run(args.url, args.token, args.ws_url, timeout=args.timeout) else 1


if __name__ == "__main__":
    raise SystemExit(main())
