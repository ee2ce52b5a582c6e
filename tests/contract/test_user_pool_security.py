"""The staff user pool's defences in template.yaml (issue 15): an email change takes effect only once verified,
MFA (an authenticator app) offered, required of admins by the pre-token trigger (tests/integration/
test_pre_token_mfa.py runs it), and Cognito's threat protection as an option on the Plus plan. Evaluated with the
deploy template tests' evaluator for the parameters a user passes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.test_console_sign_in import made, resolved
from tests.contract.test_deploy_template import PARAMETERS, RESOURCES, broken_rules, condition, parameter_values

POOL = RESOURCES["UserPool"]["Properties"]


def pool(**overrides: str) -> dict[str, Any]:
    values = parameter_values(**overrides)
    assert broken_rules(values) == []
    resolved_pool: dict[str, Any] = resolved(POOL, values)
    return resolved_pool


def test_an_email_change_waits_for_its_verification() -> None:
    # Without it, a stolen access token's UpdateUserAttributes would move the sign-in email at once.
    assert pool()["UserAttributeUpdateSettings"] == {"AttributesRequireVerificationBeforeUpdate": ["email"]}
    assert "email" in pool()["AutoVerifiedAttributes"]  # Cognito sends the code the change waits for
    assert "email" in RESOURCES["UserPoolClient"]["Properties"]["WriteAttributes"]  # the change this guards


def test_mfa_is_an_authenticator_app_optional_by_default() -> None:
    assert PARAMETERS["MfaConfiguration"]["Default"] == "OPTIONAL"
    assert PARAMETERS["MfaConfiguration"]["AllowedValues"] == ["OFF", "OPTIONAL", "ON"]
    default = pool()
    assert default["MfaConfiguration"] == "OPTIONAL" and default["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]
    assert pool(MfaConfiguration="ON")["MfaConfiguration"] == "ON"
    off = pool(MfaConfiguration="OFF", RequireAdminMfa="false")
    assert off["MfaConfiguration"] == "OFF" and "EnabledMfas" not in off


def test_admins_need_mfa_by_default_and_the_trigger_may_read_whether_they_have_it() -> None:
    values = parameter_values()
    assert values["RequireAdminMfa"] == "true" and condition("AdminMfaRequired", values)
    environment = resolved(RESOURCES["PreTokenFunction"]["Properties"]["Environment"]["Variables"], values)
    assert environment == {"REQUIRE_ADMIN_MFA": "true"}
    # AdminGetUser on this pool only, on the trigger's own role
    policy = RESOURCES["PreTokenReadsUsers"]["Properties"]
    assert policy["Roles"] == [{"Ref": "PreTokenFunctionRole"}]
    assert policy["PolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Action": "cognito-idp:AdminGetUser", "Resource": {"Fn::GetAtt": ["UserPool", "Arn"]}}
    ]
    assert "PreTokenReadsUsers" in made(values)


def test_without_the_requirement_the_trigger_reads_no_user() -> None:
    values = parameter_values(RequireAdminMfa="false")
    assert not condition("AdminMfaRequired", values) and "PreTokenReadsUsers" not in made(values)
    environment = resolved(RESOURCES["PreTokenFunction"]["Properties"]["Environment"]["Variables"], values)
    assert environment == {"REQUIRE_ADMIN_MFA": "false"}


def test_admin_mfa_cannot_be_required_of_a_pool_without_mfa() -> None:
    assert broken_rules(parameter_values(MfaConfiguration="OFF")) == ["AdminMfaNeedsMfa"]
    # an external issuer has no pool of ours: its MFA is the provider's business
    external = parameter_values(MfaConfiguration="OFF", JwtIssuer="https://issuer.example/", JwtAudience="api")
    assert broken_rules(external) == []


@pytest.mark.parametrize("mode", ["AUDIT", "ENFORCED"])
def test_threat_protection_is_an_option_on_the_plus_plan(mode: str) -> None:
    assert PARAMETERS["ThreatProtection"]["Default"] == "OFF"
    default = pool()
    assert default["UserPoolTier"] == "ESSENTIALS" and "UserPoolAddOns" not in default
    protected = pool(ThreatProtection=mode)
    assert protected["UserPoolTier"] == "PLUS"
    assert protected["UserPoolAddOns"] == {"AdvancedSecurityMode": mode}
