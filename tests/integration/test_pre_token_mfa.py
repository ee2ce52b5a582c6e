"""Admins and MFA (support.pre_token, RequireAdminMfa): with the requirement on, the pre-token trigger gives an admin
the desk's claims only once their user has an authenticator set up, as Cognito (moto) keeps it; before that their
tokens carry no claims and the API's own auth code refuses them. Agents are not asked; with the requirement off,
nobody is asked and Cognito is not called."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local import sample_events
from local.template import REPO
from support import pre_token
from support.auth import Role, principal_from_claims
from support.config import ConfigurationError
from support.errors import Unauthorized
from support.pre_token import add_staff_claims

EVENTS = REPO / "events" / "pre_token"
REGION = "us-east-1"
PASSWORD = "Admin-Passw0rd-1"


@pytest.fixture
def cognito(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    pre_token._cognito.cache_clear()
    with mock_aws():
        yield boto3.client("cognito-idp", region_name=REGION)
    pre_token._cognito.cache_clear()


@pytest.fixture
def staff_pool(cognito: Any) -> dict[str, str]:
    pool = cognito.create_user_pool(PoolName="staff", MfaConfiguration="OPTIONAL")["UserPool"]["Id"]
    cognito.set_user_pool_mfa_config(
        UserPoolId=pool, SoftwareTokenMfaConfiguration={"Enabled": True}, MfaConfiguration="OPTIONAL"
    )
    client = cognito.create_user_pool_client(
        UserPoolId=pool, ClientName="desk", ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    for name in ("admin", "agent"):
        cognito.admin_create_user(UserPoolId=pool, Username=name, MessageAction="SUPPRESS")
        cognito.admin_set_user_password(UserPoolId=pool, Username=name, Password=PASSWORD, Permanent=True)
    return {"pool": pool, "client": client}


def _set_up_an_authenticator(cognito: Any, pool: dict[str, str], user: str) -> None:
    """What docs/deploying.md has an admin do with their first, claimless token: register a TOTP app, then prefer it."""
    token = cognito.admin_initiate_auth(
        UserPoolId=pool["pool"],
        ClientId=pool["client"],
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": user, "PASSWORD": PASSWORD},
    )["AuthenticationResult"]["AccessToken"]
    cognito.associate_software_token(AccessToken=token)
    cognito.verify_software_token(AccessToken=token, UserCode="123456")
    cognito.set_user_mfa_preference(AccessToken=token, SoftwareTokenMfaSettings={"Enabled": True, "PreferredMfa": True})


def _sign_in(pool: dict[str, str], user: str, sample: str) -> dict[str, Any]:
    event = json.loads((EVENTS / sample).read_text())
    event["userPoolId"], event["userName"] = pool["pool"], user
    return add_staff_claims(event)


def _claims(answer: dict[str, Any]) -> dict[str, str]:
    details = answer["response"]["claimsAndScopeOverrideDetails"]
    return dict(details.get("accessTokenGeneration", {}).get("claimsToAddOrOverride", {}))


def test_an_admin_without_an_authenticator_gets_no_desk_claims(
    staff_pool: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the requirement, and an admin whose user has no MFA set up
    monkeypatch.setenv("REQUIRE_ADMIN_MFA", "true")

    # When they sign in
    answer = _sign_in(staff_pool, "admin", "admin_sign_in.json")

    # Then neither token gets the desk's claims, and the API's auth code refuses what the token carries
    assert answer["response"] == {"claimsAndScopeOverrideDetails": {}}
    with pytest.raises(Unauthorized):
        principal_from_claims({"sub": "admin-sub", "client_id": "desk", **_claims(answer)})


def test_an_admin_with_an_authenticator_gets_the_admin_claims(
    cognito: Any, staff_pool: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUIRE_ADMIN_MFA", "true")
    _set_up_an_authenticator(cognito, staff_pool, "admin")

    answer = _sign_in(staff_pool, "admin", "admin_sign_in.json")

    principal = principal_from_claims({"sub": "admin-sub", **_claims(answer)})
    assert principal.role is Role.ADMIN and str(principal.tenant_id) == sample_events.TENANT_ID


def test_an_admin_who_turns_mfa_off_loses_the_claims_at_the_next_token(
    cognito: Any, staff_pool: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUIRE_ADMIN_MFA", "true")
    _set_up_an_authenticator(cognito, staff_pool, "admin")
    assert _claims(_sign_in(staff_pool, "admin", "admin_sign_in.json"))

    cognito.admin_set_user_mfa_preference(
        UserPoolId=staff_pool["pool"], Username="admin", SoftwareTokenMfaSettings={"Enabled": False}
    )

    assert _claims(_sign_in(staff_pool, "admin", "admin_sign_in.json")) == {}


def test_agents_are_not_asked(staff_pool: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUIRE_ADMIN_MFA", "true")
    claims = _claims(_sign_in(staff_pool, "agent", "agent_refresh.json"))
    assert claims["role"] == "agent" and claims["agent_id"] == sample_events.AGENT_ID


def test_without_the_requirement_no_user_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # No Cognito at all (no moto, no credentials): the trigger must not call it
    monkeypatch.setenv("REQUIRE_ADMIN_MFA", "false")
    pre_token._cognito.cache_clear()
    claims = _claims(add_staff_claims(json.loads((EVENTS / "admin_sign_in.json").read_text())))
    assert claims == {"tenant_id": sample_events.TENANT_ID, "role": "admin"}
    assert pre_token._cognito.cache_info().currsize == 0


def test_a_malformed_setting_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUIRE_ADMIN_MFA", "yes")
    with pytest.raises(ConfigurationError, match="REQUIRE_ADMIN_MFA must be true or false"):
        add_staff_claims(json.loads((EVENTS / "admin_sign_in.json").read_text()))
