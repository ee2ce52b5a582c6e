"""Database credentials from Secrets Manager, and the TLS every connection made from them uses.

The secrets are in the RDS format (`username`, `password`, `host`, `port`, `dbname`, `engine`); the one RDS
manages for the master user holds only `username` and `password`, its endpoint comes from the environment. A
secret without a field the connection needs is a ConfigurationError naming the field (never a value), raised
when the function first connects, instead of a default that would connect somewhere else.

A connection made from a secret always verifies the server: `sslmode=verify-full` (a certificate signed by one
of the roots in `support/certs/aws-database-roots.pem`, for the host name connected to). See that folder's
README for where the roots come from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from psycopg.conninfo import make_conninfo
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from support.config import ConfigurationError

DATABASE_CA_BUNDLE = Path(__file__).resolve().parent.parent / "certs" / "aws-database-roots.pem"


class LoginSecret(BaseModel):
    """What every database secret holds: a role and its password (RDS's managed master secret holds no more)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    username: str = Field(min_length=1)
    password: SecretStr = Field(min_length=1)


class DatabaseSecret(LoginSecret):
    """A secret that also says where to connect (the stack-generated secrets of the runtime roles)."""

    host: str = Field(min_length=1)
    port: int = Field(default=5432, ge=1, le=65535)  # RDS's own default, and what a secret without it means
    dbname: str = Field(min_length=1)


def parse_secret[SecretT: LoginSecret](value: Any, model: type[SecretT], *, source: str) -> SecretT:
    """Validate a secret's JSON; errors name the fields that are missing or wrong, never their values."""
    if not isinstance(value, dict):
        raise ConfigurationError(f"secret {source} is not a JSON object")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise ConfigurationError(f"secret {source} is incomplete: {problems}") from None


def read_secret[SecretT: LoginSecret](arn: str, model: type[SecretT], *, max_age_seconds: int = 0) -> SecretT:
    """Fetch and validate a Secrets Manager secret (Powertools caches it for `max_age_seconds`)."""
    # Imported here so that local runs and cold starts without a secret never pay for boto3.
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_secret(arn, transform="json", max_age=max_age_seconds)
    except parameters.TransformParameterError as exc:
        raise ConfigurationError(f"secret {arn} is not JSON") from exc
    except parameters.GetParameterError as exc:  # no such secret, or the function may not read it
        raise ConfigurationError(f"secret {arn} cannot be read: {exc}") from exc
    return parse_secret(value, model, source=arn)


def verified_conninfo(
    *,
    host: str,
    port: int,
    dbname: str,
    login: LoginSecret,
    application_name: str,
    connect_timeout: int,
    root_cert: Path = DATABASE_CA_BUNDLE,
) -> str:
    """A libpq connection string that logs in as `login` and accepts only a server whose certificate `root_cert`
    (by default the roots shipped in the layer) signs for `host`."""
    if not root_cert.is_file():
        raise ConfigurationError(f"the database CA bundle {root_cert} is missing")
    return make_conninfo(
        host=host,
        port=port,
        dbname=dbname,
        user=login.username,
        password=login.password.get_secret_value(),
        sslmode="verify-full",
        sslrootcert=str(root_cert),
        connect_timeout=connect_timeout,
        application_name=application_name,
    )
