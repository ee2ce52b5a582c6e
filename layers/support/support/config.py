"""Typed configuration, read from the environment once per execution environment and validated then."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator


class ConfigurationError(RuntimeError):
    """The function's environment is incomplete or invalid: a deployment bug, reported at cold start."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    # Locally (and in tests) a libpq URL; in AWS the ARN of a Secrets Manager secret in the RDS format
    # ({"host", "port", "username", "password", "dbname"}).
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    db_secret_arn: str | None = Field(default=None, alias="DB_SECRET_ARN")
    # Where to connect instead of the secret's host: the RDS Proxy endpoint, when the stack has one.
    db_host: str | None = Field(default=None, alias="DB_HOST", min_length=1)
    # The roots a server's certificate must chain to when connecting from the secret (verify-full either way).
    # Unset: the bundle shipped in the layer (support/certs); a test points it at a CA of its own.
    db_ssl_root_cert: Path | None = Field(default=None, alias="DB_SSL_ROOT_CERT")
    db_secret_max_age_seconds: int = Field(default=300, alias="DB_SECRET_MAX_AGE_SECONDS", ge=0)
    db_connect_timeout_seconds: int = Field(default=5, alias="DB_CONNECT_TIMEOUT_SECONDS", ge=1, le=60)
    # Kept below the function timeout so a slow query fails as a query, not as a killed invocation. Set per
    # transaction (SET LOCAL, in the statement that binds the tenant), never as a startup option: RDS Proxy
    # refuses startup options.
    db_statement_timeout_ms: int = Field(default=5000, alias="DB_STATEMENT_TIMEOUT_MS", ge=100)

    # The key that signs visitors' connect and resume tokens (the widget routes and the WebSocket authorizer):
    # locally the value itself, in AWS the ARN of the Secrets Manager secret that holds it.
    visitor_token_secret: SecretStr | None = Field(default=None, alias="VISITOR_TOKEN_SECRET")
    visitor_token_secret_arn: str | None = Field(default=None, alias="VISITOR_TOKEN_SECRET_ARN")

    # Live chat in real time. The API Gateway Management API of the WebSocket API
    # (https://{api}.execute-api.{region}.amazonaws.com/{stage}; locally the gateway's); without it, nothing is
    # fanned out (a function that has no WebSocket side).
    websocket_management_endpoint: str | None = Field(default=None, alias="WEBSOCKET_MANAGEMENT_ENDPOINT")
    # Staff broadcasts (support.services.broadcasts): the function that runs them, invoked asynchronously (in AWS
    # the BroadcastFunction's name; locally the gateway's function of that logical id). Unset: the run happens in
    # the caller's process after its commit (tests that call services directly).
    broadcast_function_name: str | None = Field(default=None, alias="BROADCAST_FUNCTION_NAME", min_length=1)
    # How long a run waits before it reads, so that a burst of changes is told in one queue.updated.
    broadcast_coalesce_ms: int = Field(default=0, alias="BROADCAST_COALESCE_MS", ge=0, le=1000)
    # Staff connections one invocation delivers to; a run with more hands the rest to further invocations.
    broadcast_slice_size: int = Field(default=500, alias="BROADCAST_SLICE_SIZE", ge=1, le=2000)
    # Automation rules (support.services.automations): the function that runs a tenant's pending events after a
    # change committed, invoked asynchronously (in AWS the AutomationsFunction's name). Unset: the run happens in the
    # caller's process after its commit (tests, `make run`); the workflow sweep runs whatever is left in any case.
    automations_function_name: str | None = Field(default=None, alias="AUTOMATIONS_FUNCTION_NAME", min_length=1)
    # Privacy requests (support.services.privacy): the function that runs an export or an erasure, invoked
    # asynchronously right after the request commits (in AWS the PrivacyJobFunction's name; locally the gateway's).
    # Unset: the run happens in the caller's process after its commit (tests); the workflow sweep resumes whatever
    # was left in any case.
    privacy_function_name: str | None = Field(default=None, alias="PRIVACY_FUNCTION_NAME", min_length=1)
    # The encrypted bucket the exports are written to (PrivacyExportBucket; locally the moto bucket make run makes).
    privacy_export_bucket: str | None = Field(default=None, alias="PRIVACY_EXPORT_BUCKET", min_length=1)
    # Webhooks (support.services.webhooks): the SQS queue of deliveries (unset: nothing is handed to SQS, the rows wait
    # for a configured stack), and the function that dispatches a tenant's new deliveries after a change committed,
    # invoked asynchronously (in AWS the WebhookDeliveryFunction's name; unset: the dispatch happens in the caller's
    # process after its commit). The workflow sweep dispatches whatever is left in any case.
    webhook_queue_url: str | None = Field(default=None, alias="WEBHOOK_QUEUE_URL", min_length=1)
    webhook_function_name: str | None = Field(default=None, alias="WEBHOOK_FUNCTION_NAME", min_length=1)
    # The longest SQS delay of one hop (SQS's maximum, 15 minutes); a longer backoff takes several hops. Tests set 0
    # so a retry's message is visible at once and their clock decides when it is due.
    webhook_max_hop_seconds: int = Field(default=900, alias="WEBHOOK_MAX_HOP_SECONDS", ge=0, le=900)
    # Local development and tests only (make run, the test suite): endpoints may be http:// and on the loopback
    # address. Off by default, so a deployed stack refuses both.
    webhooks_allow_local_http: bool = Field(default=False, alias="WEBHOOKS_ALLOW_LOCAL_HTTP")
    # New chat sessions go to an available agent with spare capacity, else they queue.
    chat_auto_assign: bool = Field(default=True, alias="CHAT_AUTO_ASSIGN")
    # The WebSocket authorizer verifies staff JWTs as the HTTP API's JWT authorizer does: same issuer and
    # audience, keys from the issuer's JWKS (JWT_JWKS_URL, else {issuer}/.well-known/jwks.json).
    jwt_issuer: str | None = Field(default=None, alias="JWT_ISSUER")
    jwt_audience: str | None = Field(default=None, alias="JWT_AUDIENCE", description="comma separated")
    jwt_jwks_url: str | None = Field(default=None, alias="JWT_JWKS_URL")

    # Fair limits (support.services.rate_limits): every tenant's budget of the authenticated API, a token bucket of
    # this many requests at once refilled at this rate, unless the operator set the tenant's own (its `limits` row of
    # tenant_settings).
    tenant_api_burst: int = Field(default=300, alias="TENANT_API_BURST", ge=1, le=1_000_000)
    tenant_api_per_second: float = Field(default=50.0, alias="TENANT_API_PER_SECOND", gt=0, le=100_000)

    @model_validator(mode="after")
    def _one_database_source(self) -> Settings:
        if not self.database_url and not self.db_secret_arn:
            raise ValueError("set DATABASE_URL (local) or DB_SECRET_ARN (AWS)")
        return self


@cache
def get_settings() -> Settings:
    try:
        return Settings.model_validate(dict(os.environ))
    except ValidationError as exc:
        raise ConfigurationError(f"invalid configuration: {exc}") from exc
