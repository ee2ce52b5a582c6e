"""The migrate function's work on each CloudFormation request, from its environment (see template.yaml):

- MASTER_SECRET_ARN: the master user's secret, which RDS manages (only `username` and `password`);
- DB_HOST, DB_PORT, DB_NAME: the cluster's writer endpoint and the application's database;
- APP_DB_SECRET_ARN, ANALYTICS_DB_SECRET_ARN: the secrets the stack generated for the login roles support_app
  and support_analytics_job (RDS format), whose passwords those roles must accept.

Create and Update provision the database (support.db.provisioning); Delete changes nothing: the data outlives
the custom resource (the cluster's own deletion policy decides what happens to it).
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from pydantic import BaseModel, ConfigDict, Field

from support.cloudformation import CustomResourceRequest, Outcome
from support.config import ConfigurationError
from support.db.migrations import DEFINITIONS
from support.db.provisioning import RoleLogin, provision
from support.db.secrets import DATABASE_CA_BUNDLE, DatabaseSecret, LoginSecret, read_secret, verified_conninfo
from support.observability import logger

APPLICATION_NAME = "support-migrate"


class MigrateSettings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    master_secret_arn: str = Field(alias="MASTER_SECRET_ARN", min_length=1)
    db_host: str = Field(alias="DB_HOST", min_length=1)
    db_port: int = Field(default=5432, alias="DB_PORT", ge=1, le=65535)
    db_name: str = Field(alias="DB_NAME", min_length=1)
    app_db_secret_arn: str = Field(alias="APP_DB_SECRET_ARN", min_length=1)
    analytics_db_secret_arn: str = Field(alias="ANALYTICS_DB_SECRET_ARN", min_length=1)
    db_connect_timeout_seconds: int = Field(default=10, alias="DB_CONNECT_TIMEOUT_SECONDS", ge=1, le=60)
    # The roots the server's certificate must chain to (verify-full either way); the tests' own CA locally.
    db_ssl_root_cert: Path = Field(default=DATABASE_CA_BUNDLE, alias="DB_SSL_ROOT_CERT")
    # The build puts sql/ beside the handler; a test points this at a folder of its own.
    migrations_dir: Path = Field(alias="MIGRATIONS_DIR")


def migrate_database(request: CustomResourceRequest, settings: MigrateSettings) -> Outcome:
    physical_id = f"support-schema:{settings.db_host}:{settings.db_port}/{settings.db_name}"
    if request.request_type == "Delete":
        return Outcome(physical_resource_id=request.physical_resource_id or physical_id, reason="data kept")
    if not (settings.migrations_dir / "0001_schema.sql").is_file():
        raise ConfigurationError(f"no migrations in {settings.migrations_dir}: the build did not package sql/")

    master = read_secret(settings.master_secret_arn, LoginSecret)
    logins = [
        RoleLogin("support_app", read_secret(settings.app_db_secret_arn, DatabaseSecret)),
        RoleLogin("support_analytics_job", read_secret(settings.analytics_db_secret_arn, DatabaseSecret)),
    ]

    def conninfo(login: LoginSecret) -> str:
        return verified_conninfo(
            host=settings.db_host,
            port=settings.db_port,
            dbname=settings.db_name,
            login=login,
            application_name=APPLICATION_NAME,
            connect_timeout=settings.db_connect_timeout_seconds,
            root_cert=settings.db_ssl_root_cert,
        )

    def can_log_in(login: RoleLogin) -> bool:
        try:
            with psycopg.connect(conninfo(login.secret)):
                return True
        except psycopg.OperationalError:
            return False

    report = provision(conninfo(master), settings.migrations_dir, logins, can_log_in=can_log_in, log=logger.info)
    logger.info("database provisioned", summary=report.summary())
    definitions = [name for name in report.migrations_applied if name.startswith(f"{DEFINITIONS}/")]
    return Outcome(
        physical_resource_id=physical_id,
        reason=report.summary(),
        data={
            "MigrationsApplied": str(len(report.migrations_applied) - len(definitions)),
            "DefinitionsApplied": str(len(definitions)),
            "Changed": str(report.changed).lower(),
        },
    )
