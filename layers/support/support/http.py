"""The HTTP edge shared by every endpoint group: the resolver, the caller, the envelope, the error mapping.

Every function builds its resolver with `create_resolver()`, so domain errors, validation errors and bugs
map to `{"success": false, "error": {"code", "message", "details"}}` the same way everywhere.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ValidationError

from support.auth import Principal, principal_from_claims
from support.config import get_settings
from support.errors import DomainError
from support.observability import logger
from support.pagination import MAX_PAGE_SIZE, Page

# Query parameters every endpoint group shares.
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="at most 100")]
PageCursor = Annotated[str | None, Query(max_length=512, description="nextCursor of the previous page")]
TenantParam = Annotated[UUID | None, Query(alias="userId", description="if given, must be the caller's tenant")]

# Pydantic error types that mean "too big" rather than "malformed": answered 413, not 422.
_TOO_LARGE = {"payload_too_large"}


def _error(status: int, code: str, message: str, details: list[dict[str, Any]] | None = None) -> Response[Any]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"success": False, "error": {"code": code, "message": message, "details": details or []}},
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _parse_json(body: str) -> Any:
    try:
        return json.loads(body)
    except RecursionError as exc:  # nested deeper than Python will parse: malformed for us, not a crash
        raise json.JSONDecodeError("nested too deeply", body, 0) from exc


def _refusal(status: int, code: str, message: str) -> dict[str, Any]:
    """A response made before routing, for a body no route could read."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"success": False, "error": {"code": code, "message": message, "details": []}}),
        "isBase64Encoded": False,
    }


NOT_JSON = (415, "unsupported_media_type", "send the request body as application/json")
NOT_UTF8 = (400, "malformed_json", "the request body is not UTF-8 encoded JSON")


class SupportResolver(APIGatewayHttpResolver):
    """Powertools' HTTP API resolver that takes UTF-8 JSON bodies only. Powertools would also parse form and
    multipart bodies, and a malformed multipart header or a body that is not UTF-8 crashes its parsing
    (a 500 for bad input)."""

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        body = event.get("body")
        if body:
            headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
            if headers.get("content-type", "").split(";")[0].strip().lower() not in ("", "application/json"):
                return _refusal(*NOT_JSON)
            if event.get("isBase64Encoded"):
                try:
                    base64.b64decode(body).decode()
                except (binascii.Error, UnicodeDecodeError):
                    return _refusal(*NOT_UTF8)
        return super().resolve(event, context)


def create_resolver() -> APIGatewayHttpResolver:
    """Called at module level by each function, so a misconfigured function fails at cold start."""
    get_settings()
    app = SupportResolver(enable_validation=True, json_body_deserializer=_parse_json)

    @app.exception_handler(RequestUnsupportedContentType)  # type: ignore[untyped-decorator]
    def _unsupported_content_type(exc: RequestUnsupportedContentType) -> Response[Any]:
        return _error(*NOT_JSON)

    @app.exception_handler(DomainError)  # type: ignore[untyped-decorator]
    def _domain_error(exc: DomainError) -> Response[Any]:
        return _error(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def _validation_error(exc: RequestValidationError) -> Response[Any]:
        errors = exc.errors()
        if any(err["type"] == "json_invalid" for err in errors):
            return _error(400, "malformed_json", "the request body is not valid JSON")
        details = [
            {"field": _field_path(err["loc"]), "message": err.get("msg", ""), "type": err["type"]} for err in errors
        ]
        if any(err["type"] in _TOO_LARGE for err in errors):
            return _error(413, "payload_too_large", "a field is over its size limit", details)
        return _error(422, "validation_error", "the request is not valid", details)

    @app.exception_handler(ValidationError)  # type: ignore[untyped-decorator]
    def _model_error(exc: ValidationError) -> Response[Any]:
        # A model built inside a route from values the resolver already accepted: still the caller's input.
        details = [
            {"field": _field_path(err["loc"]), "message": err.get("msg", ""), "type": err["type"]}
            for err in exc.errors()
        ]
        return _error(422, "validation_error", "the request is not valid", details)

    @app.not_found
    def _no_route(_exc: NotFoundError) -> Response[Any]:
        return _error(404, "not_found", "no such route")

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def _bug(exc: Exception) -> Response[Any]:
        logger.exception("unhandled error")
        return _error(500, "internal_error", "an internal error occurred; it has been logged")

    return app


def current_principal(app: APIGatewayHttpResolver) -> Principal:
    """The caller, from the claims API Gateway's JWT authorizer verified."""
    authorizer = app.current_event.request_context.authorizer
    claims = authorizer.jwt_claim if authorizer is not None else None
    return principal_from_claims(claims)


def ok(data: BaseModel | Sequence[BaseModel], status: int = 200) -> Response[Any]:
    if not isinstance(data, BaseModel):
        payload: Any = [item.model_dump(mode="json", by_alias=True) for item in data]
    else:
        payload = data.model_dump(mode="json", by_alias=True)
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"success": True, "data": payload},
    )


def created(data: BaseModel) -> Response[Any]:
    return ok(data, status=201)


def page(result: Page[Any]) -> Response[Any]:
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        body={
            "success": True,
            "data": [item.model_dump(mode="json", by_alias=True) for item in result.data],
            "nextCursor": result.next_cursor,
        },
    )
