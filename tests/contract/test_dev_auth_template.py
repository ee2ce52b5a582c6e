"""Contract: the console's local sign-in (`/_local`, local/gateway/dev_auth.py) is never deployed. No route of the
template's APIs can reach it (no such path, no catch-all that would), no function's resolver serves it, and no
deployed code refers to it."""

from __future__ import annotations

import re

from local.gateway.dev_auth import PREFIX, dev_auth_routes
from local.template import REPO, TEMPLATE, http_routes, load_template, websocket_routes
from tests.contract.test_template import resolver_of, served_routes

DEPLOYED = [REPO / "functions", REPO / "layers" / "support" / "support"]


def _could_match(template_path: str, path: str) -> bool:
    """Whether an HttpApi route path of the template (`/a/{id}`, `/{proxy+}`, `$default`) matches `path`."""
    if template_path == "$default":
        return True
    pattern = re.sub(r"\\\{\w+\\\+\\\}", ".+", re.escape(template_path))
    pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", pattern)
    return re.fullmatch(pattern, path) is not None


def test_the_local_routes_are_the_ones_checked_here() -> None:
    paths = {route.path for route in dev_auth_routes(3000)}  # type: ignore[attr-defined]
    assert paths == {f"{PREFIX}/agents", f"{PREFIX}/token", f"{PREFIX}/config"}
    # The check of the matcher itself: it does see a catch-all and a parameter.
    assert _could_match("/{proxy+}", f"{PREFIX}/token") and _could_match("/{segment}/token", f"{PREFIX}/token")


def test_no_http_api_route_of_the_template_matches_a_local_path() -> None:
    routes = http_routes()
    assert routes
    for local_route in dev_auth_routes(3000):
        path = local_route.path  # type: ignore[attr-defined]
        reaching = [f"{r.method} {r.path}" for r in routes if _could_match(r.path, path)]
        assert reaching == [], f"{path} would reach a deployed function through {reaching}"


def test_no_function_resolver_serves_a_local_path() -> None:
    seen = set()
    for route in http_routes():
        if route.function_logical_id in seen:
            continue
        seen.add(route.function_logical_id)
        served = served_routes(resolver_of(route))
        assert not [p for _, p in served if p.startswith(PREFIX)], route.function_logical_id


def test_the_template_and_the_deployed_code_never_name_it() -> None:
    assert PREFIX not in TEMPLATE.read_text(encoding="utf-8")
    assert "dev_auth" not in TEMPLATE.read_text(encoding="utf-8")
    assert not [r.route_key for r in websocket_routes() if PREFIX in r.route_key]
    for folder in DEPLOYED:
        for source in folder.rglob("*.py"):
            text = source.read_text(encoding="utf-8")
            assert "dev_auth" not in text and f'"{PREFIX}' not in text, source
            assert not re.search(r"^\s*(from|import) local\b", text, re.MULTILINE), source
    # The template's resources reach no code under local/.
    for name, resource in load_template()["Resources"].items():
        code = str((resource.get("Properties") or {}).get("CodeUri", ""))
        assert not code.startswith("local"), name
