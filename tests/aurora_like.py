"""A PostgreSQL that behaves like Aurora where the migrate function and the secrets path care: TLS only, with a
certificate from a CA of the test's own (so `sslmode=verify-full` is really checked), SCRAM passwords for every
role but the bootstrap superuser, and a master user that is not a superuser (CREATEROLE CREATEDB, as RDS gives
its master user) owning the application's database, `postgres` and `template1`.

The embedded PostgreSQL is built without SSL, so TLS is terminated in front of it by `TlsFront`, which speaks
PostgreSQL's own start of a TLS session (SSLRequest, answered `S`, then the handshake) and relays the decrypted
bytes to the server: libpq on the client side does exactly what it does against Aurora, and a client that does
not ask for TLS is turned away (Aurora's rds.force_ssl).

One embedded server per test module (a few seconds to start): roles are cluster-wide, and the session's shared
server must keep its trust authentication.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from psycopg import sql
from psycopg.conninfo import make_conninfo

from local.database import EmbeddedPostgres

MASTER_USER = "aurora_master"
MASTER_PASSWORD = "master-password-0f3c"


@dataclass(frozen=True)
class AuroraLike:
    port: int
    ca_file: Path  # the CA that signed the server's certificate (for 127.0.0.1)
    superuser_url: str  # the bootstrap superuser, trusted: set-up and inspection only

    def create_database(self, name: str) -> None:
        """A database owned by the master user, as RDS creates the cluster's DatabaseName."""
        with psycopg.connect(self.superuser_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(MASTER_USER))
            )

    def superuser_in(self, dbname: str) -> str:
        return make_conninfo(self.superuser_url, dbname=dbname)

    def login_url(self, user: str, password: str, dbname: str) -> str:
        return make_conninfo(
            host="127.0.0.1",
            port=self.port,
            user=user,
            password=password,
            dbname=dbname,
            sslmode="verify-full",
            sslrootcert=str(self.ca_file),
        )


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Aurora Root CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.crt", folder / "server.crt", folder / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104


class TlsFront:
    """A TLS listener on 127.0.0.1 in front of a plain PostgreSQL port, run on its own event loop thread."""

    def __init__(self, backend_port: int, cert_file: Path, key_file: Path) -> None:
        self._backend_port = backend_port
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert_file, key_file)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    def start(self) -> None:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        ).result(10)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length, code = struct.unpack("!ii", await reader.readexactly(8))
                if length == 8 and code == _GSSENC_REQUEST:
                    writer.write(b"N")  # no GSSAPI encryption: the client asks for TLS next
                    await writer.drain()
                    continue
                if length == 8 and code == _SSL_REQUEST:
                    writer.write(b"S")
                    await writer.drain()
                    await writer.start_tls(self._context)
                    break
                writer.close()  # a startup message in the clear: refused, as with rds.force_ssl
                return
            backend_reader, backend_writer = await asyncio.open_connection("127.0.0.1", self._backend_port)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            writer.close()
            return

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (OSError, ssl.SSLError):
                pass
            finally:
                # abort, not close: close() on the TLS side runs a TLS shutdown that spins on a peer already gone
                sink.transport.abort()

        await asyncio.gather(pipe(reader, backend_writer), pipe(backend_reader, writer))


@contextmanager
def aurora_like(folder: Path) -> Iterator[AuroraLike]:
    data_dir = folder / "data"
    server = EmbeddedPostgres(data_dir)
    server.start()
    try:
        ca_file, cert_file, key_file = _certificates(folder)
        (data_dir / "pg_hba.conf").write_text(
            "host all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEROLE CREATEDB NOSUPERUSER PASSWORD {}").format(
                    sql.Identifier(MASTER_USER), sql.Literal(MASTER_PASSWORD)
                )
            )
            # As on RDS and Aurora: the master owns `postgres` and `template1` (rdsadmin, the superuser there, keeps
            # template0 and pg_catalog's functions, as the bootstrap superuser does here).
            for name in ("postgres", "template1"):
                conn.execute(
                    sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), sql.Identifier(MASTER_USER))
                )
        front = TlsFront(server.port, cert_file, key_file)
        front.start()
        try:
            yield AuroraLike(port=front.port, ca_file=ca_file, superuser_url=server.url)
        finally:
            front.stop()
    finally:
        server.stop()
