"""Visitor identity for the chat widget: signed tokens, with no account and no cookie of ours.

A visitor of a merchant's site holds two tokens, both HS256 JWTs signed with the desk's visitor key (a Secrets
Manager secret in AWS, a generated file under `.local/` locally):

* the connect token: valid 5 minutes, presented once as `?visitorToken=` when the widget opens a WebSocket
  connection (a fresh one for every reconnect, so a leaked one is soon useless). It carries an id (`jti`) that
  the $connect authorizer records on first use (the `visitor_connect_tokens` table): a second connection with
  it is refused, so once means once;
* the resume token: valid 30 days, kept in the browser's storage and presented to the widget session route
  to be the same visitor again (and see their chats).

Each names the tenant, the widget key and the visitor, and has its own audience, so neither can stand in for
the other. A token that fails any check is simply not accepted: the caller starts over as a new visitor (the
session route) or is refused (the WebSocket authorizer).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, ValidationError

from support.config import ConfigurationError, get_settings

ISSUER = "support-desk/widget"
CONNECT_AUDIENCE = "support-desk/websocket"
RESUME_AUDIENCE = "support-desk/widget-resume"
CONNECT_LIFETIME = timedelta(minutes=5)
RESUME_LIFETIME = timedelta(days=30)
ALGORITHM = "HS256"
_MIN_KEY_BYTES = 32


class VisitorClaims(BaseModel):
    """What a valid visitor token says."""

    model_config = ConfigDict(frozen=True)

    tenant_id: UUID
    widget_key: str
    visitor_id: str
    expires_at: datetime
    token_id: UUID | None = None  # the connect token's `jti` (a resume token has none)


@cache
def signing_key() -> bytes:
    """The visitor key, read once per execution environment (cold start)."""
    settings = get_settings()
    if settings.visitor_token_secret is not None:
        key = settings.visitor_token_secret.get_secret_value()
    elif settings.visitor_token_secret_arn:
        from aws_lambda_powertools.utilities import parameters

        key = str(parameters.get_secret(settings.visitor_token_secret_arn))
    else:
        raise ConfigurationError("set VISITOR_TOKEN_SECRET (local) or VISITOR_TOKEN_SECRET_ARN (AWS)")
    if len(key.encode()) < _MIN_KEY_BYTES:
        raise ConfigurationError(f"the visitor token key must be at least {_MIN_KEY_BYTES} bytes")
    return key.encode()


def new_visitor_id() -> str:
    return str(uuid4())


def _issue(
    audience: str,
    lifetime: timedelta,
    tenant_id: UUID,
    widget_key: str,
    visitor_id: str,
    extra: dict[str, Any] | None = None,
) -> tuple[str, datetime]:
    now = datetime.now(UTC)
    expires = now + lifetime
    claims: dict[str, Any] = {
        **(extra or {}),
        "iss": ISSUER,
        "aud": audience,
        "sub": visitor_id,
        "tenant_id": str(tenant_id),
        "widget_key": widget_key,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
    }
    import jwt  # here, not at the top: PyJWT and cryptography cost every function that imports this a cold 35 ms

    return jwt.encode(claims, signing_key(), algorithm=ALGORITHM), datetime.fromtimestamp(int(expires.timestamp()), UTC)


def issue_connect_token(tenant_id: UUID, widget_key: str, visitor_id: str) -> tuple[str, datetime]:
    return _issue(CONNECT_AUDIENCE, CONNECT_LIFETIME, tenant_id, widget_key, visitor_id, {"jti": str(uuid4())})


def issue_resume_token(tenant_id: UUID, widget_key: str, visitor_id: str) -> tuple[str, datetime]:
    return _issue(RESUME_AUDIENCE, RESUME_LIFETIME, tenant_id, widget_key, visitor_id)


def _verify(token: str, audience: str, required: tuple[str, ...] = ()) -> VisitorClaims | None:
    import jwt  # here, not at the top (as in _issue)

    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            signing_key(),
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss", *required]},
        )
        return VisitorClaims(
            tenant_id=claims.get("tenant_id"),
            widget_key=claims.get("widget_key"),
            visitor_id=claims["sub"],
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            token_id=claims.get("jti"),
        )
    except (jwt.PyJWTError, ValidationError, KeyError, TypeError, ValueError, OverflowError):
        return None


def verify_connect_token(token: str) -> VisitorClaims | None:
    """The claims of a valid, unexpired connect token (with its id); None for anything else. Whether it was
    already used is the authorizer's question (support.ws_auth), asked of the database."""
    return _verify(token, CONNECT_AUDIENCE, ("jti",))


def verify_resume_token(token: str) -> VisitorClaims | None:
    """The claims of a valid, unexpired resume token; None for anything else."""
    return _verify(token, RESUME_AUDIENCE)
