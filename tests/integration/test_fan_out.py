"""support.realtime against a management API over real HTTP that throttles, fails, hangs and forgets connections
the way API Gateway's does: throttled and failed posts are retried with backoff within botocore's retry quota, a
gone connection is reported and never retried, a hung one times out, concurrency is bounded, one failing
connection never stops delivery to the others; and every request is the one boto3's `apigatewaymanagementapi`
client would send, signed with SigV4 for `execute-api` (checked against botocore's own signer)."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from local.gateway import running_gateway
from support import realtime
from support.config import get_settings
from support.realtime import Delivery, ManagementApi, event
from tests.management_api import management_api_serving

HELLO = event("message.new", {"message": "hello"})


class ManagementApiStub:
    """`POST /@connections/{id}` by the id's prefix: `throttled-*` 429 twice, then 200; `flaky-*` 500 once, then
    200; `gone-*` 410; `broken-*` 500 always; `large-*` 413; `slow-*` 200 after 0.1 s; `hung-*` no answer for 5 s
    (or until the test ends); else 200. Records each attempt's time, the requests in flight and the client ports."""

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()
        self.attempt_times: defaultdict[str, list[float]] = defaultdict(list)
        self.delivered: dict[str, bytes] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.client_ports: set[int] = set()
        self.release = threading.Event()
        self._lock = threading.Lock()

    async def post(self, request: Request) -> Response:
        connection_id = request.path_params["connection_id"]
        body = await request.body()
        with self._lock:
            self.attempts[connection_id] += 1
            self.attempt_times[connection_id].append(time.monotonic())
            attempt = self.attempts[connection_id]
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            assert request.client is not None
            self.client_ports.add(request.client.port)
        try:
            return await self._answer(connection_id, attempt, body)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _answer(self, connection_id: str, attempt: int, body: bytes) -> Response:
        if connection_id.startswith("gone-"):
            return JSONResponse({"message": None}, status_code=410, headers={"x-amzn-errortype": "GoneException"})
        if connection_id.startswith("broken-") or (connection_id.startswith("flaky-") and attempt == 1):
            return JSONResponse({"message": "Internal server error"}, status_code=500)
        if connection_id.startswith("throttled-") and attempt <= 2:
            return JSONResponse(
                {"message": "Rate exceeded"}, status_code=429, headers={"x-amzn-errortype": "LimitExceededException"}
            )
        if connection_id.startswith("large-"):
            return JSONResponse(
                {"message": "Message too long"},
                status_code=413,
                headers={"x-amzn-errortype": "PayloadTooLargeException"},
            )
        if connection_id.startswith("slow-"):
            await asyncio.sleep(0.1)
        if connection_id.startswith("hung-"):  # answers late: when the test ends, or after 5 s
            deadline = time.monotonic() + 5
            while not self.release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            return Response(status_code=200)
        self.delivered[connection_id] = body
        return Response(status_code=200)


@pytest.fixture
def management_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ManagementApiStub]:
    api = ManagementApiStub()
    with management_api_serving(api.post, monkeypatch):
        try:
            yield api
        finally:
            api.release.set()


@pytest.fixture
def half_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Full jitter draws each delay from [0, cap): fixed at half the cap here, so the delays can be checked."""
    monkeypatch.setattr(realtime, "random", SimpleNamespace(random=lambda: 0.5))


def test_a_gone_connection_is_reported_once_and_never_retried(management_api: ManagementApiStub) -> None:
    gone = realtime.deliver(
        [Delivery("gone-1", HELLO), Delivery("ok-1", HELLO), Delivery("gone-1", event("typing", {"isTyping": True}))]
    )

    assert gone == {"gone-1"}
    assert management_api.attempts["gone-1"] == 2  # one post per event, neither retried
    assert set(management_api.delivered) == {"ok-1"}


def test_throttled_and_failed_posts_are_retried_with_backoff_and_then_delivered(
    management_api: ManagementApiStub, half_jitter: None
) -> None:
    deliveries = [Delivery("throttled-1", HELLO), Delivery("flaky-1", HELLO), Delivery("ok-1", HELLO)]

    gone = realtime.deliver(deliveries)

    assert gone == set()
    assert set(management_api.delivered) == {"throttled-1", "flaky-1", "ok-1"}
    assert management_api.attempts["throttled-1"] == 3  # two 429s, then delivered
    assert management_api.attempts["flaky-1"] == 2  # one 500, then delivered
    # Exponential backoff, half of each cap: a throttle's base is 1 s (0.5 s, then 1 s), a 5xx's is 50 ms.
    first, second, third = management_api.attempt_times["throttled-1"]
    assert 0.45 <= second - first < 0.9
    assert 0.95 <= third - second < 1.5
    first, second = management_api.attempt_times["flaky-1"]
    assert 0.02 <= second - first < 0.4


def test_failures_are_given_up_after_four_attempts_and_never_stop_the_others(
    management_api: ManagementApiStub, half_jitter: None
) -> None:
    deliveries = [Delivery("broken-1", HELLO), Delivery("large-1", HELLO), Delivery("ok-1", HELLO)]

    gone = realtime.deliver(deliveries)

    assert gone == set()  # a failure is no reason to forget a connection
    assert set(management_api.delivered) == {"ok-1"}
    assert management_api.attempts["broken-1"] == realtime.MAX_ATTEMPTS == 4  # retried as transient, given up
    assert management_api.attempts["large-1"] == 1  # a 413 is the request's fault: not retried


def test_retries_stop_when_the_retry_quota_is_spent(management_api: ManagementApiStub) -> None:
    # botocore's standard mode: 500 tokens, 14 per retry after a 5xx, so an endpoint that is down gets at most
    # 35 retries from one execution environment (until successes refill the quota), not 3 per post.
    management_api_down = [Delivery(f"broken-{n}", HELLO) for n in range(30)]

    realtime.deliver(management_api_down)

    assert sum(management_api.attempts.values()) == 30 + 500 // realtime.TRANSIENT_RETRY_COST


def test_a_hung_post_times_out_and_is_retried_as_a_transient_failure(
    management_api: ManagementApiStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(realtime, "POST_TIMEOUT_SECONDS", 0.2)
    realtime.reset()  # the next client reads the timeout
    started = time.monotonic()

    gone = realtime.deliver([Delivery("hung-1", HELLO), Delivery("ok-1", HELLO)])

    elapsed = time.monotonic() - started
    assert gone == set()
    assert set(management_api.delivered) == {"ok-1"}
    assert management_api.attempts["hung-1"] == realtime.MAX_ATTEMPTS
    assert elapsed < 2.5  # four timeouts of 0.2 s and three short backoffs, not a wait for the answer


def test_posts_run_at_most_fan_out_concurrency_at_once_over_as_many_pooled_connections(
    management_api: ManagementApiStub,
) -> None:
    limit = realtime.FAN_OUT_CONCURRENCY
    deliveries = [Delivery(f"slow-{n}", HELLO) for n in range(3 * limit)]

    assert realtime.deliver(deliveries) == set()
    assert realtime.deliver(deliveries) == set()  # a second fan-out reuses the pooled connections

    assert len(management_api.delivered) == 3 * limit
    assert management_api.max_in_flight == limit
    assert len(management_api.client_ports) <= limit


def test_without_an_endpoint_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBSOCKET_MANAGEMENT_ENDPOINT", raising=False)
    get_settings.cache_clear()
    realtime.reset()
    try:
        assert realtime.deliver([Delivery("anyone", event("ping", {}))]) == set()
    finally:
        get_settings.cache_clear()


# --- the requests themselves: what boto3 would send, signed as botocore signs ---------------------------------------


@dataclass
class Received:
    method: str
    raw_path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    requests: list[Received] = field(default_factory=list)

    async def record(self, request: Request) -> Response:
        raw_path = request.scope["raw_path"].decode()
        self.requests.append(Received(request.method, raw_path, dict(request.headers), await request.body()))
        if request.path_params["connection_id"].startswith("gone-"):
            return JSONResponse({"message": None}, status_code=410, headers={"x-amzn-errortype": "GoneException"})
        return Response(status_code=204 if request.method == "DELETE" else 200)


def _authorization(received: Received) -> dict[str, str]:
    algorithm, _, fields = received.headers["authorization"].partition(" ")
    assert algorithm == "AWS4-HMAC-SHA256"
    return dict(part.strip().split("=", 1) for part in fields.split(","))


def _expected_signature(received: Received, credentials: Credentials, region: str) -> str:
    """botocore's SigV4Auth over the request as it arrived, at the time it says it was signed."""
    signed = _authorization(received)["SignedHeaders"].split(";")
    request = AWSRequest(
        method=received.method,
        url=f"http://{received.headers['host']}{received.raw_path}",
        data=received.body,
        headers={name: received.headers[name] for name in signed if name != "host"},
    )
    request.context["timestamp"] = received.headers["x-amz-date"]
    signer = SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region)
    return signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)


CONNECTION_ID = "L0SM9cOFvHcCIhw=+/x"  # API Gateway's ids are base64: '=', '+' and '/' are percent-encoded


def test_each_request_is_the_one_boto3_sends_with_a_valid_sigv4_signature_for_execute_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given temporary credentials and a region in the environment (as Lambda gives them) and a staged endpoint
    recorder = Recorder()
    credentials = Credentials("local", "local", "session-token")
    region = "eu-west-1"
    with management_api_serving(
        recorder.record,
        monkeypatch,
        delete=recorder.record,
        stage="/prod",
        region=region,
        session_token="session-token",
    ) as endpoint:
        # When the fan-out posts and closes, and boto3's own client does the same
        assert realtime.deliver([Delivery(CONNECTION_ID, HELLO)]) == set()
        realtime.disconnect([CONNECTION_ID, "gone-1"])
        ours = list(recorder.requests)
        recorder.requests.clear()
        # (its credentials given, not resolved: boto3's default session keeps what an earlier test resolved)
        boto = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=credentials.access_key,
            aws_secret_access_key=credentials.secret_key,
            aws_session_token=credentials.token,
        )
        boto.post_to_connection(ConnectionId=CONNECTION_ID, Data=Delivery(CONNECTION_ID, HELLO).payload())
        boto.delete_connection(ConnectionId=CONNECTION_ID)
        theirs = list(recorder.requests)

    # Then each request is boto3's: method, path (the stage, the id percent-encoded), body, signed headers, scope
    assert [r.method for r in ours] == ["POST", "DELETE", "DELETE"]
    assert {ours[1].raw_path, ours[2].raw_path} == {
        "/prod/@connections/L0SM9cOFvHcCIhw%3D%2B%2Fx",
        "/prod/@connections/gone-1",
    }
    ours = [ours[0], next(r for r in ours[1:] if "gone" not in r.raw_path)]
    for mine, boto_request in zip(ours, theirs, strict=True):
        assert (mine.method, mine.raw_path, mine.body) == (
            boto_request.method,
            boto_request.raw_path,
            boto_request.body,
        )
        assert mine.headers["host"] == boto_request.headers["host"]
        assert mine.headers["x-amz-security-token"] == "session-token"
        mine_auth, boto_auth = _authorization(mine), _authorization(boto_request)
        assert mine_auth["SignedHeaders"] == boto_auth["SignedHeaders"] == "host;x-amz-date;x-amz-security-token"
        day = mine.headers["x-amz-date"][:8]
        assert mine_auth["Credential"] == f"local/{day}/eu-west-1/execute-api/aws4_request"
        assert boto_auth["Credential"][len("local/") + 8 :] == mine_auth["Credential"][len("local/") + 8 :]
        # and the signature is the one botocore's signer computes for it (the check, proved on boto3's request)
        assert boto_auth["Signature"] == _expected_signature(boto_request, credentials, region)
        assert mine_auth["Signature"] == _expected_signature(mine, credentials, region)


def test_refreshable_credentials_are_renewed_when_botocore_says_so() -> None:
    # Given credentials that expire in an hour, a clock the test moves, and a renewal that hands out a new key
    recorder = Recorder()
    now = [datetime.now(UTC)]
    issued = iter(["second", "third"])

    def renew() -> dict[str, str]:
        key = next(issued)
        return {
            "access_key": key,
            "secret_key": f"{key}-secret",
            "token": f"{key}-token",
            "expiry_time": (now[0] + timedelta(hours=1)).isoformat(),
        }

    credentials = RefreshableCredentials(
        "first", "first-secret", "first-token", now[0] + timedelta(hours=1), renew, "test", time_fetcher=lambda: now[0]
    )

    app = Starlette(routes=[Route("/@connections/{connection_id}", recorder.record, methods=["POST"])])
    with running_gateway(app) as base:
        api = ManagementApi(base, region="us-east-1", credentials=credentials)
        # When it posts, the clock passes into the last minutes before expiry, and it posts again
        api.post_to_connection("a", b"1")
        now[0] += timedelta(minutes=55)
        api.post_to_connection("a", b"2")
        api.post_to_connection("a", b"3")

    # Then the second post is signed with the renewed key, and the key is not renewed again while it is fresh
    keys = [_authorization(r)["Credential"].split("/")[0] for r in recorder.requests]
    assert keys == ["first", "second", "second"]
    assert recorder.requests[1].headers["x-amz-security-token"] == "second-token"
    renewed = Credentials("second", "second-secret", "second-token")
    assert _authorization(recorder.requests[2])["Signature"] == _expected_signature(
        recorder.requests[2], renewed, "us-east-1"
    )


# --- over TLS, as in AWS: the certificate and the host name are verified ------------------------------------------


def _certificate_authority(folder: Path, host: str) -> tuple[Path, Path, Path]:
    """A CA of the test's own, and a server certificate it signed for `host`: (ca.pem, server.pem, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    start, end = datetime.now(UTC) - timedelta(minutes=5), datetime.now(UTC) + timedelta(hours=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder(
            name("test CA"), name("test CA"), ca_key.public_key(), x509.random_serial_number(), start, end
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder(ca.subject, name(host), key.public_key(), x509.random_serial_number(), start, end)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@contextmanager
def _tls_management_api(certificate: Path, key: Path) -> Iterator[tuple[int, list[str]]]:
    """A management API over HTTPS on 127.0.0.1 (keep-alive HTTP/1.1): 200 to every post; yields its port and the
    connection ids posted to."""
    posted: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            posted.append(self.path.rsplit("/", 1)[-1])
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], posted
    finally:
        server.shutdown()
        server.server_close()


def test_posts_over_tls_verify_the_certificate_and_host_name(tmp_path: Path) -> None:
    # Given a management API over TLS whose certificate a CA of the test signed for "localhost"
    ca, certificate, key = _certificate_authority(tmp_path, "localhost")
    credentials = Credentials("local", "local")
    with _tls_management_api(certificate, key) as (port, posted):
        # When a client that trusts that CA posts to many connections at once, and again on its kept-alive connections
        trusting = ManagementApi(
            f"https://localhost:{port}", region="us-east-1", credentials=credentials, ca_bundle=str(ca)
        )
        requests = [realtime.Request("POST", f"c-{n}", b"{}") for n in range(40)]
        assert trusting.send(requests) == [None] * 40
        assert trusting.send(requests[:3]) == [None] * 3
        trusting.close()
        # Then every post arrived; and a client that trusts only other roots, or reaches the server by a name the
        # certificate does not carry, sends nothing (each attempt fails the handshake)
        assert sorted(posted) == sorted([f"c-{n}" for n in range(40)] + ["c-0", "c-1", "c-2"])
        strangers = ManagementApi(f"https://localhost:{port}", region="us-east-1", credentials=credentials)
        wrong_name = ManagementApi(
            f"https://127.0.0.1:{port}", region="us-east-1", credentials=credentials, ca_bundle=str(ca)
        )
        for client in (strangers, wrong_name):
            outcome = client.send([realtime.Request("POST", "refused", b"{}")])[0]
            assert isinstance(outcome, realtime.ManagementApiError)
            assert "CERTIFICATE_VERIFY_FAILED" in str(outcome) or "certificate" in str(outcome).lower()
        assert "refused" not in posted
