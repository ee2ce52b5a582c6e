"""The migrate function (functions/migrate) as CloudFormation runs it on a deploy: a custom-resource event in, an
answer PUT to the response URL out, against an Aurora-like PostgreSQL (tests/aurora_like.py: TLS verified with
verify-full, SCRAM passwords, a master user that is not a superuser) and Secrets Manager in moto.

Given/When/Then: given a fresh database owned by the master user, when Create runs, then the schema belongs to
support_owner as locally, the login roles log in with their secrets' passwords and hold exactly the allow-list;
when Update runs again nothing changes; Delete keeps the data; a broken migration answers FAILED with the reason.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from local.database import MIGRATIONS, STATE
from support.config import ConfigurationError, get_settings
from support.db import get_connection, reset_connection, tenant_transaction
from support.observability import logger
from tests.aurora_like import MASTER_PASSWORD, MASTER_USER, AuroraLike, aurora_like
from tests.cloudformation_endpoint import ResponseEndpoint, response_endpoint
from tests.integration.test_privileges import _allowed, _effective_privileges

REGION = "us-east-1"
APP_PASSWORD = "app-secret-password-1"
ANALYTICS_PASSWORD = "analytics-secret-password-1"


@dataclass
class Context:
    """What the Lambda runtime passes: only the remaining time and the log stream are used."""

    remaining_ms: int = 60_000
    log_stream_name: str = "2026/12/01/[$LATEST]0123456789abcdef"
    function_name: str = "MigrateFunction"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:MigrateFunction"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture(scope="module")
def server() -> Iterator[AuroraLike]:
    # Under .local/ (as the other embedded servers): the server's own user must reach the folder, and pytest's
    # temporary folders are private to root.
    folder = STATE / "scratch" / f"aurora-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    try:
        with aurora_like(folder) as found:
            yield found
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def endpoint() -> Iterator[ResponseEndpoint]:
    with response_endpoint() as found:
        yield found


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        parameters.clear_caches()
        client = boto3.client("secretsmanager", region_name=REGION)

        def secret(name: str, value: dict[str, Any]) -> str:
            return str(client.create_secret(Name=name, SecretString=json.dumps(value))["ARN"])

        yield {
            "master": secret("rds!cluster-master", {"username": MASTER_USER, "password": MASTER_PASSWORD}),
            "app": secret("support-app-db", _rds_secret("support_app", APP_PASSWORD)),
            "analytics": secret("support-analytics-db", _rds_secret("support_analytics_job", ANALYTICS_PASSWORD)),
            "client": client,  # type: ignore[dict-item]
        }
        parameters.clear_caches()


def _rds_secret(username: str, password: str) -> dict[str, Any]:
    # host/port/dbname as the stack's generated secrets hold them; the migrate function connects to DB_HOST.
    return {
        "username": username,
        "password": password,
        "engine": "postgres",
        "host": "127.0.0.1",
        "port": 5432,
        "dbname": "support",
    }


@pytest.fixture
def deploy(
    server: AuroraLike, endpoint: ResponseEndpoint, secrets: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Set the migrate function's environment for a fresh database of this test's own; returns an invoker."""
    dbname = f"support_deploy_{uuid.uuid4().hex[:8]}"
    server.create_database(dbname)
    for name, value in {
        "MASTER_SECRET_ARN": secrets["master"],
        "APP_DB_SECRET_ARN": secrets["app"],
        "ANALYTICS_DB_SECRET_ARN": secrets["analytics"],
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(server.port),
        "DB_NAME": dbname,
        "DB_SSL_ROOT_CERT": str(server.ca_file),
    }.items():
        monkeypatch.setenv(name, value)

    from functions.migrate import app

    def invoke(request_type: str, physical_id: str | None = None, context: Context | None = None) -> dict[str, Any]:
        request_id = str(uuid.uuid4())
        event: dict[str, Any] = {
            "RequestType": request_type,
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:MigrateFunction",
            "ResponseURL": endpoint.url(request_id),
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/support/abc",
            "RequestId": request_id,
            "LogicalResourceId": "Migrate",
            "ResourceType": "Custom::Migrate",
            "ResourceProperties": {"ServiceToken": "arn:aws:lambda:...", "MigrationsVersion": "x"},
        }
        if physical_id is not None:
            event["PhysicalResourceId"] = physical_id
        before = len(endpoint.puts)
        app.lambda_handler(event, context or Context())  # type: ignore[arg-type]
        assert len(endpoint.puts) == before + 1, "exactly one answer per request"
        put = endpoint.puts[-1]
        assert put.path.startswith(f"/cfn-responses/{request_id}")
        assert put.content_type == ""  # the pre-signed URL is signed without one
        assert put.body["RequestId"] == request_id
        assert put.body["StackId"] == event["StackId"]
        assert put.body["LogicalResourceId"] == "Migrate"
        assert put.body["PhysicalResourceId"]
        return put.body

    invoke.dbname = dbname  # type: ignore[attr-defined]
    return invoke


def _state(server: AuroraLike, dbname: str) -> dict[str, Any]:
    """Everything a run could change: migrations, roles and their attributes, memberships, owners, ACLs."""
    with psycopg.connect(server.superuser_in(dbname)) as conn:
        return {
            "migrations": conn.execute(
                "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"
            ).fetchall(),
            "roles": conn.execute(
                "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolbypassrls,"
                " rolconfig, (SELECT rolpassword FROM pg_authid a WHERE a.oid = r.oid) AS verifier"
                " FROM pg_roles r WHERE rolname NOT LIKE 'pg\\_%' ORDER BY rolname"
            ).fetchall(),
            "members": conn.execute(
                "SELECT roleid::regrole::text, member::regrole::text, grantor::regrole::text, admin_option,"
                " inherit_option, set_option FROM pg_auth_members ORDER BY 1, 2, 3"
            ).fetchall(),
            "database": conn.execute(
                "SELECT pg_get_userbyid(datdba), datacl::text FROM pg_database WHERE datname = current_database()"
            ).fetchall(),
            "objects": conn.execute(
                "SELECT relname, pg_get_userbyid(relowner), relacl::text FROM pg_class"
                " WHERE relnamespace = 'public'::regnamespace ORDER BY relname"
            ).fetchall(),
            "functions": conn.execute(
                "SELECT proname, pg_get_userbyid(proowner), proacl::text FROM pg_proc"
                " WHERE pronamespace = 'public'::regnamespace ORDER BY proname, oid"
            ).fetchall(),
        }


def test_create_provisions_the_database_as_the_owner_and_update_changes_nothing(
    deploy: Any, server: AuroraLike
) -> None:
    # Given a database the master user owns; when CloudFormation creates the resource
    created = deploy("Create")

    assert created["Status"] == "SUCCESS", created["Reason"]
    assert "applied 0001_schema.sql" in created["Reason"]
    assert created["Data"]["MigrationsApplied"] == str(len(list(MIGRATIONS.glob("*.sql"))))
    assert created["Data"]["DefinitionsApplied"] == str(len(list((MIGRATIONS / "definitions").glob("*.sql"))))
    state = _state(server, deploy.dbname)
    assert [row[1] for row in state["migrations"]] == sorted(p.name for p in MIGRATIONS.glob("*.sql"))
    assert state["database"][0][0] == "support_owner"
    owners = {owner for _, owner, _ in state["objects"]}
    assert owners == {"support_owner"}  # every table, view, index and sequence, as locally
    function_owners = {(name, owner) for name, owner, _ in state["functions"]}
    # as sql/0012, sql/definitions/contacts.sql, routing.sql and retention.sql hand them over
    listers = {
        "analytics_tenants",
        "contacts_backfill_tenants",
        "routing_tenants_waiting",
        "retention_tenants_due",
        "attachments_tenants_unclaimed",
    }
    assert {(name, "support_analytics_lister") for name in listers} <= function_owners
    assert {owner for name, owner in function_owners if name not in listers} == {"support_owner"}
    roles = {row[0]: row for row in state["roles"]}
    owner_role = roles["support_owner"]
    assert owner_role[1:7] == (False, True, True, False, False, False)  # NOLOGIN, no CREATEDB left behind
    assert not roles[MASTER_USER][1]  # the master was never a superuser

    # When the stack is updated (every deploy runs the function again), then nothing changes at all
    updated = deploy("Update", created["PhysicalResourceId"])

    assert updated["Status"] == "SUCCESS", updated["Reason"]
    assert updated["Reason"] == "nothing to change"
    assert updated["Data"] == {"MigrationsApplied": "0", "DefinitionsApplied": "0", "Changed": "false"}
    assert updated["PhysicalResourceId"] == created["PhysicalResourceId"]
    assert _state(server, deploy.dbname) == state


@pytest.mark.parametrize(
    ("role", "password"), [("support_app", APP_PASSWORD), ("support_analytics_job", ANALYTICS_PASSWORD)]
)
def test_each_login_role_logs_in_with_its_secret_and_holds_exactly_the_allow_list(
    deploy: Any, server: AuroraLike, role: str, password: str
) -> None:
    assert deploy("Create")["Status"] == "SUCCESS"

    with psycopg.connect(server.login_url(role, password, deploy.dbname)) as conn:
        row = conn.execute("SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row == (role, False)  # the TLS ends at the test's front; the login itself is the role's own
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(server.login_url(role, "not-" + password, deploy.dbname))
    assert _effective_privileges(server.superuser_in(deploy.dbname), role) == _allowed(role)


@contextmanager
def _log_messages() -> Iterator[list[str]]:
    """The messages the function logs meanwhile (read from the logger's own records, whatever its stream)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(str(record.msg))

    handler = Collect()
    target = logging.getLogger(logger.name)
    target.addHandler(handler)
    try:
        yield messages
    finally:
        target.removeHandler(handler)


@pytest.mark.parametrize(
    ("role", "password"), [("support_app", APP_PASSWORD), ("support_analytics_job", ANALYTICS_PASSWORD)]
)
def test_the_login_roles_reach_no_other_database_and_what_the_master_may_not_revoke_is_logged(
    deploy: Any, server: AuroraLike, role: str, password: str
) -> None:
    # Given a cluster whose master owns postgres and template1 (as on RDS), when the stack is created
    with _log_messages() as messages:
        assert deploy("Create")["Status"] == "SUCCESS"

    # Then the login roles cannot connect to either, over TLS with their own passwords
    for other in ("postgres", "template1"):
        with pytest.raises(psycopg.OperationalError, match=f'permission denied for database "{other}"'):
            psycopg.connect(server.login_url(role, password, other)).close()
    # and the large-object functions, which belong to the superuser (rdsadmin on Aurora), stay callable: the master
    # may not revoke them, says so in the log, and the deploy still succeeds
    with psycopg.connect(server.login_url(role, password, deploy.dbname)) as conn:
        assert conn.execute("SELECT has_function_privilege('lo_create(oid)', 'EXECUTE')").fetchone() == (True,)
    assert "PUBLIC keeps EXECUTE on lo_create(oid): it belongs to postgres, which this role may not act for" in messages


def test_a_changed_secret_password_is_applied_on_the_next_deploy(
    deploy: Any, server: AuroraLike, secrets: dict[str, Any]
) -> None:
    created = deploy("Create")
    assert created["Status"] == "SUCCESS"
    rotated = "rotated-app-password-2"
    secrets["client"].put_secret_value(  # type: ignore[attr-defined]
        SecretId=secrets["app"], SecretString=json.dumps(_rds_secret("support_app", rotated))
    )
    parameters.clear_caches()

    updated = deploy("Update", created["PhysicalResourceId"])

    assert updated["Status"] == "SUCCESS", updated["Reason"]
    assert updated["Reason"] == "set the password of support_app"
    psycopg.connect(server.login_url("support_app", rotated, deploy.dbname)).close()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(server.login_url("support_app", APP_PASSWORD, deploy.dbname))


def test_delete_answers_success_and_keeps_every_row(deploy: Any, server: AuroraLike) -> None:
    created = deploy("Create")
    assert created["Status"] == "SUCCESS"
    before = _state(server, deploy.dbname)

    deleted = deploy("Delete", created["PhysicalResourceId"])

    assert deleted["Status"] == "SUCCESS"
    assert deleted["PhysicalResourceId"] == created["PhysicalResourceId"]
    assert _state(server, deploy.dbname) == before


def test_a_broken_migration_answers_failed_with_the_reason_and_changes_nothing(
    deploy: Any, server: AuroraLike, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a deployed database, and a next release whose new migration and new definition come before a broken one
    assert deploy("Create")["Status"] == "SUCCESS"
    before = _state(server, deploy.dbname)
    broken = tmp_path / "sql"
    shutil.copytree(MIGRATIONS, broken)
    (broken / "0098_fine.sql").write_text("CREATE TABLE public.fine_before_the_broken_one (id int);\n")
    (broken / "0099_broken.sql").write_text("ALTER TABLE support_tickets ADD COLUMN nope no_such_type;\n")
    monkeypatch.setenv("MIGRATIONS_DIR", str(broken))

    # When CloudFormation updates the resource
    answer = deploy("Update")

    # Then it fails naming the file and the reason, and the run left nothing behind: one transaction
    assert answer["Status"] == "FAILED"
    assert "0099_broken.sql failed" in answer["Reason"]
    assert 'type "no_such_type" does not exist' in answer["Reason"]
    assert _state(server, deploy.dbname) == before
    with psycopg.connect(server.superuser_in(deploy.dbname)) as conn:
        assert conn.execute("SELECT to_regclass('public.fine_before_the_broken_one')").fetchone() == (None,)


def test_a_secret_without_a_password_answers_failed_naming_the_field(
    deploy: Any, secrets: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = secrets["client"].create_secret(  # type: ignore[attr-defined]
        Name="half-a-secret", SecretString=json.dumps({"username": "support_app", "host": "h", "dbname": "d"})
    )["ARN"]
    monkeypatch.setenv("APP_DB_SECRET_ARN", arn)

    answer = deploy("Create")

    assert answer["Status"] == "FAILED"
    assert "ConfigurationError" in answer["Reason"]
    assert "password: Field required" in answer["Reason"]


def test_a_missing_environment_variable_answers_failed(deploy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DB_NAME")

    answer = deploy("Create")

    assert answer["Status"] == "FAILED"
    assert "DB_NAME" in answer["Reason"]


def test_the_build_packages_the_migrations_beside_the_handler() -> None:
    from functions.migrate import app

    assert sorted(p.name for p in app.MIGRATIONS.glob("*.sql")) == sorted(p.name for p in MIGRATIONS.glob("*.sql"))


# --- The functions' own connection, from their secret (support.db.connection) -----------------------------------


@pytest.fixture
def from_secret(deploy: Any, server: AuroraLike, secrets: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The database provisioned, and the API functions' environment as in AWS: DB_SECRET_ARN, no DATABASE_URL."""
    assert deploy("Create")["Status"] == "SUCCESS"
    secret = {**_rds_secret("support_app", APP_PASSWORD), "port": server.port, "dbname": deploy.dbname}
    secrets["client"].put_secret_value(SecretId=secrets["app"], SecretString=json.dumps(secret))  # type: ignore[attr-defined]
    parameters.clear_caches()
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("DB_SECRET_ARN", secrets["app"])
    monkeypatch.setenv("DB_SSL_ROOT_CERT", str(server.ca_file))

    def start(**env: str) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        reset_connection()

    yield start
    get_settings.cache_clear()  # the session's handlers go back to the `db` fixture's DATABASE_URL
    reset_connection()


def test_the_functions_connect_from_their_secret_over_verified_tls(from_secret: Any, tenant: uuid.UUID) -> None:
    from_secret()

    with tenant_transaction(tenant) as cur:
        cur.execute("SELECT current_user AS who, current_setting('app.tenant_id') AS tenant")
        row = cur.fetchone()
    conn = get_connection()

    assert row == {"who": "support_app", "tenant": str(tenant)}
    assert conn.pgconn.ssl_in_use
    assert conn.info.get_parameters()["sslmode"] == "verify-full"
    assert "options" not in conn.info.get_parameters()  # RDS Proxy refuses startup options


def test_the_shipped_bundle_refuses_a_server_it_did_not_sign(from_secret: Any, tenant: uuid.UUID) -> None:
    # The test server's certificate comes from the test's own CA, not from an Amazon one: verify-full must refuse.
    from_secret()
    os.environ.pop("DB_SSL_ROOT_CERT")
    get_settings.cache_clear()

    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"), tenant_transaction(tenant):
        pass


def test_a_slow_statement_is_cancelled_and_the_timeout_stays_in_its_transaction(
    from_secret: Any, tenant: uuid.UUID
) -> None:
    from_secret(DB_STATEMENT_TIMEOUT_MS="300")

    with pytest.raises(psycopg.errors.QueryCanceled), tenant_transaction(tenant) as cur:
        cur.execute("SELECT pg_sleep(2)")
    with tenant_transaction(tenant) as cur:
        cur.execute("SELECT current_setting('statement_timeout') AS timeout")
        assert cur.fetchone() == {"timeout": "300ms"}
    # Outside a transaction of ours the session keeps the server's default: nothing for the proxy to pin on.
    assert get_connection().execute("SHOW statement_timeout").fetchone() == {"statement_timeout": "0"}


@pytest.mark.parametrize("missing", ["host", "dbname", "username", "password"])
def test_a_secret_missing_a_field_is_a_configuration_error(
    from_secret: Any, secrets: dict[str, Any], tenant: uuid.UUID, missing: str
) -> None:
    partial = {k: v for k, v in _rds_secret("support_app", APP_PASSWORD).items() if k != missing}
    secrets["client"].put_secret_value(SecretId=secrets["app"], SecretString=json.dumps(partial))  # type: ignore[attr-defined]
    parameters.clear_caches()
    from_secret()

    with pytest.raises(ConfigurationError, match=rf"incomplete: {missing}: Field required") as raised:
        get_connection()
    assert APP_PASSWORD not in str(raised.value)
