"""Who is calling: a `Principal` built only from verified token claims, never from a request body."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
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
    # A visitor of a merchant's site, known only by the visitor id our signed token names (WebSocket only:
    # no JWT of the HTTP API ever carries this role).
    VISITOR = "visitor"


STAFF = (Role.ADMIN, Role.AGENT)


class Principal(BaseModel):
    """The caller: the tenant (the merchant account that owns the desk), a role, and the agent it acts as."""

    model_config = ConfigDict(frozen=True)

    tenant_id: UUID
    role: Role
    subject: str
    agent_id: UUID | None = None
    visitor_id: str | None = None
    widget_key: str | None = None
    # When the staff token a WebSocket connection was opened with expires (the authorizer's context): the
    # connection may act until then and no longer (support.websocket). None over HTTP (API Gateway checks every
    # request's token) and for visitors (their connect token is spent on $connect).
    token_expires_at: datetime | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF

    def require_admin(self, action: str) -> None:
        """Forbidden unless the caller is an admin of the desk; `action` completes "only an admin may ..."."""
        if self.role is not Role.ADMIN:
            raise Forbidden(f"only an admin may {action}")

    def require_own_sender_type(self, sender_type: str) -> None:
        """A message's sender type must be the caller's own: staff write as `agent` (a ticket's internal note is an
        agent's too), a visitor as `customer`. No caller writes in the customer's name or as the system: system
        entries are the desk's own, and a customer's words come only from the customer."""
        mine = "customer" if self.role is Role.VISITOR else "agent"
        if sender_type != mine:
            who = "a visitor" if self.role is Role.VISITOR else "staff"
            raise Forbidden(f"{who} post as {mine!r}, not as {str(sender_type)!r}")

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
    if claims.get(ROLE_CLAIM) not in STAFF:
        raise Unauthorized("token claims are missing or invalid: role")
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


# The WebSocket authorizer's context (API Gateway passes it to every event of the connection): flat strings.
CONTEXT_TENANT = "tenantId"
CONTEXT_ROLE = "role"
CONTEXT_SUBJECT = "subject"
CONTEXT_AGENT = "agentId"
CONTEXT_VISITOR = "visitorId"
CONTEXT_WIDGET_KEY = "widgetKey"
CONTEXT_EXPIRES_AT = "tokenExpiresAt"  # whole seconds since the epoch, as the token's `exp`


def authorizer_context(principal: Principal) -> dict[str, str]:
    """What the WebSocket authorizer hands API Gateway for the connection (values must be strings)."""
    values = {
        CONTEXT_TENANT: str(principal.tenant_id),
        CONTEXT_ROLE: str(principal.role),
        CONTEXT_SUBJECT: principal.subject,
        CONTEXT_AGENT: str(principal.agent_id) if principal.agent_id else None,
        CONTEXT_VISITOR: principal.visitor_id,
        CONTEXT_WIDGET_KEY: principal.widget_key,
        CONTEXT_EXPIRES_AT: str(int(principal.token_expires_at.timestamp())) if principal.token_expires_at else None,
    }
    return {key: value for key, value in values.items() if value}


def principal_from_context(context: Mapping[str, Any] | None) -> Principal:
    """The connection's caller, from the authorizer context API Gateway passes with every WebSocket event."""
    if not context or not context.get(CONTEXT_TENANT):
        raise Unauthorized("the connection has no authorizer context")
    try:
        return Principal(
            tenant_id=context.get(CONTEXT_TENANT),
            role=context.get(CONTEXT_ROLE),
            subject=str(context.get(CONTEXT_SUBJECT) or ""),
            agent_id=context.get(CONTEXT_AGENT) or None,
            visitor_id=context.get(CONTEXT_VISITOR) or None,
            widget_key=context.get(CONTEXT_WIDGET_KEY) or None,
            token_expires_at=_epoch(context.get(CONTEXT_EXPIRES_AT)),
        )
    except (ValidationError, ValueError, OverflowError) as exc:
        raise Unauthorized("the connection's authorizer context is invalid") from exc


def _epoch(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value not in (None, "") else None
