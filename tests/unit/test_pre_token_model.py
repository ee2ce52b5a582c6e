"""support.models.pre_token and support.pre_token.staff_claims: what a user pool's attributes must hold, and the
claims made of them (no event, no handler)."""

from __future__ import annotations

from uuid import UUID

import pytest
from pydantic import ValidationError

from support.auth import AGENT_CLAIM, ROLE_CLAIM, TENANT_CLAIM, Role
from support.models.pre_token import PreTokenGenerationV2Event, StaffAttributes
from support.pre_token import staff_claims

TENANT = "0f0e0d0c-0b0a-4909-8807-060504030201"
AGENT = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


def test_attributes_come_from_the_custom_names_and_ignore_the_rest() -> None:
    attributes = StaffAttributes.model_validate(
        {"sub": "s", "email": "a@b.example", "custom:tenant_id": TENANT, "custom:role": "admin"}
    )
    assert attributes.tenant_id == UUID(TENANT) and attributes.role is Role.ADMIN and attributes.agent_id is None


def test_the_claims_use_the_names_the_api_reads_and_are_strings() -> None:
    claims = staff_claims(
        StaffAttributes.model_validate({"custom:tenant_id": TENANT, "custom:role": "agent", "custom:agent_id": AGENT})
    )
    assert claims == {TENANT_CLAIM: TENANT, ROLE_CLAIM: "agent", AGENT_CLAIM: AGENT}
    assert all(isinstance(value, str) for value in claims.values())


def test_an_admin_with_an_agent_id_keeps_it() -> None:
    attributes = StaffAttributes.model_validate(
        {"custom:tenant_id": TENANT, "custom:role": "admin", "custom:agent_id": AGENT}
    )
    assert staff_claims(attributes)[AGENT_CLAIM] == AGENT


@pytest.mark.parametrize("role", ["visitor", "Admin", "", "owner"])
def test_only_staff_roles_are_accepted(role: str) -> None:
    with pytest.raises(ValidationError):
        StaffAttributes.model_validate({"custom:tenant_id": TENANT, "custom:role": role})


def test_a_cleared_agent_id_counts_as_none() -> None:
    with pytest.raises(ValidationError, match="which an agent needs"):
        StaffAttributes.model_validate({"custom:tenant_id": TENANT, "custom:role": "agent", "custom:agent_id": ""})


def test_only_version_2_events_are_taken() -> None:
    event = {"version": "1", "triggerSource": "TokenGeneration_Authentication", "userPoolId": "p", "userName": "u"}
    with pytest.raises(ValidationError):
        PreTokenGenerationV2Event.model_validate({**event, "request": {"userAttributes": {}}})
    assert PreTokenGenerationV2Event.model_validate({**event, "version": "2", "request": {"userAttributes": {}}})


@pytest.mark.parametrize(
    "attributes",
    [
        {"tenant_id": TENANT, "role": "admin"},
        {"tenant_id": TENANT, "role": "agent", "agent_id": AGENT},
        {"custom:tenant_id": TENANT, "role": "admin"},
        {"tenant_id": TENANT, "custom:role": "admin"},
    ],
)
def test_bare_attribute_names_do_not_count(attributes: dict[str, str]) -> None:
    # Only the custom attributes, which an administrator alone writes, say who a user is: a standard or
    # developer-only attribute that happens to be named `tenant_id` or `role` is not one of them.
    with pytest.raises(ValidationError):
        StaffAttributes.model_validate(attributes)


def test_a_bare_agent_id_does_not_stand_in_for_the_custom_one() -> None:
    attributes = StaffAttributes.model_validate({"custom:tenant_id": TENANT, "custom:role": "admin", "agent_id": AGENT})
    assert attributes.agent_id is None
