"""What `sam build` makes is what is tested: the arm64 build's compiled libraries are all aarch64, and the x86_64
build's handlers, imported from the build folder alone (tests/built/run_built_handlers.py), answer the sample
events against the real PostgreSQL.

The builds are brought up to date first (`make build build-x86_64`, about a minute), except under `make test`,
which has just made both and says so with SUPPORT_BUILDS_FRESH=1.
"""

from __future__ import annotations

import filecmp
import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.database import MIGRATIONS, DatabaseUrls
from local.layer_size import TARGET_BYTES, tree_size
from tests.integration.test_sample_events import JOURNEY, seed_event_rows

REPO = Path(__file__).resolve().parents[2]
ARM64_BUILD = REPO / ".aws-sam" / "build"
X86_64_BUILD = REPO / ".aws-sam" / "build-x86_64"
RUNNER = Path(__file__).with_name("run_built_handlers.py")
EM_X86_64, EM_AARCH64 = 62, 183


@pytest.fixture(scope="session")
def builds() -> Iterator[None]:
    if os.environ.get("SUPPORT_BUILDS_FRESH") == "1":
        yield
        return
    done = subprocess.run(
        ["make", "-s", "build", "build-x86_64"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    yield


def _elf_machine(path: Path) -> int | None:
    with path.open("rb") as f:
        header = f.read(20)
    if header[:4] != b"\x7fELF":
        return None
    assert header[4] == 2, f"{path}: not a 64-bit ELF"
    endian = "<" if header[5] == 1 else ">"
    return int(struct.unpack(endian + "H", header[18:20])[0])


def _compiled_libraries(folder: Path) -> dict[Path, int]:
    found = {}
    for path in folder.rglob("*"):
        if path.is_file() and (path.suffix == ".so" or ".so." in path.name):
            machine = _elf_machine(path)
            assert machine is not None, f"{path}: named like a shared library but not an ELF"
            found[path.relative_to(folder)] = machine
    return found


def test_every_compiled_library_of_the_arm64_layer_is_aarch64(builds: None) -> None:
    libraries = _compiled_libraries(ARM64_BUILD / "SupportLayer")
    names = {path.parts[1] for path in libraries}
    # the wheels with native code: psycopg's libpq, pydantic's core, cryptography and cffi
    assert {
        "psycopg_binary",
        "pydantic_core",
        "cryptography",
        "_cffi_backend.cpython-313-aarch64-linux-gnu.so",
    } <= names
    wrong = {str(path): machine for path, machine in libraries.items() if machine != EM_AARCH64}
    assert wrong == {}


def test_the_x86_64_build_is_x86_64_and_the_functions_carry_no_compiled_code(builds: None) -> None:
    machines = set(_compiled_libraries(X86_64_BUILD / "SupportLayer").values())
    assert machines == {EM_X86_64}  # the ELF check tells the two apart
    for build in (ARM64_BUILD, X86_64_BUILD):
        for function in build.iterdir():
            if function.is_dir() and function.name != "SupportLayer":
                assert _compiled_libraries(function) == {}, function


def test_the_built_layer_is_within_its_size_target(builds: None) -> None:
    assert tree_size(ARM64_BUILD / "SupportLayer") <= TARGET_BYTES


@pytest.mark.parametrize("build", [ARM64_BUILD, X86_64_BUILD], ids=["arm64", "x86_64"])
def test_the_built_migrate_function_carries_every_migration_and_definition(builds: None, build: Path) -> None:
    packaged = build / "MigrateFunction" / "sql"
    assert packaged.is_dir() and not packaged.is_symlink()
    names = sorted(p.relative_to(MIGRATIONS).as_posix() for p in MIGRATIONS.glob("**/*.sql"))
    assert "definitions/row_level_security.sql" in names
    assert sorted(p.relative_to(packaged).as_posix() for p in packaged.glob("**/*.sql")) == names
    _, mismatch, errors = filecmp.cmpfiles(MIGRATIONS, packaged, names, shallow=False)
    assert (mismatch, errors) == ([], [])


def _run_built(function_id: str, events: list[Path], env: dict[str, str]) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(RUNNER), str(X86_64_BUILD), function_id, *map(str, events)],
        cwd="/",  # nothing of the repository on the path, not even by accident
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"function"')]


def _lambda_env(**extra: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TZ")
    return {
        **{name: os.environ[name] for name in keep if name in os.environ},
        "POWERTOOLS_SERVICE_NAME": "support",
        "POWERTOOLS_METRICS_NAMESPACE": "SupportDesk",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "AWS_DEFAULT_REGION": "us-east-1",
        # as Lambda gives them: the role's temporary credentials (the original email's link is presigned with
        # them, locally, no call made) and the template's bucket of inbound mail
        "AWS_ACCESS_KEY_ID": "ASIATESTBUILT",
        "AWS_SECRET_ACCESS_KEY": "test-built-secret",
        "AWS_SESSION_TOKEN": "test-built-session",
        "INBOUND_EMAIL_BUCKET": "support-inbound-test",
        **extra,
    }


# What the Lambda Python runtime offers beside the function and its layers (boto3 and what it imports), and nothing
# else, so that a package the layer lacks still fails here.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")


def _runtime_packages(into: Path) -> Path:
    import boto3

    site = Path(boto3.__file__).parent.parent
    into.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_PACKAGES:
        if (site / name).exists() and not (into / name).exists():
            (into / name).symlink_to(site / name)
    return into


def test_the_built_handlers_answer_the_sample_events(builds: None, db: DatabaseUrls, tmp_path: Path) -> None:
    seed_event_rows(db)  # the rows the ticket events refer to
    env = _lambda_env(
        DATABASE_URL=db.app,
        VISITOR_TOKEN_SECRET="test-visitor-key-" + "x" * 32,
        LAMBDA_RUNTIME_PACKAGES=str(_runtime_packages(tmp_path / "runtime")),
    )
    events = REPO / "events"

    tickets = _run_built("TicketsFunction", [events / "tickets" / f"{name}.json" for name, _ in JOURNEY], env)
    dashboard = _run_built("DashboardFunction", [events / "dashboard" / "get.json"], env)

    assert [(Path(r["event"]).stem, r["statusCode"]) for r in tickets] == JOURNEY
    assert all(json.loads(r["body"])["success"] for r in tickets + dashboard)
    assert json.loads(dashboard[0]["body"])["data"]["totalTickets"] >= 2
    for result in tickets + dashboard:
        for module, path in result["modules"].items():
            assert path is not None and path.startswith(str(X86_64_BUILD)), (module, path)


def test_a_connection_from_a_secret_in_the_built_layer_verifies_against_the_bundle_it_ships(builds: None) -> None:
    probe = (
        "import sys; sys.path[:0] = [sys.argv[1]];"
        "from support.db.secrets import LoginSecret, verified_conninfo;"
        "from psycopg.conninfo import conninfo_to_dict;"
        "c = conninfo_to_dict(verified_conninfo(host='h', port=5432, dbname='d', application_name='a',"
        " connect_timeout=5, login=LoginSecret(username='u', password='p')));"
        "print(c['sslmode'], c['sslrootcert'])"
    )
    for build in (ARM64_BUILD, X86_64_BUILD):
        layer = build / "SupportLayer" / "python"
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", probe, str(layer)], capture_output=True, text=True, check=False, cwd="/"
        )
        if build is ARM64_BUILD:  # aarch64 libpq cannot load here: the source of the conninfo is read instead
            assert (layer / "support" / "certs" / "aws-database-roots.pem").is_file()
            assert filecmp.cmp(layer / "support" / "db" / "secrets.py", REPO / "layers/support/support/db/secrets.py")
            continue
        assert done.returncode == 0, done.stderr
        sslmode, root = done.stdout.split()
        assert sslmode == "verify-full"
        assert root == str(layer / "support" / "certs" / "aws-database-roots.pem")
        assert Path(root).is_file()
