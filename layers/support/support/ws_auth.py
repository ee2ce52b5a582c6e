"""Who may open a WebSocket connection: the $connect REQUEST authorizer's decision.

API Gateway has no JWT authorizer for WebSocket APIs, so this verifies what the HTTP API's JWT authorizer would:

* staff (`?token=<JWT>`): the same tokens as the HTTP API, verified against the issuer's JWKS with PyJWT's
  PyJWKClient (keys cached across invocations), the same issuer and audience (`aud`, or `client_id` in a token
  without `aud`, such as a Cognito access token), RS256; the same claims, and an `agent_id` (if any) that is an
  agent of the token's tenant. The token's `exp` goes into the context: the connection acts until then, and a
  client renews by reconnecting with a fresh token (API Gateway would keep it open for two hours);
* visitors (`?visitorToken=<connect token>` from the widget session route): our signature and expiry, a token
  not used before (its id is recorded on first use), a widget key that is still live, and the browser's
  `Origin` among the key's allowed origins.

The answer is an IAM policy for the connect route with the caller in its context (support.auth), which API
Gateway passes to every later event of the connection. No token (or one that fails verification, or a connect
token used before) raises `Unauthorized` (API Gateway answers 401); a verified visitor whose key is revoked or
whose origin is not allowed, a visitor over the tenant's connect rate for its source IP or widget key (support.
services.rate_limits), and a staff token naming no agent of its tenant get a Deny (403). Tokens never reach the
logs: neither the event nor the query string is logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any
from uuid import UUID

import jwt

from support.auth import Principal, Role, authorizer_context, principal_from_claims
from support.config import ConfigurationError, get_settings
from support.db import tenant_transaction
from support.db.connection import Cursor
from support.errors import Unauthorized
from support.observability import logger
from support.services.connections import is_agent_of_tenant, spend_connect_token
from support.services.rate_limits import CONNECT_PER_IP, CONNECT_PER_KEY, take_tokens
from support.services.widgets import origin_allowed
from support.visitors import verify_connect_token

JWKS_CACHE_SECONDS = 300


class AuthorizerUnauthorized(Exception):
    """Raised with the message "Unauthorized": how a Lambda authorizer makes API Gateway answer 401."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


@cache
def _jwks_client() -> jwt.PyJWKClient:
    settings = get_settings()
    if not settings.jwt_issuer:
        raise ConfigurationError("set JWT_ISSUER (the HTTP API's issuer) for the WebSocket authorizer")
    url = settings.jwt_jwks_url or settings.jwt_issuer.rstrip("/") + "/.well-known/jwks.json"
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=JWKS_CACHE_SECONDS, timeout=5)


def _audiences() -> list[str]:
    return [a.strip() for a in (get_settings().jwt_audience or "").split(",") if a.strip()]


def _audience_matches(claims: Mapping[str, Any], audiences: list[str]) -> bool:
    """As API Gateway's JWT authorizer: `aud` must name one of the audiences, or, in a token without `aud`
    (a Cognito access token), `client_id` must be one of them."""
    aud = claims.get("aud")
    if aud is None:
        return claims.get("client_id") in audiences
    return any(value in audiences for value in ([aud] if isinstance(aud, str) else aud))


def _staff(token: str) -> Principal | None:
    """The staff member, or None for a verified token the desk does not admit (an agent_id of no agent of its
    tenant: over HTTP the same token gets a 404 wherever it names that agent)."""
    try:
        key = _jwks_client().get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            issuer=get_settings().jwt_issuer,
            # The audience is checked below, the way API Gateway checks it (`aud` or `client_id`).
            options={"require": ["exp", "iss", "sub"], "verify_aud": False},
        )
    except jwt.PyJWTError as exc:
        logger.info("websocket connect refused: staff token invalid (%s)", type(exc).__name__)
        raise AuthorizerUnauthorized() from exc
    # Fails closed: with no audience configured, no staff token is admitted (API Gateway's JWT authorizer cannot
    # be configured without one either).
    if not _audience_matches(claims, _audiences()):
        logger.info("websocket connect refused: staff token for another audience (or none configured)")
        raise AuthorizerUnauthorized()
    try:
        principal = principal_from_claims(claims)
    except Unauthorized as exc:
        raise AuthorizerUnauthorized() from exc
    if not is_agent_of_tenant(principal):
        logger.info("websocket connect denied: the token's agent_id is not an agent of its tenant")
        return None
    return principal.model_copy(update={"token_expires_at": datetime.fromtimestamp(int(claims["exp"]), UTC)})


def _visitor(token: str, origin: str | None, source_ip: str | None = None) -> Principal | None:
    """The visitor, or None for a verified token the desk no longer admits (revoked key, foreign origin, or over
    the tenant's connect rate for its source IP or its widget key: support.services.rate_limits)."""
    claims = verify_connect_token(token)
    if claims is None:
        logger.info("websocket connect refused: visitor token invalid or expired")
        raise AuthorizerUnauthorized()
    with tenant_transaction(claims.tenant_id) as cur:
        cur.execute(
            "SELECT allowed_origins, revoked_at FROM widget_keys WHERE user_id = %s AND widget_key = %s",
            (claims.tenant_id, claims.widget_key),
        )
        row = cur.fetchone()
        admitted = row is not None and row["revoked_at"] is None and origin_allowed(origin, row["allowed_origins"])
        if admitted and _over_connect_rate(cur, claims.tenant_id, claims.widget_key, source_ip):
            logger.info("websocket connect denied: over the tenant's connect rate for this address or widget key")
            return None
        first_use = admitted and spend_connect_token(cur, claims)
    if not admitted:
        logger.info("websocket connect denied: widget key revoked or origin not allowed")
        return None
    if not first_use:
        logger.info("websocket connect refused: visitor connect token used before")
        raise AuthorizerUnauthorized()
    return Principal(
        tenant_id=claims.tenant_id,
        role=Role.VISITOR,
        subject=f"visitor:{claims.visitor_id}",
        visitor_id=claims.visitor_id,
        widget_key=claims.widget_key,
    )


def _over_connect_rate(cur: Cursor, tenant_id: UUID, widget_key: str, source_ip: str | None) -> bool:
    checks = [(CONNECT_PER_IP, source_ip or "unknown"), (CONNECT_PER_KEY, widget_key)]
    return take_tokens(cur, tenant_id, checks) is not None


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def authorize(event: Mapping[str, Any]) -> dict[str, Any]:
    """The policy for a $connect REQUEST authorizer event."""
    query = event.get("queryStringParameters") or {}
    method_arn = str(event.get("methodArn") or "")
    if query.get("token"):
        principal: Principal | None = _staff(str(query["token"]))
    elif query.get("visitorToken"):
        source_ip = ((event.get("requestContext") or {}).get("identity") or {}).get("sourceIp")
        principal = _visitor(str(query["visitorToken"]), _header(event.get("headers"), "origin"), source_ip)
    else:
        raise AuthorizerUnauthorized()
    if principal is None:
        return _policy("denied", "Deny", method_arn, {})
    return _policy(principal.subject or str(principal.tenant_id), "Allow", method_arn, authorizer_context(principal))


def _policy(principal_id: str, effect: str, resource: str, context: dict[str, str]) -> dict[str, Any]:
    return {
        "principalId": principal_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
        "context": context,
    }
