"""The boto3 clients of the services that call AWS through boto3 (S3 for inbound mail, SES for the outbox)."""

from __future__ import annotations

import os
from typing import Any

_clients: dict[tuple[str, int, str | None, str | None, str | None], Any] = {}


def cached_client(service: str, *, max_attempts: int, signature_version: str | None = None) -> Any:
    """`service`'s client, built once per endpoint (boto3 reads AWS_ENDPOINT_URL_<SERVICE> / AWS_ENDPOINT_URL
    itself; locally they point at moto), with 5 s to connect, 20 s to read, and at most `max_attempts` tries."""
    endpoints = (os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}"), os.environ.get("AWS_ENDPOINT_URL"))
    key = (service, max_attempts, *endpoints, signature_version)
    client = _clients.get(key)
    if client is None:
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=5,
            read_timeout=20,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            **({"signature_version": signature_version} if signature_version else {}),
        )
        client = _clients[key] = boto3.client(service, config=config)
    return client
