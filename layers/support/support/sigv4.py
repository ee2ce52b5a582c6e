"""AWS Signature Version 4 for the few AWS calls the functions make without a boto3 client (support.realtime's
posts to WebSocket connections, support.invocations' asynchronous Lambda invocations), and what both clients set
up alike: the region, credentials and CA bundle boto3 would find (`aws_environment`), and the endpoint's connection
pool and Host header (`open_endpoint`).

Each signature is exactly the one botocore's `SigV4Auth` computes for the same request (tests/integration/
test_fan_out.py and test_broadcasts.py recompute them with it), but the signing key derived from the secret key,
the day, the region and the service (four HMACs) is kept for the day instead of being derived for every request,
and nothing of botocore's request machinery runs: about 0.28 ms of CPU per request against 0.6 to 1 ms for a
boto3 client's call (bench.post_cost, bench/RESULTS.md).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import http.client
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from support.config import ConfigurationError

ALGORITHM = "AWS4-HMAC-SHA256"
DEFAULT_PORTS = {"http": 80, "https": 443}


def host_header(scheme: str, host: str, port: int | None) -> str:
    """The Host header as botocore signs it: lower case, without the scheme's default port."""
    host = host.lower()
    return host if port in (None, DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"


@dataclass(frozen=True)
class AwsEnvironment:
    """What a boto3 client would find: the region, the credentials (botocore's resolver: the function's environment
    in Lambda; frozen per request by the signer) and the CA bundle."""

    region: str
    credentials: Any
    ca_bundle: str | None


def aws_environment(purpose: str) -> AwsEnvironment:
    """The execution environment's region, credentials and CA bundle, read with botocore (imported only now: a
    function that never calls AWS never pays its import); ConfigurationError without a region or credentials."""
    import botocore.session
    from botocore.httpsession import get_cert_path

    session = botocore.session.get_session()
    region = session.get_config_variable("region")
    credentials = session.get_credentials()
    if not region or credentials is None:
        raise ConfigurationError(f"{purpose} needs an AWS region and credentials")
    return AwsEnvironment(region, credentials, session.get_config_variable("ca_bundle") or get_cert_path(True))


@dataclass(frozen=True)
class Endpoint:
    """An endpoint as a signed client sends to it: one urllib3 connection pool to its origin (no retries of its
    own, no redirects followed), the Host header as botocore signs it, and the path its URL carries (a stage), which
    every request's path starts with. `connection()` opens a connection of the same origin and timeout, for a client
    that keeps its own."""

    http: Any  # urllib3.HTTPConnectionPool
    host: str
    base_path: str
    scheme: str = "https"
    hostname: str = ""
    port: int | None = None
    timeout_seconds: float = 3.0
    ca_bundle: str | None = None

    def connection(self) -> http.client.HTTPConnection:
        """A new connection of the standard library's HTTP/1.1 client (not yet connected: the first request
        connects it; urllib3 builds on the same class), for a client that keeps its own kept-alive connections to
        have many requests in flight from one thread (support.realtime). Its socket's timeout bounds the connect and
        each read. TLS is verified, certificate and host name, against `ca_bundle` (else the system's roots)."""
        if self.scheme == "http":
            return http.client.HTTPConnection(self.hostname, self.port, timeout=self.timeout_seconds)
        return http.client.HTTPSConnection(
            self.hostname, self.port, timeout=self.timeout_seconds, context=_ssl_context(self.ca_bundle)
        )


@functools.cache
def _ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Certificates and host names verified (the default context), against the bundle botocore would use."""
    return ssl.create_default_context(cafile=ca_bundle)


def open_endpoint(
    url: str, *, name: str, connections: int, timeout_seconds: float, ca_bundle: str | None = None
) -> Endpoint:
    """The Endpoint of `url` (an http(s) URL, else ConfigurationError naming it as `name`), with at most
    `connections` pooled connections, each request's connect and read timed out after `timeout_seconds`."""
    import urllib3

    parsed = urllib3.util.parse_url(url.rstrip("/"))
    if parsed.scheme not in DEFAULT_PORTS or not parsed.host:
        raise ConfigurationError(f"{name} is not an http(s) URL: {url!r}")
    manager = urllib3.PoolManager(
        num_pools=1,
        maxsize=connections,
        timeout=urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds),
        retries=False,
        ca_certs=ca_bundle,
    )
    http = manager.connection_from_url(f"{parsed.scheme}://{parsed.netloc}")
    return Endpoint(
        http,
        host_header(parsed.scheme, parsed.host, parsed.port),
        parsed.path or "",
        scheme=parsed.scheme,
        hostname=parsed.host,
        port=parsed.port or DEFAULT_PORTS[parsed.scheme],
        timeout_seconds=timeout_seconds,
        ca_bundle=ca_bundle,
    )


class SigV4Signer:
    """Signs requests to one service in one region with botocore's credentials (a refreshable one renews itself in
    get_frozen_credentials). Safe to share between threads."""

    def __init__(self, service: str, region: str, credentials: Any) -> None:
        self.service = service
        self.region = region
        self._credentials = credentials
        self._signing_key: tuple[str, str, bytes] = ("", "", b"")  # (secret key, day, key derived from them)

    def headers(
        self, method: str, host: str, path: str, body: bytes, signed: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Host, X-Amz-Date, X-Amz-Security-Token (temporary credentials), the `signed` headers given (names in
        lower case) and Authorization, for a request without a query string."""
        from botocore.utils import normalize_url_path

        credentials = self._credentials.get_frozen_credentials()
        amz_date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        headers = {"host": host, "x-amz-date": amz_date, **(signed or {})}
        if credentials.token:
            headers["x-amz-security-token"] = credentials.token
        names = sorted(headers)
        canonical_headers = "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in names)
        signed_headers = ";".join(names)
        canonical_uri = quote(normalize_url_path(path), safe="/~")  # botocore encodes the path twice (not S3)
        canonical_request = "\n".join(
            (method, canonical_uri, "", canonical_headers, signed_headers, hashlib.sha256(body).hexdigest())
        )
        string_to_sign = "\n".join((ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()))
        signature = hmac.new(self._key(credentials.secret_key, day), string_to_sign.encode(), "sha256").hexdigest()
        headers["authorization"] = (
            f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={signature}"
        )
        return headers

    def _key(self, secret_key: str, day: str) -> bytes:
        """The signing key of the day: four HMACs, derived once a day (or when the credentials change)."""
        known_secret, known_day, key = self._signing_key
        if (known_secret, known_day) != (secret_key, day):
            key = f"AWS4{secret_key}".encode()
            for part in (day, self.region, self.service, "aws4_request"):
                key = hmac.digest(key, part.encode(), "sha256")
            self._signing_key = (secret_key, day, key)  # one tuple: threads see the old one or the new one
        return key
