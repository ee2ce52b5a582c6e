"""Domain errors, defined once. `support.http` maps them to HTTP status codes in one place."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A request the domain refuses. `code` is stable and machine-readable; `message` is for people."""

    code = "error"
    status = 400

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    @property
    def extra(self) -> dict[str, Any]:
        """Fields a WebSocket error event carries beside code, message and details (camelCase, as sent)."""
        return {}


class BadRequest(DomainError):
    code = "bad_request"
    status = 400


class Unauthorized(DomainError):
    code = "unauthorized"
    status = 401


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class NotFound(DomainError):
    """Unknown id, or another tenant's id: the two are indistinguishable on purpose."""

    code = "not_found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
    status = 413


class InvalidInput(DomainError):
    code = "validation_error"
    status = 422


class QuotaExceeded(DomainError):
    """A count cap of the product (500 agents, 10,000 canned responses, 1,000,000 tickets per tenant) is reached.
    A conflict with the tenant's current state, not a rate: retrying later does not help until something is
    removed, so 409 and no Retry-After."""

    code = "quota_exceeded"
    status = 409


class DeskBusy(DomainError):
    """A visitor's new chat while the tenant's waiting queue is at its cap (the chat settings' `queueCap`): nothing
    is stored or announced, and the visitor is offered the tenant's web form when it has one."""

    code = "desk_busy"
    status = 409

    def __init__(self, message: str, *, web_form_url: str | None) -> None:
        super().__init__(message)
        self.web_form_url = web_form_url

    @property
    def extra(self) -> dict[str, Any]:
        return {"webFormUrl": self.web_form_url}


class RateLimited(DomainError):
    """Over a rate limit (a token bucket: support.services.rate_limits). `retry_after` is the whole seconds until
    one more request is admitted: HTTP's `Retry-After` header, `retryAfter` in a WebSocket error event."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)

    @property
    def extra(self) -> dict[str, Any]:
        return {"retryAfter": self.retry_after}


class MalformedJson(BadRequest):
    """A body that is not UTF-8 JSON: no route could read it."""

    code = "malformed_json"


class InternalError(DomainError):
    """A bug: logged, and answered without its details."""

    code = "internal_error"
    status = 500


class IdempotencyKeyReused(InvalidInput):
    """An Idempotency-Key already used, within its 24 hours, for another request on the same route."""

    code = "idempotency_key_reused"


class IdempotencyInProgress(Conflict):
    """An Idempotency-Key whose first request is still running: retry later, the answer will be the first's."""

    code = "idempotency_in_progress"


class StorageUnavailable(DomainError):
    """S3 could not be asked (no bucket configured, no credentials to sign with): the request wrote nothing; retry."""

    code = "storage_unavailable"
    status = 503


class StorageFailed(DomainError):
    """S3 failed to answer a check or a copy (HeadObject, CopyObject): the message was not stored; send it again."""

    code = "storage_error"
    status = 502


class UnsupportedMediaType(DomainError):
    code = "unsupported_media_type"
    status = 415


def found[T](row: T | None, what: str) -> T:
    """`row`, or NotFound("<what> not found"): the one way a lookup says an id is unknown (or not the caller's)."""
    if row is None:
        raise NotFound(f"{what} not found")
    return row
