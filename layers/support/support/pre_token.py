"""Staff claims for Cognito tokens: the pre-token-generation trigger's decision (functions/pre_token).

The user pool keeps each user's tenant, role and agent id in custom attributes that only an administrator can
write (the app client may not). Before Cognito issues tokens, this copies them into the access token (what the
HTTP API's JWT authorizer and the WebSocket authorizer read) and the ID token, under exactly the claim names
`support.auth` reads. A user without a valid tenant and role gets no tokens: the trigger raises, and Cognito
refuses the sign-in ("PreTokenGeneration failed with error ...") rather than issuing a token the API would
answer 401 to on every call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from support.auth import AGENT_CLAIM, ROLE_CLAIM, TENANT_CLAIM
from support.models.pre_token import PreTokenGenerationV2Event, StaffAttributes


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
    claims = staff_claims(attributes)
    answer = dict(event)
    answer["response"] = {
        "claimsAndScopeOverrideDetails": {
            "accessTokenGeneration": {"claimsToAddOrOverride": claims},
            "idTokenGeneration": {"claimsToAddOrOverride": claims},
        }
    }
    return answer
