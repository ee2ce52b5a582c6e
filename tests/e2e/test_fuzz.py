"""Property-based: whatever a client sends that the OpenAPI schema allows (and much it does not), the
API over HTTP never answers with a server error. Schemathesis generates the requests from the schema the
resolver itself publishes."""

from __future__ import annotations

import json
from uuid import UUID

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from functions.tickets import app as tickets
from local.token import mint_token

schema = schemathesis.openapi.from_dict(json.loads(tickets.app.get_openapi_json_schema()))


@pytest.fixture
def bearer(tenant: UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(str(tenant), 'admin')}"}


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_a_server_error(case: schemathesis.Case, gateway_url: str, bearer: dict[str, str]) -> None:
    response = case.call(base_url=gateway_url, headers=bearer)
    case.validate_response(response, checks=[not_a_server_error])
