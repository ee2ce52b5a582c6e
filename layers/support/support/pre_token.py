"""Staff claims for Cognito tokens: the pre-token-generation trigger's decision (functions/pre_token).

The user pool keeps each user's tenant, role and agent id in custom attributes that only an administrator can
write (the app client may not). Before Cognito issues tokens, this copies them into the access token (what the
HTTP API's JWT authorizer and the WebSocket authorizer read) and the ID token, under exactly the claim names
`support.auth` reads. A user without a valid tenant and role gets no tokens: the trigger raises, and Cognito
refuses the sign-in ("PreTokenGeneration failed with error ...") rather than issuing a token the API would
answer 401 to on every call.

Administrators and MFA (template.yaml, RequireAdminMfa; `REQUIRE_ADMIN_MFA` here). When required, an admin whose
user has no software token (TOTP) MFA set up gets tokens WITHOUT the desk's claims: the API and the WebSocket
authorizer refuse them (401), so no admin token exists for such a user, yet the user can still do with them what
Cognito's own user APIs need an access token for, i.e. register an authenticator (AssociateSoftwareToken,
VerifySoftwareToken, SetUserMFAPreference) and sign in again, now challenged for a code. Raising instead would lock
them out: with MFA OPTIONAL for the pool, Cognito offers no MFA_SETUP challenge, only that access token. The check
is one AdminGetUser per admin sign-in or refresh (Cognito's UserRead quota, 120 a second by default), so an admin
who turns MFA off loses the claims at the next refresh, within the access token's hour. Agents are not asked:
the pool's MfaConfiguration (OPTIONAL by default, ON for everyone) decides for them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import ValidationError

from support.auth import AGENT_CLAIM, ROLE_CLAIM, TENANT_CLAIM, Role
from support.config import ConfigurationError
from support.models.pre_token import PreTokenGenerationV2Event, StaffAttributes
from support.observability import logger

# "true" or "false", from template.yaml (RequireAdminMfa). Unset means false: nothing but Cognito runs this trigger,
# and the template always sets it.
REQUIRE_ADMIN_MFA = "REQUIRE_ADMIN_MFA"
# The one MFA the user pool offers (template.yaml, UserPool.EnabledMfas).
SOFTWARE_TOKEN_MFA = "SOFTWARE_TOKEN_MFA"  # noqa: S105 - an MFA type, not a secret


class StaffAttributesMissing(Exception):
    """The user has no valid tenant/role attributes. The message reaches the signing-in client: no values in it."""


def staff_claims(attributes: StaffAttributes) -> dict[str, str]:
    """The claims the API reads, as strings (API Gateway passes every claim to the functions as a string)."""
    claims = {TENANT_CLAIM: str(attributes.tenant_id), ROLE_CLAIM: str(attributes.role)}
    if attributes.agent_id is not None:
        claims[AGENT_CLAIM] = str(attributes.agent_id)
    return claims


def add_staff_claims(event: Mapping[str, Any]) -> dict[str, Any]:
    """The trigger's answer: the event with `response.claimsAndScopeOverrideDetails` filled in."""
    parsed = PreTokenGenerationV2Event.model_validate(event)
    try:
        attributes = StaffAttributes.model_validate(parsed.request.user_attributes)
    except ValidationError as exc:
        fields = sorted({str(error["loc"][0]) for error in exc.errors() if error["loc"]})
        rules = [str(error["ctx"]["error"]) for error in exc.errors() if not error["loc"] and "ctx" in error]
        problems = ([f"no valid {', '.join(fields)}"] if fields else []) + rules
        raise StaffAttributesMissing(
            f"the user has {'; '.join(problems)}: an administrator sets these attributes before the user signs in"
        ) from exc
    answer = dict(event)
    if attributes.role is Role.ADMIN and admin_mfa_required() and not has_mfa(parsed.user_pool_id, parsed.user_name):
        # No desk claims: a token for setting up an authenticator, not for the desk (see the module's docstring).
        logger.warning("an admin without MFA signed in: tokens issued without the desk's claims")
        answer["response"] = {"claimsAndScopeOverrideDetails": {}}
        return answer
    claims = staff_claims(attributes)
    answer["response"] = {
        "claimsAndScopeOverrideDetails": {
            "accessTokenGeneration": {"claimsToAddOrOverride": claims},
            "idTokenGeneration": {"claimsToAddOrOverride": claims},
        }
    }
    return answer


def admin_mfa_required() -> bool:
    value = os.environ.get(REQUIRE_ADMIN_MFA, "false")
    if value not in ("true", "false"):
        raise ConfigurationError(f"{REQUIRE_ADMIN_MFA} must be true or false, not {value!r}")
    return value == "true"


@cache
def _cognito() -> Any:
    # Imported and made on first use, once per execution environment: only admin sign-ins need it.
    import boto3

    return boto3.client("cognito-idp")


def has_mfa(user_pool_id: str, user_name: str) -> bool:
    """Whether the user has set up the pool's MFA (a verified software token, enabled), as Cognito keeps it."""
    user = _cognito().admin_get_user(UserPoolId=user_pool_id, Username=user_name)
    return SOFTWARE_TOKEN_MFA in user.get("UserMFASettingList", [])
