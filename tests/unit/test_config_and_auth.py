"""Configuration validated at cold start, credentials from Secrets Manager, and principals from claims."""

from __future__ import annotations

import json
from uuid import uuid4

import boto3
import pytest
from moto import mock_aws
from psycopg.conninfo import conninfo_to_dict

from support.auth import Principal, Role, principal_from_claims
from support.config import ConfigurationError, Settings, get_settings
from support.db.connection import conninfo
from support.db.secrets import DATABASE_CA_BUNDLE
from support.errors import Forbidden, Unauthorized


def test_missing_database_configuration_fails_at_cold_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("DB_SECRET_ARN", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match="DATABASE_URL"):
            get_settings()
    finally:
        get_settings.cache_clear()


def test_invalid_numbers_are_refused() -> None:
    with pytest.raises(ValueError, match="DB_CONNECT_TIMEOUT_SECONDS"):
        Settings.model_validate({"DATABASE_URL": "x", "DB_CONNECT_TIMEOUT_SECONDS": "0"})


@mock_aws
def test_credentials_come_from_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("secretsmanager", region_name="us-east-1")
    secret = {"host": "db.internal", "port": 5432, "username": "support_app", "password": "p@ss:/word", "dbname": "s"}
    arn = client.create_secret(Name="support/db", SecretString=json.dumps(secret))["ARN"]

    built = conninfo_to_dict(conninfo(Settings.model_validate({"DB_SECRET_ARN": arn})))

    assert built == {
        "host": "db.internal",
        "port": "5432",
        "dbname": "s",
        "user": "support_app",
        "password": "p@ss:/word",
        "sslmode": "verify-full",
        "sslrootcert": str(DATABASE_CA_BUNDLE),
        "connect_timeout": "5",
        "application_name": "support-backend",
    }


def test_principal_from_claims() -> None:
    tenant, agent = uuid4(), uuid4()
    principal = principal_from_claims(
        {"sub": "u1", "tenant_id": str(tenant), "role": "agent", "agent_id": str(agent), "exp": "1"}
    )
    assert principal == Principal(tenant_id=tenant, role=Role.AGENT, subject="u1", agent_id=agent)


@pytest.mark.parametrize(
    "claims",
    [
        None,
        {},
        {"sub": "u", "role": "admin"},
        {"sub": "u", "tenant_id": "x", "role": "admin"},
        {"tenant_id": str(uuid4()), "role": "owner"},
    ],
)
def test_bad_claims_are_unauthorized(claims: dict[str, str] | None) -> None:
    with pytest.raises(Unauthorized):
        principal_from_claims(claims)


def test_user_id_must_match_the_tenant() -> None:
    tenant = uuid4()
    principal = Principal(tenant_id=tenant, role=Role.ADMIN, subject="u")
    principal.require_tenant(None)
    principal.require_tenant(str(tenant).upper())
    with pytest.raises(Forbidden):
        principal.require_tenant(uuid4())


def test_a_function_without_database_settings_fails_at_cold_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from support.http import create_resolver

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("DB_SECRET_ARN", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigurationError):
            create_resolver()
    finally:
        get_settings.cache_clear()
