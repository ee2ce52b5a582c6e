"""The local identity provider's JWKS on the HTTP API's port: what a JWT verifier of the production code
(PyJWT's PyJWKClient, pointed at JWT_JWKS_URL) fetches to check the tokens `make token` mints."""

from __future__ import annotations

import jwt
import pytest

from local.gateway import create_app, running_gateway
from local.jwt_keys import AUDIENCE, ISSUER, signing_key
from local.token import mint_token

pytestmark = pytest.mark.e2e

TENANT = "11111111-1111-4111-8111-111111111111"


def test_a_jwks_client_verifies_local_tokens_with_the_published_key() -> None:
    with running_gateway(create_app([])) as base_url:
        client = jwt.PyJWKClient(f"{base_url}/.well-known/jwks.json", cache_jwk_set=False)
        token = mint_token(TENANT, "agent")

        key = client.get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)

        (published,) = client.get_jwk_set().keys
    assert claims["tenant_id"] == TENANT
    assert claims["role"] == "agent"
    assert key.key_id == signing_key().key_id
    assert published.key_type == "RSA"
    assert published.public_key_use == "sig"
    assert "d" not in published._jwk_data  # the public half only


def test_a_token_signed_by_another_key_is_not_verified_by_the_jwks(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running_gateway(create_app([])) as base_url:
        client = jwt.PyJWKClient(f"{base_url}/.well-known/jwks.json", cache_jwk_set=False)
        foreign = mint_token(TENANT, "admin", key_dir=tmp_path_factory.mktemp("other-key"))
        with pytest.raises(jwt.PyJWKClientError):
            client.get_signing_key_from_jwt(foreign)  # its kid is not published
