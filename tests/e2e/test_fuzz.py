"""Property-based: whatever a client sends that the OpenAPI schemas allow (and much they do not), the API
over HTTP never answers with a server error. Schemathesis generates the requests from the schema each
function's resolver publishes; every function of template.yaml is covered."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from local.template import http_routes, load_module


def _combined_schema() -> dict[str, Any]:
    """One OpenAPI document for the whole HTTP API: each function serves its own paths."""
    combined: dict[str, Any] = {}
    for code_uri, handler in sorted({(route.code_uri, route.handler) for route in http_routes()}):
        document = json.loads(load_module(code_uri, handler).app.get_openapi_json_schema())
        if not combined:
            combined = document
            continue
        combined["paths"].update(document["paths"])
        for name, component in document.get("components", {}).get("schemas", {}).items():
            combined.setdefault("components", {}).setdefault("schemas", {})[name] = component
    return combined


schema = schemathesis.openapi.from_dict(_combined_schema())


@pytest.fixture
def bearer(tenant: UUID) -> dict[str, str]:
    from local.token import mint_token

    return {"Authorization": f"Bearer {mint_token(str(tenant), 'admin')}"}


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_a_server_error(case: schemathesis.Case, gateway_url: str, bearer: dict[str, str]) -> None:
    response = case.call(base_url=gateway_url, headers=bearer)
    case.validate_response(response, checks=[not_a_server_error])
