"""SES on this machine: moto in server mode on 127.0.0.1, for `make run`, the email tests and bench.email_outbox.

The functions call SES with boto3 exactly as in AWS; only the endpoint differs (`AWS_ENDPOINT_URL_SES`, which
boto3 reads itself). The mail moto "sent" stays in moto's SES backend in this process: `sent_mail()` reads it (the
local gateway's `/local/mail` page lists it, docs/local-development.md).
"""

from __future__ import annotations

import email
import email.policy
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_SES"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class LocalSes:
    """A running moto server (SES, and every other service moto serves) and its endpoint."""

    server: Any
    endpoint: str

    def stop(self) -> None:
        self.server.stop()


def start(port: int | None = None) -> LocalSes:
    """moto's ThreadedMotoServer on 127.0.0.1 (a free port unless given), in a thread of this process."""
    import logging

    from moto.server import ThreadedMotoServer
    from werkzeug.serving import make_server

    from local.s3_post_policy import PostPolicyMiddleware

    class PolicyCheckingMotoServer(ThreadedMotoServer):
        """moto behind S3's POST policy check and CORS (local.s3_post_policy: moto reads no upload policy)."""

        def _server_entry(self) -> None:
            from moto.moto_server.werkzeug_app import (
                DomainDispatcherApplication,
                MotoRequestHandler,
                create_backend_app,
            )

            app = PostPolicyMiddleware(DomainDispatcherApplication(create_backend_app))
            self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per SES call on make run's terminal
    chosen = port or _free_port()
    server = PolicyCheckingMotoServer(ip_address="127.0.0.1", port=chosen, verbose=False)
    server.start()
    return LocalSes(server=server, endpoint=f"http://127.0.0.1:{chosen}")


@dataclass
class LocalSesProcess:
    """moto's server in a process of its own (the bench: SES must not share the sender's interpreter lock)."""

    process: Any
    endpoint: str

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_process(port: int | None = None, *, timeout: float = 30.0) -> LocalSesProcess:
    import subprocess
    import sys
    import time
    import urllib.request

    chosen = port or _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(chosen)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{chosen}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):  # noqa: S310 (our own http endpoint)
                return LocalSesProcess(process, endpoint)
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"moto's server did not start on {endpoint}") from None
            time.sleep(0.2)


def moto_client(service: str, endpoint: str) -> Any:
    """A boto3 client of `service` for the moto server at `endpoint` (SES here, S3 in local.s3)."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 (moto takes any)
    )


def client(endpoint: str) -> Any:
    return moto_client("ses", endpoint)


def verify_senders(endpoint: str, identities: Iterable[str]) -> None:
    """Verify sender identities in moto's SES (an address, or a domain: every address at it may send)."""
    ses = client(endpoint)
    for identity in identities:
        if "@" in identity:
            ses.verify_email_identity(EmailAddress=identity)
        else:
            ses.verify_domain_identity(Domain=identity)


def _backend() -> Any:
    from moto.ses.models import ses_backends

    return ses_backends[ACCOUNT][REGION]


@dataclass(frozen=True)
class SentMail:
    ses_message_id: str
    source: str
    destinations: list[str]
    message: EmailMessage


def sent_mail(endpoint: str | None = None) -> list[SentMail]:
    """Every raw mail moto's SES accepted, oldest first: in this process's moto, or in the moto server at
    `endpoint` (its /moto-api/data.json)."""
    if endpoint is None:
        raws = [(r.id, r.source, list(r.destinations), r.raw_data) for r in list(_backend().sent_messages)]
    else:
        import json
        import urllib.request

        with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=30) as answer:  # noqa: S310
            listed = json.load(answer).get("ses", {}).get("RawMessage", [])
        raws = [(r["id"], r["source"], list(r["destinations"]), r["raw_data"]) for r in listed]
    mails = []
    for ses_id, source, destinations, data in raws:
        parsed = email.message_from_string(data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        mails.append(SentMail(ses_id, source, destinations, parsed))
    return mails


def configure_environment(endpoint: str) -> None:
    """Point this process's (and its children's) SES calls at `endpoint`."""
    os.environ[ENDPOINT_VARIABLE] = endpoint
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)


# --- the mail moto "sent", on the local gateway -------------------------------------------------------------------


def _summary(mail: SentMail) -> dict[str, Any]:
    message = mail.message
    body = message.get_body(("plain",))
    return {
        "sesMessageId": mail.ses_message_id,
        "from": str(message["From"] or mail.source),
        "to": str(message["To"] or ", ".join(mail.destinations)),
        "subject": str(message["Subject"] or ""),
        "date": str(message["Date"] or ""),
        "messageId": str(message["Message-ID"] or ""),
        "inReplyTo": str(message["In-Reply-To"] or "") or None,
        "autoSubmitted": str(message["Auto-Submitted"] or "") or None,
        "text": body.get_content() if body is not None else "",
    }


def mail_routes() -> list[Any]:
    """`GET /local/mail`: the mail sent through the local SES, newest first, as JSON (`?limit=`, default 20);
    `GET /local/mail/{sesMessageId}`: one mail as it was sent (message/rfc822, save it as .eml)."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def listing(request: Request) -> Response:
        try:
            limit = max(1, min(500, int(request.query_params.get("limit", "20"))))
        except ValueError:
            limit = 20
        mails = list(reversed(sent_mail()))[:limit]
        return JSONResponse({"mail": [_summary(mail) for mail in mails], "total": len(sent_mail())})

    async def one(request: Request) -> Response:
        wanted = request.path_params["ses_message_id"]
        for mail in sent_mail():
            if mail.ses_message_id == wanted:
                return Response(mail.message.as_bytes(), media_type="message/rfc822")
        return JSONResponse({"message": "no such mail"}, status_code=404)

    return [Route("/local/mail", listing, methods=["GET"]), Route("/local/mail/{ses_message_id}", one, methods=["GET"])]
