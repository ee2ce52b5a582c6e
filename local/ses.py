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
    from moto.server import ThreadedMotoServer

    chosen = port or _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=chosen, verbose=False)
    server.start()
    return LocalSes(server=server, endpoint=f"http://127.0.0.1:{chosen}")


def client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "ses",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 (moto takes any)
    )


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


def sent_mail() -> list[SentMail]:
    """Every raw mail moto's SES accepted in this process, oldest first."""
    mails = []
    for raw in list(_backend().sent_messages):
        data = getattr(raw, "raw_data", None)
        if data is None:
            continue
        parsed = email.message_from_string(data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        mails.append(SentMail(raw.id, raw.source, list(raw.destinations), parsed))
    return mails


def configure_environment(endpoint: str) -> None:
    """Point this process's (and its children's) SES calls at `endpoint`."""
    os.environ[ENDPOINT_VARIABLE] = endpoint
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
