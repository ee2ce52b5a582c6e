"""What PUBLIC has outside the schema, taken from the runtime roles (support.db.provisioning.revoke_public_defaults,
run by the migrate function in AWS and by local/database.py here): they cannot connect to the cluster's other
databases (`postgres`, where PUBLIC could create temporary objects, and `template1`) nor create large objects, which
no row-level security or allow-list would see. Connected as the roles themselves."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from local.database import DatabaseUrls
from support.db.provisioning import LARGE_OBJECT_CREATORS, OTHER_DATABASES, revoke_public_defaults

CREATE_A_LARGE_OBJECT = ("SELECT lo_create(0)", "SELECT lo_creat(-1)", "SELECT lo_from_bytea(0, 'x'::bytea)")


def _in(url: str, dbname: str) -> str:
    return make_conninfo(**{**conninfo_to_dict(url), "dbname": dbname})  # type: ignore[arg-type]


def _runtime_urls(db: DatabaseUrls) -> dict[str, str]:
    return {"support_app": db.app, "support_analytics_job": db.analytics_job}


@pytest.mark.parametrize("role", ["support_app", "support_analytics_job"])
@pytest.mark.parametrize("dbname", OTHER_DATABASES)
def test_the_runtime_roles_cannot_connect_to_the_other_databases(db: DatabaseUrls, role: str, dbname: str) -> None:
    with pytest.raises(psycopg.OperationalError, match=f'permission denied for database "{dbname}"'):
        psycopg.connect(_in(_runtime_urls(db)[role], dbname)).close()
    # while their own database still lets them in
    with psycopg.connect(_runtime_urls(db)[role]) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (role,)


@pytest.mark.parametrize("role", ["support_app", "support_analytics_job"])
@pytest.mark.parametrize("statement", CREATE_A_LARGE_OBJECT)
def test_the_runtime_roles_cannot_create_large_objects(db: DatabaseUrls, role: str, statement: str) -> None:
    with psycopg.connect(_runtime_urls(db)[role]) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement.encode())


def test_every_large_object_creator_is_covered() -> None:
    assert [s.split("(")[0] for s in LARGE_OBJECT_CREATORS] == [
        s.removeprefix("SELECT ").split("(")[0] for s in CREATE_A_LARGE_OBJECT
    ]


def test_a_second_run_revokes_nothing_and_keeps_nothing(db: DatabaseUrls) -> None:
    with psycopg.connect(db.admin) as conn:
        assert revoke_public_defaults(conn, log=lambda _msg: None) == ([], [])
