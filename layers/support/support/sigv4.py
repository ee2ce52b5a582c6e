"""AWS Signature Version 4 for the few AWS calls the functions make without a boto3 client (support.realtime's
posts to WebSocket connections, support.invocations' asynchronous Lambda invocations).

Each signature is exactly the one botocore's `SigV4Auth` computes for the same request (tests/integration/
test_fan_out.py and test_broadcasts.py recompute them with it), but the signing key derived from the secret key,
the day, the region and the service (four HMACs) is kept for the day instead of being derived for every request,
and nothing of botocore's request machinery runs: about 0.28 ms of CPU per request against 0.6 to 1 ms for a
boto3 client's call (bench.post_cost, bench/RESULTS.md).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
DEFAULT_PORTS = {"http": 80, "https": 443}


def host_header(scheme: str, host: str, port: int | None) -> str:
    """The Host header as botocore signs it: lower case, without the scheme's default port."""
    host = host.lower()
    return host if port in (None, DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"


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
