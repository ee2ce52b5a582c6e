"""The HTTP edge shared by every endpoint group: the resolver, the caller, the envelope, the error mapping.

Every function builds its resolver with `create_resolver()`, so domain errors, validation errors and bugs
map to `{"success": false, "error": {"code", "message", "details"}}` the same way everywhere.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import json
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, cast
from uuid import UUID

import psycopg
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.models import OpenAPI, Parameter, ParameterInType
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse, OpenAPIResponseHeader
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import StringConstraints, ValidationError, WithJsonSchema
from pydantic.alias_generators import to_camel

from support import audit_actor
from support.auth import AGENT_CLAIM, ROLE_CLAIM, STAFF, Principal, principal_from_claims
from support.config import get_settings
from support.db.connection import Admission, admission, check_admission
from support.errors import (
    DomainError,
    InternalError,
    InvalidInput,
    MalformedJson,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    UnsupportedMediaType,
)
from support.models.envelopes import Envelope, ErrorEnvelope, PageEnvelope
from support.observability import logger
from support.pagination import MAX_PAGE_SIZE, Page
from support.services.rate_limits import api_admission

# Query parameters every endpoint group shares.
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="at most 100")]
# A cursor is opaque to clients; its schema says `format: cursor`, so that the fuzzer can be taught to make
# well-formed base64url cursors of every wrong shape, not only random text.
CURSOR_MAX_CHARS = 512
CursorText = Annotated[
    str,
    StringConstraints(max_length=CURSOR_MAX_CHARS),
    WithJsonSchema({"type": "string", "format": "cursor", "maxLength": CURSOR_MAX_CHARS}),
]
PageCursor = Annotated[CursorText | None, Query(description="nextCursor of the previous page")]
TenantParam = Annotated[UUID | None, Query(alias="userId", description="if given, must be the caller's tenant")]

# Pydantic error types that mean "too big" rather than "malformed": answered 413, not 422.
_TOO_LARGE = {"payload_too_large"}


def _envelope(exc: DomainError) -> dict[str, Any]:
    """The error envelope (`ErrorEnvelope`). Every detail carries field, message and type: a domain error's
    detail that names no type gets the error's code."""
    details = [
        {"field": str(d.get("field", "")), "message": str(d.get("message", "")), "type": str(d.get("type", exc.code))}
        for d in exc.details
    ]
    return {"success": False, "error": {"code": exc.code, "message": exc.message, "details": details}}


def _error(exc: DomainError) -> Response[Any]:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return Response(
        status_code=exc.status, content_type=content_types.APPLICATION_JSON, body=_envelope(exc), headers=headers
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    """`body.customerEmail`, `query.cursor`, `path.ticketId`: every part as the API publishes it, in camelCase.
    Body fields and query parameters already carry their aliases; a path parameter is named after the
    handler's argument (`ticket_id`), and is published as the template's `{ticketId}`."""
    parts = list(loc)
    if len(parts) > 1 and parts[0] == "path":
        parts[1] = to_camel(str(parts[1]))
    return ".".join(str(part) for part in parts)


def _details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"field": _field_path(err["loc"]), "message": err.get("msg", ""), "type": err["type"]} for err in errors]


def _parse_json(body: str) -> Any:
    try:
        return json.loads(body)
    except RecursionError as exc:  # nested deeper than Python will parse: malformed for us, not a crash
        raise json.JSONDecodeError("nested too deeply", body, 0) from exc


def _refusal(exc: DomainError) -> dict[str, Any]:
    """A response made before routing, for a body no route could read (or after it: a request over its tenant's
    budget that opened no transaction)."""
    retry_after = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else {}
    return {
        "statusCode": exc.status,
        "headers": {"Content-Type": "application/json", **retry_after},
        "body": json.dumps(_envelope(exc)),
        "isBase64Encoded": False,
    }


def _not_json() -> UnsupportedMediaType:
    return UnsupportedMediaType("send the request body as application/json")


def _not_utf8() -> MalformedJson:
    return MalformedJson("the request body is not UTF-8 encoded JSON")


class _DeclaredQueryParametersOnly(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, which also refuses a query parameter the matched route does not declare.

    The rule, for every route of every function: a request may carry only the query parameters its route
    publishes (the OpenAPI document lists them), just as a body may carry only the fields its model declares.
    Anything else (a typo such as `?stauts=open`, a parameter of another route, an empty `?x=`) is a 422 with
    one detail per name, `{"field": "query.<name>", "type": "extra_forbidden"}`, reported together with the
    other validation errors of the request. Names are compared exactly (query names are case-sensitive)."""

    def handler(self, app: Any, next_middleware: NextMiddleware) -> Response[Any]:
        declared = {param.alias for param in app.context["_route"].dependant.query_params}
        unknown = [
            {
                "type": "extra_forbidden",
                "loc": ("query", name),
                "msg": "Unknown query parameter: this route takes "
                + (", ".join(sorted(declared)) if declared else "no query parameters"),
                "input": value,
            }
            for name, value in sorted(app.current_event.query_string_parameters.items())
            if name not in declared
        ]
        if not unknown:
            return super().handler(app, next_middleware)
        refusal = RequestValidationError(unknown)

        def refuse(_app: Any) -> Response[Any]:
            raise refusal

        try:
            return super().handler(app, cast(NextMiddleware, refuse))
        except RequestValidationError as exc:
            if exc is refusal:
                raise
            raise RequestValidationError([*exc.errors(), *unknown]) from exc


# What every route may answer besides its success, all with the error envelope. (401 comes from API Gateway's
# authorizer before any function runs, and from a function only for claims it cannot read.)
ERROR_STATUSES = {
    400: "the body is not UTF-8 JSON (malformed_json)",
    401: "missing or unreadable token claims (unauthorized)",
    403: "not allowed for this caller: another tenant's userId, or an admin's task (forbidden)",
    404: "no such id for this tenant (not_found): another tenant's ids are unknown too",
    409: "conflicts with the current state, or a cap is reached (conflict, quota_exceeded)",
    413: "a field is over its size limit (payload_too_large)",
    415: "the body is not application/json (unsupported_media_type)",
    422: "the request is not valid (validation_error): one detail per field, named as published",
    429: "over a rate limit (rate_limited): the Retry-After header says in how many seconds to try again",
    500: "a bug, logged (internal_error)",
}


def _error_example(code: str, message: str, details: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "summary": code,
        "value": {"success": False, "error": {"code": code, "message": message, "details": details or []}},
    }


# One example answer per error status (two where a status has two codes), in the OpenAPI document of every route.
ERROR_EXAMPLES: dict[int, dict[str, dict[str, Any]]] = {
    400: {"malformed_json": _error_example("malformed_json", "the request body is not valid JSON")},
    401: {"unauthorized": _error_example("unauthorized", "the token has no tenant_id claim")},
    403: {"forbidden": _error_example("forbidden", "only an admin can do this")},
    404: {"not_found": _error_example("not_found", "ticket not found")},
    409: {
        "conflict": _error_example("conflict", "the ticket is closed"),
        "quota_exceeded": _error_example("quota_exceeded", "this tenant has reached its limit of 500 agents"),
    },
    413: {
        "payload_too_large": _error_example(
            "payload_too_large",
            "a field is over its size limit",
            [{"field": "body.message", "message": "at most 51200 bytes of UTF-8", "type": "too_large"}],
        )
    },
    415: {"unsupported_media_type": _error_example("unsupported_media_type", "the request body must be JSON")},
    422: {
        "validation_error": _error_example(
            "validation_error",
            "the request is not valid",
            [{"field": "body.customerEmail", "message": "value is not a valid email address", "type": "value_error"}],
        )
    },
    429: {"rate_limited": _error_example("rate_limited", "too many requests; try again later")},
    500: {"internal_error": _error_example("internal_error", "an internal error occurred; it has been logged")},
}


_RETRY_AFTER: OpenAPIResponseHeader = {
    "description": "whole seconds until one more request is admitted",
    "schema": {"type": "integer", "minimum": 1},
}


def success_and_errors(successes: dict[int, OpenAPIResponse]) -> dict[int, OpenAPIResponse]:
    """A route's documented answers: its successes (a route that answers two, such as 201 for a thing made now and
    200 for the one made before, lists both) and every error status with `ErrorEnvelope` and an example."""
    return {
        **successes,
        **{
            status: {
                "description": description,
                "content": {"application/json": {"model": ErrorEnvelope, "examples": ERROR_EXAMPLES[status]}},
                **({"headers": {"Retry-After": _RETRY_AFTER}} if status == 429 else {}),
            }
            for status, description in ERROR_STATUSES.items()
        },
    }


# Routes that call S3 (support.services.attachments) answer two more: S3 failed them, and nothing was written.
STORAGE_ERROR_STATUSES = {
    502: "the file store (S3) failed a check or a copy (storage_error): nothing was stored; send the request again",
    503: "the file store (S3) cannot be asked now (storage_unavailable): nothing was written; try again",
}
STORAGE_ERROR_EXAMPLES: dict[int, dict[str, dict[str, Any]]] = {
    502: {
        "storage_error": _error_example(
            "storage_error", "the file store failed to answer; the message was not stored: send it again"
        )
    },
    503: {
        "storage_unavailable": _error_example(
            "storage_unavailable", "the file store cannot take uploads right now; try again"
        )
    },
}


def with_storage_errors(status_code: int, description: str = "Successful Response") -> dict[int, OpenAPIResponse]:
    """`success_and_errors` of a route that calls S3, with its 502 and 503."""
    return {
        **success_and_errors({status_code: {"description": description}}),
        **{
            status: {
                "description": text,
                "content": {"application/json": {"model": ErrorEnvelope, "examples": STORAGE_ERROR_EXAMPLES[status]}},
            }
            for status, text in STORAGE_ERROR_STATUSES.items()
        },
    }


_ROUTE_SIGNATURE = inspect.signature(APIGatewayHttpResolver.route)
_PATH_PARAMETER = re.compile(r"\{([^}]+)\}")


def _camel_path(path: str) -> str:
    return _PATH_PARAMETER.sub(lambda match: "{" + to_camel(match.group(1)) + "}", path)


# Powertools' own error schemas, which it documents for 422; this API answers with `ErrorEnvelope` instead.
_POWERTOOLS_ERROR_SCHEMAS = ("HTTPValidationError", "ResponseValidationError", "ValidationError")


def _drop_unused_components(schema: OpenAPI, names: Sequence[str]) -> None:
    components = schema.components.schemas if schema.components else None
    for name in names:  # in this order: the first two refer to ValidationError
        reference = f'"#/components/schemas/{name}"'
        if components and name in components and reference not in schema.model_dump_json(by_alias=True):
            del components[name]


class SupportResolver(APIGatewayHttpResolver):
    """Powertools' HTTP API resolver that takes UTF-8 JSON bodies only, and only the query parameters a route
    declares. Powertools would also parse form and multipart bodies, and a malformed multipart header or a
    body that is not UTF-8 crashes its parsing (a 500 for bad input).

    Its OpenAPI document describes every answer: each route's success (its `status_code`, with the schema of
    its return annotation) and the error statuses, all with `ErrorEnvelope`; and path parameters are named as
    the template publishes them (`{ticketId}`, not the handler's `{ticket_id}`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self._enable_validation:
            self._request_validation_middleware = _DeclaredQueryParametersOnly()  # type: ignore[no-untyped-call]

    def route(self, *args: Any, **kwargs: Any) -> Any:
        """Powertools' `route` (which `get`, `post`... call with positional arguments), with the error responses
        documented unless a route lists its own `responses`."""
        bound = _ROUTE_SIGNATURE.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        del arguments["self"]
        if arguments["responses"] is None:
            arguments["responses"] = success_and_errors(
                {arguments["status_code"]: {"description": arguments["response_description"]}}
            )
        return super().route(**arguments)

    def get_openapi_schema(self, **kwargs: Any) -> OpenAPI:
        schema = super().get_openapi_schema(**kwargs)
        if schema.paths:
            schema.paths = {_camel_path(path): item for path, item in schema.paths.items()}
            for item in schema.paths.values():
                operations = (item.get, item.put, item.post, item.delete, item.patch, item.head, item.options)
                for operation in operations:
                    for parameter in (operation.parameters or []) if operation else []:
                        if isinstance(parameter, Parameter) and parameter.in_ == ParameterInType.path:
                            parameter.name = to_camel(parameter.name)
        _drop_unused_components(schema, _POWERTOOLS_ERROR_SCHEMAS)
        return schema

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        """Every request of a signed-in caller counts against its tenant's API budget (support.services.rate_limits):
        the check rides in front of the request's first transaction for the tenant, or, when the request opened
        none (refused before any database work: a 403, a 422, a body no route reads), goes alone afterwards. Over
        the budget: 429 with Retry-After, the request's work not done (or, alone afterwards, its answer replaced).
        The audit trail's actor is bound first, for every transaction the request opens (support.audit_actor)."""
        audit_actor.bind(_http_actor(event))
        check = _api_admission(event)
        if check is None:
            return self._resolve_body(event, context)
        with admission(check):
            answer = self._resolve_body(event, context)
            try:
                check_admission(check)
            except RateLimited as exc:
                return _refusal(exc)
            except psycopg.Error:  # the answer stands: a budget that cannot be counted now does not refuse it
                logger.warning("could not count a request against its tenant's API budget", exc_info=True)
        return answer

    def _resolve_body(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        body = event.get("body")
        if body:
            headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
            if headers.get("content-type", "").split(";")[0].strip().lower() not in ("", "application/json"):
                return _refusal(_not_json())
            if event.get("isBase64Encoded"):
                try:
                    base64.b64decode(body).decode()
                except (binascii.Error, UnicodeDecodeError):
                    return _refusal(_not_utf8())
        return super().resolve(event, context)


def _api_admission(event: Mapping[str, Any]) -> Admission | None:
    """The tenant's API check for a request with verified JWT claims (API Gateway's authorizer); None for the public
    routes (their own buckets: the widget's, a channel's) and for claims no route would accept."""
    claims = (((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt") or {}).get("claims")
    if not claims:
        return None
    try:
        return api_admission(principal_from_claims(claims).tenant_id)
    except DomainError:
        return None


def _http_actor(event: Mapping[str, Any]) -> audit_actor.Actor:
    """The audit trail's actor of an HTTP request: the staff member the verified claims name (the agent, else the
    token's subject), or `public` on the routes without a token (the web form, the widget session, a channel's
    delivery), with API Gateway's request id."""
    context = event.get("requestContext") or {}
    jwt = (context.get("authorizer") or {}).get("jwt") or {}
    claims = jwt.get("claims") or {}
    request_id = context.get("requestId")
    role = claims.get(ROLE_CLAIM)
    if role in STAFF:
        return audit_actor.Actor(str(role), str(claims.get(AGENT_CLAIM) or claims.get("sub") or "") or None, request_id)
    return audit_actor.Actor("public", None, request_id)


def create_resolver() -> APIGatewayHttpResolver:
    """Called at module level by each function, so a misconfigured function fails at cold start."""
    get_settings()
    app = SupportResolver(enable_validation=True, json_body_deserializer=_parse_json)

    @app.exception_handler(RequestUnsupportedContentType)  # type: ignore[untyped-decorator]
    def _unsupported_content_type(exc: RequestUnsupportedContentType) -> Response[Any]:
        return _error(_not_json())

    @app.exception_handler(DomainError)  # type: ignore[untyped-decorator]
    def _domain_error(exc: DomainError) -> Response[Any]:
        return _error(exc)

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def _validation_error(exc: RequestValidationError) -> Response[Any]:
        errors = exc.errors()
        if any(err["loc"][:1] == ("response",) for err in errors):
            # Powertools reports a route's answer that does not match its return annotation as a request
            # validation error: it is our bug, not the caller's input.
            logger.error("a response does not match its route's model", extra={"errors": _details(errors)})
            return _error(InternalError("an internal error occurred; it has been logged"))
        if any(err["type"] == "json_invalid" for err in errors):
            return _error(MalformedJson("the request body is not valid JSON"))
        details = _details(errors)
        if any(err["type"] in _TOO_LARGE for err in errors):
            return _error(PayloadTooLarge("a field is over its size limit", details=details))
        return _error(InvalidInput("the request is not valid", details=details))

    @app.exception_handler(ValidationError)  # type: ignore[untyped-decorator]
    def _model_error(exc: ValidationError) -> Response[Any]:
        # A model built inside a route from values the resolver already accepted: still the caller's input.
        return _error(InvalidInput("the request is not valid", details=_details(exc.errors())))

    @app.not_found
    def _no_route(_exc: NotFoundError) -> Response[Any]:
        return _error(NotFound("no such route"))

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def _bug(exc: Exception) -> Response[Any]:
        logger.exception("unhandled error")
        return _error(InternalError("an internal error occurred; it has been logged"))

    return app


def current_principal(app: APIGatewayHttpResolver) -> Principal:
    """The caller, from the claims API Gateway's JWT authorizer verified."""
    authorizer = app.current_event.request_context.authorizer
    claims = authorizer.jwt_claim if authorizer is not None else None
    return principal_from_claims(claims)


# The answers a route returns. The body is the envelope's fields around the service's own model objects; the
# route's return annotation (`Response[Envelope[Ticket]]`) is what Powertools checks it against and serialises
# it with (by alias), so a route that returned something else than it publishes would fail loudly (a 500, and
# the fuzzer's response conformance check) rather than send an undocumented shape. Model objects of the
# declared class are taken as they are, not validated again.


def ok[T](data: T, status: int = 200) -> Response[Envelope[T]]:
    body = cast(Envelope[T], {"success": True, "data": data})  # validated into Envelope[T] by Powertools
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def created[T](data: T) -> Response[Envelope[T]]:
    """201. The route says so too (`status_code=201`), for the OpenAPI document."""
    return ok(data, status=201)


def page[T](result: Page[T]) -> Response[PageEnvelope[T]]:
    body = cast(PageEnvelope[T], {"success": True, "data": result.data, "nextCursor": result.next_cursor})
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=body)
