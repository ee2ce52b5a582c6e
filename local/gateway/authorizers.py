"""API Gateway's authorizers: the HTTP API's JWT authorizer, and the Lambda REQUEST authorizer of a
WebSocket API's `$connect` route.

The REQUEST authorizer is invoked with the event API Gateway builds for WebSocket `$connect`
(https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-lambda-auth.html)
and answers an IAM policy. As API Gateway does: `Allow` on the route's `methodArn` (wildcards `*` and `?`
allowed, an explicit `Deny` wins) lets the connection through, with the policy's `context` and
`principalId` handed to every later event of the connection; otherwise the upgrade is refused with 403.
The error `Unauthorized` (`raise Exception("Unauthorized")`, Lambda's way to answer 401) refuses it with
401. Any other error, or an answer that is not a valid policy, is API Gateway's 500.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from local.gateway.aws import ACCOUNT_ID, REGION
from local.gateway.execution_environments import FunctionError
from local.jwt_keys import ALGORITHM, AUDIENCE, ISSUER, signing_key

logger = logging.getLogger("local.gateway")


class JwtAuthorizer:
    """API Gateway's JWT authorizer: the token from `Authorization` (with or without `Bearer `),
    RS256 with a known `kid`, issuer, audience, `exp` required and not past, `nbf`/`iat` not future."""

    def __init__(
        self,
        public_key: rsa.RSAPublicKey,
        key_id: str,
        *,
        issuer: str = ISSUER,
        audience: str | Sequence[str] = AUDIENCE,
    ) -> None:
        self._public_key = public_key
        self._key_id = key_id
        self._issuer = issuer
        self._audience = [audience] if isinstance(audience, str) else list(audience)

    @classmethod
    def local(cls) -> JwtAuthorizer:
        key = signing_key()
        return cls(key.public_key, key.key_id)

    def claims(self, authorization: str | None) -> dict[str, Any]:
        """The verified claims, or `InvalidTokenError` naming what is wrong (never shown to the client)."""
        if not authorization or not authorization.strip():
            raise jwt.InvalidTokenError("no token")
        token = authorization.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if jwt.get_unverified_header(token).get("kid") != self._key_id:
            raise jwt.InvalidTokenError("unknown kid")
        return jwt.decode(
            token,
            self._public_key,
            algorithms=[ALGORITHM],
            issuer=self._issuer,
            audience=self._audience,
            options={"require": ["exp", "iss", "aud"], "verify_iat": True},
        )

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set an identity provider publishes at `/.well-known/jwks.json` for this key."""
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self._public_key, as_dict=True)
        jwk.update({"kid": self._key_id, "use": "sig", "alg": ALGORITHM})
        return {"keys": [jwk]}


# --- the Lambda REQUEST authorizer of WebSocket $connect ----------------------------------------------


def method_arn(api_id: str, stage: str, route_key: str) -> str:
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api_id}/{stage}/{route_key}"


def build_websocket_authorizer_event(
    *,
    headers: Sequence[tuple[str, str]],
    raw_query_string: str,
    request_context: Mapping[str, Any],
    api_id: str,
    stage: str,
) -> dict[str, Any]:
    """The REQUEST authorizer event of WebSocket `$connect`, keys as in AWS's documented example."""
    single, multi = _headers(headers)
    query, multi_query = query_parameters(raw_query_string)
    return {
        "type": "REQUEST",
        "methodArn": method_arn(api_id, stage, "$connect"),
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "stageVariables": {},
        "requestContext": dict(request_context),
    }


def _headers(headers: Sequence[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """`headers` (the last value of a repeated header, as API Gateway's v1 events) and `multiValueHeaders`."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def query_parameters(raw_query_string: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in parse_qsl(raw_query_string, keep_blank_values=True):
        single[key] = value
        multi.setdefault(key, []).append(value)
    return single, multi


@dataclass(frozen=True)
class AuthorizerResult:
    """What API Gateway makes of the authorizer's answer: 200 to go on, else the status to refuse with."""

    status: int
    principal_id: str | None = None
    context: dict[str, str | int | float | bool] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return self.status == 200

    def request_context_authorizer(self) -> dict[str, Any]:
        """`requestContext.authorizer` of the connection's events: the policy's context and principalId."""
        return {**self.context, "principalId": self.principal_id}


class InvalidPolicy(ValueError):
    """The authorizer answered something that is not an IAM policy API Gateway accepts."""


def evaluate_policy(answer: Any, resource_arn: str) -> AuthorizerResult:
    """The authorizer's IAM policy applied to `resource_arn`, as API Gateway applies it."""
    if not isinstance(answer, dict):
        raise InvalidPolicy("the answer is not a JSON object")
    principal_id = answer.get("principalId")
    if not isinstance(principal_id, str | int | float) or isinstance(principal_id, bool):
        raise InvalidPolicy("principalId is missing")
    document = answer.get("policyDocument")
    if not isinstance(document, dict) or not isinstance(document.get("Statement"), list | dict):
        raise InvalidPolicy("policyDocument.Statement is missing")
    statements = document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]
    context = answer.get("context") or {}
    if not isinstance(context, dict):
        raise InvalidPolicy("context is not an object")
    for key, value in context.items():
        if not isinstance(value, str | int | float | bool):
            raise InvalidPolicy(f"context.{key} is not a string, number or boolean")
    allowed = denied = False
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Effect") not in ("Allow", "Deny"):
            raise InvalidPolicy("a statement has no Effect Allow or Deny")
        actions = statement.get("Action", [])
        actions = actions if isinstance(actions, list) else [actions]
        resources = statement.get("Resource", [])
        resources = resources if isinstance(resources, list) else [resources]
        if not any(fnmatch.fnmatchcase("execute-api:Invoke", str(action)) for action in actions):
            continue
        if not any(fnmatch.fnmatchcase(resource_arn, str(resource)) for resource in resources):
            continue
        if statement["Effect"] == "Deny":
            denied = True
        else:
            allowed = True
    status = 200 if allowed and not denied else 403
    return AuthorizerResult(status, str(principal_id), dict(context))


def run_request_authorizer(
    invoke: Callable[[dict[str, Any]], Any],
    event: dict[str, Any],
    *,
    identity_sources: Sequence[str] = (),
) -> AuthorizerResult:
    """Invoke the REQUEST authorizer with `event` and judge its answer. Blocking (call it from a thread).
    With identity sources declared, a request missing one is refused with 401 before the function runs."""
    for source in identity_sources:
        kind, _, name = source.removeprefix("route.request.").partition(".")
        values = event.get("queryStringParameters") if kind == "querystring" else event.get("headers")
        lowered = {str(k).lower(): v for k, v in (values or {}).items()} if kind == "header" else (values or {})
        if not lowered.get(name.lower() if kind == "header" else name):
            return AuthorizerResult(401)
    try:
        answer = invoke(event)
    except FunctionError as exc:
        if exc.error_message == "Unauthorized":
            return AuthorizerResult(401)
        logger.error("500 WebSocket $connect: the authorizer failed\n%s", exc)
        return AuthorizerResult(500)
    try:
        return evaluate_policy(answer, event["methodArn"])
    except InvalidPolicy as exc:
        logger.error("500 WebSocket $connect: the authorizer's answer is not a valid policy: %s", exc)
        return AuthorizerResult(500)


def request_time(moment: datetime) -> str:
    return moment.strftime("%d/%b/%Y:%H:%M:%S +0000")
