"""The Cognito pre-token-generation trigger's event (version 2, `V2_0`) and the staff attributes it reads.

Cognito sends the user's attributes as strings; the custom attributes carry the `custom:` prefix. Only the fields
this trigger uses are modelled; the rest of the event passes through unchanged.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from support.auth import Role

# The user pool's custom attributes (template.yaml, UserPool.Schema), as Cognito names them in the event.
TENANT_ATTRIBUTE = "custom:tenant_id"
ROLE_ATTRIBUTE = "custom:role"
AGENT_ATTRIBUTE = "custom:agent_id"


class StaffAttributes(BaseModel):
    """Who a user of the desk is: the tenant, admin or agent, and the agent they act as (required for an agent).

    Read only by the `custom:` names (no `populate_by_name`): only the custom attributes are written by an
    administrator alone, so an attribute merely named `tenant_id` or `role` says nothing about the user."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    tenant_id: UUID = Field(alias=TENANT_ATTRIBUTE)
    role: Literal[Role.ADMIN, Role.AGENT] = Field(alias=ROLE_ATTRIBUTE)
    agent_id: UUID | None = Field(default=None, alias=AGENT_ATTRIBUTE)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, data: object) -> object:
        # An attribute an admin cleared arrives as "" (or not at all): both mean "not set".
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value != ""}
        return data

    @model_validator(mode="after")
    def _an_agent_names_its_agent(self) -> StaffAttributes:
        if self.role is Role.AGENT and self.agent_id is None:
            raise ValueError(f"no {AGENT_ATTRIBUTE}, which an agent needs")
        return self


class PreTokenRequest(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    user_attributes: dict[str, str] = Field(alias="userAttributes")


class PreTokenGenerationV2Event(BaseModel):
    """The parts of the `V2_0` event the trigger reads (`version` is "2" for V2_0)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    version: Literal["2"]
    trigger_source: str = Field(alias="triggerSource")
    user_pool_id: str = Field(alias="userPoolId")
    user_name: str = Field(alias="userName")
    request: PreTokenRequest
