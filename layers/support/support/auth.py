"""Who is calling: a `Principal` built only from verified token claims, never from a request body."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, ValidationError

from support.errors import Forbidden, Unauthorized

TENANT_CLAIM = "tenant_id"
ROLE_CLAIM = "role"
AGENT_CLAIM = "agent_id"


class Role(StrEnum):
    ADMIN = "admin"
    AGENT = "agent"


class Principal(BaseModel):
    """The caller: the tenant (the merchant account that owns the desk), a role, and the agent it acts as."""

    model_config = ConfigDict(frozen=True)

    tenant_id: UUID
    role: Role
    subject: str
    agent_id: UUID | None = None

    def require_admin(self, action: str) -> None:
        """Forbidden unless the caller is an admin of the desk; `action` completes "only an admin may ..."."""
        if self.role is not Role.ADMIN:
            raise Forbidden(f"only an admin may {action}")

    def require_tenant(self, user_id: UUID | str | None) -> None:
        """The seed's `userId` query parameter may be given, and must then name the caller's own tenant."""
        if user_id is None:
            return
        if str(user_id).lower() != str(self.tenant_id):
            raise Forbidden("userId does not match the caller's tenant")


def principal_from_claims(claims: Mapping[str, Any] | None) -> Principal:
    """Claims as API Gateway's JWT authorizer passes them (already verified: signature, issuer, audience)."""
    if not claims:
        raise Unauthorized("missing token claims")
    try:
        return Principal(
            tenant_id=claims.get(TENANT_CLAIM),
            role=claims.get(ROLE_CLAIM),
            subject=str(claims.get("sub") or ""),
            agent_id=claims.get(AGENT_CLAIM) or None,
        )
    except ValidationError as exc:
        fields = sorted({str(err["loc"][0]) for err in exc.errors()})
        raise Unauthorized(f"token claims are missing or invalid: {', '.join(fields)}") from exc
