"""The Cognito pre-token-generation trigger (functions/pre_token) on its sample events, and its claims read back
by the real auth code: by `principal_from_claims` as the HTTP API's JWT authorizer passes them, and by the
WebSocket authorizer from a Cognito-shaped access token (no `aud`, the app client's id in `client_id`) verified
against a JWKS served over HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import jwt
import psycopg
import pytest

from local import sample_events
from local.database import DatabaseUrls
from local.gateway.authorizers import JwtAuthorizer
from local.jwt_keys import ALGORITHM, signing_key
from local.template import REPO, load_template
from support import ws_auth
from support.auth import Role, principal_from_claims
from support.config import get_settings
from support.pre_token import StaffAttributesMissing, add_staff_claims
from tests.http_events import invoke_sample_event

EVENTS = REPO / "events" / "pre_token"
ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE01"
CLIENT_ID = sample_events.PRE_TOKEN_CLIENT_ID


def invoke(name: str) -> dict[str, Any]:
    from functions.pre_token import app

    return invoke_sample_event(app.lambda_handler, EVENTS / name, "PreTokenFunction")


def access_token_claims(answer: dict[str, Any]) -> dict[str, str]:
    details = answer["response"]["claimsAndScopeOverrideDetails"]
    claims: dict[str, str] = details["accessTokenGeneration"]["claimsToAddOrOverride"]
    return claims


def test_an_admin_gets_the_tenant_and_role_claims_in_both_tokens() -> None:
    # Given an admin's sign-in event, When the trigger runs
    answer = invoke("admin_sign_in.json")

    # Then the access token (and the ID token) get exactly the claims support.auth reads
    claims = access_token_claims(answer)
    assert claims == {"tenant_id": sample_events.TENANT_ID, "role": "admin"}
    id_claims = answer["response"]["claimsAndScopeOverrideDetails"]["idTokenGeneration"]["claimsToAddOrOverride"]
    assert id_claims == claims
    # and the rest of the event is what Cognito sent
    sent = json.loads((EVENTS / "admin_sign_in.json").read_text())
    assert {k: v for k, v in answer.items() if k != "response"} == {k: v for k, v in sent.items() if k != "response"}


def test_the_claims_are_the_principal_the_api_sees() -> None:
    # Given what the trigger puts in an admin's and an agent's access tokens
    admin = principal_from_claims({"sub": "admin-sub", **access_token_claims(invoke("admin_sign_in.json"))})
    agent = principal_from_claims({"sub": "agent-sub", **access_token_claims(invoke("agent_refresh.json"))})

    # Then the real auth code reads the caller from them
    assert admin.tenant_id == UUID(sample_events.TENANT_ID) and admin.role is Role.ADMIN and admin.agent_id is None
    assert agent.role is Role.AGENT and agent.agent_id == UUID(sample_events.AGENT_ID)
    assert agent.tenant_id == admin.tenant_id


def test_a_user_without_a_tenant_gets_no_tokens() -> None:
    with pytest.raises(StaffAttributesMissing, match="custom:role, custom:tenant_id") as refused:
        invoke("user_without_tenant.json")
    assert "new.hire" not in str(refused.value)  # what Cognito shows the client names no attribute values


@pytest.mark.parametrize(
    ("attributes", "missing"),
    [
        ({"custom:tenant_id": sample_events.TENANT_ID, "custom:role": "agent"}, "custom:agent_id"),
        ({"custom:tenant_id": sample_events.TENANT_ID, "custom:role": "visitor"}, "custom:role"),
        ({"custom:tenant_id": sample_events.TENANT_ID, "custom:role": "superuser"}, "custom:role"),
        ({"custom:tenant_id": "acme", "custom:role": "admin"}, "custom:tenant_id"),
        ({"custom:tenant_id": "", "custom:role": "admin"}, "custom:tenant_id"),
    ],
)
def test_invalid_attributes_are_refused(attributes: dict[str, str], missing: str) -> None:
    event = json.loads((EVENTS / "admin_sign_in.json").read_text())
    event["request"]["userAttributes"] = {"sub": "x", "email": "x@shop.example", **attributes}
    with pytest.raises(StaffAttributesMissing, match=missing):
        add_staff_claims(event)


def test_the_template_wires_the_trigger_as_a_v2_pre_token_generation_trigger() -> None:
    resources = load_template()["Resources"]
    config = resources["UserPool"]["Properties"]["LambdaConfig"]["PreTokenGenerationConfig"]
    assert config == {"LambdaArn": {"Fn::GetAtt": ["PreTokenFunction", "Arn"]}, "LambdaVersion": "V2_0"}
    # V2_0 needs Essentials or Plus (Plus with threat protection: tests/contract/test_user_pool_security.py)
    assert resources["UserPool"]["Properties"]["UserPoolTier"] == {
        "Fn::If": ["ThreatProtectionOn", "PLUS", "ESSENTIALS"]
    }
    function = resources["PreTokenFunction"]["Properties"]
    assert (REPO / function["CodeUri"] / "app.py").is_file() and function["Handler"] == "app.lambda_handler"
    schema = {attribute["Name"] for attribute in resources["UserPool"]["Properties"]["Schema"]}
    assert {f"custom:{name}" for name in schema} == {"custom:tenant_id", "custom:role", "custom:agent_id"}


@pytest.fixture
def cognito_jwks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A JWKS over real HTTP, and the WebSocket authorizer configured as the template configures it for the
    stack's user pool: the pool's issuer, the app client's id as the audience."""
    document = json.dumps(JwtAuthorizer.local().jwks()).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("JWT_JWKS_URL", f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json")
    monkeypatch.setenv("JWT_ISSUER", ISSUER)
    monkeypatch.setenv("JWT_AUDIENCE", CLIENT_ID)
    get_settings.cache_clear()
    ws_auth._jwks_client.cache_clear()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        get_settings.cache_clear()
        ws_auth._jwks_client.cache_clear()


def cognito_access_token(claims: dict[str, str], client_id: str = CLIENT_ID) -> str:
    """Shaped as Cognito's access tokens are: no `aud`, `client_id`, `token_use: access`, the trigger's claims."""
    now = int(time.time())
    body = {
        "sub": "6f1e2c3a-0b7d-4e8a-9c21-3d5f7a9b1c2e",
        "iss": ISSUER,
        "client_id": client_id,
        "token_use": "access",
        "scope": "aws.cognito.signin.user.admin",
        "auth_time": now,
        "iat": now,
        "exp": now + 3600,
        "jti": "0e1d2c3b-4a59-4867-8f7e-6d5c4b3a2918",
        "username": "6f1e2c3a-0b7d-4e8a-9c21-3d5f7a9b1c2e",
        **claims,
    }
    key = signing_key()
    return jwt.encode(body, key.private_key, algorithm=ALGORITHM, headers={"kid": key.key_id})


METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:f6g7h8i9j0/dev/$connect"


def _sample_agent(db: DatabaseUrls, tenant_id: str) -> None:
    """The samples' agent, as an agent of `tenant_id` (written as the owner, naming the tenant)."""
    with psycopg.connect(db.owner) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant_id,))
        conn.execute(
            "INSERT INTO support_agents (id, user_id, agent_name, agent_email) VALUES (%s, %s, 'Seed', %s)"
            " ON CONFLICT (id) DO NOTHING",
            (sample_events.AGENT_ID, tenant_id, f"{uuid4()}@x.example"),
        )


@pytest.mark.usefixtures("cognito_jwks")
def test_the_websocket_authorizer_admits_a_cognito_access_token_with_the_triggers_claims(db: DatabaseUrls) -> None:
    # Given a Cognito access token carrying what the trigger added, for an agent of its tenant
    _sample_agent(db, sample_events.TENANT_ID)
    token = cognito_access_token(access_token_claims(invoke("agent_refresh.json")))

    # When the staff member connects with it
    policy = ws_auth.authorize({"queryStringParameters": {"token": token}, "methodArn": METHOD_ARN})

    # Then the connection is allowed as that agent of that tenant
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert policy["context"]["tenantId"] == sample_events.TENANT_ID
    assert policy["context"]["role"] == "agent"
    assert policy["context"]["agentId"] == sample_events.AGENT_ID


@pytest.mark.usefixtures("cognito_jwks")
def test_the_websocket_authorizer_denies_a_token_naming_no_agent_of_its_tenant(db: DatabaseUrls) -> None:
    # Given the samples' agent is an agent of another tenant only (and the token's tenant has none)
    other = str(uuid4())
    _sample_agent(db, sample_events.TENANT_ID)
    claims = access_token_claims(invoke("agent_refresh.json"))
    for tenant, agent in ((other, sample_events.AGENT_ID), (sample_events.TENANT_ID, str(uuid4()))):
        token = cognito_access_token({**claims, "tenant_id": tenant, "agent_id": agent})

        # When it connects, Then the answer is a clean Deny (403), not an Allow that $connect cannot record
        policy = ws_auth.authorize({"queryStringParameters": {"token": token}, "methodArn": METHOD_ARN})
        assert policy["policyDocument"]["Statement"][0]["Effect"] == "Deny"
        assert policy["context"] == {}


@pytest.mark.usefixtures("cognito_jwks")
def test_the_websocket_authorizer_refuses_another_app_clients_token() -> None:
    token = cognito_access_token(access_token_claims(invoke("admin_sign_in.json")), client_id="another-client")
    with pytest.raises(ws_auth.AuthorizerUnauthorized):
        ws_auth.authorize({"queryStringParameters": {"token": token}, "methodArn": METHOD_ARN})


@pytest.mark.usefixtures("cognito_jwks")
@pytest.mark.parametrize("configured", ["", " , "])
def test_the_websocket_authorizer_admits_no_staff_token_when_no_audience_is_configured(
    configured: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an authorizer whose JWT_AUDIENCE is empty (a deployment mistake): it fails closed
    monkeypatch.setenv("JWT_AUDIENCE", configured)
    get_settings.cache_clear()
    for claims in ({}, {"aud": CLIENT_ID}):
        body = access_token_claims(invoke("agent_refresh.json")) | claims
        token = cognito_access_token(body)
        with pytest.raises(ws_auth.AuthorizerUnauthorized):
            ws_auth.authorize({"queryStringParameters": {"token": token}, "methodArn": METHOD_ARN})


@pytest.mark.usefixtures("cognito_jwks")
def test_the_websocket_authorizer_refuses_a_token_of_the_pool_without_the_claims() -> None:
    token = cognito_access_token({})
    with pytest.raises(ws_auth.AuthorizerUnauthorized):
        ws_auth.authorize({"queryStringParameters": {"token": token}, "methodArn": METHOD_ARN})


def test_the_events_are_the_generators() -> None:
    assert {p.name for p in EVENTS.glob("*.json")} == {Path(n).name for n in sample_events.pre_token_samples()}
